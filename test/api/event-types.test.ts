import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKoppel, type TestKoppel } from '../helpers.js';

const orderSchema = {
  '1': {
    type: 'object',
    properties: { id: { type: 'string' }, total: { type: 'number' } },
    required: ['id'],
    examples: [{ id: 'ord_1', total: 9.5 }],
  },
};

describe('/api/v1/event-type', () => {
  let k: TestKoppel;
  beforeAll(async () => {
    k = await startTestKoppel();
  });
  afterAll(async () => {
    await k.close();
  });

  const names = async (query = '') => {
    const r = await k.api('GET', `/api/v1/event-type${query}`);
    expect(r.status).toBe(200);
    return r.body.data.map((e: any) => e.name) as string[];
  };

  it('creates an event type with schemas (201) and gets it back', async () => {
    const r = await k.api('POST', '/api/v1/event-type', { name: 'order.created', description: 'An order was placed', schemas: orderSchema, groupName: 'orders' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'order.created', description: 'An order was placed', schemas: orderSchema, archived: false, deprecated: false, groupName: 'orders' });
    expect(Date.parse(r.body.createdAt)).not.toBeNaN();

    const get = await k.api('GET', '/api/v1/event-type/order.created');
    expect(get.status).toBe(200);
    expect(get.body).toEqual(r.body);
    expect((await k.api('GET', '/api/v1/event-type/order.nope')).status).toBe(404);
  });

  it('refuses a duplicate name with 409', async () => {
    expect((await k.api('POST', '/api/v1/event-type', { name: 'dup.type', description: 'one' })).status).toBe(201);
    const dup = await k.api('POST', '/api/v1/event-type', { name: 'dup.type', description: 'two' });
    expect(dup.status).toBe(409);
    expect(dup.body.code).toBe('conflict');
    expect((await k.api('GET', '/api/v1/event-type/dup.type')).body.description).toBe('one');
  });

  it('lists event types without archived ones unless include_archived=true', async () => {
    await k.api('POST', '/api/v1/event-type', { name: 'list.live', description: 'live' });
    const archived = await k.api('POST', '/api/v1/event-type', { name: 'list.archived', description: 'old', archived: true });
    expect(archived.status).toBe(201);
    expect(archived.body.archived).toBe(true);

    const plain = await names();
    expect(plain).toContain('list.live');
    expect(plain).not.toContain('list.archived');
    expect(await names('?include_archived=false')).not.toContain('list.archived');
    const all = await names('?include_archived=true');
    expect(all).toContain('list.live');
    expect(all).toContain('list.archived');
  });

  it('lists schemas only with with_content=true (off by default, as in Svix)', async () => {
    const schema = { '1': { type: 'object', properties: { id: { type: 'integer' } } } };
    expect((await k.api('POST', '/api/v1/event-type', { name: 'content.check', description: 'c', schemas: schema })).status).toBe(201);
    const find = (body: any) => body.data.find((e: any) => e.name === 'content.check');
    expect(find((await k.api('GET', '/api/v1/event-type?limit=250')).body).schemas).toBeNull();
    expect(find((await k.api('GET', '/api/v1/event-type?limit=250&with_content=true')).body).schemas).toEqual(schema);
  });

  it('PUT replaces an event type (200) and creates an unknown one (201)', async () => {
    await k.api('POST', '/api/v1/event-type', { name: 'put.type', description: 'before', schemas: orderSchema, deprecated: true, groupName: 'g' });
    const r = await k.api('PUT', '/api/v1/event-type/put.type', { description: 'after' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: 'put.type', description: 'after', schemas: null, deprecated: false, groupName: null });

    const created = await k.api('PUT', '/api/v1/event-type/put.new', { description: 'made by PUT', schemas: orderSchema });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'put.new', description: 'made by PUT', schemas: orderSchema });
  });

  it('PATCH changes only the fields given', async () => {
    await k.api('POST', '/api/v1/event-type', { name: 'patch.type', description: 'keep me', schemas: orderSchema, groupName: 'grp' });
    const r = await k.api('PATCH', '/api/v1/event-type/patch.type', { deprecated: true });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: 'patch.type', description: 'keep me', schemas: orderSchema, deprecated: true, groupName: 'grp' });
    expect((await k.api('PATCH', '/api/v1/event-type/patch.missing', { deprecated: true })).status).toBe(404);
  });

  it('DELETE archives (the type stays readable, drops out of the default list)', async () => {
    await k.api('POST', '/api/v1/event-type', { name: 'del.archive', description: 'to archive' });
    const del = await k.api('DELETE', '/api/v1/event-type/del.archive');
    expect(del.status).toBe(204);
    const get = await k.api('GET', '/api/v1/event-type/del.archive');
    expect(get.status).toBe(200);
    expect(get.body.archived).toBe(true);
    expect(await names()).not.toContain('del.archive');
    expect(await names('?include_archived=true')).toContain('del.archive');
  });

  it('DELETE with expunge=true removes the event type', async () => {
    await k.api('POST', '/api/v1/event-type', { name: 'del.expunge', description: 'to remove' });
    const del = await k.api('DELETE', '/api/v1/event-type/del.expunge?expunge=true');
    expect(del.status).toBe(204);
    expect((await k.api('GET', '/api/v1/event-type/del.expunge')).status).toBe(404);
    expect(await names('?include_archived=true')).not.toContain('del.expunge');
    expect((await k.api('DELETE', '/api/v1/event-type/del.expunge')).status).toBe(404);
    // The name can be used again.
    expect((await k.api('POST', '/api/v1/event-type', { name: 'del.expunge', description: 'again' })).status).toBe(201);
  });
});
