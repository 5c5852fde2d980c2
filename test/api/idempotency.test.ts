import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKoppel, type TestKoppel } from '../helpers.js';
import { createApp, databaseOf, whereStored } from './support.js';

describe('idempotency-key', () => {
  let k: TestKoppel;
  beforeAll(async () => {
    k = await startTestKoppel();
  });
  afterAll(async () => {
    await k.close();
  });

  const post = (path: string, body: unknown, key: string) => k.api('POST', path, body, { headers: { 'idempotency-key': key } });
  const countMessages = async (appId: string) => {
    const r = await k.api('GET', `/api/v1/app/${appId}/msg?limit=250`);
    expect(r.status).toBe(200);
    return r.body.data.length as number;
  };

  it('a repeat with the same key and body gets the first response back, marked idempotent-replayed', async () => {
    const app = await createApp(k, { name: 'Idem same' });
    const path = `/api/v1/app/${app.id}/msg`;
    const body = { eventType: 'order.created', payload: { n: 1 } };
    const first = await post(path, body, 'same-key-1');
    expect(first.status).toBe(202);
    expect(first.headers.get('idempotent-replayed')).toBeNull();

    const second = await post(path, body, 'same-key-1');
    expect(second.status).toBe(202);
    expect(second.body).toEqual(first.body);
    expect(second.body.id).toBe(first.body.id);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(second.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await countMessages(app.id)).toBe(1);
  });

  it('records a refused create (repeated eventId) under its key too, and replays the 409', async () => {
    const app = await createApp(k, { name: 'Idem dup' });
    const path = `/api/v1/app/${app.id}/msg`;
    const body = { eventType: 'order.created', eventId: 'evt-dup-1', payload: { n: 1 } };
    expect((await post(path, body, 'dup-key-a')).status).toBe(202);
    const refused = await post(path, body, 'dup-key-b');
    expect(refused.status).toBe(409);
    const again = await post(path, body, 'dup-key-b');
    expect(again.status).toBe(409);
    expect(again.body).toEqual(refused.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await countMessages(app.id)).toBe(1);
  });

  it('replays non-message POSTs too (application create)', async () => {
    const first = await post('/api/v1/app', { name: 'Idem app' }, 'app-key-1');
    expect(first.status).toBe(201);
    const second = await post('/api/v1/app', { name: 'Idem app' }, 'app-key-1');
    expect(second.status).toBe(201);
    expect(second.body.id).toBe(first.body.id);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
  });

  it('the same key with a different body is refused with 422 idempotency_key_reused', async () => {
    const app = await createApp(k, { name: 'Idem differ' });
    const path = `/api/v1/app/${app.id}/msg`;
    expect((await post(path, { eventType: 'order.created', payload: { n: 1 } }, 'reused-key')).status).toBe(202);
    const other = await post(path, { eventType: 'order.created', payload: { n: 2 } }, 'reused-key');
    expect(other.status).toBe(422);
    expect(other.body.code).toBe('idempotency_key_reused');
    expect(other.headers.get('content-type')).toMatch(/^application\/json/);
    expect(typeof other.body.detail).toBe('string');
    expect(await countMessages(app.id)).toBe(1);
  });

  it('a different key with the same body creates a second message', async () => {
    const app = await createApp(k, { name: 'Idem new key' });
    const path = `/api/v1/app/${app.id}/msg`;
    const body = { eventType: 'order.created', payload: { n: 1 } };
    const a = await post(path, body, 'key-a');
    const b = await post(path, body, 'key-b');
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(a.body.id).not.toBe(b.body.id);
    expect(await countMessages(app.id)).toBe(2);
  });

  it('20 parallel identical POSTs with one key create exactly one message', async () => {
    const app = await createApp(k, { name: 'Idem race' });
    const path = `/api/v1/app/${app.id}/msg`;
    const body = { eventType: 'order.created', payload: { race: true } };
    const results = await Promise.all(Array.from({ length: 20 }, () => post(path, body, 'race-key')));
    for (const r of results) expect(r.status, JSON.stringify(r.body)).toBe(202);
    const ids = new Set(results.map((r) => r.body.id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(19);
    expect(await countMessages(app.id)).toBe(1);
    const [only] = (await k.api('GET', `${path}`)).body.data;
    expect(only.id).toBe([...ids][0]);
  });

  describe('responses that carry a credential are never stored', () => {
    /** The idempotency_keys row of a key sent with the admin key (scoped to no application). */
    const keyRow = (key: string) => databaseOf(k).selectFrom('idempotency_keys').selectAll().where('key', '=', `*:${key}`).executeTakeFirst();
    const apiKeysNamed = async (name: string, headers: Record<string, string> = {}) =>
      ((await k.api('GET', '/api/v1/api-key?limit=250', undefined, { headers })).body.data as any[]).filter((x) => x.name === name);

    it('API key: the key works, no copy of it is kept, and a repeat gets 409 idempotency_not_replayable without a second key', async () => {
      const first = await post('/api/v1/api-key', { name: 'idem-cred-key' }, 'cred-api-key');
      expect(first.status).toBe(201);
      const key = first.body.key as string;
      expect(key).toMatch(/^kpl_/);
      expect((await k.api('GET', '/api/v1/app', undefined, { key })).status).toBe(200);

      expect(await whereStored(k, key)).toEqual([]);
      // The use of the idempotency key is recorded, with the status and no body.
      expect(await keyRow('cred-api-key')).toMatchObject({ status_code: 201, response: '' });

      const again = await post('/api/v1/api-key', { name: 'idem-cred-key' }, 'cred-api-key');
      expect(again.status).toBe(409);
      expect(again.body.code).toBe('idempotency_not_replayable');
      expect(again.body.detail).toMatch(/shows only once/);
      expect(again.body.detail).toContain('GET /api/v1/api-key');
      expect(again.body.detail).toContain('new idempotency-key');
      expect(JSON.stringify(again.body)).not.toContain(key);
      expect(again.headers.get('idempotent-replayed')).toBeNull();
      // What the detail says is there: the first key, once, by id and prefix.
      expect(await apiKeysNamed('idem-cred-key')).toEqual([expect.objectContaining({ id: first.body.id, prefix: key.slice(0, 8) })]);

      // A different request under the key is still a 422, and a new key creates another API key.
      expect((await post('/api/v1/api-key', { name: 'other' }, 'cred-api-key')).body.code).toBe('idempotency_key_reused');
      expect((await post('/api/v1/api-key', { name: 'idem-cred-key' }, 'cred-api-key-2')).status).toBe(201);
      expect(await apiKeysNamed('idem-cred-key')).toHaveLength(2);
    });

    it('API key: a refusal carries no credential and is replayed as usual', async () => {
      const first = await post('/api/v1/api-key', { name: 'idem-refused', applicationId: 'no-such-app' }, 'cred-refused');
      expect(first.status).toBe(404);
      const again = await post('/api/v1/api-key', { name: 'idem-refused', applicationId: 'no-such-app' }, 'cred-refused');
      expect(again.status).toBe(404);
      expect(again.body).toEqual(first.body);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
    });

    it('API key: parallel repeats wait for the first, then get the 409; one key is created', async () => {
      const results = await Promise.all(Array.from({ length: 6 }, () => post('/api/v1/api-key', { name: 'idem-cred-race' }, 'cred-race')));
      expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
      for (const r of results.filter((x) => x.status === 409)) expect(r.body.code).toBe('idempotency_not_replayable');
      expect(await apiKeysNamed('idem-cred-race')).toHaveLength(1);
      expect(await whereStored(k, results.find((r) => r.status === 201)!.body.key)).toEqual([]);
    });

    it('environment: its first key works, no copy of it is kept, and a repeat gets 409 without a second environment', async () => {
      const first = await post('/api/v1/environment', { name: 'idem-cred-env' }, 'cred-env');
      expect(first.status).toBe(201);
      const { id, apiKey, apiKeyId } = first.body;
      expect((await k.api('GET', '/api/v1/app', undefined, { key: apiKey })).status).toBe(200);

      expect(await whereStored(k, apiKey)).toEqual([]);
      expect(await keyRow('cred-env')).toMatchObject({ status_code: 201, response: '' });

      const again = await post('/api/v1/environment', { name: 'idem-cred-env' }, 'cred-env');
      expect(again.status).toBe(409);
      expect(again.body.code).toBe('idempotency_not_replayable');
      expect(again.body.detail).toContain('Koppel-Environment');
      expect(JSON.stringify(again.body)).not.toContain(apiKey);
      const envs = (await k.api('GET', '/api/v1/environment?limit=250')).body.data as any[];
      expect(envs.filter((e) => e.name === 'idem-cred-env').map((e) => e.id)).toEqual([id]);
      // The way back the detail describes: the first key is listed in that environment.
      expect((await apiKeysNamed('idem-cred-env (initial key)', { 'koppel-environment': id })).map((x) => x.id)).toEqual([apiKeyId]);
    });

    it('portal access: the key is not recorded, so a repeat mints a fresh token; no token is stored', async () => {
      const app = await createApp(k, { name: 'Idem portal' });
      const path = `/api/v1/auth/app-portal-access/${app.id}`;
      const first = await post(path, {}, 'cred-portal');
      const second = await post(path, {}, 'cred-portal');
      expect(first.status).toBe(200);
      expect(second.status).toBe(200);
      expect(second.headers.get('idempotent-replayed')).toBeNull();
      expect(second.body.token).not.toBe(first.body.token);
      for (const { token } of [first.body, second.body]) {
        const who = await k.api('GET', '/api/v1/auth/session', undefined, { key: token });
        expect(who.status).toBe(200);
        expect(who.body).toMatchObject({ via: 'portal', applicationId: app.id });
        expect(await whereStored(k, token)).toEqual([]);
      }
      expect(await keyRow('cred-portal')).toBeUndefined();
    });
  });
});
