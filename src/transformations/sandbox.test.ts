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
