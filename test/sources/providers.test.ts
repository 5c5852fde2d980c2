/**
 * Provider verification against oracles written by others: GitHub's and Slack's published
 * vectors, Stripe's own library, @octokit/webhooks-methods, the standardwebhooks package, and
 * WooCommerce/Shopify fixtures computed by Python and OpenSSL (see fixtures.ts). Each provider also
 * gets the negatives a forger or a broken proxy would produce.
 */
import { sign as octokitSign } from '@octokit/webhooks-methods';
import { Webhook } from 'standardwebhooks';
import Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import { verifyRequest, type IncomingRequest, type ProviderName, type VerifyOptions } from '../../src/sources/providers/index.js';
import {
  GITHUB_VECTOR, SHOPIFY_BODY, SHOPIFY_SECRET, SHOPIFY_SIGNATURE, SLACK_VECTOR, WOO_ORDER_BODY, WOO_ORDER_SIGNATURE, WOO_PING_SIGNATURE, WOO_SECRET,
  base64ToHex, hexToBase64,
} from './fixtures.js';

const stripe = new Stripe('sk_test_oracle');
const opts: VerifyOptions = { toleranceSeconds: 300 };
const req = (body: string, headers: Record<string, string>, now = Date.now()): IncomingRequest => ({
  rawBody: Buffer.from(body, 'utf8'),
  headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
  now,
});
const check = (p: ProviderName, r: IncomingRequest, secret: string, o: VerifyOptions = opts) => verifyRequest(p, r, secret, o);
/** The same JSON with different whitespace, as a proxy that parses and re-serialises would send. */
const reserialised = (body: string) => JSON.stringify(JSON.parse(body), null, 1);

describe('GitHub', () => {
  it("accepts GitHub's published vector", () => {
    const r = check('github', req(GITHUB_VECTOR.body, { 'X-Hub-Signature-256': GITHUB_VECTOR.signature, 'X-GitHub-Event': 'push', 'X-GitHub-Delivery': 'd-1' }), GITHUB_VECTOR.secret);
    expect(r).toEqual({ ok: true, deliveryId: 'd-1', eventType: 'push' });
  });

  it('accepts what @octokit/webhooks-methods signs, naming event and action', async () => {
    const body = JSON.stringify({ action: 'opened', number: 7, pull_request: { title: 'Fix' } });
    const signature = await octokitSign('octo-secret', body);
    const r = check('github', req(body, { 'X-Hub-Signature-256': signature, 'X-GitHub-Event': 'pull_request', 'X-GitHub-Delivery': 'abc', 'content-type': 'application/json' }), 'octo-secret');
    expect(r).toEqual({ ok: true, deliveryId: 'abc', eventType: 'pull_request.opened' });
  });

  it('refuses a wrong secret, base64 instead of hex, a re-serialised body and a missing header', async () => {
    const h = { 'X-Hub-Signature-256': GITHUB_VECTOR.signature };
    expect(check('github', req(GITHUB_VECTOR.body, h), 'not the secret')).toMatchObject({ ok: false, reason: expect.stringContaining('does not match') });
    const b64 = 'sha256=' + hexToBase64(GITHUB_VECTOR.signature.slice(7));
    expect(check('github', req(GITHUB_VECTOR.body, { 'X-Hub-Signature-256': b64 }), GITHUB_VECTOR.secret).ok).toBe(false);
    const body = '{"a": 1, "b": [1, 2]}';
    const sig = await octokitSign('s', body);
    expect(check('github', req(body, { 'X-Hub-Signature-256': sig }), 's').ok).toBe(true);
    expect(check('github', req(reserialised(body), { 'X-Hub-Signature-256': sig }), 's').ok).toBe(false);
    expect(check('github', req(GITHUB_VECTOR.body, {}), GITHUB_VECTOR.secret)).toMatchObject({ ok: false, reason: expect.stringContaining('X-Hub-Signature-256 header is missing') });
    // The SHA-1 header alone is not enough.
    expect(check('github', req(GITHUB_VECTOR.body, { 'X-Hub-Signature': 'sha1=00' }), GITHUB_VECTOR.secret).ok).toBe(false);
  });

  it('answers the ping without forwarding it', async () => {
    const body = '{"zen":"Keep it logically awesome."}';
    const r = check('github', req(body, { 'X-Hub-Signature-256': await octokitSign('s', body), 'X-GitHub-Event': 'ping' }), 's');
    expect(r).toMatchObject({ ok: true, ignore: expect.stringContaining('ping') });
  });
});

describe('Stripe', () => {
  const secret = 'whsec_test_0123456789abcdefghijklmnop';
  const body = JSON.stringify({ id: 'evt_1', object: 'event', type: 'invoice.paid', data: { object: { id: 'in_1' } } });

  it("accepts what Stripe's library signs, with the event id and type", () => {
    const header = stripe.webhooks.generateTestHeaderString({ payload: body, secret });
    expect(check('stripe', req(body, { 'Stripe-Signature': header }), secret)).toEqual({ ok: true, deliveryId: 'evt_1', eventType: 'invoice.paid' });
  });

  it('uses the whole whsec_ string as the key (not its base64 decoding)', () => {
    const header = stripe.webhooks.generateTestHeaderString({ payload: body, secret });
    expect(check('stripe', req(body, { 'Stripe-Signature': header }), secret.slice('whsec_'.length)).ok).toBe(false);
  });

  it('accepts any of several v1 signatures (secret roll)', () => {
    const good = stripe.webhooks.generateTestHeaderString({ payload: body, secret });
    const other = stripe.webhooks.generateTestHeaderString({ payload: body, secret: 'whsec_other' });
    const t = /t=(\d+)/.exec(good)![1];
    const header = `t=${t},v1=${/v1=([0-9a-f]+)/.exec(other)![1]},v1=${/v1=([0-9a-f]+)/.exec(good)![1]}`;
    expect(check('stripe', req(body, { 'Stripe-Signature': header }), secret).ok).toBe(true);
  });

  it('refuses a stale or future timestamp, a wrong secret, base64, a re-serialised body and a missing header', () => {
    const now = Date.now();
    const old = stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp: Math.floor(now / 1000) - 301 });
    expect(check('stripe', req(body, { 'Stripe-Signature': old }, now), secret)).toMatchObject({ ok: false, reason: expect.stringContaining('301 s old') });
    const inTolerance = stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp: Math.floor(now / 1000) - 299 });
    expect(check('stripe', req(body, { 'Stripe-Signature': inTolerance }, now), secret).ok).toBe(true);
    const future = stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp: Math.floor(now / 1000) + 600 });
    expect(check('stripe', req(body, { 'Stripe-Signature': future }, now), secret)).toMatchObject({ ok: false, reason: expect.stringContaining('in the future') });
    const header = stripe.webhooks.generateTestHeaderString({ payload: body, secret });
    expect(check('stripe', req(body, { 'Stripe-Signature': header }), 'whsec_wrong').ok).toBe(false);
    const b64 = header.replace(/v1=([0-9a-f]+)/, (_m, hex) => `v1=${hexToBase64(hex)}`);
    expect(check('stripe', req(body, { 'Stripe-Signature': b64 }), secret).ok).toBe(false);
    expect(check('stripe', req(reserialised(body), { 'Stripe-Signature': header }), secret).ok).toBe(false);
    expect(check('stripe', req(body, {}), secret)).toMatchObject({ ok: false, reason: expect.stringContaining('Stripe-Signature header is missing') });
    expect(check('stripe', req(body, { 'Stripe-Signature': 'v1=abc' }), secret)).toMatchObject({ ok: false, reason: expect.stringContaining('no t=') });
  });
});

describe('Shopify', () => {
  it('accepts the fixture and names the topic', () => {
    const r = check('shopify', req(SHOPIFY_BODY, { 'X-Shopify-Hmac-Sha256': SHOPIFY_SIGNATURE, 'X-Shopify-Topic': 'orders/create', 'X-Shopify-Webhook-Id': 'wh-1' }), SHOPIFY_SECRET);
    expect(r).toEqual({ ok: true, deliveryId: 'wh-1', eventType: 'orders/create' });
  });

  it('refuses hex instead of base64, a wrong secret, a re-serialised body and a missing header', () => {
    expect(check('shopify', req(SHOPIFY_BODY, { 'X-Shopify-Hmac-Sha256': base64ToHex(SHOPIFY_SIGNATURE) }), SHOPIFY_SECRET).ok).toBe(false);
    expect(check('shopify', req(SHOPIFY_BODY, { 'X-Shopify-Hmac-Sha256': SHOPIFY_SIGNATURE }), 'shpss_wrong').ok).toBe(false);
    expect(check('shopify', req(reserialised(SHOPIFY_BODY), { 'X-Shopify-Hmac-Sha256': SHOPIFY_SIGNATURE }), SHOPIFY_SECRET).ok).toBe(false);
    expect(check('shopify', req(SHOPIFY_BODY, {}), SHOPIFY_SECRET).ok).toBe(false);
  });
});

describe('WooCommerce', () => {
  const headers = { 'X-WC-Webhook-Signature': WOO_ORDER_SIGNATURE, 'X-WC-Webhook-Topic': 'order.created', 'X-WC-Webhook-Delivery-ID': '9001' };

  it('accepts the fixture and names the topic', () => {
    expect(check('woocommerce', req(WOO_ORDER_BODY, headers), WOO_SECRET)).toEqual({ ok: true, deliveryId: '9001', eventType: 'order.created' });
  });

  it('answers the unsigned activation ping without forwarding it, and a signed one too', () => {
    expect(check('woocommerce', req('webhook_id=15', { 'content-type': 'application/x-www-form-urlencoded' }), WOO_SECRET)).toMatchObject({ ok: true, ignore: expect.stringContaining('ping') });
    expect(check('woocommerce', req('webhook_id=15', { 'X-WC-Webhook-Signature': WOO_PING_SIGNATURE }), WOO_SECRET)).toMatchObject({ ok: true, ignore: expect.stringContaining('ping') });
  });

  it('refuses an unsigned body that is not the ping, hex instead of base64, a wrong secret and a re-serialised body', () => {
    expect(check('woocommerce', req(WOO_ORDER_BODY, {}), WOO_SECRET)).toMatchObject({ ok: false, reason: expect.stringContaining('X-WC-Webhook-Signature header is missing') });
    expect(check('woocommerce', req('webhook_id=15&x=1', {}), WOO_SECRET).ok).toBe(false);
    expect(check('woocommerce', req(WOO_ORDER_BODY, { ...headers, 'X-WC-Webhook-Signature': base64ToHex(WOO_ORDER_SIGNATURE) }), WOO_SECRET).ok).toBe(false);
    expect(check('woocommerce', req(WOO_ORDER_BODY, headers), 'wc-secret-wrong').ok).toBe(false);
    expect(check('woocommerce', req(reserialised(WOO_ORDER_BODY), headers), WOO_SECRET).ok).toBe(false);
  });
});

describe('Slack', () => {
  const at = (ts: string, deltaS = 0) => Number(ts) * 1000 + deltaS * 1000;

  it("accepts Slack's published example (a slash command)", () => {
    const r = check('slack', req(SLACK_VECTOR.body, { 'X-Slack-Signature': SLACK_VECTOR.signature, 'X-Slack-Request-Timestamp': SLACK_VECTOR.timestamp }, at(SLACK_VECTOR.timestamp, 10)), SLACK_VECTOR.secret);
    expect(r).toEqual({ ok: true, deliveryId: null, eventType: 'slash_command' });
  });

  it('refuses a stale timestamp, a wrong secret, base64, a missing timestamp and a tampered body', () => {
    const h = { 'X-Slack-Signature': SLACK_VECTOR.signature, 'X-Slack-Request-Timestamp': SLACK_VECTOR.timestamp };
    expect(check('slack', req(SLACK_VECTOR.body, h, at(SLACK_VECTOR.timestamp, 301)), SLACK_VECTOR.secret)).toMatchObject({ ok: false, reason: expect.stringContaining('tolerance') });
    expect(check('slack', req(SLACK_VECTOR.body, h, at(SLACK_VECTOR.timestamp)), 'wrong').ok).toBe(false);
    expect(check('slack', req(SLACK_VECTOR.body, { ...h, 'X-Slack-Signature': 'v0=' + hexToBase64(SLACK_VECTOR.signature.slice(3)) }, at(SLACK_VECTOR.timestamp)), SLACK_VECTOR.secret).ok).toBe(false);
    expect(check('slack', req(SLACK_VECTOR.body, { 'X-Slack-Signature': SLACK_VECTOR.signature }, at(SLACK_VECTOR.timestamp)), SLACK_VECTOR.secret).ok).toBe(false);
    expect(check('slack', req(SLACK_VECTOR.body.replace('foobar', 'foobaz'), h, at(SLACK_VECTOR.timestamp)), SLACK_VECTOR.secret).ok).toBe(false);
  });
});

describe('Standard Webhooks / Svix', () => {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const body = '{"type":"contact.created","data":{"email":"a@b.example"}}';

  it('accepts what the standardwebhooks library signs, with webhook-* or svix-* headers', () => {
    const now = new Date();
    const signature = new Webhook(secret).sign('msg_1', now, body);
    const ts = String(Math.floor(now.getTime() / 1000));
    expect(check('standard-webhooks', req(body, { 'webhook-id': 'msg_1', 'webhook-timestamp': ts, 'webhook-signature': signature }), secret)).toEqual({ ok: true, deliveryId: 'msg_1', eventType: 'contact.created' });
    expect(check('standard-webhooks', req(body, { 'svix-id': 'msg_1', 'svix-timestamp': ts, 'svix-signature': `v1,bogus ${signature}` }), secret).ok).toBe(true);
  });

  it('accepts the published Standard Webhooks vector when the clock is set to it, and refuses it as stale now', () => {
    const h = { 'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek', 'webhook-timestamp': '1614265330', 'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' };
    expect(check('standard-webhooks', req('{"test": 2432232314}', h, 1614265330_000), secret).ok).toBe(true);
    expect(check('standard-webhooks', req('{"test": 2432232314}', h), secret)).toMatchObject({ ok: false, reason: expect.stringContaining('tolerance') });
    expect(check('standard-webhooks', req('{"test":2432232314}', h, 1614265330_000), secret).ok).toBe(false);
    expect(check('standard-webhooks', req('{"test": 2432232314}', { ...h, 'webhook-id': 'msg_other' }, 1614265330_000), secret).ok).toBe(false);
    expect(check('standard-webhooks', req('{"test": 2432232314}', { 'webhook-id': h['webhook-id'], 'webhook-timestamp': h['webhook-timestamp'] }, 1614265330_000), secret).ok).toBe(false);
  });
});

describe('generic HMAC', () => {
  const secret = 'form-secret-123';
  const body = '{"type":"lead.created","name":"Jan"}';

  it('verifies hex and base64 with a prefix, and refuses the other encoding', async () => {
    const hex = (await octokitSign(secret, body)).slice(7);
    const o = (encoding: 'hex' | 'base64'): VerifyOptions => ({ toleranceSeconds: 300, hmac: { header: 'X-Signature', algorithm: 'sha256', encoding, prefix: 'sha256=' } });
    expect(check('hmac', req(body, { 'X-Signature': `sha256=${hex}` }), secret, o('hex'))).toEqual({ ok: true, deliveryId: null, eventType: 'lead.created' });
    expect(check('hmac', req(body, { 'X-Signature': `sha256=${hexToBase64(hex)}` }), secret, o('base64')).ok).toBe(true);
    expect(check('hmac', req(body, { 'X-Signature': `sha256=${hexToBase64(hex)}` }), secret, o('hex')).ok).toBe(false);
    expect(check('hmac', req(body, { 'X-Signature': `sha256=${hex}` }), secret, o('base64')).ok).toBe(false);
    expect(check('hmac', req(body, { 'X-Signature': hex }), secret, o('hex'))).toMatchObject({ ok: false, reason: expect.stringContaining('must start with "sha256="') });
  });

  it('signs a template with a timestamp header (the Slack scheme, configured by hand) and checks its age', () => {
    const o: VerifyOptions = {
      toleranceSeconds: 300,
      hmac: { header: 'X-Slack-Signature', algorithm: 'sha256', encoding: 'hex', prefix: 'v0=', timestampHeader: 'X-Slack-Request-Timestamp', signedContent: 'v0:{timestamp}:{body}' },
    };
    const h = { 'X-Slack-Signature': SLACK_VECTOR.signature, 'X-Slack-Request-Timestamp': SLACK_VECTOR.timestamp };
    expect(check('hmac', req(SLACK_VECTOR.body, h, Number(SLACK_VECTOR.timestamp) * 1000), SLACK_VECTOR.secret, o).ok).toBe(true);
    expect(check('hmac', req(SLACK_VECTOR.body, h), SLACK_VECTOR.secret, o)).toMatchObject({ ok: false, reason: expect.stringContaining('tolerance') });
  });

  it('supports sha1 and sha512 and takes the delivery id from a header', async () => {
    const { createHmac } = await import('node:crypto');
    for (const algorithm of ['sha1', 'sha512'] as const) {
      const sig = createHmac(algorithm, secret).update(body).digest('base64');
      const o: VerifyOptions = { toleranceSeconds: 300, hmac: { header: 'X-Sig', algorithm, encoding: 'base64', idHeader: 'X-Id' } };
      expect(check('hmac', req(body, { 'X-Sig': sig, 'X-Id': 'lead-9' }), secret, o)).toEqual({ ok: true, deliveryId: 'lead-9', eventType: 'lead.created' });
    }
  });
});
