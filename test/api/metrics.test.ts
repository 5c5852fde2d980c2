import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, eventually, startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint, sendMessage } from './support.js';

describe('GET /metrics and health', () => {
  let k: TestKoppel;
  let rcv: Receiver;
  beforeAll(async () => {
    k = await startTestKoppel();
    rcv = await startReceiver();
  });
  afterAll(async () => {
    await k.close();
    await rcv.close();
  });

  const metric = (text: string, line: RegExp) => {
    const m = text.split('\n').find((l) => line.test(l));
    return m === undefined ? undefined : Number(m.split(' ').pop());
  };

  it('counts messages, attempts by outcome, latency, API requests and queue depth', async () => {
    const app = await createApp(k);
    await createEndpoint(k, app.id, { url: `${rcv.url}/ok` });
    rcv.respond((req, res) => {
      res.statusCode = req.url === '/ok' ? 200 : 500;
      res.end();
    });
    await sendMessage(k, app.id, { eventType: 'm.one', payload: {} });
    await sendMessage(k, app.id, { eventType: 'm.two', payload: {} });
    await rcv.waitFor(2);
    await new Promise((r) => setTimeout(r, 200));
    const res = await fetch(`${k.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    expect(metric(text, /^koppel_messages_created_total /)).toBe(2);
    expect(metric(text, /^koppel_delivery_attempts_total\{outcome="success",error_class="none",trigger="scheduled"\}/)).toBe(2);
    expect(metric(text, /^koppel_delivery_latency_seconds_count /)).toBe(2);
    expect(metric(text, /^koppel_queue_deliveries\{state="due"\}/)).toBe(0);
    expect(metric(text, /^koppel_queue_deliveries\{state="scheduled"\}/)).toBe(0);
    expect(metric(text, /^koppel_queue_deliveries\{state="in_flight"\}/)).toBe(0);
    expect(metric(text, /^koppel_http_requests_total\{method="POST",route="\/api\/v1\/app\/:app_id\/msg",status="202"\}/)).toBe(2);
    expect(text).toMatch(/^koppel_process_resident_memory_bytes /m);
  });

  it('counts a failed attempt by its outcome, and its retry as scheduled', async () => {
    // The retry comes an hour later (±20 %), so the delivery waits in the queue as scheduled.
    const h = await startTestKoppel({ KOPPEL_RETRY_SCHEDULE: '0,3600' });
    try {
      const app = await createApp(h);
      await createEndpoint(h, app.id, { url: `${rcv.url}/broken` });
      rcv.respond((req, res) => {
        res.statusCode = req.url === '/broken' ? 500 : 200;
        res.end();
      });
      await sendMessage(h, app.id, { eventType: 'm.fail', payload: {} });
      const failed = /^koppel_delivery_attempts_total\{outcome="failure",error_class="http_status",trigger="scheduled"\}/;
      const scheduled = /^koppel_queue_deliveries\{state="scheduled"\}/;
      // The attempt is counted when its outcome is written; wait for both.
      const text = await eventually(async () => {
        const t = await (await fetch(`${h.url}/metrics`)).text();
        return metric(t, failed) === 1 && metric(t, scheduled) === 1 ? t : undefined;
      });
      expect(metric(text, /^koppel_delivery_attempts_total\{outcome="success"/)).toBeUndefined();
      expect(metric(text, /^koppel_attempt_duration_seconds_count\{outcome="failure"\}/)).toBe(1);
      expect(metric(text, /^koppel_delivery_latency_seconds_count /)).toBe(0);
      expect(metric(text, /^koppel_queue_deliveries\{state="due"\}/)).toBe(0);
      expect(metric(text, /^koppel_queue_deliveries\{state="in_flight"\}/)).toBe(0);
    } finally {
      await h.close();
    }
  });

  it('health answers 204 while the database answers and 503 when it does not', async () => {
    const h = await startTestKoppel();
    expect((await fetch(`${h.url}/api/v1/health`)).status).toBe(204);
    const store = h.koppel.ctx.store;
    const ping = store.ping.bind(store);
    store.ping = async () => {
      throw new Error('database unreachable');
    };
    const down = await fetch(`${h.url}/api/v1/health`);
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({ code: 'unavailable', detail: 'The database is unreachable.' });
    store.ping = ping;
    await h.close();
  });

  it('answers 503 with Retry-After, not 500, when the database is unavailable for a request', async () => {
    const h = await startTestKoppel();
    const store = h.koppel.ctx.store;
    const listApplications = store.listApplications.bind(store);
    const busy = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    // Whichever store this run uses, its own kind of "unavailable" error.
    const err = store.dialect === 'sqlite' ? busy : refused;
    store.listApplications = async () => {
      throw err;
    };
    const res = await fetch(`${h.url}/api/v1/app`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.json()).toMatchObject({ code: 'unavailable' });
    store.listApplications = async () => {
      throw new Error('a bug');
    };
    const bug = await fetch(`${h.url}/api/v1/app`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(bug.status).toBe(500);
    store.listApplications = listApplications;
    await h.close();
  });
});
