/**
 * Koppel as built in dist/: `node dist/main.js`, configured only through KOPPEL_* variables.
 * - koppel-sqlite: one process (role all) on the embedded SQLite default, in a fresh data dir.
 * - koppel-pg: one API process and two worker processes on a fresh PostgreSQL database.
 * Messages are created over the HTTP API (single POSTs or the bulk API) with an undici pool.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Pool } from 'undici';
import { ROOT, freePort, onCleanup, startProcess, stopProcess, waitUntil, type Child } from '../lib/proc.js';
import type { Deployment, EndpointTarget, StartOptions, SystemDef } from './types.js';

export const ADMIN_KEY = 'bench-admin-' + crypto.randomBytes(12).toString('hex');
export const APP_UID = 'bench';
export const PG_BASE_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
let MAIN = path.join(ROOT, 'dist', 'main.js');

/**
 * Runs Koppel from a copy of dist/ taken now, so a rebuild by someone else during a long run
 * cannot change the code under test halfway. The copy resolves its packages from the project's
 * node_modules (it lives inside the project). Returns a function that removes it.
 */
export function snapshotBuild(dir: string): () => void {
  const dist = path.join(ROOT, 'dist');
  if (!fs.existsSync(path.join(dist, 'main.js'))) throw new Error('dist/main.js is missing: run `npm run build` first (npm run bench does).');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(dist, dir, { recursive: true });
  MAIN = path.join(dir, 'main.js');
  return () => fs.rmSync(dir, { recursive: true, force: true });
}

/** The environment of a Koppel child: ours, without any KOPPEL_* from the caller's shell. */
function koppelEnv(settings: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KOPPEL_') && !k.startsWith('NODE_OPTIONS')) env[k] = v;
  return { ...env, ...settings };
}

export interface KoppelProcess {
  role: string;
  child: Child;
  url: string;
}

/** Starts one Koppel process and waits until its health check answers (bounded). */
export async function startKoppelProcess(name: string, role: 'all' | 'api' | 'worker', settings: Record<string, string>, nodeArgs: string[] = []): Promise<KoppelProcess> {
  if (!fs.existsSync(MAIN)) throw new Error('dist/main.js is missing: run `npm run build` first (npm run bench does).');
  const port = await freePort();
  const child = startProcess(name, process.execPath, [...nodeArgs, MAIN, '--role', role], {
    env: koppelEnv({ ...settings, KOPPEL_PORT: String(port), KOPPEL_HOST: '127.0.0.1' }),
  });
  const url = `http://127.0.0.1:${port}`;
  const up = await waitUntil(async () => {
    if (!child.isAlive()) throw new Error('exited');
    const r = await fetch(`${url}/api/v1/health`);
    await r.arrayBuffer();
    return r.status === 204;
  }, 60_000, 100);
  if (!up || !child.isAlive()) {
    await stopProcess(child, 2_000);
    throw new Error(`Koppel ${name} did not become healthy within 60 s; see bench/results/logs/${name}.log`);
  }
  return { role, child, url };
}

/** A small API client over one undici pool. */
export class KoppelApi {
  readonly pool: Pool;
  constructor(readonly url: string, connections = 128) {
    this.pool = new Pool(url, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
  }

  async call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', p: string, body?: string): Promise<{ status: number; text: string }> {
    const res = await this.pool.request({
      method,
      path: p,
      headers: body === undefined ? { authorization: `Bearer ${ADMIN_KEY}` } : { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body,
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
    return { status: res.statusCode, text: await res.body.text() };
  }

  async json<T>(method: 'GET' | 'POST', p: string, body?: unknown, expect = [200, 201, 202]): Promise<T> {
    const r = await this.call(method, p, body === undefined ? undefined : JSON.stringify(body));
    if (!expect.includes(r.status)) throw new Error(`${method} ${p} answered ${r.status}: ${r.text.slice(0, 300)}`);
    return (r.text ? JSON.parse(r.text) : null) as T;
  }

  close() {
    return this.pool.destroy();
  }
}

function messageIn(body: string): string {
  // The payload is already compact JSON; splice it in rather than parse and re-serialise.
  return `{"eventType":"bench.event","payload":${body}}`;
}

/** The deployment handle shared by both Koppel variants once their processes run. */
function deployment(api: KoppelApi, procs: KoppelProcess[], cleanup: () => Promise<void>): Deployment {
  let stopped = false;
  return {
    maxBatch: 1000,
    async addEndpoints(targets: EndpointTarget[]) {
      for (const t of targets) {
        const ep = await api.json<{ id: string }>('POST', `/api/v1/app/${APP_UID}/endpoint`, { url: t.url, secret: t.secret, description: 'bench receiver' });
        const s = await api.json<{ key: string }>('GET', `/api/v1/app/${APP_UID}/endpoint/${ep.id}/secret`);
        if (s.key !== t.secret) throw new Error(`endpoint ${ep.id} reports a different signing secret than it was created with`);
      }
    },
    async createOne(body: string) {
      const r = await api.call('POST', `/api/v1/app/${APP_UID}/msg`, messageIn(body));
      if (r.status !== 202) throw new Error(`create answered ${r.status}: ${r.text.slice(0, 200)}`);
    },
    async createMany(bodies: string[]) {
      const r = await api.call('POST', `/api/v1/app/${APP_UID}/msg/bulk`, `{"messages":[${bodies.map(messageIn).join(',')}]}`);
      if (r.status !== 202) throw new Error(`bulk create answered ${r.status}: ${r.text.slice(0, 200)}`);
      const out = JSON.parse(r.text) as { data: unknown[]; errors?: unknown[] };
      if (out.data.length !== bodies.length || (out.errors && out.errors.length)) throw new Error(`bulk create accepted ${out.data.length} of ${bodies.length}: ${JSON.stringify(out.errors).slice(0, 200)}`);
    },
    processes: () => procs.map((p) => ({ role: p.role, pid: p.child.pid })),
    async stop() {
      if (stopped) return;
      stopped = true;
      await api.close().catch(() => {});
      // Workers first (they drain), then the API.
      for (const p of [...procs].reverse()) await stopProcess(p.child, 25_000);
      await cleanup();
    },
  };
}

async function createApp(api: KoppelApi) {
  await api.json('POST', '/api/v1/app', { name: 'Benchmark', uid: APP_UID });
}

const baseSettings = (dataDir: string): Record<string, string> => ({
  KOPPEL_DATA_DIR: dataDir,
  KOPPEL_ADMIN_API_KEY: ADMIN_KEY,
  KOPPEL_ALLOWED_NETWORKS: '127.0.0.0/8',
  KOPPEL_LOG_LEVEL: 'warn',
});

export const koppelSqlite: SystemDef = {
  id: 'koppel-sqlite',
  label: 'Koppel, SQLite, 1 process',
  async start(opts: StartOptions) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'koppel-bench-'));
    const removeDir = async () => fs.rmSync(dataDir, { recursive: true, force: true });
    const unregister = onCleanup(removeDir);
    let proc: KoppelProcess;
    try {
      proc = await startKoppelProcess(`${opts.tag}-koppel`, 'all', { ...baseSettings(dataDir), ...opts.koppelEnv }, opts.koppelNodeArgs);
    } catch (e) {
      unregister();
      await removeDir();
      throw e;
    }
    const api = new KoppelApi(proc.url);
    await createApp(api);
    return deployment(api, [proc], async () => {
      unregister();
      await removeDir();
    });
  },
};

export async function createDatabase(name: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const admin = new pg.Client({ connectionString: PG_BASE_URL });
  await admin.connect();
  try {
    await admin.query(`drop database if exists "${name}" with (force)`);
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const u = new URL(PG_BASE_URL);
  u.pathname = '/' + name;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_BASE_URL });
      await c.connect();
      try {
        await c.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

export const koppelPostgres: SystemDef = {
  id: 'koppel-pg',
  label: 'Koppel, PostgreSQL, 1 API + 2 workers',
  async start(opts: StartOptions) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'koppel-bench-'));
    const dbName = `koppel_bench_${opts.tag.replace(/[^a-z0-9]/gi, '_').toLowerCase()}`.slice(0, 60);
    const db = await createDatabase(dbName);
    const cleanup = async () => {
      await db.drop().catch((e) => process.stderr.write(`could not drop database ${dbName}: ${(e as Error).message}\n`));
      fs.rmSync(dataDir, { recursive: true, force: true });
    };
    const unregister = onCleanup(cleanup);
    const settings = {
      ...baseSettings(dataDir),
      KOPPEL_DATABASE_URL: db.url,
      KOPPEL_SECRET_KEY: crypto.randomBytes(32).toString('base64'),
      ...opts.koppelEnv,
    };
    const procs: KoppelProcess[] = [];
    try {
      // The API first: it runs the migrations; then the workers.
      procs.push(await startKoppelProcess(`${opts.tag}-koppel-api`, 'api', settings, opts.koppelNodeArgs));
      const workers = await Promise.all([1, 2].map((i) => startKoppelProcess(`${opts.tag}-koppel-worker${i}`, 'worker', settings, opts.koppelNodeArgs)));
      workers.forEach((w, i) => (w.role = `worker${i + 1}`));
      procs.push(...workers);
    } catch (e) {
      for (const p of procs.reverse()) await stopProcess(p.child, 5_000);
      unregister();
      await cleanup();
      throw e;
    }
    const api = new KoppelApi(procs[0].url);
    await createApp(api);
    return deployment(api, procs, async () => {
      unregister();
      await cleanup();
    });
  },
};
