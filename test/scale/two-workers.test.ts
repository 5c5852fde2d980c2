/**
 * Two worker processes over one PostgreSQL database never send the same due delivery at the same
 * time: a claim takes rows with FOR UPDATE SKIP LOCKED and leases them, and the lease (3.5 s) is
 * longer than the whole exchange (2 s) even when the receiver is slow (1.2 s per request).
 */
import crypto from 'node:crypto';
import { pino } from 'pino';
import { afterAll, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { startKoppel, type Koppel } from '../../src/server.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import { describeOnPostgres, ADMIN_KEY, createTestSchema, startReceiver, tempDir, type Receiver } from '../helpers.js';

describeOnPostgres('two workers, one due delivery', () => {
  const started: Koppel[] = [];
  let rcv: Receiver | null = null;
  let drop: (() => Promise<void>) | null = null;
  afterAll(async () => {
    for (const k of started) await k.close();
    await rcv?.close();
    await drop?.();
  });

  it('each delivery is in flight at one worker at a time and arrives once', async () => {
    const t = await createTestSchema();
    drop = t.drop;
    const secretKey = crypto.randomBytes(32).toString('base64');
    const start = async (role: 'api' | 'worker') => {
      const config = loadConfig({
        KOPPEL_DATA_DIR: tempDir(), KOPPEL_PORT: '0', KOPPEL_HOST: '127.0.0.1', KOPPEL_ADMIN_API_KEY: ADMIN_KEY, KOPPEL_SECRET_KEY: secretKey,
        KOPPEL_ALLOWED_NETWORKS: '127.0.0.0/8', KOPPEL_ROLE: role, KOPPEL_REQUEST_TIMEOUT: '2', KOPPEL_TRANSFORM_TIMEOUT: '0.1', KOPPEL_LEASE: '3.5', KOPPEL_POLL_INTERVAL: '0.05',
        KOPPEL_ENDPOINT_CONCURRENCY: '10', KOPPEL_LOG_LEVEL: 'silent',
      });
      const k = await startKoppel(config, { logger: pino({ level: 'silent' }), store: openPostgresStore(t.url, { schema: t.schema, max: 4 }) });
      started.push(k);
      return k;
    };
    const api = await start('api');
    await start('worker');
    await start('worker');

    rcv = await startReceiver();
    const inFlight = new Map<string, number>();
    let overlaps = 0;
    rcv.respond((req, res) => {
      const id = String(req.headers['webhook-id']);
      const n = (inFlight.get(id) ?? 0) + 1;
      if (n > 1) overlaps++;
      inFlight.set(id, n);
      setTimeout(() => {
        inFlight.set(id, (inFlight.get(id) ?? 1) - 1);
        res.end('ok');
      }, 1200);
    });
    const call = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(api.url + path, { method, headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: r.status, body: await r.json() };
    };
    const app = (await call('POST', '/api/v1/app', { name: 'Slow receiver' })).body;
    expect((await call('POST', `/api/v1/app/${app.id}/endpoint`, { url: `${rcv.url}/slow` })).status).toBe(201);
    const messages = Array.from({ length: 30 }, (_, i) => ({ eventType: 'slow.test', payload: { i } }));
    const bulk = await call('POST', `/api/v1/app/${app.id}/msg/bulk`, { messages });
    expect(bulk.status).toBe(202);

    await rcv.waitFor(30, 30_000);
    // Let any second copy (there should be none) arrive before counting.
    await new Promise((r) => setTimeout(r, 1500));
    const ids = rcv.requests.map((r) => String(r.headers['webhook-id']));
    expect(overlaps).toBe(0);
    expect(ids).toHaveLength(30);
    expect(new Set(ids).size).toBe(30);
  }, 60_000);
});
