/**
 * Endpoint auth, transformations and versions over the API: bad input gets a 422 naming the
 * field, previews run on recent real messages, a transformation that loops fails only its own
 * endpoint's attempts, and only versioned fields make versions. Runs on SQLite and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint, pollApi, sendMessage, waitForPath } from '../api/support.js';

let k: TestKoppel;
let rcv: Receiver;
let appId: string;

beforeAll(async () => {
  // Short, so the endless loops below time out quickly; not shorter, since the limit is wall time
  // and a sandbox thread starved of the CPU by the rest of the suite must still load a one-liner
  // within it (at 0.2 s a check of `const x = 1;` once timed out in CI).
  k = await startTestKoppel({ KOPPEL_TRANSFORM_TIMEOUT: '0.75' });
  rcv = await startReceiver();
  appId = (await createApp(k, { name: 'Changes' })).id;
});
afterAll(async () => {
  await rcv.close();
  await k.close();
});

async function expect422(method: string, path: string, body: unknown, loc: unknown[], msg?: RegExp) {
  const r = await k.api(method, path, body);
  expect(r.status, JSON.stringify(r.body)).toBe(422);
  expect(r.body.code).toBe('validation');
  expect(r.body.detail[0].loc).toEqual(loc);
  if (msg) expect(r.body.detail[0].msg).toMatch(msg);
}

describe('endpoint auth', () => {
  it('refuses incomplete or unsafe credentials, naming the field', async () => {
    const ep = await createEndpoint(k, appId, { url: `${rcv.url}/auth` });
    const p = `/api/v1/app/${appId}/endpoint/${ep.id}/auth`;
    await expect422('PUT', p, { type: 'api-key', key: 'k' }, ['body', 'header']);
    await expect422('PUT', p, { type: 'api-key', header: 'Content-Type', key: 'k' }, ['body', 'header'], /set by Koppel/);
    await expect422('PUT', p, { type: 'api-key', header: 'X-Key', key: 'a\r\nInjected: 1' }, ['body', 'key']);
    // Characters an HTTP client refuses in a header would fail every delivery instead.
    await expect422('PUT', p, { type: 'api-key', header: 'X-Key', key: 'abc€\u0001' }, ['body', 'key'], /printable ASCII/);
    await expect422('PUT', p, { type: 'bearer', token: 'tök' }, ['body', 'token'], /printable ASCII/);
    await expect422('PUT', p, { type: 'basic', username: 'a\u0007', password: 'p' }, ['body', 'username'], /control characters/);
    await expect422('PUT', p, { type: 'bearer', token: 't', key: 'k' }, ['body', 'key'], /not used with type "bearer"/);
    await expect422('PUT', p, { type: 'basic', username: 'a:b', password: 'p' }, ['body', 'username']);
    await expect422('PUT', p, { type: 'oauth' }, ['body', 'type']);
    expect((await k.api('GET', p)).body).toEqual({ type: 'none', header: null, username: null });
  });

  it('sends bearer and basic credentials and redacts them in attempts', async () => {
    const ep = await createEndpoint(k, appId, { url: `${rcv.url}/bearer`, filterTypes: ['auth.test'] });
    expect((await k.api('PUT', `/api/v1/app/${appId}/endpoint/${ep.id}/auth`, { type: 'bearer', token: 'tok-123' })).status).toBe(200);
    await sendMessage(k, appId, { eventType: 'auth.test', payload: { n: 1 } });
    const [got] = await waitForPath(rcv, '/bearer', 1);
    expect(got.headers.authorization).toBe('Bearer tok-123');
    expect((await k.api('PUT', `/api/v1/app/${appId}/endpoint/${ep.id}/auth`, { type: 'basic', username: 'jan', password: 'geheim' })).body).toEqual({ type: 'basic', header: 'authorization', username: 'jan' });
    await sendMessage(k, appId, { eventType: 'auth.test', payload: { n: 2 } });
    const all = await waitForPath(rcv, '/bearer', 2);
    expect(all[1].headers.authorization).toBe(`Basic ${Buffer.from('jan:geheim').toString('base64')}`);
    const attempts = await pollApi(k, `/api/v1/app/${appId}/attempt/endpoint/${ep.id}`, (b) => (b.data.length >= 2 ? b.data : null));
    expect(attempts.every((a: any) => a.requestHeaders?.authorization === '[redacted]')).toBe(true);
    expect((await k.api('DELETE', `/api/v1/app/${appId}/endpoint/${ep.id}/auth`)).status).toBe(204);
    expect((await k.api('GET', `/api/v1/app/${appId}/endpoint/${ep.id}`)).body.version).toBe(4);
  });
});

describe('transformations', () => {
  it('refuses code that does not load and mappings with problems, naming the field', async () => {
    const ep = await createEndpoint(k, appId, { url: `${rcv.url}/t` });
    const p = `/api/v1/app/${appId}/endpoint/${ep.id}/transformation`;
    await expect422('PATCH', p, { code: 'function handler(w) { return w', expression: 'a' }, ['body', 'expression'], /only one of/);
    await expect422('PATCH', p, { code: 'function handler(w) { return w' }, ['body', 'code'], /does not load/);
    await expect422('PATCH', p, { code: 'const x = 1;' }, ['body', 'code'], /function handler/);
    await expect422('PATCH', p, { expression: '{ "a": ' }, ['body', 'expression'], /JSONata/);
    await expect422('PATCH', p, { mapping: { fields: [{ target: 'a' }] } }, ['body', 'mapping', 'fields', 0]);
    await expect422('PATCH', p, { mapping: { fields: [{ target: 'a', expression: '$$$(' }] } }, ['body', 'mapping', 'fields', 0, 'expression']);
    await expect422('PATCH', p, { enabled: true }, ['body']);
    expect((await k.api('GET', p)).body).toMatchObject({ code: null, enabled: false, kind: null });
    expect((await k.api('GET', `/api/v1/app/${appId}/endpoint/${ep.id}`)).body.version).toBe(1);
  });

  it('applies, disables and removes a transformation; each change is a version', async () => {
    const ep = await createEndpoint(k, appId, { url: `${rcv.url}/jsonata`, filterTypes: ['lead.created'] });
    const p = `/api/v1/app/${appId}/endpoint/${ep.id}/transformation`;
    expect((await k.api('PATCH', p, { expression: '{"naam": name, "type": $eventType}' })).status).toBe(204);
    await sendMessage(k, appId, { eventType: 'lead.created', payload: { name: 'Jan', phone: '06' } });
    expect(JSON.parse((await waitForPath(rcv, '/jsonata', 1))[0].body)).toEqual({ naam: 'Jan', type: 'lead.created' });
    expect((await k.api('PATCH', p, { enabled: false })).status).toBe(204);
    await sendMessage(k, appId, { eventType: 'lead.created', payload: { name: 'Piet' } });
    expect(JSON.parse((await waitForPath(rcv, '/jsonata', 2))[1].body)).toEqual({ name: 'Piet' });
    expect((await k.api('PATCH', p, { expression: null })).status).toBe(204);
    expect((await k.api('GET', p)).body.kind).toBeNull();
    const versions = (await k.api('GET', `/api/v1/app/${appId}/endpoint/${ep.id}/version`)).body.data;
    expect(versions.map((v: any) => v.version)).toEqual([4, 3, 2, 1]);
    expect(versions[1].changes[0]).toMatchObject({ field: 'transformation', from: { enabled: true }, to: { enabled: false } });
  });

  it('previews on the most recent messages the endpoint would receive', async () => {
    const ep = await createEndpoint(k, appId, { url: `${rcv.url}/preview`, filterTypes: ['contact.*'] });
    for (let i = 0; i < 3; i++) await sendMessage(k, appId, { eventType: 'contact.created', payload: { i, email: `c${i}@example.com`, phone: '06' } });
    await sendMessage(k, appId, { eventType: 'other.thing', payload: { skip: true } });
    const r = await k.api('POST', `/api/v1/app/${appId}/endpoint/${ep.id}/transformation/preview`, { code: 'function handler(w) { w.payload = { mail: w.payload.email }; return w; }', count: 2 });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.results.map((x: any) => x.output)).toEqual([{ mail: 'c2@example.com' }, { mail: 'c1@example.com' }]);
    expect(r.body.unmappedSourceFields).toEqual(['i', 'phone']);
    const failing = await k.api('POST', `/api/v1/app/${appId}/endpoint/${ep.id}/transformation/preview`, { code: 'function handler(w) { for (;;) {} }', count: 1 });
    expect(failing.body.results[0]).toMatchObject({ ok: false, errorKind: 'timeout' });
    await expect422('POST', `/api/v1/app/${appId}/endpoint/${ep.id}/transformation/preview`, {}, ['body'], /no transformation to preview/);
  });

  it('a looping transformation fails its own attempts only; other endpoints keep receiving', async () => {
    const bad = await createEndpoint(k, appId, { url: `${rcv.url}/loop`, filterTypes: ['loop.test'] });
    const good = await createEndpoint(k, appId, { url: `${rcv.url}/fine`, filterTypes: ['loop.test'] });
    expect((await k.api('PATCH', `/api/v1/app/${appId}/endpoint/${bad.id}/transformation`, { code: 'function handler(w) { while (true) {} }' })).status).toBe(204);
    await sendMessage(k, appId, { eventType: 'loop.test', payload: { a: 1 } });
    await sendMessage(k, appId, { eventType: 'loop.test', payload: { a: 2 } });
    await waitForPath(rcv, '/fine', 2);
    const attempts = await pollApi(k, `/api/v1/app/${appId}/attempt/endpoint/${bad.id}`, (b) => (b.data.length ? b.data : null));
    expect(attempts[0]).toMatchObject({ errorClass: 'transformation', errorDetail: expect.stringContaining('timeout') });
    expect(rcv.requests.filter((r) => r.url === '/loop')).toHaveLength(0);
  });
});

describe('versions', () => {
  it('only URL, filters, auth and transformation make versions; unknown versions are 404', async () => {
    const ep = await createEndpoint(k, appId, { url: `${rcv.url}/v` });
    const base = `/api/v1/app/${appId}/endpoint/${ep.id}`;
    expect((await k.api('PATCH', base, { description: 'renamed' })).body.version).toBe(1);
    expect((await k.api('PATCH', base, { filterTypes: ['a.b'] })).body.version).toBe(2);
    expect((await k.api('PUT', base, { url: `${rcv.url}/v2`, filterTypes: ['a.b'] })).body.version).toBe(3);
    const v3 = (await k.api('GET', `${base}/version/3`)).body;
    expect(v3.changes).toEqual([{ field: 'url', from: `${rcv.url}/v`, to: `${rcv.url}/v2` }]);
    expect((await k.api('GET', `${base}/version/9`)).status).toBe(404);
    expect((await k.api('POST', `${base}/version/9/rollback`)).status).toBe(404);
    expect((await k.api('GET', `${base}/version/zero`)).status).toBe(422);
    // Beyond the column's range is a validation error on both stores, not a database error.
    expect((await k.api('GET', `${base}/version/2147483648`)).status).toBe(422);
    const back = await k.api('POST', `${base}/version/1/rollback`);
    // PUT replaced the description (Svix semantics); rollback restores only versioned fields.
    expect(back.body).toMatchObject({ version: 4, url: `${rcv.url}/v`, filterTypes: null, description: '' });
  });
});
