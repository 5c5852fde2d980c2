/**
 * Per-endpoint concurrency: a worker never has more than KOPPEL_ENDPOINT_CONCURRENCY attempts in
 * flight to one endpoint, and deliveries claimed beyond that wait their turn inside the worker
 * rather than being lost or sent twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';

describe('endpoint concurrency cap', () => {
  let k: TestKoppel;
  let rcv: Receiver;
  let inFlight = 0;
  let maxInFlight = 0;

  beforeAll(async () => {
    k = await startTestKoppel({ KOPPEL_ENDPOINT_CONCURRENCY: '3', KOPPEL_CLAIM_BATCH: '50' });
    rcv = await startReceiver();
    rcv.respond((_req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        res.end('ok');
      }, 20);
    });
  });
  afterAll(async () => {
    await k.close();
    await rcv.close();
  });

  it('holds at most the cap in flight and delivers every message exactly once', async () => {
    const app = (await k.api('POST', '/api/v1/app', { name: 'Busy' })).body;
    expect((await k.api('POST', `/api/v1/app/${app.id}/endpoint`, { url: `${rcv.url}/busy` })).status).toBe(201);
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) ids.push((await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'job.done', payload: { i } })).body.id);
    await rcv.waitFor(60, 20_000);
    expect(maxInFlight).toBeLessThanOrEqual(3);
    expect(maxInFlight).toBeGreaterThan(1);
    const received = rcv.requests.map((r) => String(r.headers['webhook-id']));
    expect(new Set(received).size).toBe(60);
    expect(received.length).toBe(60);
    expect([...new Set(received)].sort()).toEqual([...ids].sort());
  });
});
