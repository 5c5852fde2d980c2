/**
 * Runs user transformations (JavaScript in QuickJS, JSONata) off the main thread, in a small pool
 * of worker threads. Each run has a time limit enforced twice: inside the sandbox (QuickJS's
 * interrupt handler, JSONata's guard), and here, by terminating the thread when a run outlives
 * its limit plus a grace period; a terminated or crashed thread is replaced and the runs queued
 * behind it go to the new one. So a transformation that loops, allocates without end or breaks
 * the interpreter fails its own run with a clear error and never stalls or crashes the process.
 *
 * Waiting is bounded too: every run has a longest wait for a free thread (enforced by a timer, so
 * it fails as `busy` at that moment, not whenever a thread frees up) and the queue has a length
 * cap, so a burst of previews or webhooks cannot pile up work the process never catches up with.
 * A thread that dies before it is ready is restarted with backoff; after several failed starts in
 * a row the runs waiting for it fail as `crash` instead of waiting for a thread that never comes.
 *
 * Measured here: a QuickJS run with a fresh runtime costs about 0.3 ms plus the handler's own
 * time; the thread hop adds about 0.1 ms.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { THREAD_SOURCE } from './sandbox-thread.js';

export type TransformKind = 'javascript' | 'jsonata';
export type ErrorKind = 'syntax' | 'runtime' | 'timeout' | 'memory' | 'stack' | 'output' | 'crash' | 'busy';

export interface SandboxLimits {
  timeoutMs: number;
  memoryBytes: number;
  /**
   * Longest a run may wait for a free thread before it fails as `busy`. The delivery worker sets
   * it so that waiting, running and sending all fit inside a delivery's lease.
   */
  maxWaitMs?: number;
  /**
   * Refuse the run as `busy` when this many runs are already queued. API and ingress runs set a
   * lower cap than the sandbox's own, so a flood of them leaves queue room for deliveries.
   */
  maxQueued?: number;
}

export type RunResult =
  | { ok: true; output: unknown; durationMs: number }
  | { ok: false; errorKind: ErrorKind; error: string; durationMs: number };

interface Job {
  id: number;
  op: 'run' | 'check';
  kind: TransformKind;
  code: string;
  input: string;
  bindings?: Record<string, unknown>;
  timeoutMs: number;
  memoryBytes: number;
  resolve: (r: RunResult) => void;
  queuedAt: number;
  maxWaitMs: number;
  startedAt: number;
  /** Fails the job as busy at its wait deadline if no thread has taken it by then. */
  waitTimer: NodeJS.Timeout | null;
}

interface Slot {
  worker: Worker | null;
  ready: boolean;
  job: Job | null;
  killTimer: NodeJS.Timeout | null;
}

/** Beyond its own limit a run gets this long before its thread is terminated. */
export const HARD_KILL_GRACE_MS = 1000;

/**
 * How long a run with these limits can take at worst, from being submitted to resolving: waiting
 * for a thread, then running until the hard kill. The delivery worker adds it to what an attempt
 * needs of its lease.
 */
export function worstCaseMs(limits: SandboxLimits): number {
  const wait = limits.maxWaitMs !== undefined && Number.isFinite(limits.maxWaitMs) ? limits.maxWaitMs : 0;
  return wait + limits.timeoutMs + HARD_KILL_GRACE_MS;
}

/** Queued runs beyond which every new run is refused as busy (deliveries included). */
const DEFAULT_MAX_QUEUED = 5000;
/** A thread that died before it was ready is restarted after 50 ms, 100 ms, … up to this. */
const MAX_RESPAWN_DELAY_MS = 5000;
/** After this many failed starts in a row, the queued runs fail instead of waiting. */
const MAX_FAILED_STARTS = 5;

const require = createRequire(import.meta.url);
const modulePaths = { jsonataPath: require.resolve('jsonata'), quickjsPath: require.resolve('quickjs-emscripten') };

export class Sandbox {
  private readonly slots: Slot[];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;
  /** Threads in a row that died before they were ready; reset when one becomes ready. */
  private failedStarts = 0;
  private lastStartError = '';
  /** No thread is started before this time (performance.now()), after failed starts. */
  private respawnAt = 0;
  private respawnTimer: NodeJS.Timeout | null = null;

  constructor(
    threads: number,
    /** Heap cap of each thread (JSONata runs on the thread's own heap; QuickJS has its own limit). */
    private readonly threadHeapMb = 256,
    /** Queued runs beyond which new runs are refused as busy. */
    private readonly maxQueued = DEFAULT_MAX_QUEUED,
  ) {
    this.slots = Array.from({ length: Math.max(1, threads) }, () => ({ worker: null, ready: false, job: null, killTimer: null }));
  }

  /** Runs a transformation on `input` (any JSON value); never rejects. */
  run(kind: TransformKind, code: string, input: unknown, limits: SandboxLimits, bindings?: Record<string, unknown>): Promise<RunResult> {
    return this.submit('run', kind, code, JSON.stringify(input ?? null), limits, bindings);
  }

  /** Compiles without running (JSONata) or defines the handler (JavaScript): for validation on save. */
  check(kind: TransformKind, code: string, limits: SandboxLimits): Promise<RunResult> {
    return this.submit('check', kind, code, 'null', limits);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.respawnTimer) clearTimeout(this.respawnTimer);
    this.respawnTimer = null;
    this.failQueued('crash', 'the sandbox was shut down');
    await Promise.all(this.slots.map(async (s) => {
      if (s.killTimer) clearTimeout(s.killTimer);
      if (s.job) this.finish(s, { ok: false, errorKind: 'crash', error: 'the sandbox was shut down' });
      const w = s.worker;
      s.worker = null;
      if (w) await w.terminate();
    }));
  }

  /** Runs waiting for a thread (for tests and metrics). */
  get queued(): number {
    return this.queue.length;
  }

  private submit(op: Job['op'], kind: TransformKind, code: string, input: string, limits: SandboxLimits, bindings?: Record<string, unknown>): Promise<RunResult> {
    if (this.closed) return Promise.resolve({ ok: false, errorKind: 'crash', error: 'the sandbox was shut down', durationMs: 0 });
    const cap = Math.min(this.maxQueued, limits.maxQueued ?? Infinity);
    if (this.queue.length >= cap) {
      return Promise.resolve({ ok: false, errorKind: 'busy', error: `the transformation sandbox is busy: ${this.queue.length} runs are already waiting for a thread`, durationMs: 0 });
    }
    return new Promise((resolve) => {
      const job: Job = {
        id: this.nextId++, op, kind, code, input, bindings, timeoutMs: limits.timeoutMs, memoryBytes: limits.memoryBytes, resolve,
        queuedAt: performance.now(), maxWaitMs: limits.maxWaitMs ?? Infinity, startedAt: 0, waitTimer: null,
      };
      this.queue.push(job);
      if (Number.isFinite(job.maxWaitMs)) {
        // Checking the wait only when a thread frees up would let a job wait as long as the run
        // ahead of it takes (up to its hard kill): its caller's deadline (a delivery's lease, an
        // HTTP request) must hold even while every thread is stuck.
        job.waitTimer = setTimeout(() => {
          job.waitTimer = null;
          const i = this.queue.indexOf(job);
          if (i === -1) return;
          this.queue.splice(i, 1);
          job.resolve(busyResult(performance.now() - job.queuedAt));
        }, Math.max(0, job.maxWaitMs));
      }
      this.dispatch();
    });
  }

  /** Fails every queued job (shutdown, or threads that cannot start). */
  private failQueued(errorKind: ErrorKind, error: string) {
    for (const j of this.queue.splice(0)) {
      if (j.waitTimer) clearTimeout(j.waitTimer);
      j.resolve({ ok: false, errorKind, error, durationMs: 0 });
    }
  }

  private dispatch() {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.job) continue;
      if (!slot.worker && !this.spawnLater()) this.spawn(slot);
      if (!slot.ready) continue;
      const job = this.nextRunnable();
      if (!job) return;
      if (job.waitTimer) clearTimeout(job.waitTimer);
      job.waitTimer = null;
      slot.job = job;
      job.startedAt = performance.now();
      const { resolve: _r, startedAt: _s, queuedAt: _q, maxWaitMs: _m, waitTimer: _t, ...message } = job;
      slot.worker!.postMessage(message);
      slot.killTimer = setTimeout(() => {
        // The sandbox's own limit did not stop it: take the thread down with the run.
        const w = slot.worker;
        slot.worker = null;
        slot.ready = false;
        this.finish(slot, { ok: false, errorKind: 'timeout', error: `the transformation ran longer than its ${job.timeoutMs} ms limit and was stopped` });
        void w?.terminate();
        this.dispatch();
      }, job.timeoutMs + HARD_KILL_GRACE_MS);
    }
  }

  /** The next queued job that has not waited too long; those that have fail as busy. */
  private nextRunnable(): Job | undefined {
    for (;;) {
      const job = this.queue.shift();
      if (!job) return undefined;
      const waited = performance.now() - job.queuedAt;
      if (waited <= job.maxWaitMs) return job;
      // Its timer is due but has not fired yet (a busy event loop): it is late all the same.
      if (job.waitTimer) clearTimeout(job.waitTimer);
      job.resolve(busyResult(waited));
    }
  }

  /**
   * True while threads that failed to start are backing off; then a timer dispatches again.
   * Without this a thread that cannot start (a broken install, a heap too small to load the
   * interpreters) would be respawned in a tight loop, pinning a core.
   */
  private spawnLater(): boolean {
    const wait = this.respawnAt - performance.now();
    if (wait <= 0) return false;
    if (!this.respawnTimer && !this.closed) {
      this.respawnTimer = setTimeout(() => {
        this.respawnTimer = null;
        this.dispatch();
      }, wait);
      // Queued jobs hold their own wait timers; an empty sandbox must not keep the process alive.
      if (this.queue.length === 0) this.respawnTimer.unref();
    }
    return true;
  }

  private spawn(slot: Slot) {
    const worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: modulePaths,
      resourceLimits: { maxOldGenerationSizeMb: this.threadHeapMb, maxYoungGenerationSizeMb: 32 },
      stdout: true,
      stderr: true,
    });
    // The pool must not keep a process alive on its own; a run in progress holds its kill timer.
    worker.unref();
    slot.worker = worker;
    slot.ready = false;
    worker.on('message', (m: { ready?: boolean; id?: number; result?: Omit<RunResult, 'durationMs'> }) => {
      if (slot.worker !== worker) return;
      if (m.ready) {
        slot.ready = true;
        this.failedStarts = 0;
        this.respawnAt = 0;
        this.dispatch();
        return;
      }
      if (slot.job && m.id === slot.job.id && m.result) {
        const r = m.result as { ok: boolean; output?: string; errorKind?: ErrorKind; error?: string };
        this.finish(slot, r.ok ? { ok: true, output: r.output === null || r.output === undefined ? null : JSON.parse(r.output) } : { ok: false, errorKind: r.errorKind ?? 'runtime', error: r.error ?? 'failed' });
        this.dispatch();
      }
    });
    const gone = (err?: Error & { code?: string }) => {
      if (slot.worker !== worker) return;
      const wasReady = slot.ready;
      slot.worker = null;
      slot.ready = false;
      if (!wasReady && !this.closed) {
        this.failedStarts++;
        this.lastStartError = err?.message ?? 'the thread exited';
        this.respawnAt = performance.now() + Math.min(MAX_RESPAWN_DELAY_MS, 50 * 2 ** (this.failedStarts - 1));
        if (this.failedStarts >= MAX_FAILED_STARTS) {
          // Starting keeps failing: the queued runs fail now with the reason rather than wait
          // (perhaps forever, for runs without a wait bound). Later runs try a new thread, with
          // the backoff, and fail the same way until one starts.
          this.failQueued('crash', `the transformation sandbox could not start a thread (${this.failedStarts} failed starts in a row; last: ${this.lastStartError})`);
        }
      }
      if (slot.job) {
        const oom = err?.code === 'ERR_WORKER_OUT_OF_MEMORY';
        this.finish(slot, { ok: false, errorKind: oom ? 'memory' : 'crash', error: oom ? 'the transformation used more memory than its limit' : `the sandbox stopped while running the transformation${err ? ` (${err.message})` : ''}` });
      }
      if (!this.closed) this.dispatch();
    };
    worker.on('error', gone);
    worker.on('exit', () => gone());
  }

  private finish(slot: Slot, r: { ok: true; output: unknown } | { ok: false; errorKind: ErrorKind; error: string }) {
    const job = slot.job;
    if (!job) return;
    slot.job = null;
    if (slot.killTimer) clearTimeout(slot.killTimer);
    slot.killTimer = null;
    job.resolve({ ...r, durationMs: Math.round((performance.now() - job.startedAt) * 100) / 100 } as RunResult);
  }
}

function busyResult(waitedMs: number): RunResult {
  return { ok: false, errorKind: 'busy', error: `the transformation sandbox was busy: no thread was free for ${Math.round(waitedMs)} ms`, durationMs: 0 };
}

let shared: Sandbox | null = null;

/** The process's sandbox, started on first use (processes without transformations start no threads). */
export function sharedSandbox(threads = 2): Sandbox {
  shared ??= new Sandbox(threads);
  return shared;
}

/**
 * Longest an API or ingress run (preview, save-time check, a source's expressions) waits for a
 * thread: an HTTP caller is better served by a prompt 503 and Retry-After than by a request that
 * hangs behind a backlog.
 */
export const API_MAX_WAIT_MS = 3000;
/** Queued runs beyond which API and ingress runs are refused (deliveries may queue further). */
export const API_MAX_QUEUED = 100;

type LimitsConfig = { transformTimeoutMs: number; transformMemoryBytes: number };
/** The per-run limits from the configuration, without any wait bound (callers add their own). */
export const runLimitsOf = (c: LimitsConfig): SandboxLimits => ({ timeoutMs: c.transformTimeoutMs, memoryBytes: c.transformMemoryBytes });
/** The limits for runs on behalf of an HTTP request: bounded wait and queue. */
export const limitsOf = (c: LimitsConfig): SandboxLimits => ({ ...runLimitsOf(c), maxWaitMs: API_MAX_WAIT_MS, maxQueued: API_MAX_QUEUED });

/**
 * The shortest wait for a thread a delivery's transformation is given, however little of the
 * lease the request and the run leave, so a run that finds the threads busy for a moment is not
 * failed as busy at once.
 */
export const DELIVERY_MIN_WAIT_MS = 100;

type DeliveryLimitsConfig = LimitsConfig & { requestTimeoutMs: number; leaseMs: number };
/**
 * The limits for a delivery's transformation. Waiting for a thread, running up to the hard kill
 * and then sending must all fit inside the lease, or another worker could take the delivery
 * meanwhile: the wait gets what the lease leaves, at most the request timeout and at least
 * DELIVERY_MIN_WAIT_MS.
 */
export function deliveryLimitsOf(c: DeliveryLimitsConfig): SandboxLimits {
  const leftOver = c.leaseMs - c.requestTimeoutMs - c.transformTimeoutMs - HARD_KILL_GRACE_MS;
  return { ...runLimitsOf(c), maxWaitMs: Math.max(DELIVERY_MIN_WAIT_MS, Math.min(c.requestTimeoutMs, leftOver)) };
}

/**
 * What a lease must be longer than: the longest an attempt takes when its transformation gets
 * only the shortest wait (the wait, the run up to its hard kill, then the request). The
 * configuration refuses a shorter lease; above it, deliveryLimitsOf keeps every attempt inside.
 */
export function leaseFloorMs(c: LimitsConfig & { requestTimeoutMs: number }): number {
  return c.requestTimeoutMs + worstCaseMs({ ...runLimitsOf(c), maxWaitMs: DELIVERY_MIN_WAIT_MS });
}
