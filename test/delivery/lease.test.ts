/**
 * A worker whose own lease runs out while it still holds an attempt's outcome (a stalled event
 * loop, a slow database write) may claim that delivery again, but must not send it again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Settlement, SettleOptions } from '../../src/store/port.js';
import { eventually, startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let k: TestKoppel | null = null;
let rcv: Receiver | null = null;

afterEach(async () => {
  await rcv?.close();
  await k?.close();
  rcv = null;
  k = null;
});

describe('expired lease of a delivery the worker still holds', () => {
  it('is not sent twice when writing the outcome takes longer than the lease', async () => {
    rcv = await startReceiver();
    // A short lease, which must still exceed request + transformation timeout + 1.1 s.
    k = await startTestKoppel({ KOPPEL_REQUEST_TIMEOUT: '0.3', KOPPEL_TRANSFORM_TIMEOUT: '0.05', KOPPEL_LEASE: '1.5', KOPPEL_RETRY_SCHEDULE: '0,0.05' });
    // Hold back the first write of an attempt's outcome for well over the lease.
    const store = k.koppel.ctx.store;
    const settle = store.settle.bind(store);
    let heldBack = false;
    store.settle = async (batch: Settlement[], opts: SettleOptions) => {
      if (!heldBack && batch.some((s) => s.attempt !== null)) {
        heldBack = true;
        await sleep(2500);
      }
      return settle(batch, opts);
    };

    const app = await k.api('POST', '/api/v1/app', { name: 'lease' });
    const ep = await k.api('POST', `/api/v1/app/${app.body.id}/endpoint`, { url: `${rcv.url}/hook` });
    expect(ep.status).toBe(201);
    const msg = await k.api('POST', `/api/v1/app/${app.body.id}/msg`, { eventType: 'lease.test', payload: { n: 1 } });
    expect(msg.status).toBe(202);

    await rcv.waitFor(1);
    const attempts = await eventually(async () => {
      const r = await k!.api('GET', `/api/v1/app/${app.body.id}/attempt/msg/${msg.body.id}`);
      return r.body.data.length > 0 && r.body.data;
    }, 8000);
    expect(heldBack).toBe(true);
    await sleep(300);
    expect(rcv.requests).toHaveLength(1);
    expect(attempts).toHaveLength(1);
    expect(attempts[0].status).toBe(0);
    const dest = await k.api('GET', `/api/v1/app/${app.body.id}/msg/${msg.body.id}/endpoint`);
    expect(dest.body.data[0].status).toBe(0);
  });
});

describe('a queued delivery to an endpoint with a transformation', () => {
  it('is handed back rather than started when its lease cannot also cover the transformation', async () => {
    rcv = await startReceiver();
    // Lease 10 s; request 3 s; transformation 0.5 s, so it may wait 3 s for a thread and run
    // 0.5 s + 1 s until the hard kill: 8.5 s of lease are needed to start, not 4 s.
    k = await startTestKoppel({ KOPPEL_LEASE: '10', KOPPEL_REQUEST_TIMEOUT: '3', KOPPEL_TRANSFORM_TIMEOUT: '0.5', KOPPEL_ENDPOINT_CONCURRENCY: '1' });
    // The first exchange takes 2.5 s: the second delivery waits that long for the endpoint's
    // only slot, and then has about 7.4 s of its lease left.
    let answered = 0;
    rcv.respond((_r, res) => {
      if (answered++ === 0) setTimeout(() => res.end('ok'), 2500);
      else res.end('ok');
    });
    const store = k.koppel.ctx.store;
    const settle = store.settle.bind(store);
    const releases: string[] = [];
    store.settle = async (batch: Settlement[], opts: SettleOptions) => {
      for (const s of batch) if (s.attempt === null && s.dueAt !== null && s.health === 'none') releases.push(s.deliveryId);
      return settle(batch, opts);
    };

    const app = await k.api('POST', '/api/v1/app', { name: 'lease-transform' });
    const ep = await k.api('POST', `/api/v1/app/${app.body.id}/endpoint`, { url: `${rcv.url}/hook` });
    expect((await k.api('PATCH', `/api/v1/app/${app.body.id}/endpoint/${ep.body.id}/transformation`, { expression: '{"n": n}' })).status).toBe(204);
    // Both come due at once, so one claim takes both and the second waits behind the first.
    const deliverAt = new Date(Date.now() + 1500).toISOString();
    const ids: string[] = [];
    for (const n of [1, 2]) {
      const msg = await k.api('POST', `/api/v1/app/${app.body.id}/msg`, { eventType: 'lease.test', payload: { n, extra: true }, deliverAt });
      expect(msg.status, JSON.stringify(msg.body)).toBe(202);
      ids.push(msg.body.id);
    }

    await rcv.waitFor(2);
    await sleep(300);
    // With about 7.4 s of its lease left it was handed back (then claimed afresh and sent), not started.
    expect(releases).toHaveLength(1);
    expect(rcv.requests).toHaveLength(2);
    expect(rcv.requests.map((r) => JSON.parse(r.body).n).sort()).toEqual([1, 2]);
  });
});
