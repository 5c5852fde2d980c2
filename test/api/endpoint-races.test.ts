/**
 * Concurrent changes to one endpoint: each write sets only what its request changed, and a
 * read-modify-write (secret rotation, header merge) is fenced on what it read, so an answer of
 * 204 or 200 never hides a change that was silently undone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EndpointRow } from '../../src/store/schema.js';
import { startTestKoppel, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint } from './support.js';

describe('concurrent endpoint changes', () => {
  let k: TestKoppel;
  beforeAll(async () => {
    k = await startTestKoppel();
  });
  afterAll(async () => {
    await k.close();
  });

  /** A new endpoint, its API path, and its row as stored now (to replay as a stale read later). */
  async function freshEndpoint() {
    const app = await createApp(k);
    const ep = await createEndpoint(k, app.id, { url: 'https://example.com/a' });
    const before = (await k.koppel.ctx.store.getEndpoint(app.id, ep.id))!;
    return { path: `/api/v1/app/${app.id}/endpoint/${ep.id}`, before };
  }

  /** The next getEndpoint answers `stale`: as if the request had read just before another change. */
  function readStaleOnce(stale: EndpointRow) {
    const store = k.koppel.ctx.store;
    const real = store.getEndpoint.bind(store);
    store.getEndpoint = async (...args) => {
      store.getEndpoint = real;
      return { ...stale };
    };
  }

  it('keeps a secret rotation that happened while a versioned change was in progress', async () => {
    const { path, before } = await freshEndpoint();
    expect((await k.api('POST', `${path}/secret/rotate`, {})).status).toBe(204);
    const rotated = (await k.api('GET', `${path}/secret`)).body.key;

    readStaleOnce(before);
    const patched = await k.api('PATCH', path, { url: 'https://example.com/b', description: 'moved' });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ url: 'https://example.com/b', description: 'moved', version: 2 });
    expect((await k.api('GET', `${path}/secret`)).body.key).toBe(rotated);
  });

  it('answers 409 to a rotation based on secrets that changed meanwhile, keeping the newer key', async () => {
    const { path, before } = await freshEndpoint();
    expect((await k.api('POST', `${path}/secret/rotate`, {})).status).toBe(204);
    const rotated = (await k.api('GET', `${path}/secret`)).body.key;

    readStaleOnce(before);
    const second = await k.api('POST', `${path}/secret/rotate`, {});
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ code: 'conflict' });
    expect((await k.api('GET', `${path}/secret`)).body.key).toBe(rotated);
  });

  it('keeps custom headers set while a plain update was in progress, and fences header merges', async () => {
    const { path, before } = await freshEndpoint();
    expect((await k.api('PUT', `${path}/headers`, { headers: { 'x-tenant': 'acme' } })).status).toBe(204);

    readStaleOnce(before);
    expect((await k.api('PATCH', path, { description: 'renamed' })).status).toBe(200);
    expect((await k.api('GET', `${path}/headers`)).body.headers).toEqual({ 'x-tenant': 'acme' });

    readStaleOnce(before);
    const merge = await k.api('PATCH', `${path}/headers`, { headers: { 'x-region': 'eu' } });
    expect(merge.status).toBe(409);
    expect((await k.api('GET', `${path}/headers`)).body.headers).toEqual({ 'x-tenant': 'acme' });
  });
});
