import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { startReceiver, startTestKoppel, type ReceivedRequest, type Receiver, type TestKoppel } from '../helpers.js';
import { openSecrets } from '../../src/endpoints/secrets.js';
import { createApp, createEndpoint, onPath, pollApi, sendMessage, sleep, waitForPath, failOnPaths } from './support.js';

const hmacSecret = (bytes = 24) => 'whsec_' + randomBytes(bytes).toString('base64');

/** Checks a delivery against a secret, as a receiver would. */
const verifies = (secret: string, req: ReceivedRequest, signatureHeader = req.headers['webhook-signature'] as string) => {
  try {
    new Webhook(secret).verify(req.body, { ...(req.headers as Record<string, string>), 'webhook-signature': signatureHeader });
    return true;
  } catch {
    return false;
  }
};

describe('/api/v1/app/{app_id}/endpoint', () => {
  let k: TestKoppel;
  let rcv: Receiver;
  let app: any;
  /** Paths the receiver answers with 500 (everything else gets 200). */
  const failing = new Set<string>();

  beforeAll(async () => {
    // One attempt per delivery, so a 500 fails a message at once.
    k = await startTestKoppel({ KOPPEL_RETRY_SCHEDULE: '0' });
    rcv = await startReceiver();
    failOnPaths(rcv, failing);
    app = await createApp(k, { name: 'Endpoints', uid: 'endpoints-app' });
  });
  afterAll(async () => {
    await k.close();
    await rcv.close();
  });

  const base = () => `/api/v1/app/${app.id}/endpoint`;

  describe('create and read', () => {
    it('creates with eventTypes; both eventTypes and filterTypes come back', async () => {
      const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/types`, eventTypes: ['order.created', 'invoice.*'], description: 'typed' });
      expect(ep.id).toMatch(/^ep_[0-9A-Z]{26}$/);
      expect(ep).toMatchObject({ url: `${rcv.url}/types`, description: 'typed', eventTypes: ['order.created', 'invoice.*'], filterTypes: ['order.created', 'invoice.*'], disabled: false });
      const get = await k.api('GET', `${base()}/${ep.id}`);
      expect(get.status).toBe(200);
      expect(get.body).toEqual(ep);
    });

    it('creates with filterTypes; both eventTypes and filterTypes come back', async () => {
      const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/filter`, filterTypes: ['user.deleted'] });
      expect(ep.eventTypes).toEqual(['user.deleted']);
      expect(ep.filterTypes).toEqual(['user.deleted']);
    });

    it('stores channels and lets PATCH clear them', async () => {
      const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/channels`, channels: ['eu', 'us'], uid: 'chan-ep' });
      expect(ep.channels).toEqual(['eu', 'us']);
      expect((await k.api('GET', `${base()}/chan-ep`)).body.channels).toEqual(['eu', 'us']);
      const patched = await k.api('PATCH', `${base()}/chan-ep`, { channels: null });
      expect(patched.status).toBe(200);
      expect(patched.body.channels).toBeNull();
      expect(patched.body.url).toBe(`${rcv.url}/channels`);
    });

    it('lists endpoints of the application', async () => {
      const other = await createApp(k, { name: 'List endpoints' });
      const a = await createEndpoint(k, other.id, { url: `${rcv.url}/l1` });
      const b = await createEndpoint(k, other.id, { url: `${rcv.url}/l2` });
      const r = await k.api('GET', `/api/v1/app/${other.id}/endpoint`);
      expect(r.status).toBe(200);
      expect(r.body.data.map((e: any) => e.id)).toEqual([a.id, b.id]);
      expect(r.body.done).toBe(true);
    });

    it('PUT replaces and DELETE removes an endpoint', async () => {
      const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/put`, description: 'd', channels: ['x'], eventTypes: ['a.b'] });
      const put = await k.api('PUT', `${base()}/${ep.id}`, { url: `${rcv.url}/put2` });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject({ id: ep.id, url: `${rcv.url}/put2`, description: '', channels: null, eventTypes: null });
      expect((await k.api('DELETE', `${base()}/${ep.id}`)).status).toBe(204);
      expect((await k.api('GET', `${base()}/${ep.id}`)).status).toBe(404);
    });

    it('PUT to a new uid creates the endpoint (201); to an unknown ep_ id is 404', async () => {
      const put = await k.api('PUT', `${base()}/billing-hook`, { url: `${rcv.url}/by-uid` });
      expect(put.status).toBe(201);
      expect(put.body).toMatchObject({ uid: 'billing-hook', url: `${rcv.url}/by-uid` });
      expect((await k.api('GET', `${base()}/billing-hook`)).body.id).toBe(put.body.id);
      const again = await k.api('PUT', `${base()}/billing-hook`, { url: `${rcv.url}/by-uid-2` });
      expect(again.status).toBe(200);
      expect(again.body.id).toBe(put.body.id);
      expect((await k.api('PUT', `${base()}/ep_01M84FTZS0ADK223ZVB16C03RP`, { url: `${rcv.url}/x` })).status).toBe(404);
    });

    it.each([
      ['an ftp:// URL', 'ftp://example.com/hook'],
      ['something that is not a URL', 'not a url'],
      ['a URL with credentials', 'https://user:pw@example.com/hook'],
    ])('refuses %s with 422 naming body.url', async (_what, url) => {
      const r = await k.api('POST', base(), { url });
      expect(r.status).toBe(422);
      expect(r.body.detail.map((d: any) => d.loc)).toContainEqual(['body', 'url']);
    });

    it('refuses a bad URL on PATCH too', async () => {
      const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/patch-url` });
      const r = await k.api('PATCH', `${base()}/${ep.id}`, { url: 'ftp://example.com/' });
      expect(r.status).toBe(422);
      expect(r.body.detail[0].loc).toEqual(['body', 'url']);
      expect((await k.api('GET', `${base()}/${ep.id}`)).body.url).toBe(`${rcv.url}/patch-url`);
    });
  });

  describe('headers', () => {
    it('reports sensitive headers by name only and applies PUT and PATCH', async () => {
      const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/headers`, headers: { 'X-Tenant': 'acme', Authorization: 'Bearer topsecret-1' } });
      const h = `${base()}/${ep.id}/headers`;
      const first = await k.api('GET', h);
      expect(first.status).toBe(200);
      expect(first.body).toEqual({ headers: { 'x-tenant': 'acme' }, sensitive: ['authorization'] });
      expect(JSON.stringify(first.body)).not.toContain('topsecret');

      const put = await k.api('PUT', h, { headers: { 'X-Api-Key': 'topsecret-2', 'X-Env': 'prod' } });
      expect(put.status).toBe(204);
      const afterPut = await k.api('GET', h);
      expect(afterPut.body).toEqual({ headers: { 'x-env': 'prod' }, sensitive: ['x-api-key'] });
      expect(JSON.stringify(afterPut.body)).not.toContain('topsecret');

      const patch = await k.api('PATCH', h, { headers: { 'X-Env': null, 'X-Region': 'eu' } });
      expect(patch.status).toBe(204);
      const afterPatch = await k.api('GET', h);
      expect(afterPatch.body).toEqual({ headers: { 'x-region': 'eu' }, sensitive: ['x-api-key'] });

      // Hidden is not dropped: deliveries still carry the sensitive header.
      const msg = await sendMessage(k, app.id, { eventType: 'headers.check', payload: {} });
      const [req] = await waitForPath(rcv, '/headers', 1);
      expect(req.headers['x-api-key']).toBe('topsecret-2');
      expect(req.headers['x-region']).toBe('eu');
      expect(req.headers['x-env']).toBeUndefined();
      // The attempt log shows the sensitive header's name only; Koppel's own headers in full.
      // (Other endpoints of this application may get the message too.)
      const attempt = await pollApi(k, `/api/v1/app/${app.id}/attempt/msg/${msg.id}`, (b) => b.data.find((a: { endpointId: string }) => a.endpointId === ep.id));
      expect(attempt.requestHeaders).toMatchObject({
        'x-api-key': '[redacted]', 'x-region': 'eu', 'webhook-id': msg.id, 'webhook-signature': req.headers['webhook-signature'], 'svix-signature': req.headers['svix-signature'],
      });
    });

    it('refuses a reserved header (webhook-id) with 422 on create, PUT and PATCH', async () => {
      const create = await k.api('POST', base(), { url: `${rcv.url}/reserved`, headers: { 'webhook-id': 'forged' } });
      expect(create.status).toBe(422);
      expect(create.body.detail[0].loc).toEqual(['body', 'headers', 'webhook-id']);

      const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/reserved` });
      const put = await k.api('PUT', `${base()}/${ep.id}/headers`, { headers: { 'Webhook-Id': 'forged' } });
      expect(put.status).toBe(422);
      expect(put.body.detail[0].loc[2]).toMatch(/^webhook-id$/i);
      const patch = await k.api('PATCH', `${base()}/${ep.id}/headers`, { headers: { 'webhook-id': 'forged' } });
      expect(patch.status).toBe(422);
      expect((await k.api('GET', `${base()}/${ep.id}/headers`)).body.headers).toEqual({});
    });
  });

  describe('secret', () => {
    it('returns a generated whsec_ secret', async () => {
      const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/secret` });
      const r = await k.api('GET', `${base()}/${ep.id}/secret`);
      expect(r.status).toBe(200);
      expect(r.body.key).toMatch(/^whsec_[A-Za-z0-9+/=]{32,}$/);
    });

    it('accepts a custom secret and signs with it', async () => {
      const secret = hmacSecret(32);
      const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/custom-secret`, secret });
      expect((await k.api('GET', `${base()}/${ep.id}/secret`)).body.key).toBe(secret);
      await sendMessage(k, app.id, { eventType: 'secret.custom', payload: { n: 1 } });
      const [req] = await waitForPath(rcv, '/custom-secret', 1);
      expect(verifies(secret, req)).toBe(true);
    });

    it.each([
      ['too short', 'whsec_abc'],
      ['too long a key', 'whsec_' + randomBytes(70).toString('base64')],
      ['not base64', 'whsec_' + '!'.repeat(40)],
    ])('refuses an invalid secret (%s) with 422', async (_what, secret) => {
      const r = await k.api('POST', base(), { url: `${rcv.url}/bad-secret`, secret });
      expect(r.status).toBe(422);
      expect(r.body.detail[0].loc).toEqual(['body', 'secret']);
    });

    it('rotates: the new secret differs, and during the grace period deliveries carry two v1 signatures (old and new)', async () => {
      const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/rotate` });
      const s = `${base()}/${ep.id}/secret`;
      const oldKey = (await k.api('GET', s)).body.key as string;
      const rot = await k.api('POST', `${s}/rotate`, {});
      expect(rot.status).toBe(204);
      const newKey = (await k.api('GET', s)).body.key as string;
      expect(newKey).toMatch(/^whsec_/);
      expect(newKey).not.toBe(oldKey);

      await sendMessage(k, app.id, { eventType: 'secret.rotated', payload: { rotated: true } });
      const [req] = await waitForPath(rcv, '/rotate', 1);
      const sigs = (req.headers['webhook-signature'] as string).split(' ');
      expect(sigs).toHaveLength(2);
      for (const sig of sigs) expect(sig.startsWith('v1,')).toBe(true);
      expect(new Webhook(oldKey).verify(req.body, req.headers as Record<string, string>)).toEqual({ rotated: true });
      expect(new Webhook(newKey).verify(req.body, req.headers as Record<string, string>)).toEqual({ rotated: true });
      // Each secret accounts for exactly one of the two signatures.
      expect(sigs.filter((sig) => verifies(oldKey, req, sig))).toHaveLength(1);
      expect(sigs.filter((sig) => verifies(newKey, req, sig))).toHaveLength(1);
      expect(verifies(hmacSecret(), req)).toBe(false);
    });

    it('rotation keeps the old secret for 24 hours unless gracePeriodSeconds says otherwise', async () => {
      const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/rotate-default` });
      const s = `${base()}/${ep.id}/secret`;
      const before = Date.now();
      expect((await k.api('POST', `${s}/rotate`, {})).status).toBe(204);
      const after = Date.now();
      const row = (await k.koppel.ctx.store.getEndpoint(app.id, ep.id))!;
      const [current, old] = openSecrets(k.koppel.ctx.box, row.secrets);
      expect(current.expiresAt).toBeNull();
      expect(old.expiresAt).toBeGreaterThanOrEqual(before + 86_400_000);
      expect(old.expiresAt).toBeLessThanOrEqual(after + 86_400_000);
    });

    it('signs with the old secret too during the grace period, and with the new one only after it ends', async () => {
      const graceApp = await createApp(k, { name: 'Rotation grace' });
      const ep = await createEndpoint(k, graceApp.id, { url: `${rcv.url}/rotate-grace` });
      const s = `/api/v1/app/${graceApp.id}/endpoint/${ep.id}/secret`;
      const oldKey = (await k.api('GET', s)).body.key as string;
      const rotatedFrom = Date.now();
      expect((await k.api('POST', `${s}/rotate`, { gracePeriodSeconds: 3 })).status).toBe(204);
      // Koppel took its clock between these two readings, so the old secret expires in
      // [rotatedFrom + 3 s, rotatedBy + 3 s].
      const rotatedBy = Date.now();
      const newKey = (await k.api('GET', s)).body.key as string;

      await sendMessage(k, graceApp.id, { eventType: 'secret.grace', payload: { phase: 'grace' } });
      const [during] = await waitForPath(rcv, '/rotate-grace', 1);
      expect(during.at, 'the first delivery must arrive within the grace period for this test to mean anything').toBeLessThan(rotatedFrom + 3_000);
      const duringSigs = (during.headers['webhook-signature'] as string).split(' ');
      expect(duringSigs).toHaveLength(2);
      expect(duringSigs.filter((sig) => verifies(oldKey, during, sig))).toHaveLength(1);
      expect(duringSigs.filter((sig) => verifies(newKey, during, sig))).toHaveLength(1);

      await sleep(rotatedBy + 3_000 + 100 - Date.now());
      await sendMessage(k, graceApp.id, { eventType: 'secret.grace', payload: { phase: 'after' } });
      const [, afterGrace] = await waitForPath(rcv, '/rotate-grace', 2);
      expect(JSON.parse(afterGrace.body)).toEqual({ phase: 'after' });
      expect((afterGrace.headers['webhook-signature'] as string).split(' ')).toHaveLength(1);
      expect(new Webhook(newKey).verify(afterGrace.body, afterGrace.headers as Record<string, string>)).toEqual({ phase: 'after' });
      expect(verifies(oldKey, afterGrace)).toBe(false);
    });

    it('gracePeriodSeconds 0 stops the old secret at once', async () => {
      const graceApp = await createApp(k, { name: 'Rotation no grace' });
      const ep = await createEndpoint(k, graceApp.id, { url: `${rcv.url}/rotate-no-grace` });
      const s = `/api/v1/app/${graceApp.id}/endpoint/${ep.id}/secret`;
      const oldKey = (await k.api('GET', s)).body.key as string;
      expect((await k.api('POST', `${s}/rotate`, { gracePeriodSeconds: 0 })).status).toBe(204);
      const newKey = (await k.api('GET', s)).body.key as string;
      await sendMessage(k, graceApp.id, { eventType: 'secret.grace', payload: { phase: 'none' } });
      const [req] = await waitForPath(rcv, '/rotate-no-grace', 1);
      expect((req.headers['webhook-signature'] as string).split(' ')).toHaveLength(1);
      expect(verifies(newKey, req)).toBe(true);
      expect(verifies(oldKey, req)).toBe(false);
    });

    it('rotates to a custom key and refuses an invalid one', async () => {
      const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/rotate-custom` });
      const s = `${base()}/${ep.id}/secret`;
      const custom = hmacSecret();
      expect((await k.api('POST', `${s}/rotate`, { key: custom })).status).toBe(204);
      expect((await k.api('GET', s)).body.key).toBe(custom);
      const bad = await k.api('POST', `${s}/rotate`, { key: 'whsec_nope' });
      expect(bad.status).toBe(422);
      expect((await k.api('GET', s)).body.key).toBe(custom);
    });
  });

  it('stats count successful and failed deliveries', async () => {
    const statsApp = await createApp(k, { name: 'Stats' });
    failing.add('/stats-fail');
    const ok = await createEndpoint(k, statsApp.id, { url: `${rcv.url}/stats-ok` });
    const bad = await createEndpoint(k, statsApp.id, { url: `${rcv.url}/stats-fail` });
    for (let i = 0; i < 3; i++) await sendMessage(k, statsApp.id, { eventType: 'stats.tick', payload: { i } });
    const stats = (id: string) => `/api/v1/app/${statsApp.id}/endpoint/${id}/stats`;
    const okStats = await pollApi(k, stats(ok.id), (b) => b.success === 3 && b);
    expect(okStats).toEqual({ success: 3, pending: 0, fail: 0, sending: 0, canceled: 0 });
    const badStats = await pollApi(k, stats(bad.id), (b) => b.fail === 3 && b);
    expect(badStats).toEqual({ success: 0, pending: 0, fail: 3, sending: 0, canceled: 0 });
    const future = new Date(Date.now() + 60_000).toISOString();
    expect((await k.api('GET', `${stats(ok.id)}?since=${encodeURIComponent(future)}`)).body.success).toBe(0);
  });

  it('recover re-sends failed messages once the receiver works again', async () => {
    const recApp = await createApp(k, { name: 'Recover' });
    failing.add('/recover');
    const ep = await createEndpoint(k, recApp.id, { url: `${rcv.url}/recover` });
    const since = new Date(Date.now() - 60_000).toISOString();
    const msg = await sendMessage(k, recApp.id, { eventType: 'recover.me', payload: { please: 'recover' } });
    const epMsgs = `/api/v1/app/${recApp.id}/endpoint/${ep.id}/msg`;
    await pollApi(k, epMsgs, (b) => b.data.length === 1 && b.data[0].status === 2 && b.data[0].statusText === 'fail');
    expect(onPath(rcv, '/recover')).toHaveLength(1);

    failing.delete('/recover');
    const rec = await k.api('POST', `/api/v1/app/${recApp.id}/endpoint/${ep.id}/recover`, { since });
    expect(rec.status).toBe(202);
    expect(rec.body).toMatchObject({ status: 'finished', task: 'endpoint.recover' });
    expect(typeof rec.body.id).toBe('string');
    expect(Date.parse(rec.body.updatedAt)).not.toBeNaN();

    const delivered = await pollApi(k, epMsgs, (b) => b.data[0]?.status === 0 && b.data[0]);
    expect(delivered).toMatchObject({ id: msg.id, statusText: 'success' });
    const reqs = await waitForPath(rcv, '/recover', 2);
    expect(JSON.parse(reqs[1].body)).toEqual({ please: 'recover' });
    expect(reqs[1].headers['webhook-id']).toBe(msg.id);
    const attempts = await k.api('GET', `/api/v1/app/${recApp.id}/attempt/endpoint/${ep.id}`);
    expect(attempts.body.data.map((a: any) => a.responseStatusCode)).toEqual([200, 500]);
  });

  it('refuses a recover with since in the future', async () => {
    const ep = await createEndpoint(k, app.id, { url: `${rcv.url}/recover-future` });
    const r = await k.api('POST', `${base()}/${ep.id}/recover`, { since: new Date(Date.now() + 3_600_000).toISOString() });
    expect(r.status).toBe(422);
    expect(r.body.detail[0].loc).toEqual(['body', 'since']);
  });

  it('send-example delivers the schema example of an event type to that endpoint only', async () => {
    const exampleApp = await createApp(k, { name: 'Examples' });
    const examples = [{ kind: 'first-example', n: 1 }, { kind: 'second-example', n: 2 }];
    const et = await k.api('POST', '/api/v1/event-type', {
      name: 'example.sent',
      description: 'has examples',
      schemas: { '1': { type: 'object', properties: { kind: { type: 'string' }, n: { type: 'integer' } }, examples } },
    });
    expect(et.status).toBe(201);
    const target = await createEndpoint(k, exampleApp.id, { url: `${rcv.url}/example-target` });
    await createEndpoint(k, exampleApp.id, { url: `${rcv.url}/example-bystander` });

    const r = await k.api('POST', `/api/v1/app/${exampleApp.id}/endpoint/${target.id}/send-example`, { eventType: 'example.sent' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ eventType: 'example.sent', payload: examples[0] });
    const [req] = await waitForPath(rcv, '/example-target', 1);
    expect(JSON.parse(req.body)).toEqual(examples[0]);
    expect(req.headers['webhook-id']).toBe(r.body.id);

    // The message went to the target alone: one destination, nothing at the bystander.
    const dest = await k.api('GET', `/api/v1/app/${exampleApp.id}/msg/${r.body.id}/endpoint`);
    expect(dest.body.data.map((d: any) => d.id)).toEqual([target.id]);
    await pollApi(k, `/api/v1/app/${exampleApp.id}/endpoint/${target.id}/msg`, (b) => b.data[0]?.status === 0);
    expect(onPath(rcv, '/example-bystander')).toHaveLength(0);

    const second = await k.api('POST', `/api/v1/app/${exampleApp.id}/endpoint/${target.id}/send-example`, { eventType: 'example.sent', exampleIndex: 1 });
    expect(second.status).toBe(200);
    const reqs = await waitForPath(rcv, '/example-target', 2);
    expect(JSON.parse(reqs[1].body)).toEqual(examples[1]);

    const unknown = await k.api('POST', `/api/v1/app/${exampleApp.id}/endpoint/${target.id}/send-example`, { eventType: 'example.unknown' });
    expect(unknown.status).toBe(404);
  });
});
