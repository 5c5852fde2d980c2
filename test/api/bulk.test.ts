import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint } from './support.js';

describe('POST /api/v1/app/{app}/msg/bulk', () => {
  let k: TestKoppel;
  let rcv: Receiver;
  let app: any;
  beforeAll(async () => {
    // This file is about bulk ingest, not deadlines: with the tests' 2 s deadline, 1,000
    // deliveries to a receiver in this same process, on a machine busy with other test files,
    // saw a few exchanges time out and (rightly) retried, so those messages arrived twice.
    k = await startTestKoppel({ KOPPEL_REQUEST_TIMEOUT: '15', KOPPEL_LEASE: '30' });
    rcv = await startReceiver();
    app = await createApp(k);
    await createEndpoint(k, app.id, { url: `${rcv.url}/bulk` });
  });
  afterAll(async () => {
    await k.close();
    await rcv.close();
  });

  it('creates up to 1,000 messages in one request and delivers each', async () => {
    const messages = Array.from({ length: 1000 }, (_, i) => ({ eventType: 'order.created', payload: { i } }));
    const r = await k.api('POST', `/api/v1/app/${app.id}/msg/bulk`, { messages });
    expect(r.status).toBe(202);
    expect(r.body.errors).toEqual([]);
    expect(r.body.data).toHaveLength(1000);
    expect(r.body.data[999].payload).toEqual({ i: 999 });
    await rcv.waitFor(1000, 20_000);
    const ids = rcv.requests.map((q) => String(q.headers['webhook-id']));
    // A message that arrived twice says why: its attempts (a timeout, a lease taken over...).
    const twice = [...new Set(ids.filter((id, i) => ids.indexOf(id) !== i))];
    const why = await Promise.all(twice.slice(0, 3).map(async (id) => (await k.api('GET', `/api/v1/app/${app.id}/attempt/msg/${id}`)).body.data.map((a: any) => `${a.statusText} ${a.responseDurationMs} ms ${a.errorDetail ?? ''}`)));
    expect(twice, `messages delivered twice: ${JSON.stringify(why)}`).toEqual([]);
    expect(new Set(ids).size).toBe(1000);
  });

  it('reports repeated eventIds per item and accepts the rest', async () => {
    const r = await k.api('POST', `/api/v1/app/${app.id}/msg/bulk`, {
      messages: [
        { eventType: 'a.b', eventId: 'bulk-1', payload: {} },
        { eventType: 'a.b', eventId: 'bulk-1', payload: {} },
        { eventType: 'a.b', eventId: 'bulk-2', payload: {} },
      ],
    });
    expect(r.status).toBe(202);
    expect(r.body.data[0].eventId).toBe('bulk-1');
    expect(r.body.data[1]).toBeNull();
    expect(r.body.data[2].eventId).toBe('bulk-2');
    expect(r.body.errors).toEqual([{ index: 1, code: 'conflict', detail: expect.stringContaining('bulk-1') }]);
  });

  it('refuses the whole request when one item is invalid, naming the item', async () => {
    const before = (await k.api('GET', `/api/v1/app/${app.id}/msg?limit=250`)).body.data.length;
    const r = await k.api('POST', `/api/v1/app/${app.id}/msg/bulk`, { messages: [{ eventType: 'ok.one', payload: {} }, { eventType: 'bad type!', payload: {} }] });
    expect(r.status).toBe(422);
    expect(r.body.detail.map((d: any) => d.loc)).toContainEqual(['body', 'messages', 1, 'eventType']);
    expect((await k.api('GET', `/api/v1/app/${app.id}/msg?limit=250`)).body.data.length).toBe(before);
  });

  it('refuses more than 1,000 messages and an empty list', async () => {
    const many = Array.from({ length: 1001 }, () => ({ eventType: 'a.b', payload: {} }));
    expect((await k.api('POST', `/api/v1/app/${app.id}/msg/bulk`, { messages: many })).status).toBe(422);
    expect((await k.api('POST', `/api/v1/app/${app.id}/msg/bulk`, { messages: [] })).status).toBe(422);
  });
});
