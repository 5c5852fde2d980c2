/**
 * The official Svix JavaScript client against Koppel: every call a Svix user makes for the core
 * API must work unchanged with `serverUrl` pointed at Koppel.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiException, BackgroundTaskStatus, MessageStatus, StatusCodeClass, Svix } from 'svix';
import { Webhook } from 'standardwebhooks';
import { ADMIN_KEY, eventually, startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';
import { onPath, waitForPath, failOnPaths } from './support.js';

interface SeenRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
}

/** A fetch that records what the client sends. */
function recordingFetch(seen: SeenRequest[]): typeof fetch {
  return async (input, init) => {
    seen.push({ method: String(init?.method ?? 'GET'), url: String(input), headers: { ...((init?.headers ?? {}) as Record<string, string>) } });
    return fetch(input, init);
  };
}

describe('the svix npm client against Koppel', () => {
  let k: TestKoppel;
  let rcv: Receiver;
  let svix: Svix;
  const seen: SeenRequest[] = [];
  const failing = new Set<string>();

  beforeAll(async () => {
    k = await startTestKoppel({ KOPPEL_RETRY_SCHEDULE: '0' });
    rcv = await startReceiver();
    failOnPaths(rcv, failing);
    svix = new Svix(ADMIN_KEY, { serverUrl: k.url, fetch: recordingFetch(seen) });
  });
  afterAll(async () => {
    await k.close();
    await rcv.close();
  });

  const rejection = async (p: Promise<unknown>): Promise<ApiException<any>> => {
    try {
      await p;
    } catch (e) {
      expect(e).toBeInstanceOf(ApiException);
      return e as ApiException<any>;
    }
    throw new Error('expected the call to fail');
  };

  it('health.get', async () => {
    await expect(svix.health.get()).resolves.toBeUndefined();
  });

  it('application: create, get, list, update, patch, getOrCreate, delete', async () => {
    const app = await svix.application.create({ name: 'Svix app', uid: 'svix-app', metadata: { plan: 'pro' } });
    expect(app.id).toMatch(/^app_/);
    expect(app).toMatchObject({ name: 'Svix app', uid: 'svix-app', metadata: { plan: 'pro' } });
    expect(app.createdAt).toBeInstanceOf(Date);

    expect(await svix.application.get('svix-app')).toEqual(app);
    const list = await svix.application.list({ limit: 250 });
    expect(list.data.map((a) => a.id)).toContain(app.id);
    expect(list.done).toBe(true);

    const updated = await svix.application.update(app.id, { name: 'Svix app renamed', uid: 'svix-app' });
    expect(updated).toMatchObject({ id: app.id, name: 'Svix app renamed', uid: 'svix-app', metadata: {} });
    const patched = await svix.application.patch(app.id, { metadata: { plan: 'enterprise' } });
    expect(patched).toMatchObject({ name: 'Svix app renamed', metadata: { plan: 'enterprise' } });

    const same = await svix.application.getOrCreate({ name: 'ignored', uid: 'svix-app' });
    expect(same.id).toBe(app.id);
    const fresh = await svix.application.getOrCreate({ name: 'Made by getOrCreate', uid: 'svix-goc' });
    expect(fresh.id).not.toBe(app.id);
    expect(fresh.uid).toBe('svix-goc');

    const dup = await rejection(svix.application.create({ name: 'dup', uid: 'svix-app' }));
    expect(dup.code).toBe(409);
    expect(dup.body).toMatchObject({ code: 'conflict' });

    await svix.application.delete(fresh.id);
    const gone = await rejection(svix.application.get(fresh.id));
    expect(gone.code).toBe(404);
    expect(gone.body).toMatchObject({ code: 'not_found', detail: expect.any(String) });
  });

  it('surfaces validation errors as ApiException 422 with detail items', async () => {
    const bad = await rejection(svix.application.create({ name: '' }));
    expect(bad.code).toBe(422);
    expect(bad.body.detail[0].loc).toEqual(['body', 'name']);
  });

  describe('with an application, endpoints and messages', () => {
    let appId: string;
    let ep: Awaited<ReturnType<Svix['endpoint']['create']>>;

    beforeAll(async () => {
      appId = (await svix.application.create({ name: 'Svix flows' })).id;
      await svix.eventType.create({
        name: 'invoice.paid',
        description: 'An invoice was paid',
        schemas: { '1': { type: 'object', properties: { invoice: { type: 'string' } }, examples: [{ invoice: 'inv_example' }] } },
      });
      ep = await svix.endpoint.create(appId, { url: `${rcv.url}/svix-main`, filterTypes: ['invoice.*'], uid: 'svix-main', description: 'main' });
    });

    it('eventType: create and list', async () => {
      const created = await svix.eventType.create({ name: 'invoice.voided', description: 'voided' });
      expect(created).toMatchObject({ name: 'invoice.voided', description: 'voided', archived: false, deprecated: false });
      const list = await svix.eventType.list({ withContent: true });
      expect(list.data.map((e) => e.name)).toEqual(expect.arrayContaining(['invoice.paid', 'invoice.voided']));
      expect(list.data.find((e) => e.name === 'invoice.paid')?.schemas).toBeTruthy();
    });

    it('eventType: get, update, patch, delete (archive, then expunge)', async () => {
      const created = await svix.eventType.create({ name: 'shipment.sent', description: 'sent', schemas: { '1': { type: 'object' } } });
      expect(created.createdAt).toBeInstanceOf(Date);
      expect(await svix.eventType.get('shipment.sent')).toEqual(created);

      // update replaces: what it does not name goes back to its default.
      const updated = await svix.eventType.update('shipment.sent', { description: 'sent to the customer', groupName: 'shipping' });
      expect(updated).toMatchObject({ name: 'shipment.sent', description: 'sent to the customer', groupName: 'shipping', schemas: null, archived: false, deprecated: false });
      expect(updated.createdAt).toEqual(created.createdAt);
      // patch changes only what it names.
      const patched = await svix.eventType.patch('shipment.sent', { deprecated: true });
      expect(patched).toMatchObject({ description: 'sent to the customer', groupName: 'shipping', deprecated: true });
      expect(await svix.eventType.get('shipment.sent')).toEqual(patched);
      // update of a name that does not exist creates it, as in Svix; patch does not.
      expect(await svix.eventType.update('shipment.lost', { description: 'lost' })).toMatchObject({ name: 'shipment.lost', description: 'lost' });
      expect((await rejection(svix.eventType.patch('shipment.nowhere', { description: 'x' }))).code).toBe(404);

      // delete archives: still there by name and in the list with includeArchived, not without.
      await svix.eventType.delete('shipment.sent');
      expect(await svix.eventType.get('shipment.sent')).toMatchObject({ archived: true });
      expect((await svix.eventType.list({ limit: 250 })).data.map((e) => e.name)).not.toContain('shipment.sent');
      expect((await svix.eventType.list({ limit: 250, includeArchived: true })).data.map((e) => e.name)).toContain('shipment.sent');
      // expunge deletes it.
      await svix.eventType.delete('shipment.sent', { expunge: true });
      const gone = await rejection(svix.eventType.get('shipment.sent'));
      expect(gone.code).toBe(404);
      expect(gone.body).toMatchObject({ code: 'not_found' });
    });

    it('endpoint: create, get, list, update, patch, delete', async () => {
      expect(ep.id).toMatch(/^ep_/);
      expect(ep).toMatchObject({ url: `${rcv.url}/svix-main`, filterTypes: ['invoice.*'], uid: 'svix-main', description: 'main', disabled: false });
      expect(await svix.endpoint.get(appId, 'svix-main')).toEqual(ep);

      const extra = await svix.endpoint.create(appId, { url: `${rcv.url}/svix-extra`, filterTypes: ['nothing.matches'], channels: ['c1'] });
      const list = await svix.endpoint.list(appId);
      expect(list.data.map((e) => e.id)).toEqual([ep.id, extra.id]);

      const updated = await svix.endpoint.update(appId, extra.id, { url: `${rcv.url}/svix-extra2`, filterTypes: ['nothing.else'] });
      expect(updated).toMatchObject({ id: extra.id, url: `${rcv.url}/svix-extra2`, filterTypes: ['nothing.else'], channels: null });
      const patched = await svix.endpoint.patch(appId, extra.id, { description: 'patched' });
      expect(patched).toMatchObject({ description: 'patched', url: `${rcv.url}/svix-extra2` });

      await svix.endpoint.delete(appId, extra.id);
      expect((await rejection(svix.endpoint.get(appId, extra.id))).code).toBe(404);
    });

    it('endpoint: getSecret and rotateSecret', async () => {
      const tmp = await svix.endpoint.create(appId, { url: `${rcv.url}/svix-secret`, filterTypes: ['none.here'] });
      const before = await svix.endpoint.getSecret(appId, tmp.id);
      expect(before.key).toMatch(/^whsec_/);
      await svix.endpoint.rotateSecret(appId, tmp.id, {});
      const after = await svix.endpoint.getSecret(appId, tmp.id);
      expect(after.key).toMatch(/^whsec_/);
      expect(after.key).not.toBe(before.key);
      const chosen = 'whsec_' + Buffer.alloc(32, 7).toString('base64');
      await svix.endpoint.rotateSecret(appId, tmp.id, { key: chosen });
      expect((await svix.endpoint.getSecret(appId, tmp.id)).key).toBe(chosen);
    });

    it('endpoint: getHeaders, updateHeaders, patchHeaders', async () => {
      await svix.endpoint.updateHeaders(appId, ep.id, { headers: { 'X-Tenant': 'acme', 'X-Api-Key': 'hidden-value' } });
      expect(await svix.endpoint.getHeaders(appId, ep.id)).toEqual({ headers: { 'x-tenant': 'acme' }, sensitive: ['x-api-key'] });
      await svix.endpoint.patchHeaders(appId, ep.id, { headers: { 'X-Region': 'eu' } });
      expect(await svix.endpoint.getHeaders(appId, ep.id)).toEqual({ headers: { 'x-tenant': 'acme', 'x-region': 'eu' }, sensitive: ['x-api-key'] });
    });

    it('message: create (automatic idempotency key), list, get, expungeContent; stats and attempts', async () => {
      const before = seen.length;
      const msg = await svix.message.create(appId, { eventType: 'invoice.paid', eventId: 'svix-evt-1', payload: { invoice: 'inv_1' } });
      expect(msg.id).toMatch(/^msg_/);
      expect(msg).toMatchObject({ eventType: 'invoice.paid', eventId: 'svix-evt-1', payload: { invoice: 'inv_1' } });
      expect(msg.timestamp).toBeInstanceOf(Date);
      const post = seen.slice(before).find((r) => r.method === 'POST' && r.url.includes(`/app/${appId}/msg`));
      expect(post?.headers['idempotency-key']).toMatch(/^auto_[0-9a-f-]{36}$/);

      const [req] = await waitForPath(rcv, '/svix-main', 1);
      expect(JSON.parse(req.body)).toEqual({ invoice: 'inv_1' });
      expect(req.headers['x-api-key']).toBe('hidden-value');
      const secret = await svix.endpoint.getSecret(appId, ep.id);
      expect(new Webhook(secret.key).verify(req.body, req.headers as Record<string, string>)).toEqual({ invoice: 'inv_1' });

      const list = await svix.message.list(appId, { eventTypes: ['invoice.paid', 'invoice.voided'] });
      expect(list.data.map((m) => m.id)).toContain(msg.id);
      expect((await svix.message.list(appId, { eventTypes: ['other.type'] })).data).toEqual([]);
      expect((await svix.message.get(appId, 'svix-evt-1')).id).toBe(msg.id);

      // Attempts and per-destination state.
      const attempts = await eventually(async () => {
        const r = await svix.messageAttempt.listByMsg(appId, msg.id);
        return r.data.length === 1 && r.data[0].status === MessageStatus.Success ? r : undefined;
      });
      const attempt = attempts.data[0];
      expect(attempt).toMatchObject({ msgId: msg.id, endpointId: ep.id, responseStatusCode: 200, triggerType: 0 });
      expect(attempt.timestamp).toBeInstanceOf(Date);
      const byEndpoint = await svix.messageAttempt.listByEndpoint(appId, ep.id, { status: MessageStatus.Success, statusCodeClass: StatusCodeClass.Code2xx });
      expect(byEndpoint.data.map((a) => a.id)).toContain(attempt.id);
      expect((await svix.messageAttempt.listByEndpoint(appId, ep.id, { status: MessageStatus.Fail })).data).toEqual([]);
      expect(await svix.messageAttempt.get(appId, msg.id, attempt.id)).toEqual(attempt);

      const destinations = await svix.messageAttempt.listAttemptedDestinations(appId, msg.id);
      expect(destinations.data.map((d) => [d.id, d.status])).toEqual([[ep.id, MessageStatus.Success]]);
      const attempted = await svix.messageAttempt.listAttemptedMessages(appId, ep.id);
      expect(attempted.data.find((m) => m.id === msg.id)).toMatchObject({ status: MessageStatus.Success, eventType: 'invoice.paid' });

      const stats = await svix.endpoint.getStats(appId, ep.id);
      expect(stats.success).toBeGreaterThanOrEqual(1);
      expect(stats.fail).toBe(0);

      // Resend makes a second, manual attempt.
      await svix.messageAttempt.resend(appId, msg.id, ep.id);
      const again = await eventually(async () => {
        const r = await svix.messageAttempt.listByEndpoint(appId, ep.id);
        return r.data.filter((a) => a.msgId === msg.id).length === 2 ? r : undefined;
      });
      expect(again.data.filter((a) => a.msgId === msg.id).map((a) => a.triggerType)).toEqual([1, 0]);

      await svix.message.expungeContent(appId, msg.id);
      expect((await svix.message.get(appId, msg.id)).payload).toEqual({});
    });

    it('endpoint: sendExample delivers the event type example to that endpoint', async () => {
      const out = await svix.endpoint.sendExample(appId, ep.id, { eventType: 'invoice.paid' });
      expect(out).toMatchObject({ eventType: 'invoice.paid', payload: { invoice: 'inv_example' } });
      const reqs = await eventually(async () => {
        const got = onPath(rcv, '/svix-main').filter((r) => r.headers['webhook-id'] === out.id);
        return got.length ? got : undefined;
      });
      expect(JSON.parse(reqs[0].body)).toEqual({ invoice: 'inv_example' });
    });

    it('endpoint: recover re-sends failed messages', async () => {
      failing.add('/svix-recover');
      const rec = await svix.endpoint.create(appId, { url: `${rcv.url}/svix-recover`, filterTypes: ['refund.*'] });
      const since = new Date(Date.now() - 60_000);
      const msg = await svix.message.create(appId, { eventType: 'refund.issued', payload: { refund: 1 } });
      await eventually(async () => (await svix.messageAttempt.listAttemptedMessages(appId, rec.id)).data[0]?.status === MessageStatus.Fail);
      expect((await svix.endpoint.getStats(appId, rec.id)).fail).toBe(1);

      failing.delete('/svix-recover');
      const out = await svix.endpoint.recover(appId, rec.id, { since });
      expect(out.status).toBe(BackgroundTaskStatus.Finished);
      expect(typeof out.id).toBe('string');
      const delivered = await eventually(async () => {
        const r = await svix.messageAttempt.listAttemptedMessages(appId, rec.id);
        return r.data[0]?.status === MessageStatus.Success ? r.data[0] : undefined;
      });
      expect(delivered.id).toBe(msg.id);
      expect(onPath(rcv, '/svix-recover')).toHaveLength(2);
    });
  });

  describe("the client's retry", () => {
    async function countMessages(appId: string) {
      return (await svix.message.list(appId, { limit: 250 })).data.length;
    }

    it('retries a POST that got a 502 from a proxy with the same idempotency key; Koppel creates one message', async () => {
      const appId = (await svix.application.create({ name: 'Retry 502' })).id;
      const calls: SeenRequest[] = [];
      let fakeOnce = true;
      const flaky: typeof fetch = async (input, init) => {
        calls.push({ method: String(init?.method), url: String(input), headers: { ...((init?.headers ?? {}) as Record<string, string>) } });
        if (fakeOnce && init?.method === 'POST') {
          fakeOnce = false;
          return new Response('<html>502 Bad Gateway</html>', { status: 502, headers: { 'content-type': 'text/html' } });
        }
        return fetch(input, init);
      };
      const client = new Svix(ADMIN_KEY, { serverUrl: k.url, fetch: flaky, retryScheduleInMs: [20, 40] });
      const msg = await client.message.create(appId, { eventType: 'retry.test', payload: { n: 1 } });

      expect(calls).toHaveLength(2);
      const [first, retry] = calls;
      expect(first.headers['svix-retry-count']).toBeUndefined();
      expect(retry.headers['svix-retry-count']).toBe('1');
      expect(retry.headers['idempotency-key']).toBe(first.headers['idempotency-key']);
      expect(first.headers['idempotency-key']).toMatch(/^auto_/);
      expect(await countMessages(appId)).toBe(1);
      expect((await svix.message.get(appId, msg.id)).payload).toEqual({ n: 1 });
    });

    it('app-portal-access: when the answer was lost (502), the retry with the same key gets a fresh token, not a stored copy', async () => {
      const appId = (await svix.application.create({ name: 'Retry portal' })).id;
      const answers: { status: number; replayed: string | null; key: string; token: string }[] = [];
      let loseOnce = true;
      const lossy: typeof fetch = async (input, init) => {
        const res = await fetch(input, init);
        if (init?.method !== 'POST') return res;
        const text = await res.text();
        const key = (init.headers as Record<string, string>)['idempotency-key'];
        answers.push({ status: res.status, replayed: res.headers.get('idempotent-replayed'), key, token: JSON.parse(text).token });
        if (loseOnce) {
          loseOnce = false;
          return new Response('bad gateway', { status: 502 });
        }
        return new Response(text, { status: res.status, headers: res.headers });
      };
      const client = new Svix(ADMIN_KEY, { serverUrl: k.url, fetch: lossy, retryScheduleInMs: [20] });
      const out = await client.authentication.appPortalAccess(appId, {});

      expect(answers).toHaveLength(2);
      expect(answers[1].key).toBe(answers[0].key);
      expect(answers[0].key).toMatch(/^auto_/);
      expect(answers.map((a) => [a.status, a.replayed])).toEqual([[200, null], [200, null]]);
      expect(answers[1].token).not.toBe(answers[0].token);
      expect(out.token).toBe(answers[1].token);
      // Both work: the first was only lost on the way, and expires like any other.
      for (const { token } of answers) {
        expect((await k.api('GET', '/api/v1/auth/session', undefined, { key: token })).body).toMatchObject({ via: 'portal', applicationId: appId });
      }
    });

    it('when the first attempt reached Koppel but its answer was lost (502), the retry gets the same message back', async () => {
      const appId = (await svix.application.create({ name: 'Retry lost answer' })).id;
      const answers: { status: number; replayed: string | null; id?: string }[] = [];
      let loseOnce = true;
      const lossy: typeof fetch = async (input, init) => {
        const res = await fetch(input, init);
        if (init?.method !== 'POST') return res;
        const text = await res.text();
        answers.push({ status: res.status, replayed: res.headers.get('idempotent-replayed'), id: JSON.parse(text).id });
        if (loseOnce) {
          loseOnce = false;
          return new Response('bad gateway', { status: 502 });
        }
        return new Response(text, { status: res.status, headers: res.headers });
      };
      const client = new Svix(ADMIN_KEY, { serverUrl: k.url, fetch: lossy, retryScheduleInMs: [20] });
      const msg = await client.message.create(appId, { eventType: 'retry.test', payload: { n: 2 } });

      expect(answers).toHaveLength(2);
      expect(answers[0]).toMatchObject({ status: 202, replayed: null });
      expect(answers[1]).toMatchObject({ status: 202, replayed: 'true', id: answers[0].id });
      expect(msg.id).toBe(answers[0].id);
      expect(await countMessages(appId)).toBe(1);
    });
  });
});
