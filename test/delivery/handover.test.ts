/**
 * Fresh messages handed from the ingest to the same process's worker: the rows the worker can
 * start at once are written leased to it and started once durable, without a claim. These tests
 * hold that this shortcut changes nothing a user can see: every attempt is recorded, older work
 * is not overtaken, and capacity leased for rows that were never written comes back.
 */
import type http from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('fresh messages handed to the local worker', () => {
  let k: TestKoppel | null = null;
  let rcv: Receiver | null = null;
  afterEach(async () => {
    await k?.close();
    await rcv?.close();
    k = rcv = null;
  });

  async function appWithEndpoint(url: string) {
    const app = (await k!.api('POST', '/api/v1/app', { name: 'Shop' })).body;
    const ep = await k!.api('POST', `/api/v1/app/${app.id}/endpoint`, { url });
    expect(ep.status).toBe(201);
    return { app, endpoint: ep.body };
  }

  it('are sent without a claim, and every attempt is recorded', async () => {
    // A long poll interval: after its first claim at start, the worker claims only when told to.
    k = await startTestKoppel({ KOPPEL_POLL_INTERVAL: '60' });
    rcv = await startReceiver();
    const { app, endpoint } = await appWithEndpoint(`${rcv.url}/hook`);
    await sleep(200);
    const claims = vi.spyOn(k.koppel.ctx.store, 'claimDue');
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'order.paid', payload: { i } });
      expect(r.status).toBe(202);
      ids.push(r.body.id);
    }
    await rcv.waitFor(20, 10_000);
    expect(claims).not.toHaveBeenCalled();
    expect(new Set(rcv.requests.map((r) => String(r.headers['webhook-id'])))).toEqual(new Set(ids));
    for (const id of ids) {
      const attempts = await k.api('GET', `/api/v1/app/${app.id}/attempt/msg/${id}`);
      expect(attempts.body.data).toHaveLength(1);
      expect(attempts.body.data[0]).toMatchObject({ msgId: id, endpointId: endpoint.id, status: 0, responseStatusCode: 200 });
    }
  });

  it('queue behind older due deliveries instead of overtaking them', async () => {
    // One request at a time to the endpoint and claims of one row, so older messages wait in the
    // database; claims take 150 ms, so a message created while a freed slot waits for its claim
    // could take that slot if the ingest handed it over.
    k = await startTestKoppel({ KOPPEL_ENDPOINT_CONCURRENCY: '1', KOPPEL_CLAIM_BATCH: '1' });
    rcv = await startReceiver();
    const held: http.ServerResponse[] = [];
    rcv.respond((_req, res) => held.push(res));
    const { app } = await appWithEndpoint(`${rcv.url}/held`);
    const store = k.koppel.ctx.store;
    const claim = store.claimDue.bind(store);
    vi.spyOn(store, 'claimDue').mockImplementation(async (...args) => {
      await sleep(150);
      return claim(...args);
    });
    const create = async (i: number) => (await k!.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'order.paid', payload: { i } })).body.id as string;
    const ids = [await create(1)];
    await rcv.waitFor(1, 5_000);
    ids.push(await create(2), await create(3));
    await sleep(50);
    held.shift()!.end('ok');
    await sleep(30);
    ids.push(await create(4));
    for (let n = 2; n <= 4; n++) {
      await rcv.waitFor(n, 5_000);
      held.shift()!.end('ok');
    }
    expect(rcv.requests.map((r) => String(r.headers['webhook-id']))).toEqual(ids);
  });

  it('give back the capacity leased for rows that were not written', async () => {
    // One attempt in flight for the whole process: capacity leased for the rows of a refused
    // message and never given back would stop every delivery after it.
    k = await startTestKoppel({ KOPPEL_WORKER_CONCURRENCY: '1' });
    rcv = await startReceiver();
    const { app } = await appWithEndpoint(`${rcv.url}/hook`);
    expect((await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'order.paid', eventId: 'evt_1', payload: {} })).status).toBe(202);
    await rcv.waitFor(1, 5_000);
    for (let i = 0; i < 3; i++) {
      expect((await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'order.paid', eventId: 'evt_1', payload: {} })).status).toBe(409);
    }
    const last = await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'order.paid', payload: { last: true } });
    expect(last.status).toBe(202);
    await rcv.waitFor(2, 5_000);
    expect(String(rcv.requests[1].headers['webhook-id'])).toBe(last.body.id);
  });
});
