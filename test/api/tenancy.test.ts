import type { FastifyRequest } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Authenticator, hashApiKey } from '../../src/http/auth.js';
import { startTestKoppel, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint, sendMessage } from './support.js';

describe('environments and API keys', () => {
  let k: TestKoppel;
  /** In the default environment (admin key). */
  let appA: any;
  let epA: any;
  let msgA: any;
  /** The second environment's first key. */
  let env2: { id: string; apiKey: string };

  beforeAll(async () => {
    k = await startTestKoppel();
    appA = await createApp(k, { name: 'Tenant A', uid: 'tenant-a' });
    epA = await createEndpoint(k, appA.id, { url: 'https://example.com/a', uid: 'ep-a' });
    msgA = await sendMessage(k, appA.id, { eventType: 'order.created', eventId: 'evt-a', payload: { tenant: 'a' } });
    await k.api('POST', '/api/v1/event-type', { name: 'order.created', description: 'env 1' });
    const env = await k.api('POST', '/api/v1/environment', { name: 'second' });
    expect(env.status).toBe(201);
    env2 = env.body;
  });
  afterAll(async () => {
    await k.close();
  });

  /** The 404 for an id the caller may not see must equal the 404 for an id that does not exist. */
  async function expectSameAsMissing(path: string, missingPath: string, id: string, missingId: string, key: string) {
    const hidden = await k.api('GET', path, undefined, { key });
    const missing = await k.api('GET', missingPath, undefined, { key });
    expect(hidden.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(hidden.body.code).toBe(missing.body.code);
    expect(hidden.body.detail.replace(id, '<id>')).toBe(missing.body.detail.replace(missingId, '<id>'));
  }

  it('creating an environment (admin key) returns its first API key', async () => {
    expect(env2.id).toMatch(/^env_/);
    expect(env2.apiKey).toMatch(/^kpl_[A-Za-z0-9_-]{43}$/);
    expect((await k.api('GET', '/api/v1/app', undefined, { key: env2.apiKey })).status).toBe(200);
    const listed = await k.api('GET', '/api/v1/environment');
    expect(listed.body.data.map((e: any) => e.id)).toContain(env2.id);
  });

  it("another environment's key cannot see the first environment's apps, endpoints or messages (404 as for a missing id)", async () => {
    const key = env2.apiKey;
    const missingApp = 'app_00000000000000000000000000';
    await expectSameAsMissing(`/api/v1/app/${appA.id}`, `/api/v1/app/${missingApp}`, appA.id, missingApp, key);
    await expectSameAsMissing('/api/v1/app/tenant-a', '/api/v1/app/tenant-zzz', 'tenant-a', 'tenant-zzz', key);
    await expectSameAsMissing(`/api/v1/app/${appA.id}/endpoint/${epA.id}`, `/api/v1/app/${missingApp}/endpoint/${epA.id}`, appA.id, missingApp, key);
    await expectSameAsMissing(`/api/v1/app/${appA.id}/msg/${msgA.id}`, `/api/v1/app/${missingApp}/msg/${msgA.id}`, appA.id, missingApp, key);
    expect((await k.api('GET', `/api/v1/app/${appA.id}/msg`, undefined, { key })).status).toBe(404);
    expect((await k.api('POST', `/api/v1/app/${appA.id}/msg`, { eventType: 'x.y', payload: {} }, { key })).status).toBe(404);
    expect((await k.api('DELETE', `/api/v1/app/${appA.id}`, undefined, { key })).status).toBe(404);
    const list = await k.api('GET', '/api/v1/app', undefined, { key });
    expect(list.body.data).toEqual([]);
    // Still there for its own environment.
    expect((await k.api('GET', `/api/v1/app/${appA.id}`)).status).toBe(200);
  });

  it('uids and eventIds are per environment', async () => {
    const key = env2.apiKey;
    const b = await createApp(k, { name: 'Tenant B', uid: 'tenant-a' }, key);
    expect(b.id).not.toBe(appA.id);
    const m = await sendMessage(k, b.id, { eventType: 'order.created', eventId: 'evt-a', payload: { tenant: 'b' } }, key);
    expect((await k.api('GET', '/api/v1/app/tenant-a/msg/evt-a', undefined, { key })).body.id).toBe(m.id);
    expect((await k.api('GET', '/api/v1/app/tenant-a/msg/evt-a')).body.id).toBe(msgA.id);
  });

  it('event types are separate per environment', async () => {
    const key = env2.apiKey;
    expect((await k.api('GET', '/api/v1/event-type/order.created', undefined, { key })).status).toBe(404);
    const created = await k.api('POST', '/api/v1/event-type', { name: 'order.created', description: 'env 2' }, { key });
    expect(created.status).toBe(201);
    expect((await k.api('GET', '/api/v1/event-type/order.created', undefined, { key })).body.description).toBe('env 2');
    expect((await k.api('GET', '/api/v1/event-type/order.created')).body.description).toBe('env 1');
    expect((await k.api('DELETE', '/api/v1/event-type/order.created?expunge=true', undefined, { key })).status).toBe(204);
    expect((await k.api('GET', '/api/v1/event-type/order.created')).status).toBe(200);
  });

  it('the admin key can act on another environment with the Koppel-Environment header', async () => {
    const apps = await k.api('GET', '/api/v1/app', undefined, { headers: { 'koppel-environment': env2.id } });
    expect(apps.status).toBe(200);
    expect(apps.body.data.map((a: any) => a.name)).toEqual(['Tenant B']);
    expect((await k.api('GET', '/api/v1/app', undefined, { headers: { 'koppel-environment': 'env_nope' } })).status).toBe(404);
  });

  describe('application-scoped keys', () => {
    let appOther: any;
    let scoped: string;
    beforeAll(async () => {
      appOther = await createApp(k, { name: 'Other app' });
      const r = await k.api('POST', '/api/v1/api-key', { name: 'tenant-a only', applicationId: appA.id });
      expect(r.status).toBe(201);
      expect(r.body.applicationId).toBe(appA.id);
      scoped = r.body.key;
    });

    it('sees its own application, its endpoints and messages', async () => {
      const key = scoped;
      expect((await k.api('GET', `/api/v1/app/${appA.id}`, undefined, { key })).status).toBe(200);
      expect((await k.api('GET', '/api/v1/app/tenant-a', undefined, { key })).status).toBe(200);
      expect((await k.api('GET', `/api/v1/app/${appA.id}/endpoint/${epA.id}`, undefined, { key })).status).toBe(200);
      expect((await k.api('GET', `/api/v1/app/${appA.id}/msg/${msgA.id}`, undefined, { key })).status).toBe(200);
      await sendMessage(k, appA.id, { eventType: 'order.created', payload: { via: 'scoped key' } }, key);
    });

    it('gets 404 for another application of the same environment', async () => {
      const key = scoped;
      await expectSameAsMissing(`/api/v1/app/${appOther.id}`, '/api/v1/app/app_00000000000000000000000000', appOther.id, 'app_00000000000000000000000000', key);
      expect((await k.api('GET', `/api/v1/app/${appOther.id}/endpoint`, undefined, { key })).status).toBe(404);
      expect((await k.api('POST', `/api/v1/app/${appOther.id}/msg`, { eventType: 'x.y', payload: {} }, { key })).status).toBe(404);
    });

    it('gets 403 for environment-wide operations', async () => {
      const key = scoped;
      const list = await k.api('GET', '/api/v1/app', undefined, { key });
      expect(list.status).toBe(403);
      expect(list.body.code).toBe('forbidden');
      expect((await k.api('POST', '/api/v1/app', { name: 'nope' }, { key })).status).toBe(403);
      expect((await k.api('DELETE', `/api/v1/app/${appA.id}`, undefined, { key })).status).toBe(403);
      expect((await k.api('POST', '/api/v1/event-type', { name: 'scoped.type', description: 'x' }, { key })).status).toBe(403);
      expect((await k.api('POST', '/api/v1/api-key', { name: 'escalate' }, { key })).status).toBe(403);
    });
  });

  it('a revoked key is refused at once by the API process that revoked it', async () => {
    const created = await k.api('POST', '/api/v1/api-key', { name: 'short-lived' });
    expect(created.status).toBe(201);
    const key = created.body.key as string;
    expect((await k.api('GET', '/api/v1/app', undefined, { key })).status).toBe(200);

    const del = await k.api('DELETE', `/api/v1/api-key/${created.body.id}`);
    expect(del.status).toBe(204);
    // This process forgets the key's cached lookup when it revokes it: no wait at all.
    const after = await k.api('GET', '/api/v1/app', undefined, { key });
    expect(after.status).toBe(401);
    expect(after.body.code).toBe('authentication_failed');
    expect((await k.api('GET', '/api/v1/api-key')).body.data.map((x: any) => x.id)).not.toContain(created.body.id);
    expect((await k.api('DELETE', `/api/v1/api-key/${created.body.id}`)).status).toBe(404);
  });

  it('another API process that looked the key up refuses it two seconds after that lookup at the latest', async () => {
    const created = await k.api('POST', '/api/v1/api-key', { name: 'seen elsewhere' });
    const hash = hashApiKey(created.body.key);
    // A second Authenticator on the same database is what another API process has.
    const other = new Authenticator(k.koppel.ctx.store, [], () => k.koppel.ctx.defaultEnvironmentId);
    const req = { headers: {} } as FastifyRequest;
    const before = Date.now();
    await expect(other.principalForKeyHash(hash, req)).resolves.toMatchObject({ keyId: created.body.id });
    const after = Date.now();
    expect((await k.api('DELETE', `/api/v1/api-key/${created.body.id}`)).status).toBe(204);

    // Only this test's clock is moved (Date, not timers); the lookup was remembered at a time
    // between `before` and `after`.
    vi.useFakeTimers({ toFake: ['Date'], now: before + 2_000 });
    try {
      // Still remembered two seconds after the lookup: the bound docs/api.md states is not zero.
      await expect(other.principalForKeyHash(hash, req)).resolves.toMatchObject({ keyId: created.body.id });
      vi.setSystemTime(after + 2_001);
      await expect(other.principalForKeyHash(hash, req)).rejects.toMatchObject({ code: 'authentication_failed' });
    } finally {
      vi.useRealTimers();
    }
  });

  it('non-admin keys cannot create environments (403)', async () => {
    const envKey = await k.api('POST', '/api/v1/environment', { name: 'third' }, { key: env2.apiKey });
    expect(envKey.status).toBe(403);
    expect(envKey.body.code).toBe('forbidden');
    expect((await k.api('GET', '/api/v1/environment', undefined, { key: env2.apiKey })).status).toBe(403);
    const scopedKey = (await k.api('POST', '/api/v1/api-key', { name: 'scoped', applicationId: appA.id })).body.key;
    expect((await k.api('POST', '/api/v1/environment', { name: 'third' }, { key: scopedKey })).status).toBe(403);
  });
});
