import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';
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
    expect(metric(text, /^koppel_queue_deliveries\{state="in_flight"\}/)).toBe(0);
    expect(metric(text, /^koppel_http_requests_total\{method="POST",route="\/api\/v1\/app\/:app_id\/msg",status="202"\}/)).toBe(2);
    expect(text).toMatch(/^koppel_process_resident_memory_bytes /m);
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
});
