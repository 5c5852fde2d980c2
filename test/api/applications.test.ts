import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKoppel, type TestKoppel } from '../helpers.js';
import { createApp } from './support.js';

describe('/api/v1/app', () => {
  let k: TestKoppel;
  beforeAll(async () => {
    k = await startTestKoppel();
  });
  afterAll(async () => {
    await k.close();
  });

  it('creates an application: 201 with the Svix ApplicationOut shape', async () => {
    const r = await k.api('POST', '/api/v1/app', { name: 'Acme', uid: 'acme-create', metadata: { plan: 'gold' }, rateLimit: 10 });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'Acme', uid: 'acme-create', metadata: { plan: 'gold' }, rateLimit: 10, throttleRate: 10 });
    expect(r.body.id).toMatch(/^app_[0-9A-Z]{26}$/);
    expect(Date.parse(r.body.createdAt)).not.toBeNaN();
    expect(Date.parse(r.body.updatedAt)).not.toBeNaN();
  });

  it('gets an application by id and by uid', async () => {
    const app = await createApp(k, { name: 'Lookup', uid: 'lookup-uid' });
    const byId = await k.api('GET', `/api/v1/app/${app.id}`);
    expect(byId.status).toBe(200);
    expect(byId.body).toEqual(app);
    const byUid = await k.api('GET', '/api/v1/app/lookup-uid');
    expect(byUid.status).toBe(200);
    expect(byUid.body).toEqual(app);
    expect((await k.api('GET', '/api/v1/app/no-such-uid')).status).toBe(404);
  });

  describe('listing', () => {
    // A fresh environment holds exactly the five applications of this block.
    let key: string;
    let ids: string[];
    beforeAll(async () => {
      const env = await k.api('POST', '/api/v1/environment', { name: 'listing' });
      expect(env.status).toBe(201);
      key = env.body.apiKey;
      ids = [];
      for (let i = 0; i < 5; i++) ids.push((await createApp(k, { name: `List ${i}` }, key)).id);
    });

    it('pages with limit=2 across 5 applications; iterator and prevIterator round-trip; done marks the end', async () => {
      const p1 = await k.api('GET', '/api/v1/app?limit=2', undefined, { key });
      expect(p1.status).toBe(200);
      expect(p1.body.data.map((a: any) => a.id)).toEqual(ids.slice(0, 2));
      expect(p1.body.done).toBe(false);
      expect(typeof p1.body.iterator).toBe('string');

      const p2 = await k.api('GET', `/api/v1/app?limit=2&iterator=${encodeURIComponent(p1.body.iterator)}`, undefined, { key });
      expect(p2.body.data.map((a: any) => a.id)).toEqual(ids.slice(2, 4));
      expect(p2.body.done).toBe(false);

      const p3 = await k.api('GET', `/api/v1/app?limit=2&iterator=${encodeURIComponent(p2.body.iterator)}`, undefined, { key });
      expect(p3.body.data.map((a: any) => a.id)).toEqual(ids.slice(4));
      expect(p3.body.done).toBe(true);

      // Going back from page 3 gives page 2 again, and from page 2 gives page 1.
      const back2 = await k.api('GET', `/api/v1/app?limit=2&iterator=${encodeURIComponent(p3.body.prevIterator)}`, undefined, { key });
      expect(back2.status).toBe(200);
      expect(back2.body.data.map((a: any) => a.id)).toEqual(ids.slice(2, 4));
      const back1 = await k.api('GET', `/api/v1/app?limit=2&iterator=${encodeURIComponent(back2.body.prevIterator)}`, undefined, { key });
      expect(back1.body.data.map((a: any) => a.id)).toEqual(ids.slice(0, 2));
      // …and forward again from there lands on page 2.
      const again = await k.api('GET', `/api/v1/app?limit=2&iterator=${encodeURIComponent(back1.body.iterator)}`, undefined, { key });
      expect(again.body.data.map((a: any) => a.id)).toEqual(ids.slice(2, 4));
    });

    it('orders ascending by default and on request, descending on request', async () => {
      const dflt = await k.api('GET', '/api/v1/app', undefined, { key });
      expect(dflt.body.data.map((a: any) => a.id)).toEqual(ids);
      expect(dflt.body.done).toBe(true);
      const asc = await k.api('GET', '/api/v1/app?order=ascending', undefined, { key });
      expect(asc.body.data.map((a: any) => a.id)).toEqual(ids);
      const desc = await k.api('GET', '/api/v1/app?order=descending', undefined, { key });
      expect(desc.body.data.map((a: any) => a.id)).toEqual([...ids].reverse());
      const descPaged = await k.api('GET', '/api/v1/app?order=descending&limit=2', undefined, { key });
      expect(descPaged.body.data.map((a: any) => a.id)).toEqual([ids[4], ids[3]]);
      const descNext = await k.api('GET', `/api/v1/app?order=descending&limit=2&iterator=${encodeURIComponent(descPaged.body.iterator)}`, undefined, { key });
      expect(descNext.body.data.map((a: any) => a.id)).toEqual([ids[2], ids[1]]);
    });

    it('refuses an unknown order value with 422', async () => {
      const r = await k.api('GET', '/api/v1/app?order=sideways', undefined, { key });
      expect(r.status).toBe(422);
      expect(r.body.detail[0].loc).toEqual(['query', 'order']);
    });
  });

  it('PUT replaces an application (unset fields reset) and creates one for an unknown uid', async () => {
    const app = await createApp(k, { name: 'Before', uid: 'put-me', metadata: { a: '1' }, rateLimit: 5 });
    const r = await k.api('PUT', `/api/v1/app/${app.id}`, { name: 'After' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: app.id, name: 'After', uid: null, metadata: {}, rateLimit: null });
    expect(Date.parse(r.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(app.updatedAt));
    expect((await k.api('GET', `/api/v1/app/${app.id}`)).body.name).toBe('After');

    const created = await k.api('PUT', '/api/v1/app/put-new-uid', { name: 'Made by PUT' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ uid: 'put-new-uid', name: 'Made by PUT' });
  });

  it('PATCH changes only the fields given', async () => {
    const app = await createApp(k, { name: 'Patchable', uid: 'patch-me', metadata: { keep: 'yes' }, rateLimit: 7 });
    const r = await k.api('PATCH', '/api/v1/app/patch-me', { name: 'Patched' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: app.id, name: 'Patched', uid: 'patch-me', metadata: { keep: 'yes' }, rateLimit: 7 });
    const r2 = await k.api('PATCH', `/api/v1/app/${app.id}`, { metadata: { other: 'x' }, uid: null });
    expect(r2.status).toBe(200);
    expect(r2.body).toMatchObject({ name: 'Patched', uid: null, metadata: { other: 'x' } });
    expect((await k.api('PATCH', '/api/v1/app/missing-app', { name: 'x' })).status).toBe(404);
  });

  it('sending a message sees an application change made a moment before (no stale lookup)', async () => {
    const app = await createApp(k, { name: 'Moving', uid: 'moving-uid' });
    const send = () => k.api('POST', '/api/v1/app/moving-uid/msg', { eventType: 'user.created', payload: { n: 1 } });
    expect((await send()).status).toBe(202);
    expect((await k.api('PATCH', `/api/v1/app/${app.id}`, { uid: 'moved-uid' })).status).toBe(200);
    expect((await send()).status).toBe(404);
    const other = await createApp(k, { name: 'Takes the uid', uid: 'moving-uid' });
    const r = await send();
    expect(r.status).toBe(202);
    expect((await k.api('GET', `/api/v1/app/${other.id}/msg/${r.body.id}`)).status).toBe(200);
    expect((await k.api('DELETE', `/api/v1/app/${other.id}`)).status).toBe(204);
    expect((await send()).status).toBe(404);
  });

  it('refuses a taken uid with 409 on create, PATCH and PUT', async () => {
    await createApp(k, { name: 'First', uid: 'taken-uid' });
    const dup = await k.api('POST', '/api/v1/app', { name: 'Second', uid: 'taken-uid' });
    expect(dup.status).toBe(409);
    expect(dup.body).toMatchObject({ code: 'conflict' });
    expect(typeof dup.body.detail).toBe('string');

    const other = await createApp(k, { name: 'Other', uid: 'other-uid' });
    const patch = await k.api('PATCH', `/api/v1/app/${other.id}`, { uid: 'taken-uid' });
    expect(patch.status).toBe(409);
    const put = await k.api('PUT', `/api/v1/app/${other.id}`, { name: 'Other', uid: 'taken-uid' });
    expect(put.status).toBe(409);
    expect((await k.api('GET', `/api/v1/app/${other.id}`)).body.uid).toBe('other-uid');
  });

  it('get_if_exists=true returns 200 with the existing application, 201 when it is new', async () => {
    const first = await createApp(k, { name: 'Existing', uid: 'gie-uid' });
    const again = await k.api('POST', '/api/v1/app?get_if_exists=true', { name: 'Ignored', uid: 'gie-uid' });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first);
    const fresh = await k.api('POST', '/api/v1/app?get_if_exists=true', { name: 'Fresh', uid: 'gie-fresh' });
    expect(fresh.status).toBe(201);
    expect(fresh.body.uid).toBe('gie-fresh');
  });

  it('deletes with 204, after which the application is 404', async () => {
    const app = await createApp(k, { name: 'Doomed', uid: 'doomed' });
    const del = await k.api('DELETE', `/api/v1/app/${app.id}`);
    expect(del.status).toBe(204);
    expect(del.body).toBeNull();
    const get = await k.api('GET', `/api/v1/app/${app.id}`);
    expect(get.status).toBe(404);
    expect(get.body.code).toBe('not_found');
    expect((await k.api('GET', '/api/v1/app/doomed')).status).toBe(404);
    expect((await k.api('DELETE', `/api/v1/app/${app.id}`)).status).toBe(404);
    // The uid is free again.
    expect((await k.api('POST', '/api/v1/app', { name: 'Reborn', uid: 'doomed' })).status).toBe(201);
  });
});
