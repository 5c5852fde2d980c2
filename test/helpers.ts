/**
 * Test harness: a whole Koppel on a fresh SQLite file in a temp directory, listening on a random
 * loopback port, with loopback deliveries allowed and a fast retry schedule; plus a receiver.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { loadConfig, type Config } from '../src/config.js';
import { startKoppel, type Koppel } from '../src/server.js';
import { openPostgresStore } from '../src/store/postgres.js';
import pg from 'pg';
import { describe, expect, it } from 'vitest';

export const ADMIN_KEY = 'test-admin-key-0123456789';

export interface TestKoppel {
  koppel: Koppel;
  url: string;
  dataDir: string;
  /** fetch-like helper against the API with the admin key (or another key). */
  api: (method: string, path: string, body?: unknown, opts?: { key?: string; headers?: Record<string, string> }) => Promise<{ status: number; body: any; headers: Headers }>;
  close: () => Promise<void>;
}

/**
 * Which store the API and delivery suites run on: `KOPPEL_TEST_STORE=postgres` (set by the
 * postgres project in vitest.config.ts) gives every test server its own schema in the database
 * at KOPPEL_TEST_DATABASE_URL; otherwise a fresh SQLite file.
 */
export const TEST_STORE = process.env.KOPPEL_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';

/** Creates an empty schema for one test server; returns it and a function that drops it. */
export async function createTestSchema(): Promise<{ url: string; schema: string; drop: () => Promise<void> }> {
  const url = process.env.KOPPEL_TEST_DATABASE_URL;
  if (!url) throw new Error('KOPPEL_TEST_STORE=postgres needs KOPPEL_TEST_DATABASE_URL');
  const schema = `t_${Math.random().toString(36).slice(2, 12)}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  await admin.end();
  return {
    url,
    schema,
    drop: async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(`drop schema if exists ${schema} cascade`);
      await c.end();
    },
  };
}

/**
 * A describe block for tests that need PostgreSQL of their own (the scale-out tests), given the
 * database URL. Without KOPPEL_TEST_DATABASE_URL it registers one test instead, which fails under
 * CI: a CI run that forgot the database must not pass green.
 */
export function describeOnPostgres(name: string, body: (url: string) => void): void {
  const url = process.env.KOPPEL_TEST_DATABASE_URL;
  describe(name, () => {
    if (url) body(url);
    else
      it('is not configured (set KOPPEL_TEST_DATABASE_URL); CI must configure it', () => {
        expect(process.env.CI).not.toBe('true');
      });
  });
}

export function tempDir(prefix = 'koppel-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** `opts.logger`: where the server logs (silent by default), for tests that read the log. */
export async function startTestKoppel(env: Record<string, string> = {}, overrides: Partial<Config> = {}, opts: { logger?: Logger } = {}): Promise<TestKoppel> {
  const dataDir = tempDir();
  const config = loadConfig(
    {
      KOPPEL_DATA_DIR: dataDir,
      KOPPEL_PORT: '0',
      KOPPEL_HOST: '127.0.0.1',
      KOPPEL_ADMIN_API_KEY: ADMIN_KEY,
      KOPPEL_ALLOWED_NETWORKS: '127.0.0.0/8,::1/128',
      KOPPEL_RETRY_SCHEDULE: '0,0.05,0.1,0.2',
      KOPPEL_POLL_INTERVAL: '0.05',
      KOPPEL_REQUEST_TIMEOUT: '2',
      KOPPEL_LEASE: '5',
      KOPPEL_LOG_LEVEL: 'silent',
      ...env,
    },
    overrides,
  );
  let dropSchema: (() => Promise<void>) | null = null;
  let store;
  if (TEST_STORE === 'postgres') {
    const t = await createTestSchema();
    dropSchema = t.drop;
    store = openPostgresStore(t.url, { schema: t.schema, max: 5 });
  }
  const koppel = await startKoppel(config, { logger: opts.logger ?? pino({ level: 'silent' }), store });
  const url = koppel.url!;
  const api: TestKoppel['api'] = async (method, p, body, opts = {}) => {
    const headers: Record<string, string> = { authorization: `Bearer ${opts.key ?? ADMIN_KEY}`, ...(opts.headers ?? {}) };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(url + p, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* keep text */
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
  return {
    koppel, url, dataDir, api,
    close: async () => {
      await koppel.close();
      if (dropSchema) await dropSchema();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
}

export interface Receiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Sets how the next requests are answered (default 200 "ok"). */
  respond: (fn: (req: ReceivedRequest, res: http.ServerResponse) => void) => void;
  /** Resolves when at least n requests have arrived (rejects after timeoutMs). */
  waitFor: (n: number, timeoutMs?: number) => Promise<ReceivedRequest[]>;
  close: () => Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  let handler: (req: ReceivedRequest, res: http.ServerResponse) => void = (_r, res) => res.end('ok');
  let waiters: { n: number; resolve: () => void }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const r: ReceivedRequest = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      requests.push(r);
      waiters = waiters.filter((w) => (requests.length >= w.n ? (w.resolve(), false) : true));
      handler(r, res);
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    respond: (fn) => (handler = fn),
    waitFor: (n, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        if (requests.length >= n) return resolve(requests);
        const t = setTimeout(() => reject(new Error(`receiver got ${requests.length} of ${n} requests within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ n, resolve: () => (clearTimeout(t), resolve(requests)) });
      }),
    close: () =>
      new Promise<void>((res) => {
        server.closeAllConnections();
        server.close(() => res());
      }),
  };
}

/** Polls `fn` until it returns a truthy value (bounded). */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 10_000, stepMs = 25): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
