/**
 * Dashboard sign-in (session cookie, CSRF, sign-out, revocation) and customer portal access tokens
 * (scope, expiry, read-only, foreign tokens, branding), plus the Svix client's appPortalAccess.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Svix } from 'svix';
import { hashApiKey } from '../../src/http/auth.js';
import { TokenSealer } from '../../src/sessions/tokens.js';
import { ADMIN_KEY, startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint, pollApi, sendMessage, sleep } from './support.js';

/** Raw request with optional cookie / headers, no Authorization unless given. */
async function call(k: TestKoppel, method: string, path: string, opts: { cookie?: string; headers?: Record<string, string>; body?: unknown } = {}) {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.cookie) headers.cookie = opts.cookie;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(k.url + path, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  let body: any = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    /* keep text */
  }
  return { status: res.status, body, headers: res.headers };
}

async function signIn(k: TestKoppel, apiKey: string) {
  const r = await call(k, 'POST', '/api/v1/auth/session', { body: { apiKey } });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  const setCookie = r.headers.get('set-cookie')!;
  return { cookie: setCookie.split(';')[0], setCookie, body: r.body };
}

describe('dashboard sessions', () => {
  let k: TestKoppel;
  beforeAll(async () => {
    k = await startTestKoppel();
  });
  afterAll(async () => {
    await k.close();
  });

  it('signs in with an API key into an HttpOnly, SameSite=Strict cookie that authenticates API calls', async () => {
    const { cookie, setCookie, body } = await signIn(k, ADMIN_KEY);
    expect(setCookie).toMatch(/^koppel_session=[A-Za-z0-9_-]+; /);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Path=/api/');
    expect(setCookie).not.toContain(ADMIN_KEY);
    expect(body).toMatchObject({ kind: 'admin', via: 'session', readOnly: false, applicationId: null });
    expect(body.csrfToken).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    const list = await call(k, 'GET', '/api/v1/app', { cookie });
    expect(list.status).toBe(200);
    const who = await call(k, 'GET', '/api/v1/auth/session', { cookie });
    expect(who.status).toBe(200);
    expect(who.body).toMatchObject({ kind: 'admin', via: 'session', csrfToken: body.csrfToken });
    expect(who.headers.get('cache-control')).toBe('no-store');
  });

  it('refuses writes made with the cookie unless they carry the CSRF token', async () => {
    const { cookie, body } = await signIn(k, ADMIN_KEY);
    const none = await call(k, 'POST', '/api/v1/app', { cookie, body: { name: 'csrf' } });
    expect(none.status).toBe(403);
    expect(none.body.code).toBe('forbidden');
    expect(none.body.detail).toMatch(/x-koppel-csrf/i);
    const wrong = await call(k, 'POST', '/api/v1/app', { cookie, body: { name: 'csrf' }, headers: { 'x-koppel-csrf': 'A'.repeat(body.csrfToken.length) } });
    expect(wrong.status).toBe(403);
    const del = await call(k, 'DELETE', '/api/v1/app/app_00000000000000000000000000', { cookie });
    expect(del.status).toBe(403);
    const ok = await call(k, 'POST', '/api/v1/app', { cookie, body: { name: 'csrf' }, headers: { 'x-koppel-csrf': body.csrfToken } });
    expect(ok.status).toBe(201);
    // Another session's token does not fit this session.
    const other = await signIn(k, ADMIN_KEY);
    const crossed = await call(k, 'POST', '/api/v1/app', { cookie, body: { name: 'csrf' }, headers: { 'x-koppel-csrf': other.body.csrfToken } });
    expect(crossed.status).toBe(403);
  });

  it('answers 401 for a wrong key, 422 for a bad body, and never sets a cookie then', async () => {
    const bad = await call(k, 'POST', '/api/v1/auth/session', { body: { apiKey: 'kpl_not-a-key' } });
    expect(bad.status).toBe(401);
    expect(bad.body.code).toBe('authentication_failed');
    expect(bad.headers.get('set-cookie')).toBeNull();
    const missing = await call(k, 'POST', '/api/v1/auth/session', { body: {} });
    expect(missing.status).toBe(422);
    const extra = await call(k, 'POST', '/api/v1/auth/session', { body: { apiKey: ADMIN_KEY, remember: true } });
    expect(extra.status).toBe(422);
    const text = await fetch(`${k.url}/api/v1/auth/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"apiKey":' });
    expect(text.status).toBe(400);
  });

  it('refuses tampered, forged, expired and foreign cookies', async () => {
    const { cookie } = await signIn(k, ADMIN_KEY);
    const value = cookie.slice('koppel_session='.length);
    const flipped = value.slice(0, 40) + (value[40] === 'A' ? 'B' : 'A') + value.slice(41);
    for (const c of [`koppel_session=${flipped}`, 'koppel_session=', 'koppel_session=%%%', `koppel_session=${'x'.repeat(9000)}`]) {
      const r = await call(k, 'GET', '/api/v1/app', { cookie: c });
      expect(r.status, c.slice(0, 40)).toBe(401);
      expect(r.body.code).toBe('authentication_failed');
    }
    const sealer = new TokenSealer(k.koppel.ctx.box);
    const expired = sealer.newSession(hashApiKey(ADMIN_KEY), 1000, Date.now() - 5000).value;
    const r = await call(k, 'GET', '/api/v1/app', { cookie: `koppel_session=${expired}` });
    expect(r.status).toBe(401);
    expect(r.body.detail).toMatch(/expired/);
    // A portal token is not a session, even though both are sealed by the same box.
    const portal = await k.api('POST', `/api/v1/auth/app-portal-access/${(await createApp(k)).id}`, {});
    const asCookie = await call(k, 'GET', '/api/v1/app', { cookie: `koppel_session=${portal.body.token.slice(4)}` });
    expect(asCookie.status).toBe(401);
    // A cookie from another Koppel (another master key) means nothing here.
    const other = await startTestKoppel();
    try {
      const foreign = await signIn(other, ADMIN_KEY);
      expect((await call(k, 'GET', '/api/v1/app', { cookie: foreign.cookie })).status).toBe(401);
    } finally {
      await other.close();
    }
  });

  it('ends the session when its API key is revoked', async () => {
    const created = await k.api('POST', '/api/v1/api-key', { name: 'dashboard user' });
    expect(created.status).toBe(201);
    const { cookie, body } = await signIn(k, created.body.key);
    expect(body.kind).toBe('environment');
    expect((await call(k, 'GET', '/api/v1/app', { cookie })).status).toBe(200);
    expect((await k.api('DELETE', `/api/v1/api-key/${created.body.id}`)).status).toBe(204);
    const after = await call(k, 'GET', '/api/v1/app', { cookie });
    expect(after.status).toBe(401);
    expect(after.body.detail).toMatch(/revoked/);
  });

  it('an application key signs in to a session limited to its application', async () => {
    const a = await createApp(k);
    const key = (await k.api('POST', '/api/v1/api-key', { name: 'app user', applicationId: a.id })).body.key;
    const { cookie, body } = await signIn(k, key);
    expect(body).toMatchObject({ kind: 'application', applicationId: a.id });
    expect((await call(k, 'GET', '/api/v1/app', { cookie })).status).toBe(403);
    expect((await call(k, 'GET', `/api/v1/app/${a.id}`, { cookie })).status).toBe(200);
  });

  it('logout clears the cookie; API keys cannot be logged out', async () => {
    const { cookie } = await signIn(k, ADMIN_KEY);
    const out = await call(k, 'POST', '/api/v1/auth/logout', { cookie });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^koppel_session=; .*Max-Age=0/);
    // Without any credential it is still a clean 204 (an expired session must be able to sign out).
    expect((await call(k, 'POST', '/api/v1/auth/logout')).status).toBe(204);
    const withKey = await call(k, 'POST', '/api/v1/auth/logout', { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(withKey.status).toBe(403);
    const withBadKey = await call(k, 'POST', '/api/v1/auth/logout', { headers: { authorization: 'Bearer nope' } });
    expect(withBadKey.status).toBe(401);
  });

  it('keeps bearer API keys working unchanged and ignores cookies when Authorization is sent', async () => {
    const r = await call(k, 'GET', '/api/v1/app', { headers: { authorization: `Bearer ${ADMIN_KEY}` }, cookie: 'koppel_session=garbage' });
    expect(r.status).toBe(200);
    const who = await k.api('GET', '/api/v1/auth/session');
    expect(who.body).toMatchObject({ kind: 'admin', via: 'key', expiresAt: null, csrfToken: null });
    expect((await call(k, 'GET', '/api/v1/app')).status).toBe(401);
  });
});

describe('customer portal access', () => {
  let k: TestKoppel;
  let rcv: Receiver;
  beforeAll(async () => {
    k = await startTestKoppel({ KOPPEL_PORTAL_NAME: 'Acme Cloud', KOPPEL_PORTAL_ACCENT_COLOR: '#112233' });
    rcv = await startReceiver();
  });
  afterAll(async () => {
    await rcv.close();
    await k.close();
  });

  const portal = async (appId: string, body: Record<string, unknown> = {}) => {
    const r = await k.api('POST', `/api/v1/auth/app-portal-access/${appId}`, body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body as { url: string; token: string };
  };
  const asPortal = (token: string, method: string, path: string, body?: unknown) => k.api(method, path, body, { key: token });

  it('returns {url, token} with the token in the URL fragment of /portal', async () => {
    const a = await createApp(k);
    const out = await portal(a.id);
    expect(out.token).toMatch(/^kpp_[A-Za-z0-9_-]+$/);
    expect(out.url).toBe(`${k.url}/portal#token=${out.token}`);
    const who = await asPortal(out.token, 'GET', '/api/v1/auth/session');
    expect(who.status).toBe(200);
    expect(who.body).toMatchObject({ kind: 'application', via: 'portal', applicationId: a.id, readOnly: false, csrfToken: null });
    expect(who.body.branding).toEqual({ name: 'Acme Cloud', logoUrl: null, accentColor: '#112233' });
    const exp = Date.parse(who.body.expiresAt) - Date.now();
    expect(exp).toBeGreaterThan(3500_000);
    expect(exp).toBeLessThanOrEqual(3600_000);
  });

  it('scopes the token to one application: its endpoints, messages, attempts and the catalogue, nothing else', async () => {
    const a = await createApp(k, { name: 'Customer A' });
    const b = await createApp(k, { name: 'Customer B' });
    const epB = await createEndpoint(k, b.id, { url: 'https://b.example/hook' });
    expect((await k.api('POST', '/api/v1/event-type', { name: 'invoice.paid', description: 'paid', schemas: { 1: { type: 'object', examples: [{ id: 1 }] } } })).status).toBe(201);
    const { token } = await portal(a.id);

    expect((await asPortal(token, 'GET', '/api/v1/app')).status).toBe(403);
    expect((await asPortal(token, 'GET', `/api/v1/app/${a.id}`)).status).toBe(200);
    for (const path of [`/api/v1/app/${b.id}`, `/api/v1/app/${b.id}/endpoint`, `/api/v1/app/${b.id}/endpoint/${epB.id}`, `/api/v1/app/${b.id}/msg`]) {
      const r = await asPortal(token, 'GET', path);
      expect(r.status, path).toBe(404);
    }
    expect((await asPortal(token, 'POST', `/api/v1/app/${b.id}/endpoint`, { url: 'https://evil.example/' })).status).toBe(404);
    const catalogue = await asPortal(token, 'GET', '/api/v1/event-type?with_content=true');
    expect(catalogue.status).toBe(200);
    expect(catalogue.body.data.map((e: any) => e.name)).toContain('invoice.paid');
    // The catalogue, keys and environments are the operator's.
    expect((await asPortal(token, 'POST', '/api/v1/event-type', { name: 'x.y', description: '' })).status).toBe(403);
    expect((await asPortal(token, 'GET', '/api/v1/api-key')).status).toBe(403);
    expect((await asPortal(token, 'POST', '/api/v1/environment', { name: 'mine' })).status).toBe(403);
    // A portal token cannot mint portal links (it could extend its own life or drop read-only).
    expect((await asPortal(token, 'POST', `/api/v1/auth/app-portal-access/${a.id}`, {})).status).toBe(403);
    // The Koppel-Environment header is the admin key's only.
    expect((await k.api('GET', `/api/v1/app/${a.id}`, undefined, { key: token, headers: { 'koppel-environment': 'env_x' } })).status).toBe(200);
  });

  it('lets the customer add an endpoint, rotate its secret, send a test event and read the attempt', async () => {
    const a = await createApp(k);
    const { token } = await portal(a.id);
    const ep = await createEndpoint(k, a.id, { url: `${rcv.url}/portal`, filterTypes: ['invoice.*'] }, token);
    const s1 = (await asPortal(token, 'GET', `/api/v1/app/${a.id}/endpoint/${ep.id}/secret`)).body.key;
    expect((await asPortal(token, 'POST', `/api/v1/app/${a.id}/endpoint/${ep.id}/secret/rotate`, {})).status).toBe(204);
    const s2 = (await asPortal(token, 'GET', `/api/v1/app/${a.id}/endpoint/${ep.id}/secret`)).body.key;
    expect(s2).toMatch(/^whsec_/);
    expect(s2).not.toBe(s1);
    const sent = await asPortal(token, 'POST', `/api/v1/app/${a.id}/endpoint/${ep.id}/send-example`, { eventType: 'invoice.paid' });
    expect(sent.status, JSON.stringify(sent.body)).toBe(200);
    const attempt = await pollApi(k, `/api/v1/app/${a.id}/attempt/msg/${sent.body.id}`, (b) => b.data[0], 10_000, token);
    expect(attempt.responseStatusCode).toBe(200);
  });

  it('a read-only token reads but every write is refused with 403', async () => {
    const a = await createApp(k);
    const ep = await createEndpoint(k, a.id, { url: 'https://a.example/hook' });
    const { token } = await portal(a.id, { readOnly: true });
    expect((await asPortal(token, 'GET', '/api/v1/auth/session')).body.readOnly).toBe(true);
    expect((await asPortal(token, 'GET', `/api/v1/app/${a.id}/endpoint`)).status).toBe(200);
    const writes: [string, string, unknown][] = [
      ['POST', `/api/v1/app/${a.id}/endpoint`, { url: 'https://a.example/2' }],
      ['PATCH', `/api/v1/app/${a.id}/endpoint/${ep.id}`, { disabled: true }],
      ['DELETE', `/api/v1/app/${a.id}/endpoint/${ep.id}`, undefined],
      ['POST', `/api/v1/app/${a.id}/endpoint/${ep.id}/secret/rotate`, {}],
      ['POST', `/api/v1/app/${a.id}/msg`, { eventType: 'a.b', payload: {} }],
    ];
    for (const [m, p, body] of writes) {
      const r = await asPortal(token, m, p, body);
      expect(r.status, `${m} ${p}`).toBe(403);
      expect(r.body.detail).toMatch(/read-only/);
    }
    expect((await k.api('GET', `/api/v1/app/${a.id}/endpoint/${ep.id}`)).body.disabled).toBe(false);
    // Nor may it reveal the signing secret (which would let its holder forge deliveries).
    const secret = await asPortal(token, 'GET', `/api/v1/app/${a.id}/endpoint/${ep.id}/secret`);
    expect(secret.status).toBe(403);
    expect(secret.body.detail).toMatch(/secret/);
    const writable = (await portal(a.id)).token;
    expect((await asPortal(writable, 'GET', `/api/v1/app/${a.id}/endpoint/${ep.id}/secret`)).status).toBe(200);
  });

  it('refuses an expired token and a token of another Koppel, and a tampered one', async () => {
    const a = await createApp(k);
    const { token } = await portal(a.id, { expiry: 1 });
    expect((await asPortal(token, 'GET', `/api/v1/app/${a.id}`)).status).toBe(200);
    await sleep(1100);
    const expired = await asPortal(token, 'GET', `/api/v1/app/${a.id}`);
    expect(expired.status).toBe(401);
    expect(expired.body.detail).toMatch(/expired/);

    const other = await startTestKoppel();
    try {
      const oa = await createApp(other);
      const foreign = (await other.api('POST', `/api/v1/auth/app-portal-access/${oa.id}`, {})).body.token;
      const r = await asPortal(foreign, 'GET', `/api/v1/app/${oa.id}`);
      expect(r.status).toBe(401);
      expect(r.body.code).toBe('authentication_failed');
    } finally {
      await other.close();
    }
    const good = (await portal(a.id)).token;
    const tampered = good.slice(0, 30) + (good[30] === 'A' ? 'B' : 'A') + good.slice(31);
    expect((await asPortal(tampered, 'GET', `/api/v1/app/${a.id}`)).status).toBe(401);
    expect((await asPortal('kpp_', 'GET', `/api/v1/app/${a.id}`)).status).toBe(401);
  });

  it('refuses a "token" made from a value sealed for another purpose (a stored secret)', async () => {
    const a = await createApp(k);
    // A user can choose the plaintext of a stored secret (a source's secret, say); sealed as a
    // secret it must never open as a portal token, whatever it says.
    const claims = { typ: 'portal', env: k.koppel.ctx.defaultEnvironmentId, app: a.id, readOnly: false, branding: {}, exp: Date.now() + 3_600_000 };
    const sealedSecret = k.koppel.ctx.box.encrypt(JSON.stringify(claims));
    const forged = `kpp_${Buffer.from(sealedSecret, 'utf8').toString('base64url')}`;
    expect((await asPortal(forged, 'GET', `/api/v1/app/${a.id}`)).status).toBe(401);
  });

  it('a token whose application was deleted opens nothing', async () => {
    const a = await createApp(k);
    const { token } = await portal(a.id);
    expect((await k.api('DELETE', `/api/v1/app/${a.id}`)).status).toBe(204);
    expect((await asPortal(token, 'GET', `/api/v1/app/${a.id}`)).status).toBe(404);
  });

  it('validates branding, expiry and the application, and needs an environment key', async () => {
    const a = await createApp(k);
    const ok = await portal(a.id, { branding: { name: 'Globex <b>Hooks</b>', logoUrl: 'https://cdn.example/logo.png', accentColor: '#A1B2C3' } });
    const who = await asPortal(ok.token, 'GET', '/api/v1/auth/session');
    expect(who.body.branding).toEqual({ name: 'Globex <b>Hooks</b>', logoUrl: 'https://cdn.example/logo.png', accentColor: '#a1b2c3' });
    const bad: [Record<string, unknown>, string][] = [
      [{ branding: { logoUrl: 'http://cdn.example/logo.png' } }, 'logoUrl'],
      [{ branding: { logoUrl: 'javascript:alert(1)' } }, 'logoUrl'],
      [{ branding: { logoUrl: 'https://user:pw@cdn.example/logo.png' } }, 'logoUrl'],
      [{ branding: { accentColor: 'red' } }, 'accentColor'],
      [{ branding: { accentColor: '#fff;background:url(x)' } }, 'accentColor'],
      [{ branding: { name: '' } }, 'name'],
      [{ branding: { name: 'a\nb' } }, 'name'],
      [{ expiry: 0 }, 'expiry'],
      [{ expiry: 604801 }, 'expiry'],
      [{ readOnly: 'yes' }, 'readOnly'],
      [{ capabilities: ['ViewBase'] }, 'capabilities'],
    ];
    for (const [body, field] of bad) {
      const r = await k.api('POST', `/api/v1/auth/app-portal-access/${a.id}`, body);
      expect(r.status, JSON.stringify(body)).toBe(422);
      expect(JSON.stringify(r.body.detail), JSON.stringify(body)).toContain(field);
    }
    expect((await k.api('POST', '/api/v1/auth/app-portal-access/app_00000000000000000000000000', {})).status).toBe(404);
    expect((await k.api('POST', '/api/v1/auth/app-portal-access/no-such-uid', {})).status).toBe(404);
    const appKey = (await k.api('POST', '/api/v1/api-key', { name: 'app', applicationId: a.id })).body.key;
    expect((await k.api('POST', `/api/v1/auth/app-portal-access/${a.id}`, {}, { key: appKey })).status).toBe(403);
    expect((await fetch(`${k.url}/api/v1/auth/app-portal-access/${a.id}`, { method: 'POST' })).status).toBe(401);
  });

  it('creates the application from `application` when the uid is new (as in Svix)', async () => {
    const r = await k.api('POST', '/api/v1/auth/app-portal-access/new-customer', { application: { name: 'New customer' } });
    expect(r.status).toBe(200);
    const app = await k.api('GET', '/api/v1/app/new-customer');
    expect(app.body.name).toBe('New customer');
  });

  it('works with the official Svix client', async () => {
    const a = await createApp(k, { uid: 'svix-portal' });
    const svix = new Svix(ADMIN_KEY, { serverUrl: k.url });
    const out = await svix.authentication.appPortalAccess(a.uid, { expiry: 120, readOnly: true });
    expect(out.url).toContain('/portal#token=kpp_');
    const who = await asPortal(out.token, 'GET', '/api/v1/auth/session');
    expect(who.body).toMatchObject({ applicationId: a.id, readOnly: true });
  });
});

describe('endpoint health', () => {
  let k: TestKoppel;
  let rcv: Receiver;
  beforeAll(async () => {
    k = await startTestKoppel();
    rcv = await startReceiver();
    rcv.respond((req, res) => {
      res.statusCode = req.url === '/bad' ? 503 : 200;
      res.end(req.url === '/bad' ? 'down' : 'ok');
    });
  });
  afterAll(async () => {
    await rcv.close();
    await k.close();
  });

  it('reports attempts, success rate, latency, last error, state and a timeline', async () => {
    const a = await createApp(k);
    const good = await createEndpoint(k, a.id, { url: `${rcv.url}/good` });
    const bad = await createEndpoint(k, a.id, { url: `${rcv.url}/bad` });
    const idle = await createEndpoint(k, a.id, { url: `${rcv.url}/idle`, filterTypes: ['never.sent'], disabled: true });
    await sendMessage(k, a.id, { eventType: 'order.created', payload: { n: 1 } });
    await sendMessage(k, a.id, { eventType: 'order.created', payload: { n: 2 } });
    // The bad endpoint retries 3 times (schedule 0, 0.05, 0.1, 0.2 s): 4 failed attempts per message.
    const h = await pollApi(k, `/api/v1/app/${a.id}/endpoint-health?buckets=12`, (b) => {
      const g = b.endpoints.find((e: any) => e.endpointId === good.id);
      const x = b.endpoints.find((e: any) => e.endpointId === bad.id);
      return g.attempts === 2 && x.attempts === 8 ? b : null;
    });
    expect(h.bucketSeconds).toBe(7200);
    expect(h.timeline).toHaveLength(12);
    const byId = Object.fromEntries(h.endpoints.map((e: any) => [e.endpointId, e]));
    expect(byId[good.id]).toMatchObject({ state: 'healthy', successes: 2, failures: 0, successRate: 1, lastError: null });
    expect(byId[good.id].meanLatencyMs).toBeGreaterThanOrEqual(0);
    expect(byId[bad.id]).toMatchObject({ state: 'failing', successes: 0, failures: 8, successRate: 0 });
    expect(byId[bad.id].lastError).toMatchObject({ responseStatusCode: 503, errorClass: 'http_status' });
    expect(byId[idle.id]).toMatchObject({ state: 'disabled', attempts: 0, successRate: null, meanLatencyMs: null, lastAttemptAt: null });
    const total = h.timeline.reduce((s: number, t: any) => s + t.attempts, 0);
    expect(total).toBe(10);
    expect(h.timeline[11].attempts).toBe(10);

    const one = await k.api('GET', `/api/v1/app/${a.id}/endpoint-health?endpoint_id=${good.id}&buckets=1`);
    expect(one.body.endpoints).toHaveLength(1);
    expect(one.body.timeline).toEqual([expect.objectContaining({ attempts: 2, successes: 2, failures: 0 })]);
  });

  it('refuses bad windows with 422 and other applications with 404', async () => {
    const a = await createApp(k);
    const bad = [
      'since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z',
      'since=2020-01-01T00:00:00Z&until=2026-01-01T00:00:00Z',
      'since=yesterday',
      'buckets=0',
      'buckets=1000',
    ];
    for (const q of bad) expect((await k.api('GET', `/api/v1/app/${a.id}/endpoint-health?${q}`)).status, q).toBe(422);
    expect((await k.api('GET', `/api/v1/app/${a.id}/endpoint-health?endpoint_id=ep_nope`)).status).toBe(404);
    const b = await createApp(k);
    const key = (await k.api('POST', '/api/v1/api-key', { name: 'b', applicationId: b.id })).body.key;
    expect((await k.api('GET', `/api/v1/app/${a.id}/endpoint-health`, undefined, { key })).status).toBe(404);
  });
});
