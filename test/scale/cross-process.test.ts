/**
 * What holds only across processes on PostgreSQL, each with Koppel started as its own process:
 * a NOTIFY from an API process wakes a worker process within seconds, long before its poll would; a worker whose
 * LISTEN connection is killed still delivers by polling (and listens again); one idempotency key
 * sent to two API processes at once creates one message; an endpoint's rate limit holds for
 * two worker processes together.
 *
 * Each test has a database of its own, not only a schema: NOTIFY channels are per database, and
 * a Koppel process started from a URL uses the one channel `koppel_due`, so the processes of
 * other tests running at the same time (in another schema of the shared database) would wake
 * these workers, and a killed LISTEN connection could be theirs.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import pg from 'pg';
import { afterAll, afterEach, expect, it } from 'vitest';
import { describeOnPostgres, eventually, startReceiver, tempDir, type Receiver } from '../helpers.js';
import { freePort, startKoppelChild, type KoppelChild } from '../crash/child.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeOnPostgres('cross-process behaviour on PostgreSQL', (DB) => {
  /** Every child ever started (afterAll kills any still running); `current` only this test's. */
  const all: KoppelChild[] = [];
  let current: { children: KoppelChild[]; dirs: string[]; receivers: Receiver[]; db: pg.Client | null; dropDatabase: (() => Promise<void>) | null } | null = null;

  const cleanUp = async () => {
    const c = current;
    current = null;
    if (!c) return;
    await Promise.all(c.children.map((k) => k.kill()));
    await Promise.all(c.receivers.map((r) => r.close()));
    await c.db?.end().catch(() => {});
    await c.dropDatabase?.();
    for (const d of c.dirs) fs.rmSync(d, { recursive: true, force: true });
  };
  // DROP DATABASE makes the server checkpoint; with the other test files writing to the same
  // server on a busy machine that once took the clean-up past vitest's 30 s for hooks.
  const CLEAN_UP_MS = 120_000;
  afterEach(cleanUp, CLEAN_UP_MS);
  afterAll(async () => {
    await Promise.all(all.map((k) => k.kill()));
    await cleanUp();
  }, CLEAN_UP_MS);

  /**
   * A fresh database, a client on it for the test's own queries, and a starter for Koppel
   * processes on it (all with one secret key, so workers open what the API sealed).
   */
  async function setUp() {
    const name = `koppel_xp_${crypto.randomBytes(5).toString('hex')}`;
    const admin = new pg.Client({ connectionString: DB });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const c: NonNullable<typeof current> = {
      children: [], dirs: [], receivers: [], db: null,
      dropDatabase: async () => {
        const a = new pg.Client({ connectionString: DB });
        await a.connect();
        await a.query(`drop database if exists ${name} with (force)`);
        await a.end();
      },
    };
    current = c;
    const u = new URL(DB);
    u.pathname = `/${name}`;
    const url = u.toString();
    c.db = new pg.Client({ connectionString: url });
    await c.db.connect();
    const db = c.db;
    const secretKey = crypto.randomBytes(32).toString('base64');
    const start = async (role: 'api' | 'worker', env: Record<string, string> = {}) => {
      const dataDir = tempDir();
      c.dirs.push(dataDir);
      const child = await startKoppelChild({
        dataDir, port: await freePort(), readyTimeoutMs: 40_000,
        env: { KOPPEL_DATABASE_URL: url, KOPPEL_SECRET_KEY: secretKey, KOPPEL_ROLE: role, KOPPEL_REQUEST_TIMEOUT: '2', KOPPEL_TRANSFORM_TIMEOUT: '0.5', KOPPEL_LEASE: '5', ...env },
      });
      c.children.push(child);
      all.push(child);
      return child;
    };
    const receiver = async () => {
      const r = await startReceiver();
      c.receivers.push(r);
      return r;
    };
    /** Backends of this database that last ran LISTEN: the workers' listening connections. */
    const listeners = async () => (await db.query(`select pid from pg_stat_activity where datname = current_database() and query ilike 'listen %' and pid <> pg_backend_pid()`)).rows as { pid: number }[];
    return { db, start, receiver, listeners };
  }

  async function appWithEndpoint(api: KoppelChild, endpoint: Record<string, unknown>) {
    const app = await api.api('POST', '/api/v1/app', { name: 'Cross-process' });
    expect(app.status).toBe(201);
    const ep = await api.api('POST', `/api/v1/app/${app.body.id}/endpoint`, endpoint);
    expect(ep.status).toBe(201);
    return { appId: app.body.id as string, endpointId: ep.body.id as string };
  }

  it('a NOTIFY from an API process wakes a worker process long before its poll', async () => {
    const { start, receiver, listeners } = await setUp();
    const api = await start('api');
    // The worker cannot claim before it is spawned, so its poll cannot fire before this moment
    // plus the poll interval: 60 s, the longest allowed, so that a slow start on a loaded
    // machine (tens of seconds have been seen) leaves the test conclusive.
    const POLL_S = 60;
    const spawnedAt = Date.now();
    await start('worker', { KOPPEL_POLL_INTERVAL: String(POLL_S) });
    const healthyAt = Date.now();
    // Health answers before the worker listens; a message committed before would be found by
    // its first claim instead.
    await eventually(async () => (await listeners()).length === 1, 20_000, 50);
    console.log(`worker healthy ${healthyAt - spawnedAt} ms after its spawn, listening ${Date.now() - spawnedAt} ms after`);
    const rcv = await receiver();
    const { appId } = await appWithEndpoint(api, { url: `${rcv.url}/hook` });
    await sleep(1000);

    // Three messages one after another: after its first claim the worker has nothing due and
    // sleeps for the poll interval, so each of them (certainly the second and third, after the
    // first has been delivered) is claimed because the API process's NOTIFY woke it.
    for (let i = 0; i < 3; i++) {
      const sent = Date.now();
      const r = await api.api('POST', `/api/v1/app/${appId}/msg`, { eventType: 'notify.test', payload: { i } });
      expect(r.status).toBe(202);
      const got = await rcv.waitFor(i + 1, 5_000);
      expect(got[i].headers['webhook-id']).toBe(r.body.id);
      expect(got[i].at - sent).toBeLessThan(5_000);
      await sleep(500);
    }
    // Conclusive only if all of it happened before the worker's poll could have fired.
    expect(rcv.requests[2].at - spawnedAt, 'all delivered inside the worker\'s first poll interval').toBeLessThan(POLL_S * 1000);
  }, 90_000);

  it('a worker process whose LISTEN connection is killed still delivers by polling, and listens again', async () => {
    const { db, start, receiver, listeners } = await setUp();
    const api = await start('api');
    await start('worker', { KOPPEL_POLL_INTERVAL: '1' });
    await eventually(async () => (await listeners()).length === 1, 20_000, 50);
    const rcv = await receiver();
    const { appId } = await appWithEndpoint(api, { url: `${rcv.url}/hook` });

    // The store opens a new LISTEN connection 1 s after losing one; a message committed in that
    // gap sends a NOTIFY no one receives (a new LISTEN does not get earlier notifications), and
    // only the poll finds it. The gap is checked, not assumed: no listener before the message,
    // none after its 202, so none when it committed. If this machine was too slow for that (a
    // listener back already), the round is not counted and another is made (bounded).
    const sent: string[] = [];
    let unheard: string | null = null;
    for (let round = 0; round < 5 && unheard === null; round++) {
      await eventually(async () => (await listeners()).length === 1, 20_000, 50);
      const killed = await db.query(`select pg_terminate_backend(pid) as ok from pg_stat_activity where datname = current_database() and query ilike 'listen %' and pid <> pg_backend_pid()`);
      expect(killed.rows).toEqual([{ ok: true }]);
      // pg_terminate_backend only signals the backend; wait (briefly) for it to be gone.
      await eventually(async () => (await listeners()).length === 0, 2_000, 5).catch(() => {});
      const before = (await listeners()).length;
      const r = await api.api('POST', `/api/v1/app/${appId}/msg`, { eventType: 'poll.test', payload: { round } });
      expect(r.status).toBe(202);
      sent.push(r.body.id);
      if (before === 0 && (await listeners()).length === 0) unheard = r.body.id;
    }
    expect(unheard, 'a message was committed while the worker had no LISTEN connection').not.toBeNull();

    // Delivered by the 1 s poll (bounded wait); the others too.
    await rcv.waitFor(sent.length, 15_000);
    expect(new Set(rcv.requests.map((q) => q.headers['webhook-id']))).toEqual(new Set(sent));
    // And the store listens again.
    await eventually(async () => (await listeners()).length === 1, 10_000, 50);
  }, 90_000);

  it('one idempotency key sent to two API processes at the same time creates one message', async () => {
    const { db, start } = await setUp();
    const [api1, api2] = await Promise.all([start('api'), start('api')]);
    const app = await api1.api('POST', '/api/v1/app', { name: 'Idempotent' });
    expect(app.status).toBe(201);
    const KEYS = 20;
    const pairs = await Promise.all(
      Array.from({ length: KEYS }, (_, i) => {
        const body = { eventType: 'idem.test', payload: { i } };
        const headers = { 'idempotency-key': `cross-${i}` };
        return Promise.all([api1.api('POST', `/api/v1/app/${app.body.id}/msg`, body, headers), api2.api('POST', `/api/v1/app/${app.body.id}/msg`, body, headers)]);
      }),
    );
    // Whichever process ran first created the message; the other waited for it and answered
    // with the same response.
    for (const [a, b] of pairs) {
      expect([a.status, b.status]).toEqual([202, 202]);
      expect(b.body.id).toBe(a.body.id);
    }
    expect(new Set(pairs.map(([a]) => a.body.id)).size).toBe(KEYS);
    const n = await db.query(`select count(*)::int as n from messages`);
    expect(n.rows[0].n).toBe(KEYS);
  }, 90_000);

  it('an endpoint\'s rate limit holds for two worker processes together', async () => {
    const { db, start, receiver } = await setUp();
    const api = await start('api');
    // Four attempts at a time per worker: neither can take all the work, so both send.
    const workerEnv = { KOPPEL_POLL_INTERVAL: '0.2', KOPPEL_WORKER_CONCURRENCY: '4' };
    const [w1, w2] = await Promise.all([start('worker', workerEnv), start('worker', workerEnv)]);
    const rcv = await receiver();
    const RATE = 5;
    const MESSAGES = 40;
    const { appId } = await appWithEndpoint(api, { url: `${rcv.url}/hook`, rateLimit: RATE });
    const bulk = await api.api('POST', `/api/v1/app/${appId}/msg/bulk`, { messages: Array.from({ length: MESSAGES }, (_, i) => ({ eventType: 'rate.test', payload: { i } })) });
    expect(bulk.status).toBe(202);

    // Which processes hold the endpoint's deliveries meanwhile (a lease owner is host:pid:random).
    const owners = new Set<number>();
    const deadline = Date.now() + 60_000;
    while (rcv.requests.length < MESSAGES && Date.now() < deadline) {
      const rows = await db.query(`select distinct lease_owner from deliveries where lease_owner is not null`);
      for (const r of rows.rows) owners.add(Number(/:(\d+):[0-9a-f]+$/.exec(r.lease_owner)?.[1]));
      await sleep(50);
    }
    expect(rcv.requests.length).toBe(MESSAGES);
    expect(owners.has(w1.proc.pid!) && owners.has(w2.proc.pid!), `lease owners seen: ${[...owners]}; workers ${w1.proc.pid}, ${w2.proc.pid}`).toBe(true);

    // A token bucket of RATE tokens refilled at RATE per second lets at most RATE + RATE × t
    // deliveries through in any t seconds. Checked for every window between two receipts, with
    // the receipt times allowed to be late by up to JITTER (the token is taken before the
    // request is sent; on two loaded cores the request can take that long to arrive). Two
    // workers each with a bucket of their own would send twice as fast: over the whole run,
    // 40 in ~3.5 s instead of ~7 s, far outside this.
    const JITTER_MS = 500;
    const at = rcv.requests.map((q) => q.at).sort((a, b) => a - b);
    const perSecond = new Map<number, number>();
    for (const t of at) perSecond.set(Math.floor((t - at[0]) / 1000), (perSecond.get(Math.floor((t - at[0]) / 1000)) ?? 0) + 1);
    console.log(`rate ${RATE}/s, receipts per second from the first: ${JSON.stringify(Object.fromEntries(perSecond))}`);
    const over: string[] = [];
    for (let i = 0; i < at.length; i++) {
      for (let j = i + 1; j < at.length; j++) {
        const allowed = RATE + (RATE * (at[j] - at[i] + JITTER_MS)) / 1000;
        if (j - i + 1 > allowed) over.push(`${j - i + 1} receipts in ${at[j] - at[i]} ms (at most ${allowed.toFixed(1)})`);
      }
    }
    expect(over).toEqual([]);
    // Every delivery was sent once.
    expect(new Set(rcv.requests.map((q) => q.headers['webhook-id'])).size).toBe(MESSAGES);
  }, 120_000);
});
