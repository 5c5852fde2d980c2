/**
 * HTTP exchanges on threads of their own. One event loop that ingests, claims, signs, sends and
 * records every delivery is busy with all of it; the exchange itself (undici, sockets, the
 * response) is a large part, needs nothing from the database, and so runs on delivery threads
 * while the main thread keeps the store, the API and the worker's bookkeeping. Same interface
 * and results as HttpSender (the thread runs one); requests to one origin always go to the same
 * thread, so its keep-alive connections are reused.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FromThread, ToThread } from './sender-thread.js';
import type { SendRequest, SendResult, SenderOptions } from './http-sender.js';

interface Thread {
  worker: Worker;
  queue: [number, SendRequest][];
  pending: Map<number, (r: SendResult) => void>;
  closed: Promise<void> | null;
  /** Settles when the thread has loaded, exited or failed. */
  started: Promise<void>;
}

/**
 * Starts a delivery thread: the built .js directly, or under tsx/vitest the .ts source through
 * tsx's loader, registered inside the new thread (a thread does not inherit it).
 */
function startThread(workerData: SenderOptions): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./sender-thread.js', import.meta.url), { workerData });
  // tsx's package exports name its ESM entry for `import`; resolve that file by hand (require()
  // would give the CommonJS one).
  const tsxDir = path.dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const tsxApi = pathToFileURL(path.join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const thread = new URL('./sender-thread.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsxApi)}).then((api) => { api.register(); return import(${JSON.stringify(thread)}); });`;
  return new Worker(boot, { eval: true, workerData });
}

export class SenderThreads {
  private readonly threads: Thread[];
  private nextId = 1;
  private scheduled = false;
  private closing = false;
  /** Resolves when every thread has loaded (or failed to: its requests then fail, see spawn). */
  readonly ready: Promise<void>;

  constructor(
    count: number,
    private readonly opts: SenderOptions,
  ) {
    this.threads = Array.from({ length: Math.max(1, count) }, () => this.spawn());
    this.ready = Promise.all(this.threads.map((t) => t.started)).then(() => {});
  }

  send(req: SendRequest): Promise<SendResult> {
    const thread = this.threads[this.threads.length === 1 ? 0 : originHash(req.url) % this.threads.length];
    return new Promise<SendResult>((resolve) => {
      if (this.closing) {
        resolve(stopped('the delivery threads are shutting down'));
        return;
      }
      const id = this.nextId++;
      thread.pending.set(id, resolve);
      thread.queue.push([id, req]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Waits for the exchanges in flight (each bounded by the deadline), then stops the threads. */
  async close(): Promise<void> {
    this.closing = true;
    this.flush();
    await Promise.all(
      this.threads.map((t) => {
        t.closed ??= new Promise<void>((resolve) => {
          t.worker.once('exit', () => resolve());
          t.worker.on('message', (m: FromThread) => {
            if ('closed' in m) void t.worker.terminate();
          });
          t.worker.postMessage({ close: true } satisfies ToThread);
        });
        return t.closed;
      }),
    );
  }

  private flush() {
    this.scheduled = false;
    for (const t of this.threads) {
      if (!t.queue.length) continue;
      const requests = t.queue;
      t.queue = [];
      t.worker.postMessage({ requests } satisfies ToThread);
    }
  }

  private spawn(): Thread {
    const worker = startThread(this.opts);
    let started!: () => void;
    const thread: Thread = { worker, queue: [], pending: new Map(), closed: null, started: new Promise<void>((r) => (started = r)) };
    worker.on('message', (m: FromThread) => {
      if ('ready' in m) started();
      if (!('results' in m)) return;
      for (const [id, result] of m.results) {
        const resolve = thread.pending.get(id);
        thread.pending.delete(id);
        resolve?.(result);
      }
    });
    // A thread that dies fails what it had in flight (the attempts are retried like any network
    // failure) and is replaced, unless we are shutting down.
    const died = (why: string) => {
      started();
      for (const resolve of thread.pending.values()) resolve(stopped(why));
      thread.pending.clear();
      if (this.closing) return;
      const i = this.threads.indexOf(thread);
      if (i >= 0) {
        const next = this.spawn();
        next.queue.push(...thread.queue);
        this.threads[i] = next;
        if (next.queue.length) this.flush();
      }
    };
    worker.on('error', (e) => died(`the delivery thread failed: ${e.message}`));
    worker.on('exit', (code) => died(`the delivery thread exited (code ${code})`));
    return thread;
  }
}

function stopped(error: string): SendResult {
  return { ok: false, status: null, headers: {}, body: '', truncated: false, durationMs: 0, errorClass: 'network', error, retryAfterMs: null };
}

/** A cheap hash of the URL's scheme and authority, so one origin stays on one thread. */
function originHash(url: string): number {
  const end = url.indexOf('/', url.indexOf('//') + 2);
  const origin = end < 0 ? url : url.slice(0, end);
  let h = 0;
  for (let i = 0; i < origin.length; i++) h = (h * 31 + origin.charCodeAt(i)) | 0;
  return h >>> 0;
}
