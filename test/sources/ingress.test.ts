/**
 * Sources over HTTP: create one per provider, post signed requests to its ingestUrl, and check
 * what is answered, logged and forwarded. Runs on SQLite and PostgreSQL.
 */
import { sign as octokitSign } from '@octokit/webhooks-methods';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint, pollApi, waitForPath } from '../api/support.js';
import { SHOPIFY_BODY, SHOPIFY_SECRET, SHOPIFY_SIGNATURE, WOO_ORDER_BODY, WOO_ORDER_SIGNATURE, WOO_SECRET } from './fixtures.js';

let k: TestKoppel;
let rcv: Receiver;
let appId: string;

beforeAll(async () => {
  k = await startTestKoppel();
  rcv = await startReceiver();
  appId = (await createApp(k, { name: 'Webshop', uid: 'webshop' })).id;
});
afterAll(async () => {
  await rcv.close();
  await k.close();
});

async function createSource(body: Record<string, unknown>) {
  const r = await k.api('POST', `/api/v1/app/${appId}/source`, { name: 'src', ...body });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body;
}

/** Posts raw bytes as a provider would (no API key). */
async function post(url: string, body: string, headers: Record<string, string>) {
  const res = await fetch(url, { method: 'POST', headers, body });
  const text = await res.text();
  let json: any = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* keep text */
  }
  return { status: res.status, body: json };
}

describe('source API', () => {
  it('creates a source with its ingest URL and never returns the secret', async () => {
    const s = await createSource({ provider: 'github', secret: 'topsecret', uid: 'gh' });
    expect(s.ingestUrl).toBe(`${k.koppel.config.publicUrl}/in/${s.id}`);
    expect(JSON.stringify(s)).not.toContain('topsecret');
    expect(s).toMatchObject({ provider: 'github', toleranceSeconds: 300, dedupe: { by: 'provider', windowSeconds: 86400 }, disabled: false });
    expect((await k.api('GET', `/api/v1/app/${appId}/source/gh`)).body.id).toBe(s.id);
    const list = await k.api('GET', `/api/v1/app/${appId}/source?limit=250`);
    expect(list.body.data.map((x: any) => x.id)).toContain(s.id);
    const patched = await k.api('PATCH', `/api/v1/app/${appId}/source/${s.id}`, { name: 'GitHub', disabled: true });
    expect(patched.body).toMatchObject({ name: 'GitHub', disabled: true });
    expect((await k.api('DELETE', `/api/v1/app/${appId}/source/${s.id}`)).status).toBe(204);
    expect((await k.api('GET', `/api/v1/app/${appId}/source/${s.id}`)).status).toBe(404);
  });

  it('replaces the secret on PATCH: the old one stops verifying at once', async () => {
    const s = await createSource({ provider: 'github', secret: 'old-secret' });
    const body = '{"zen":"x"}';
    const headers = async (secret: string) => ({ 'content-type': 'application/json', 'x-hub-signature-256': await octokitSign(secret, body), 'x-github-event': 'issues' });
    expect((await post(s.ingestUrl, body, await headers('old-secret'))).status).toBe(200);
    expect((await k.api('PATCH', `/api/v1/app/${appId}/source/${s.id}`, { secret: 'new-secret' })).status).toBe(200);
    expect((await post(s.ingestUrl, body, await headers('old-secret'))).status).toBe(401);
    expect((await post(s.ingestUrl, body, await headers('new-secret'))).status).toBe(200);
    const r = await k.api('PATCH', `/api/v1/app/${appId}/source/${s.id}`, { provider: 'shopify' });
    expect(r.status).toBe(422);
    expect(r.body.detail[0].loc).toEqual(['body', 'secret']);
    const toHmac = await k.api('PATCH', `/api/v1/app/${appId}/source/${s.id}`, { provider: 'hmac', secret: 'x' });
    expect(toHmac.body.detail[0].loc).toEqual(['body', 'hmac']);
  });

  it('refuses bad settings with a 422 naming the field', async () => {
    const bad = async (body: Record<string, unknown>, loc: unknown[]) => {
      const r = await k.api('POST', `/api/v1/app/${appId}/source`, { name: 'x', ...body });
      expect(r.status, JSON.stringify(r.body)).toBe(422);
      expect(r.body.code).toBe('validation');
      expect(r.body.detail[0].loc).toEqual(loc);
    };
    await bad({ provider: 'paypal', secret: 's' }, ['body', 'provider']);
    await bad({ provider: 'hmac', secret: 's' }, ['body', 'hmac']);
    await bad({ provider: 'github', secret: 's', hmac: { header: 'X-Sig', algorithm: 'sha256', encoding: 'hex' } }, ['body', 'hmac']);
    await bad({ provider: 'standard-webhooks', secret: 'not-base64!' }, ['body', 'secret']);
    await bad({ provider: 'github', secret: 's', eventTypeExpression: 'headers.(' }, ['body', 'eventTypeExpression']);
    await bad({ provider: 'github', secret: 's', dedupe: { by: 'expression' } }, ['body', 'dedupe', 'expression']);
    await bad({ provider: 'github' }, ['body', 'secret']);
  });

  it('is scoped to its application', async () => {
    const s = await createSource({ provider: 'github', secret: 's' });
    const other = await createApp(k, { name: 'Other' });
    expect((await k.api('GET', `/api/v1/app/${other.id}/source/${s.id}`)).status).toBe(404);
    expect((await k.api('GET', `/api/v1/app/${other.id}/source/${s.id}/event`)).status).toBe(404);
    // An application key manages its own application's sources and sees no other's.
    const key = await k.api('POST', '/api/v1/api-key', { name: 'other only', applicationId: other.id });
    expect(key.status, JSON.stringify(key.body)).toBe(201);
    const own = await k.api('POST', `/api/v1/app/${other.id}/source`, { name: 'mine', provider: 'github', secret: 's' }, { key: key.body.key });
    expect(own.status).toBe(201);
    expect((await k.api('GET', `/api/v1/app/${appId}/source/${s.id}`, undefined, { key: key.body.key })).status).toBe(404);
    expect((await k.api('GET', `/api/v1/app/${appId}/source`, undefined, { key: key.body.key })).status).toBe(404);
    expect((await k.api('DELETE', `/api/v1/app/${appId}/source/${s.id}`, undefined, { key: key.body.key })).status).toBe(404);
    expect((await k.api('GET', `/api/v1/app/${appId}/source/${s.id}`)).status).toBe(200);
  });
});

describe('ingress', () => {
  it('verifies a WooCommerce order, stores it, answers 200 and forwards it as a message', async () => {
    const ep = await createEndpoint(k, appId, { url: `${rcv.url}/woo`, filterTypes: ['order.*'] });
    const s = await createSource({ provider: 'woocommerce', secret: WOO_SECRET });
    const r = await post(s.ingestUrl, WOO_ORDER_BODY, {
      'content-type': 'application/json', 'x-wc-webhook-signature': WOO_ORDER_SIGNATURE, 'x-wc-webhook-topic': 'order.created', 'x-wc-webhook-delivery-id': '501',
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ status: 'accepted', messageId: expect.stringMatching(/^msg_/), id: expect.stringMatching(/^sevt_/) });
    const [got] = await waitForPath(rcv, '/woo', 1);
    expect(JSON.parse(got.body)).toEqual(JSON.parse(WOO_ORDER_BODY));
    expect(got.headers['webhook-id']).toBe(r.body.messageId);
    const msg = await k.api('GET', `/api/v1/app/${appId}/msg/${r.body.messageId}`);
    expect(msg.body.eventType).toBe('order.created');
    const ev = await k.api('GET', `/api/v1/app/${appId}/source/${s.id}/event/${r.body.id}`);
    expect(ev.body).toMatchObject({ status: 'accepted', eventType: 'order.created', dedupeKey: 'delivery:501', messageId: r.body.messageId, payload: WOO_ORDER_BODY });
    await k.api('DELETE', `/api/v1/app/${appId}/endpoint/${ep.id}`);
  });

  it('answers the WooCommerce activation ping with 200 and forwards nothing', async () => {
    const s = await createSource({ provider: 'woocommerce', secret: WOO_SECRET });
    const r = await post(s.ingestUrl, 'webhook_id=15', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('ignored');
    const log = await k.api('GET', `/api/v1/app/${appId}/source/${s.id}/event`);
    expect(log.body.data).toEqual([expect.objectContaining({ status: 'ignored', messageId: null, reason: expect.stringContaining('ping') })]);
  });

  it('rejects a bad signature with 401 and a reason in the log, storing no payload and no message', async () => {
    const s = await createSource({ provider: 'shopify', secret: SHOPIFY_SECRET });
    const r = await post(s.ingestUrl, SHOPIFY_BODY, { 'content-type': 'application/json', 'x-shopify-hmac-sha256': SHOPIFY_SIGNATURE.replace(/^./, 'A') === SHOPIFY_SIGNATURE ? 'B' + SHOPIFY_SIGNATURE.slice(1) : 'A' + SHOPIFY_SIGNATURE.slice(1) });
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ code: 'signature_invalid', detail: expect.stringContaining('does not match') });
    const missing = await post(s.ingestUrl, SHOPIFY_BODY, { 'content-type': 'application/json' });
    expect(missing.status).toBe(401);
    expect(missing.body.detail).toContain('X-Shopify-Hmac-Sha256 header is missing');
    const log = await k.api('GET', `/api/v1/app/${appId}/source/${s.id}/event?status=rejected`);
    expect(log.body.data).toHaveLength(2);
    expect(log.body.data[0]).toMatchObject({ status: 'rejected', payload: null, messageId: null, bodyBytes: SHOPIFY_BODY.length });
    const ok = await post(s.ingestUrl, SHOPIFY_BODY, { 'content-type': 'application/json', 'x-shopify-hmac-sha256': SHOPIFY_SIGNATURE, 'x-shopify-topic': 'orders/create' });
    expect(ok.status).toBe(200);
    expect((await k.api('GET', `/api/v1/app/${appId}/msg/${ok.body.messageId}`)).body.eventType).toBe('orders.create');
  });

  it('stores a replayed delivery id as a duplicate and forwards it once', async () => {
    const ep = await createEndpoint(k, appId, { url: `${rcv.url}/gh`, filterTypes: ['push'] });
    const s = await createSource({ provider: 'github', secret: 'gh-secret' });
    const body = JSON.stringify({ ref: 'refs/heads/main', commits: [] });
    const headers = { 'content-type': 'application/json', 'x-hub-signature-256': await octokitSign('gh-secret', body), 'x-github-event': 'push', 'x-github-delivery': 'guid-1' };
    const first = await post(s.ingestUrl, body, headers);
    const again = await post(s.ingestUrl, body, headers);
    expect(first.body.status).toBe('accepted');
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ id: expect.stringMatching(/^sevt_/), status: 'duplicate', duplicateOf: first.body.id });
    await waitForPath(rcv, '/gh', 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(rcv.requests.filter((q) => q.url === '/gh')).toHaveLength(1);
    const log = await k.api('GET', `/api/v1/app/${appId}/source/${s.id}/event`);
    expect(log.body.data.map((e: any) => e.status)).toEqual(['duplicate', 'accepted']);
    await k.api('DELETE', `/api/v1/app/${appId}/endpoint/${ep.id}`);
  });

  it('verifies Stripe with a 5-minute tolerance and de-duplicates by event id', async () => {
    const secret = 'whsec_ingress_test_secret';
    const s = await createSource({ provider: 'stripe', secret });
    const body = JSON.stringify({ id: 'evt_42', object: 'event', type: 'checkout.session.completed', data: { object: {} } });
    const stripe = new Stripe('sk_test_oracle');
    const fresh = await post(s.ingestUrl, body, { 'content-type': 'application/json', 'stripe-signature': stripe.webhooks.generateTestHeaderString({ payload: body, secret }) });
    expect(fresh.body.status).toBe('accepted');
    expect((await k.api('GET', `/api/v1/app/${appId}/msg/${fresh.body.messageId}`)).body.eventType).toBe('checkout.session.completed');
    const stale = await post(s.ingestUrl, body, { 'stripe-signature': stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp: Math.floor(Date.now() / 1000) - 400 }) });
    expect(stale.status).toBe(401);
    expect(stale.body.detail).toContain('tolerance');
    const resent = await post(s.ingestUrl, body, { 'stripe-signature': stripe.webhooks.generateTestHeaderString({ payload: body, secret }) });
    expect(resent.body.status).toBe('duplicate');
  });

  it('takes the event type from a JSONata expression and de-duplicates by body hash', async () => {
    const s = await createSource({
      provider: 'hmac', secret: 'form-secret', hmac: { header: 'X-Form-Signature', algorithm: 'sha256', encoding: 'hex' },
      eventTypeExpression: '"contact." & body.kind', dedupe: { by: 'body', windowSeconds: 60 }, channels: ['website'],
    });
    const body = JSON.stringify({ kind: 'submitted', name: 'Jan', email: 'jan@example.com' });
    const sig = (await octokitSign('form-secret', body)).slice(7);
    const r = await post(s.ingestUrl, body, { 'content-type': 'application/json', 'x-form-signature': sig });
    expect(r.body.status, JSON.stringify(r.body)).toBe('accepted');
    const msg = (await k.api('GET', `/api/v1/app/${appId}/msg/${r.body.messageId}`)).body;
    expect(msg).toMatchObject({ eventType: 'contact.submitted', channels: ['website'] });
    expect((await post(s.ingestUrl, body, { 'x-form-signature': sig })).body.status).toBe('duplicate');
  });

  it('answers Slack URL verification with its challenge', async () => {
    const { createHmac } = await import('node:crypto');
    const s = await createSource({ provider: 'slack', secret: 'slack-signing' });
    const body = JSON.stringify({ type: 'url_verification', challenge: 'c-123' });
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = 'v0=' + createHmac('sha256', 'slack-signing').update(`v0:${ts}:${body}`).digest('hex');
    const r = await post(s.ingestUrl, body, { 'content-type': 'application/json', 'x-slack-signature': sig, 'x-slack-request-timestamp': ts });
    expect(r).toEqual({ status: 200, body: { challenge: 'c-123' } });
  });

  it('answers 404 for an unknown source, 403 for a disabled one, 413 for an oversized body, never 5xx', async () => {
    expect((await post(`${k.url}/in/src_00000000000000000000000000`, '{}', { 'content-type': 'application/json' })).status).toBe(404);
    expect((await post(`${k.url}/in/not-a-source`, '{}', {})).status).toBe(422);
    const s = await createSource({ provider: 'github', secret: 's', disabled: true });
    expect((await post(s.ingestUrl, '{}', {})).body.code).toBe('source_disabled');
    const s2 = await createSource({ provider: 'github', secret: 's' });
    const big = await post(s2.ingestUrl, 'x'.repeat(k.koppel.config.bodyLimitBytes + 10), { 'content-type': 'text/plain' });
    expect(big.status).toBe(413);
    // No content type, empty body, binary garbage: all a clean 401.
    expect((await post(s2.ingestUrl, '', {})).status).toBe(401);
    const garbage = await fetch(s2.ingestUrl, { method: 'POST', body: new Uint8Array([0, 255, 1, 2]), headers: { 'content-type': 'application/octet-stream' } });
    expect(garbage.status).toBe(401);
  });

  it('keeps forwarding through endpoint filters: a message only goes to matching endpoints', async () => {
    const only = await createEndpoint(k, appId, { url: `${rcv.url}/refunds`, filterTypes: ['charge.refunded'] });
    const s = await createSource({ provider: 'stripe', secret: 'whsec_filter' });
    const stripe = new Stripe('sk_test_oracle');
    for (const [id, type] of [['evt_a', 'charge.succeeded'], ['evt_b', 'charge.refunded']]) {
      const body = JSON.stringify({ id, object: 'event', type });
      expect((await post(s.ingestUrl, body, { 'stripe-signature': stripe.webhooks.generateTestHeaderString({ payload: body, secret: 'whsec_filter' }) })).status).toBe(200);
    }
    const [got] = await waitForPath(rcv, '/refunds', 1);
    expect(JSON.parse(got.body).id).toBe('evt_b');
    await pollApi(k, `/api/v1/app/${appId}/endpoint/${only.id}/stats`, (b) => b.success === 1);
  });
});

describe('OpenAPI', () => {
  it('documents every route of sources, endpoint auth, transformations and versions', async () => {
    const doc = await (await fetch(`${k.url}/api/v1/openapi.json`)).json();
    const want: [string, string][] = [
      ['/api/v1/app/{app_id}/source', 'get'], ['/api/v1/app/{app_id}/source', 'post'],
      ['/api/v1/app/{app_id}/source/{source_id}', 'get'], ['/api/v1/app/{app_id}/source/{source_id}', 'patch'], ['/api/v1/app/{app_id}/source/{source_id}', 'delete'],
      ['/api/v1/app/{app_id}/source/{source_id}/event', 'get'], ['/api/v1/app/{app_id}/source/{source_id}/event/{event_id}', 'get'],
      ['/in/{source_id}', 'post'],
      ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/auth', 'get'], ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/auth', 'put'], ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/auth', 'delete'],
      ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation', 'get'], ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation', 'patch'],
      ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation/preview', 'post'],
      ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/version', 'get'], ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/version/{version}', 'get'],
      ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/version/{version}/rollback', 'post'],
    ];
    expect(want.filter(([p, m]) => !doc.paths[p]?.[m]?.operationId).map(([p, m]) => `${m} ${p}`)).toEqual([]);
    // The ingress is public: no API key scheme applies to it.
    expect(doc.paths['/in/{source_id}'].post.security).toEqual([]);
  });
});
