import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint, onPath, pollApi, sendMessage, sleep, waitForPath, failOnPaths } from './support.js';

describe('messages and attempts', () => {
  let k: TestKoppel;
  let rcv: Receiver;
  const failing = new Set<string>();

  beforeAll(async () => {
    // One attempt per delivery: a 500 fails the message at once.
    k = await startTestKoppel({ KOPPEL_RETRY_SCHEDULE: '0' });
    rcv = await startReceiver();
    failOnPaths(rcv, failing);
  });
  afterAll(async () => {
    await k.close();
    await rcv.close();
  });

  it('answers a create with the message exactly as GET returns it, as JSON, for single and bulk creates', async () => {
    const app = await createApp(k, { name: 'Echo' });
    const payload = { text: 'Grüße \u2028 "quoted" ✓', nested: { list: [1, 2.5, null, true] } };
    const created = await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'echo.test', eventId: 'echo-1', channels: ['eu'], tags: ['t1'], payload });
    expect(created.status).toBe(202);
    expect(created.headers.get('content-type')).toMatch(/^application\/json/);
    const stored = await k.api('GET', `/api/v1/app/${app.id}/msg/${created.body.id}`);
    expect(created.body).toEqual(stored.body);
    expect(created.body).toMatchObject({ eventType: 'echo.test', eventId: 'echo-1', channels: ['eu'], tags: ['t1'], payload });

    const bare = await k.api('POST', `/api/v1/app/${app.id}/msg?with_content=false`, { eventType: 'echo.test', payload });
    expect(bare.body.payload).toEqual({});
    expect((await k.api('GET', `/api/v1/app/${app.id}/msg/${bare.body.id}`)).body.payload).toEqual(payload);

    const bulk = await k.api('POST', `/api/v1/app/${app.id}/msg/bulk`, { messages: [{ eventType: 'echo.test', payload }, { eventType: 'echo.test', eventId: 'echo-1', payload }] });
    expect(bulk.status).toBe(202);
    expect(bulk.headers.get('content-type')).toMatch(/^application\/json/);
    expect(bulk.body.data[0]).toEqual((await k.api('GET', `/api/v1/app/${app.id}/msg/${bulk.body.data[0].id}`)).body);
    expect(bulk.body.data[1]).toBeNull();
    expect(bulk.body.errors).toEqual([{ index: 1, code: 'conflict', detail: expect.stringContaining('echo-1') }]);
  });

  it('creates a message (202) and fans it out only to matching endpoints: exact type, wildcard, channels', async () => {
    const app = await createApp(k, { name: 'Fan-out' });
    const exact = await createEndpoint(k, app.id, { url: `${rcv.url}/fan-exact`, filterTypes: ['order.created'] });
    const wild = await createEndpoint(k, app.id, { url: `${rcv.url}/fan-wild`, filterTypes: ['order.*'] });
    const chan = await createEndpoint(k, app.id, { url: `${rcv.url}/fan-chan`, channels: ['eu'] });
    const all = await createEndpoint(k, app.id, { url: `${rcv.url}/fan-all` });

    const created = await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'order.created', payload: { n: 1 } });
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ eventType: 'order.created', payload: { n: 1 }, channels: null, eventId: null });
    expect(created.body.id).toMatch(/^msg_[0-9A-Z]{26}$/);
    const m1 = created.body;
    const m2 = await sendMessage(k, app.id, { eventType: 'order.shipped', channels: ['eu'], payload: { n: 2 } });
    const m3 = await sendMessage(k, app.id, { eventType: 'user.created', channels: ['us'], payload: { n: 3 } });

    const destinations = async (msgId: string) => {
      const r = await k.api('GET', `/api/v1/app/${app.id}/msg/${msgId}/endpoint`);
      expect(r.status).toBe(200);
      return (r.body.data.map((e: any) => e.id) as string[]).sort();
    };
    expect(await destinations(m1.id)).toEqual([exact.id, wild.id, all.id].sort());
    expect(await destinations(m2.id)).toEqual([wild.id, chan.id, all.id].sort());
    expect(await destinations(m3.id)).toEqual([all.id]);

    // The receiver sees the same routing.
    await waitForPath(rcv, '/fan-all', 3);
    await waitForPath(rcv, '/fan-wild', 2);
    const ids = (path: string) => onPath(rcv, path).map((r) => r.headers['webhook-id']).sort();
    expect(ids('/fan-exact')).toEqual([m1.id]);
    expect(ids('/fan-wild')).toEqual([m1.id, m2.id].sort());
    expect(ids('/fan-chan')).toEqual([m2.id]);
    expect(ids('/fan-all')).toEqual([m1.id, m2.id, m3.id].sort());
  });

  describe('listing, lookup and content', () => {
    let app: any;
    let a: any;
    let b: any;
    let c: any;
    const list = async (query = '') => {
      const r = await k.api('GET', `/api/v1/app/${app.id}/msg${query}`);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body;
    };
    const listIds = async (query = '') => (await list(query)).data.map((m: any) => m.id);

    beforeAll(async () => {
      app = await createApp(k, { name: 'Listing' });
      // Spaced apart so before/after (millisecond times) separate them.
      a = await sendMessage(k, app.id, { eventType: 'order.created', channels: ['eu'], payload: { n: 1 } });
      await sleep(5);
      b = await sendMessage(k, app.id, { eventType: 'user.created', channels: ['us'], payload: { n: 2 } });
      await sleep(5);
      c = await sendMessage(k, app.id, { eventType: 'order.updated', payload: { n: 3 } });
    });

    it('lists newest first with payloads', async () => {
      const body = await list();
      expect(body.data.map((m: any) => m.id)).toEqual([c.id, b.id, a.id]);
      expect(body.data.map((m: any) => m.payload)).toEqual([{ n: 3 }, { n: 2 }, { n: 1 }]);
      expect(body.done).toBe(true);
    });

    it('filters by event_types (comma-separated or repeated)', async () => {
      expect(await listIds('?event_types=order.created,user.created')).toEqual([b.id, a.id]);
      expect(await listIds('?event_types=order.created&event_types=order.updated')).toEqual([c.id, a.id]);
      expect(await listIds('?event_types=nothing.here')).toEqual([]);
    });

    it('filters by channel', async () => {
      expect(await listIds('?channel=eu')).toEqual([a.id]);
      expect(await listIds('?channel=us')).toEqual([b.id]);
      expect(await listIds('?channel=e')).toEqual([]);
    });

    it('filters by before and after', async () => {
      expect(await listIds(`?after=${encodeURIComponent(a.timestamp)}`)).toEqual([c.id, b.id]);
      expect(await listIds(`?before=${encodeURIComponent(c.timestamp)}`)).toEqual([b.id, a.id]);
      expect(await listIds(`?after=${encodeURIComponent(a.timestamp)}&before=${encodeURIComponent(c.timestamp)}`)).toEqual([b.id]);
      const bad = await k.api('GET', `/api/v1/app/${app.id}/msg?before=yesterday`);
      expect(bad.status).toBe(422);
      expect(bad.body.detail[0].loc).toEqual(['query', 'before']);
    });

    it('with_content=false leaves payloads out ({})', async () => {
      const body = await list('?with_content=false');
      expect(body.data).toHaveLength(3);
      for (const m of body.data) expect(m.payload).toEqual({});
      const one = await k.api('GET', `/api/v1/app/${app.id}/msg/${a.id}?with_content=false`);
      expect(one.body.payload).toEqual({});
    });

    it('pages with limit and iterator', async () => {
      const p1 = await list('?limit=2');
      expect(p1.data.map((m: any) => m.id)).toEqual([c.id, b.id]);
      expect(p1.done).toBe(false);
      const p2 = await list(`?limit=2&iterator=${encodeURIComponent(p1.iterator)}`);
      expect(p2.data.map((m: any) => m.id)).toEqual([a.id]);
      expect(p2.done).toBe(true);
    });

    it('gets a message by id and by eventId', async () => {
      const m = await sendMessage(k, app.id, { eventType: 'order.created', eventId: 'evt-lookup-1', payload: { hello: 'world' } });
      const byId = await k.api('GET', `/api/v1/app/${app.id}/msg/${m.id}`);
      expect(byId.status).toBe(200);
      expect(byId.body).toEqual(m);
      const byEventId = await k.api('GET', `/api/v1/app/${app.id}/msg/evt-lookup-1`);
      expect(byEventId.status).toBe(200);
      expect(byEventId.body).toEqual(m);
      expect((await k.api('GET', `/api/v1/app/${app.id}/msg/evt-missing`)).status).toBe(404);
    });

    it('refuses a duplicate eventId in the same application with 409', async () => {
      await sendMessage(k, app.id, { eventType: 'order.created', eventId: 'evt-dup', payload: { first: true } });
      const dup = await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'order.created', eventId: 'evt-dup', payload: { first: false } });
      expect(dup.status).toBe(409);
      expect(dup.body.code).toBe('conflict');
      expect((await k.api('GET', `/api/v1/app/${app.id}/msg/evt-dup`)).body.payload).toEqual({ first: true });
      // Another application may use the same eventId.
      const other = await createApp(k, { name: 'Other' });
      await sendMessage(k, other.id, { eventType: 'order.created', eventId: 'evt-dup', payload: {} });
    });

    it('deleting the content leaves the message with payload {}', async () => {
      const m = await sendMessage(k, app.id, { eventType: 'order.created', payload: { secret: 'remove me' } });
      const del = await k.api('DELETE', `/api/v1/app/${app.id}/msg/${m.id}/content`);
      expect(del.status).toBe(204);
      const get = await k.api('GET', `/api/v1/app/${app.id}/msg/${m.id}`);
      expect(get.status).toBe(200);
      expect(get.body).toMatchObject({ id: m.id, eventType: 'order.created', payload: {} });
      expect(JSON.stringify(await list())).not.toContain('remove me');
    });
  });

  describe('attempts', () => {
    let app: any;
    let ok: any;
    let bad: any;
    let msg: any;
    const byMsg = (q = '') => `/api/v1/app/${app.id}/attempt/msg/${msg.id}${q}`;
    const byEndpoint = (ep: any, q = '') => `/api/v1/app/${app.id}/attempt/endpoint/${ep.id}${q}`;
    const get = async (path: string) => {
      const r = await k.api('GET', path);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body;
    };

    beforeAll(async () => {
      app = await createApp(k, { name: 'Attempts' });
      failing.add('/att-fail');
      ok = await createEndpoint(k, app.id, { url: `${rcv.url}/att-ok` });
      bad = await createEndpoint(k, app.id, { url: `${rcv.url}/att-fail` });
      msg = await sendMessage(k, app.id, { eventType: 'attempt.test', payload: { x: 1 } });
      // Both deliveries are settled (success and final failure).
      await pollApi(k, `/api/v1/app/${app.id}/msg/${msg.id}/endpoint`, (b) => b.data.length === 2 && b.data.every((d: any) => d.status === 0 || d.status === 2));
    });

    it('lists attempts by endpoint, with status and status_code_class filters', async () => {
      const failed = await get(byEndpoint(bad));
      expect(failed.data).toHaveLength(1);
      expect(failed.data[0]).toMatchObject({ msgId: msg.id, endpointId: bad.id, status: 2, statusText: 'fail', responseStatusCode: 500, response: 'broken', triggerType: 0, url: `${rcv.url}/att-fail` });
      expect((await get(byEndpoint(bad, '?status=2'))).data).toHaveLength(1);
      expect((await get(byEndpoint(bad, '?status=0'))).data).toHaveLength(0);
      expect((await get(byEndpoint(bad, '?status_code_class=500'))).data).toHaveLength(1);
      expect((await get(byEndpoint(bad, '?status_code_class=200'))).data).toHaveLength(0);

      const succeeded = await get(byEndpoint(ok, '?status_code_class=200'));
      expect(succeeded.data).toHaveLength(1);
      expect(succeeded.data[0]).toMatchObject({ endpointId: ok.id, status: 0, statusText: 'success', responseStatusCode: 200 });
      expect((await get(byEndpoint(ok, '?status=2'))).data).toHaveLength(0);
    });

    it('lists attempts by message, with status, status_code_class and endpoint_id filters', async () => {
      const all = await get(byMsg());
      expect(all.data.map((a: any) => a.endpointId).sort()).toEqual([ok.id, bad.id].sort());
      expect((await get(byMsg('?status=0'))).data.map((a: any) => a.endpointId)).toEqual([ok.id]);
      expect((await get(byMsg('?status=2'))).data.map((a: any) => a.endpointId)).toEqual([bad.id]);
      expect((await get(byMsg('?status_code_class=500'))).data.map((a: any) => a.endpointId)).toEqual([bad.id]);
      expect((await get(byMsg('?status_code_class=200'))).data.map((a: any) => a.endpointId)).toEqual([ok.id]);
      expect((await get(byMsg(`?endpoint_id=${ok.id}`))).data.map((a: any) => a.endpointId)).toEqual([ok.id]);
      expect((await k.api('GET', byMsg('?status_code_class=250'))).status).toBe(422);
    });

    it('gets one attempt', async () => {
      const [listed] = (await get(byEndpoint(bad))).data;
      const one = await get(`/api/v1/app/${app.id}/msg/${msg.id}/attempt/${listed.id}`);
      expect(one).toEqual(listed);
      expect(one.id).toMatch(/^atmpt_/);
      expect(Date.parse(one.timestamp)).not.toBeNaN();
      expect(typeof one.responseDurationMs).toBe('number');
      expect((await k.api('GET', `/api/v1/app/${app.id}/msg/${msg.id}/attempt/atmpt_00000000000000000000000000`)).status).toBe(404);
    });

    it('msg/{id}/endpoint shows the delivery state per endpoint', async () => {
      const dest = await get(`/api/v1/app/${app.id}/msg/${msg.id}/endpoint`);
      const byId = new Map(dest.data.map((d: any) => [d.id, d]));
      expect(byId.get(ok.id)).toMatchObject({ url: `${rcv.url}/att-ok`, status: 0, statusText: 'success', nextAttempt: null });
      expect(byId.get(bad.id)).toMatchObject({ url: `${rcv.url}/att-fail`, status: 2, statusText: 'fail', nextAttempt: null });
    });

    it('endpoint/{id}/msg lists the messages sent to an endpoint with their state', async () => {
      const failedMsgs = await get(`/api/v1/app/${app.id}/endpoint/${bad.id}/msg`);
      expect(failedMsgs.data).toHaveLength(1);
      expect(failedMsgs.data[0]).toMatchObject({ id: msg.id, eventType: 'attempt.test', payload: { x: 1 }, status: 2, statusText: 'fail' });
      expect((await get(`/api/v1/app/${app.id}/endpoint/${bad.id}/msg?status=0`)).data).toHaveLength(0);
      const okMsgs = await get(`/api/v1/app/${app.id}/endpoint/${ok.id}/msg`);
      expect(okMsgs.data.map((m: any) => [m.id, m.status])).toEqual([[msg.id, 0]]);
    });

    it('resending a message to one endpoint makes a new attempt with triggerType 1', async () => {
      const r = await k.api('POST', `/api/v1/app/${app.id}/msg/${msg.id}/endpoint/${ok.id}/resend`);
      expect(r.status).toBe(202);
      const attempts = await pollApi(k, byEndpoint(ok), (b) => b.data.length === 2 && b.data);
      expect(attempts.map((a: any) => a.triggerType)).toEqual([1, 0]);
      expect(attempts[0]).toMatchObject({ msgId: msg.id, status: 0, responseStatusCode: 200 });
      const reqs = await waitForPath(rcv, '/att-ok', 2);
      expect(reqs.map((q) => q.headers['webhook-id'])).toEqual([msg.id, msg.id]);
      // The other endpoint was left alone.
      await eventually(async () => (await get(byMsg())).data.length === 3);
      expect((await get(byEndpoint(bad))).data).toHaveLength(1);
      expect(onPath(rcv, '/att-fail')).toHaveLength(1);
    });
  });
});
