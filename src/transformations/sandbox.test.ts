/**
 * The sandbox stops what a user's transformation must not do (loop forever, allocate without end,
 * reach the host) and reports it as the run's error, while the process and the next runs go on.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Sandbox } from './sandbox.js';
import { applyTransformation } from './transformation.js';

const sandbox = new Sandbox(1);
const limits = { timeoutMs: 200, memoryBytes: 16 * 1024 * 1024 };
afterAll(() => sandbox.close());

const js = (code: string, input: unknown = { payload: { a: 1 } }) => sandbox.run('javascript', code, input, limits);

describe('JavaScript in QuickJS', () => {
  it('runs a handler and returns what it returns', async () => {
    expect(await js('function handler(w) { w.payload.total = w.payload.a * 2; return w; }')).toMatchObject({ ok: true, output: { payload: { a: 1, total: 2 } } });
  });

  it('stops an infinite loop at the time limit', async () => {
    const started = Date.now();
    const r = await js('function handler(w) { for (;;) {} }');
    expect(r).toMatchObject({ ok: false, errorKind: 'timeout' });
    expect(Date.now() - started).toBeLessThan(limits.timeoutMs + 1500);
  });

  it('stops huge allocations (by the memory limit, or by the hard deadline when allocation itself is slow)', async () => {
    expect(await js('function handler(w) { return "x".repeat(1 << 28); }')).toMatchObject({ ok: false, errorKind: 'memory' });
    expect(await js('function handler(w) { return new ArrayBuffer(1e9); }')).toMatchObject({ ok: false, errorKind: 'memory', error: expect.stringContaining('more memory than its limit') });
    expect(await js('function handler(w) { const a = []; for (let i = 0; ; i++) a.push({ i, s: "y" + i }); }')).toMatchObject({ ok: false, errorKind: expect.stringMatching(/^(memory|timeout)$/) });
    const slow = await js('function handler(w) { const a = []; for (;;) a.push(new Uint8Array(1e6)); }');
    expect(slow).toMatchObject({ ok: false, errorKind: expect.stringMatching(/^(memory|timeout)$/) });
    // The thread that had to be killed was replaced: the next run works.
    expect((await js('function handler(w) { return w; }')).ok).toBe(true);
  });

  it('has no process, require, network, timers or module loader to reach', async () => {
    const tries = [
      'process.exit(1)', 'require("fs")', 'fetch("http://127.0.0.1:1/")', 'new XMLHttpRequest()', 'setTimeout(() => 1, 1)',
      'globalThis.std.loadFile("/etc/passwd")', 'globalThis.os.exec(["ls"])',
    ];
    for (const t of tries) {
      const r = await js(`function handler(w) { ${t}; return w; }`);
      expect(r, t).toMatchObject({ ok: false, errorKind: 'runtime' });
      expect((r as { error: string }).error, t).toMatch(/not defined|not a function|undefined/);
    }
    // A dynamic import can only give a promise that never settles (there is no module loader and
    // no event loop): the handler returns no webhook, which fails the run.
    const imp = await applyTransformation(sandbox, { kind: 'javascript', code: 'function handler(w) { return import("os").then(() => w); }' }, {}, { url: 'http://x', eventType: 't', messageId: 'm' }, limits);
    expect(imp).toMatchObject({ ok: false, errorKind: 'output' });
    expect(await js('function handler(w) { return { payload: typeof process + typeof require + typeof fetch }; }')).toMatchObject({ ok: true, output: { payload: 'undefinedundefinedundefined' } });
  });

  it('reports deep recursion, syntax errors, a missing handler and a missing return', async () => {
    expect(await js('function handler(w) { function f() { return f() + 1; } return f(); }')).toMatchObject({ ok: false, errorKind: 'stack' });
    expect(await js('function handler(w) { return w')).toMatchObject({ ok: false, errorKind: 'syntax' });
    expect(await js('const x = 1;')).toMatchObject({ ok: false, errorKind: 'syntax', error: expect.stringContaining('function handler') });
    expect(await js('function handler(w) { w.payload.x = 1; }')).toMatchObject({ ok: false, errorKind: 'output' });
    expect(await js('function handler(w) { throw new Error("no customer number"); }')).toMatchObject({ ok: false, errorKind: 'runtime', error: 'no customer number' });
  });

  it('keeps runs apart: globals set by one run are gone in the next', async () => {
    await js('globalThis.leak = 42; function handler(w) { return w; }');
    expect(await js('function handler(w) { return { payload: typeof leak }; }')).toMatchObject({ ok: true, output: { payload: 'undefined' } });
  });
});

describe('JSONata', () => {
  it('evaluates with bindings', async () => {
    expect(await sandbox.run('jsonata', '{"type": $eventType, "name": billing.first_name}', { billing: { first_name: 'Jan' } }, limits, { eventType: 'order.created' })).toMatchObject({ ok: true, output: { type: 'order.created', name: 'Jan' } });
  });

  it('stops endless recursion and long runs, and reports syntax errors with their position', async () => {
    expect(await sandbox.run('jsonata', '($f := function($x) { $f($x + 1) }; $f(0))', {}, limits)).toMatchObject({ ok: false, errorKind: expect.stringMatching(/^(timeout|stack)$/) });
    expect(await sandbox.run('jsonata', '$count([1..9999999].($string($)))', {}, limits)).toMatchObject({ ok: false, errorKind: 'timeout' });
    expect(await sandbox.check('jsonata', '{ "a": ', limits)).toMatchObject({ ok: false, errorKind: 'syntax', error: expect.stringContaining('at character') });
  });
});

describe('the queue', () => {
  it('fails runs that waited longer than their maxWaitMs as busy, and runs the rest', async () => {
    const one = new Sandbox(1);
    try {
      const slow = one.run('javascript', 'function handler(w) { const end = Date.now() + 300; while (Date.now() < end) {} return w; }', { payload: 1 }, { timeoutMs: 1000, memoryBytes: 8 << 20 });
      const impatient = one.run('javascript', 'function handler(w) { return w; }', { payload: 2 }, { timeoutMs: 1000, memoryBytes: 8 << 20, maxWaitMs: 50 });
      const patient = one.run('javascript', 'function handler(w) { return w; }', { payload: 3 }, { timeoutMs: 1000, memoryBytes: 8 << 20, maxWaitMs: 5000 });
      expect(await slow).toMatchObject({ ok: true });
      expect(await impatient).toMatchObject({ ok: false, errorKind: 'busy' });
      expect(await patient).toMatchObject({ ok: true, output: { payload: 3 } });
    } finally {
      await one.close();
    }
  });
});

describe('bounded waiting', () => {
  const spin = (ms: number) => `function handler(w) { const end = Date.now() + ${ms}; while (Date.now() < end) {} return w; }`;

  it('fails a queued run as busy at its wait deadline, not when a thread frees up', async () => {
    const one = new Sandbox(1);
    try {
      await one.run('jsonata', '1', {}, { timeoutMs: 1000, memoryBytes: 8 << 20 }); // the thread is up
      const slow = one.run('javascript', spin(800), { payload: 1 }, { timeoutMs: 2000, memoryBytes: 8 << 20 });
      const started = performance.now();
      const impatient = await one.run('javascript', 'function handler(w) { return w; }', { payload: 2 }, { timeoutMs: 1000, memoryBytes: 8 << 20, maxWaitMs: 100 });
      expect(impatient).toMatchObject({ ok: false, errorKind: 'busy' });
      expect(performance.now() - started).toBeLessThan(500);
      expect(one.queued).toBe(0);
      expect(await slow).toMatchObject({ ok: true });
    } finally {
      await one.close();
    }
  });

  it('refuses runs beyond the queue caps as busy, at once', async () => {
    const one = new Sandbox(1, 256, 3);
    try {
      await one.run('jsonata', '1', {}, { timeoutMs: 1000, memoryBytes: 8 << 20 }); // the thread is up
      const hog = one.run('javascript', spin(300), { payload: 0 }, { timeoutMs: 2000, memoryBytes: 8 << 20 });
      const ok = (n: number) => one.run('javascript', 'function handler(w) { return w; }', { payload: n }, { timeoutMs: 1000, memoryBytes: 8 << 20 });
      const queued = [ok(1), ok(2)];
      // The run's own cap (API and ingress runs use a low one) applies before the sandbox's.
      expect(await one.run('jsonata', '1', {}, { timeoutMs: 1000, memoryBytes: 8 << 20, maxQueued: 2 })).toMatchObject({ ok: false, errorKind: 'busy', error: expect.stringContaining('2 runs are already waiting') });
      queued.push(ok(3));
      expect(await ok(4)).toMatchObject({ ok: false, errorKind: 'busy' });
      expect((await Promise.all([hog, ...queued])).every((r) => r.ok)).toBe(true);
    } finally {
      await one.close();
    }
  });
});

describe('threads that cannot start', () => {
  it('are restarted with backoff, and the queued runs fail with the reason after several failed starts', async () => {
    // A 1 MiB heap cannot load the interpreters: every thread dies before it is ready.
    const broken = new Sandbox(1, 1);
    try {
      const started = performance.now();
      const r = await Promise.race([
        broken.run('jsonata', '1', {}, { timeoutMs: 100, memoryBytes: 1 << 20 }),
        new Promise((resolve) => setTimeout(() => resolve('never resolved'), 15_000)),
      ]);
      expect(r).toMatchObject({ ok: false, errorKind: 'crash', error: expect.stringMatching(/could not start a thread \(5 failed starts in a row; last: .*memory/) });
      // 50 + 100 + 200 + 400 ms between the five starts, not a tight loop.
      expect(performance.now() - started).toBeGreaterThanOrEqual(700);
    } finally {
      await broken.close();
    }
  }, 20_000);
});
