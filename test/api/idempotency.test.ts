import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKoppel, type TestKoppel } from '../helpers.js';
import { createApp } from './support.js';

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
});
