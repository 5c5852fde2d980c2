/**
 * Per-endpoint concurrency: a worker never has more than KOPPEL_ENDPOINT_CONCURRENCY attempts in
 * flight to one endpoint, and deliveries claimed beyond that wait their turn inside the worker
 * rather than being lost or sent twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, startTestKoppel, type ReceivedRequest, type Receiver, type TestKoppel } from '../helpers.js';

/** Answers every request after 20 ms, counting the requests the receiver holds at once. */
function countInFlight(rcv: Receiver, onRequest: (req: ReceivedRequest) => void = () => {}): { max: () => number } {
  let inFlight = 0;
  let maxInFlight = 0;
  rcv.respond((req, res) => {
    onRequest(req);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    setTimeout(() => {
      inFlight--;
      res.end('ok');
    }, 20);
  });
  return { max: () => maxInFlight };
}

describe('endpoint concurrency cap', () => {
  let k: TestKoppel;
  let rcv: Receiver;
  let counted: { max: () => number };

  beforeAll(async () => {
    k = await startTestKoppel({ KOPPEL_ENDPOINT_CONCURRENCY: '3', KOPPEL_CLAIM_BATCH: '50' });
    rcv = await startReceiver();
    counted = countInFlight(rcv);
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
    expect(counted.max()).toBeLessThanOrEqual(3);
    expect(counted.max()).toBeGreaterThan(1);
    const received = rcv.requests.map((r) => String(r.headers['webhook-id']));
    expect(new Set(received).size).toBe(60);
    expect(received.length).toBe(60);
    expect([...new Set(received)].sort()).toEqual([...ids].sort());
  });
});

describe('an endpoint slot', () => {
  // The cap is on requests the endpoint carries at once. An outcome waiting for its (batched)
  // write asks nothing of the endpoint, so the next delivery must not wait for that write; the
  // row stays leased until it is written, which is what bounds duplicates after a crash.
  it('is free for the next delivery once the exchange is over, before its outcome is written', async () => {
    const k = await startTestKoppel({ KOPPEL_ENDPOINT_CONCURRENCY: '1' });
    const rcv = await startReceiver();
    let firstWritten = false;
    let secondSawFirstWritten: boolean | null = null;
    const counted = countInFlight(rcv, () => {
      if (rcv.requests.length === 2) secondSawFirstWritten = firstWritten;
    });
    const store = k.koppel.ctx.store;
    const settle = store.settle.bind(store);
    let heldBack = false;
    store.settle = async (batch, opts) => {
      // The first outcome takes 1.5 s to write.
      if (!heldBack && batch.some((s) => s.attempt !== null)) {
        heldBack = true;
        await new Promise((r) => setTimeout(r, 1500));
        const disabled = await settle(batch, opts);
        firstWritten = true;
        return disabled;
      }
      return settle(batch, opts);
    };
    try {
      const app = (await k.api('POST', '/api/v1/app', { name: 'One slot' })).body;
      expect((await k.api('POST', `/api/v1/app/${app.id}/endpoint`, { url: `${rcv.url}/one` })).status).toBe(201);
      const messages = [{ eventType: 'job.done', payload: { n: 1 } }, { eventType: 'job.done', payload: { n: 2 } }];
      expect((await k.api('POST', `/api/v1/app/${app.id}/msg/bulk`, { messages })).status).toBe(202);
      await rcv.waitFor(2, 5_000);
      const [first, second] = rcv.requests;
      expect(secondSawFirstWritten, 'the second request waited for the first outcome to be written').toBe(false);
      expect(second.at - first.at).toBeLessThan(1000);
      expect(counted.max()).toBe(1);
    } finally {
      await k.close();
      await rcv.close();
    }
  });
});

describe('an endpoint at its cap', () => {
  // A claim that leaves out a busy endpoint walks that endpoint's whole backlog in the due index.
  // The worker must not repeat such claims while nothing new can have fallen due for the others
  // (it used to, every millisecond, through the poll), yet work for another endpoint must still
  // go out at once.
  it('is not polled while it stays busy, and other endpoints are still served at once', async () => {
    const k = await startTestKoppel({ KOPPEL_ENDPOINT_CONCURRENCY: '2', KOPPEL_POLL_INTERVAL: '1', KOPPEL_REQUEST_TIMEOUT: '3', KOPPEL_LEASE: '10' });
    const rcv = await startReceiver();
    const store = k.koppel.ctx.store;
    const claims: { at: number; excluded: string[] }[] = [];
    const claimDue = store.claimDue.bind(store);
    store.claimDue = (owner, now, leaseUntil, limit, exclude) => {
      claims.push({ at: Date.now(), excluded: [...exclude] });
      return claimDue(owner, now, leaseUntil, limit, exclude);
    };
    const held: (() => void)[] = [];
    rcv.respond((req, res) => {
      if (req.url === '/busy') held.push(() => res.end('ok'));
      else res.end('ok');
    });
    try {
      const app = (await k.api('POST', '/api/v1/app', { name: 'Busy and calm' })).body;
      const busy = (await k.api('POST', `/api/v1/app/${app.id}/endpoint`, { url: `${rcv.url}/busy`, filterTypes: ['job.busy'] })).body;
      const calm = await k.api('POST', `/api/v1/app/${app.id}/endpoint`, { url: `${rcv.url}/calm`, filterTypes: ['job.calm'] });
      expect(calm.status, JSON.stringify(calm.body)).toBe(201);
      const messages = Array.from({ length: 200 }, (_, i) => ({ eventType: 'job.busy', payload: { i } }));
      expect((await k.api('POST', `/api/v1/app/${app.id}/msg/bulk`, { messages })).status).toBe(202);
      await rcv.waitFor(2, 5_000);

      // Both slots of the busy endpoint are taken for the next second or so. More work for it
      // alone arrives meanwhile: none of it is worth a claim.
      const from = Date.now();
      for (let i = 0; i < 10; i++) expect((await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'job.busy', payload: { more: i } })).status).toBe(202);
      await new Promise((r) => setTimeout(r, 800));
      const during = claims.filter((c) => c.at >= from && c.excluded.includes(busy.id));
      expect(during.length, `claims leaving out the busy endpoint within 800 ms: ${during.length}`).toBeLessThanOrEqual(3);
      expect(rcv.requests).toHaveLength(2);

      // Work for the other endpoint is claimed and delivered while the busy one stays full (its
      // requests are held until the end of the test, and would time out only after 3 s).
      expect((await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'job.calm', payload: {} })).status).toBe(202);
      await rcv.waitFor(3, 2_000);
      expect(rcv.requests[2].url).toBe('/calm');
    } finally {
      held.splice(0).forEach((f) => f());
      await k.close();
      await rcv.close();
    }
  });
});

describe('endpoint rate limit', () => {
  // The bucket lives in the database, so every worker process draws from the same one; the
  // store contract checks that concurrent takers never get more than the bucket holds.
  it('delivers a burst of the bucket size, then at most the rate per second', async () => {
    const k = await startTestKoppel();
    const rcv = await startReceiver();
    try {
      const app = (await k.api('POST', '/api/v1/app', { name: 'Throttled' })).body;
      const ep = (await k.api('POST', `/api/v1/app/${app.id}/endpoint`, { url: `${rcv.url}/slow`, rateLimit: 10 })).body;
      expect(ep.rateLimit).toBe(10);
      const messages = Array.from({ length: 30 }, (_, i) => ({ eventType: 'tick', payload: { i } }));
      const posted = Date.now();
      expect((await k.api('POST', `/api/v1/app/${app.id}/msg/bulk`, { messages })).status).toBe(202);
      await rcv.waitFor(30, 20_000);
      // The bucket is full (10) when the messages are posted at `posted`, then refills at 10 per
      // second, so by any time t at most 10 + 10 · (t − posted) attempts can have started. This
      // holds for the attempts' recorded start times however late a loaded machine runs them
      // (a late start only makes the bound easier), unlike one-second windows of receipt times,
      // where requests that started a rate apart can bunch. One more allows for ms rounding.
      const attempts = await waitForAttempts(k, app.id, ep.id, 30);
      const starts = attempts.map((a) => Date.parse(a.timestamp)).sort((a, b) => a - b);
      expect(starts).toHaveLength(30);
      starts.forEach((t, i) => expect(i + 1, `attempt ${i + 1} started ${t - posted} ms after the post`).toBeLessThanOrEqual(10 + Math.floor(((t - posted) * 10) / 1000) + 1));
      expect(starts[starts.length - 1] - starts[0]).toBeGreaterThanOrEqual(1500);
      const times = rcv.requests.map((r) => r.at).sort((a, b) => a - b);
      expect(times[times.length - 1] - times[0]).toBeGreaterThanOrEqual(1500);
    } finally {
      await k.close();
      await rcv.close();
    }
  });
});

/** The endpoint's attempts once `n` are recorded (outcomes are written just after the receipt). */
async function waitForAttempts(k: TestKoppel, appId: string, endpointId: string, n: number): Promise<{ timestamp: string }[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await k.api('GET', `/api/v1/app/${appId}/attempt/endpoint/${endpointId}?limit=100`);
    expect(res.status).toBe(200);
    if (res.body.data.length >= n || Date.now() > deadline) return res.body.data;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a delivery for an endpoint at its cap', () => {
  // Its wake is dropped (a claim would leave the busy endpoint out anyway), so the slot that
  // frees first must claim it, even though the claim before found nothing left behind.
  it('is claimed as soon as a slot frees, not at the next poll', async () => {
    const k = await startTestKoppel({ KOPPEL_ENDPOINT_CONCURRENCY: '1', KOPPEL_POLL_INTERVAL: '30' });
    const rcv = await startReceiver();
    rcv.respond((req, res) => {
      // The first request holds the endpoint's only slot for 800 ms.
      setTimeout(() => res.end('ok'), rcv.requests.length === 1 ? 800 : 0);
    });
    try {
      const app = (await k.api('POST', '/api/v1/app', { name: 'Capped' })).body;
      expect((await k.api('POST', `/api/v1/app/${app.id}/endpoint`, { url: `${rcv.url}/capped` })).status).toBe(201);
      expect((await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'job.done', payload: { i: 1 } })).status).toBe(202);
      await rcv.waitFor(1, 5_000);
      const sent = Date.now();
      expect((await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'job.done', payload: { i: 2 } })).status).toBe(202);
      await rcv.waitFor(2, 10_000);
      // Left to the poll it would wait for the first lease to expire (5 s here) or the poll (30 s);
      // the freed slot takes the first request's remaining 800 ms.
      expect(Date.now() - sent).toBeLessThan(3_000);
    } finally {
      await k.close();
      await rcv.close();
    }
  });
});
