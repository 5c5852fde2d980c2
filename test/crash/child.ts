/**
 * Crash-test harness: Koppel as a real child process (`node --import tsx src/main.ts`) on a fixed
 * loopback port and data directory, so it can be killed and started again on the same database.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADMIN_KEY } from '../helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A port that was free a moment ago (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((res, rej) => {
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', res);
  });
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((res) => srv.close(() => res()));
  return port;
}

export interface ApiResult {
  status: number;
  body: any;
}

export interface KoppelChild {
  proc: ChildProcess;
  url: string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited: () => boolean;
  /** Everything the process wrote to stdout and stderr so far (for failure messages). */
  output: () => string;
  api: (method: string, p: string, body?: unknown, extraHeaders?: Record<string, string>) => Promise<ApiResult>;
  /** Sends SIGKILL if still running and waits (bounded) for the exit. */
  kill: () => Promise<void>;
}

export interface ChildOptions {
  dataDir: string;
  port: number;
  env?: Record<string, string>;
  /** How long to wait for /api/v1/health to answer 204. */
  readyTimeoutMs?: number;
  /** Command-line arguments after `src/main.ts` (e.g. `['--role', 'api']`). */
  args?: string[];
}

export async function startKoppelChild(opts: ChildOptions): Promise<KoppelChild> {
  // Only our own KOPPEL_ settings: the parent's (e.g. the one vitest sets) must not leak in.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KOPPEL_')) env[k] = v;
  Object.assign(env, {
    KOPPEL_DATA_DIR: opts.dataDir,
    KOPPEL_PORT: String(opts.port),
    KOPPEL_HOST: '127.0.0.1',
    KOPPEL_ADMIN_API_KEY: ADMIN_KEY,
    KOPPEL_ALLOWED_NETWORKS: '127.0.0.0/8',
    KOPPEL_RETRY_SCHEDULE: '0,0.1,0.2,0.5,1,1,1,1',
    KOPPEL_REQUEST_TIMEOUT: '1',
    // Short, so deliveries of a killed process are due again soon; it must still exceed
    // request + transformation timeout + 1.1 s.
    KOPPEL_TRANSFORM_TIMEOUT: '0.05',
    KOPPEL_LEASE: '2.2',
    KOPPEL_POLL_INTERVAL: '0.1',
    KOPPEL_LOG_LEVEL: 'warn',
    ...opts.env,
  });
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...(opts.args ?? [])], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (c: Buffer) => {
    out += c.toString('utf8');
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    proc.once('exit', (code, signal) => {
      done = true;
      res({ code, signal });
    });
  });
  const url = `http://127.0.0.1:${opts.port}`;
  const api: KoppelChild['api'] = async (method, p, body, extraHeaders) => {
    const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_KEY}`, ...extraHeaders };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(url + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* keep text */
    }
    return { status: res.status, body: parsed };
  };
  const child: KoppelChild = {
    proc,
    url,
    exited,
    hasExited: () => done,
    output: () => out,
    api,
    kill: async () => {
      if (!done) proc.kill('SIGKILL');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    },
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (done) throw new Error(`Koppel exited before it became healthy:\n${out}`);
    try {
      const r = await fetch(`${url}/api/v1/health`, { signal: AbortSignal.timeout(1000) });
      if (r.status === 204) return child;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await child.kill();
      throw new Error(`Koppel did not become healthy within ${opts.readyTimeoutMs ?? 20_000} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
