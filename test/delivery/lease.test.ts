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
    k = await startTestKoppel({ KOPPEL_REQUEST_TIMEOUT: '0.3', KOPPEL_LEASE: '1', KOPPEL_RETRY_SCHEDULE: '0,0.05' });
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
