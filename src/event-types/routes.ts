/** /api/v1/event-type: the event catalogue of an environment, with JSON Schemas per version. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { Context } from '../context.js';
import { requireEnvironmentKey } from '../http/auth.js';
import { ApiError, invalidField } from '../http/errors.js';
import { EventTypeName, IdempotencyHeaders, NAME_PATTERN, Nullable, errorResponses, iso, notFoundError } from '../http/common.js';
import { ListResponse, PaginationQuery, listPage } from '../http/pagination.js';
import type { EventTypeRow } from '../store/schema.js';

const Schemas = Nullable(Type.Record(Type.String({ pattern: '^[0-9]+$' }), Type.Record(Type.String(), Type.Unknown()), { description: 'JSON Schema of the payload per version, e.g. {"1": {…}}.' }));
const flag = Type.String({ maxLength: 256, pattern: NAME_PATTERN });
const fields = {
  description: Type.String({ maxLength: 4096 }),
  archived: Type.Optional(Type.Boolean({ default: false })),
  deprecated: Type.Optional(Type.Boolean({ default: false })),
  schemas: Type.Optional(Schemas),
  featureFlag: Type.Optional(Nullable(flag)),
  featureFlags: Type.Optional(Nullable(Type.Array(flag))),
  groupName: Type.Optional(Nullable(Type.String({ maxLength: 256, pattern: NAME_PATTERN, description: 'Group shown together in the catalogue.' }))),
};

export const EventTypeIn = Type.Object({ name: EventTypeName, ...fields }, { $id: 'EventTypeIn', additionalProperties: false });
export const EventTypeUpdate = Type.Object(fields, { $id: 'EventTypeUpdate', additionalProperties: false });
export const EventTypePatch = Type.Object({ ...fields, description: Type.Optional(fields.description) }, { $id: 'EventTypePatch', additionalProperties: false });
export const EventTypeOut = Type.Object(
  {
    name: Type.String(),
    description: Type.String(),
    archived: Type.Boolean(),
    deprecated: Type.Boolean(),
    schemas: Nullable(Type.Record(Type.String(), Type.Unknown())),
    featureFlag: Nullable(Type.String()),
    groupName: Nullable(Type.String()),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'EventTypeOut' },
);

const Params = Type.Object({ event_type_name: EventTypeName });

export function eventTypeOut(r: EventTypeRow): Static<typeof EventTypeOut> {
  return {
    name: r.name,
    description: r.description,
    archived: !!r.archived,
    deprecated: !!r.deprecated,
    schemas: r.schemas === null ? null : JSON.parse(r.schemas),
    featureFlag: r.feature_flag,
    groupName: r.group_name,
    createdAt: iso(Number(r.created_at)),
    updatedAt: iso(Number(r.updated_at)),
  };
}

/** A schema that cannot be compiled is refused at write time, not discovered at send time. */
function checkSchemas(schemas: Record<string, unknown> | null | undefined, loc: string[]) {
  if (!schemas) return;
  for (const [version, schema] of Object.entries(schemas)) {
    const s = schema as Record<string, unknown>;
    if (s.type !== undefined && typeof s.type !== 'string' && !Array.isArray(s.type)) {
      throw invalidField([...loc, version, 'type'], 'JSON Schema "type" must be a string or an array of strings');
    }
  }
  if (JSON.stringify(schemas).length > 256 * 1024) throw invalidField(loc, 'schemas are larger than 256 KiB');
}

const tags = ['Event Type'];

export function eventTypeRoutes(app: FastifyInstance, ctx: Context) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.get('/api/v1/event-type', {
    schema: {
      tags, operationId: 'v1.event-type.list', summary: 'List event types',
      querystring: Type.Object({
        ...PaginationQuery,
        include_archived: Type.Optional(Type.Boolean({ default: false })),
        with_content: Type.Optional(Type.Boolean({ default: false, description: 'Include the schemas (as in Svix, off by default).' })),
      }),
      response: { 200: ListResponse(EventTypeOut, 'ListResponse_EventTypeOut_'), ...errorResponses },
    },
  }, async (req) => {
    const withContent = req.query.with_content === true;
    return listPage(req.query, 'asc', (e: EventTypeRow) => e.name,
      (page) => ctx.store.listEventTypes(req.principal.environmentId, page, req.query.include_archived === true),
      (row) => ({ ...eventTypeOut(row), schemas: withContent ? eventTypeOut(row).schemas : null }));
  });

  r.post('/api/v1/event-type', {
    schema: { tags, operationId: 'v1.event-type.create', summary: 'Create an event type', headers: IdempotencyHeaders, body: EventTypeIn, response: { 201: EventTypeOut, ...errorResponses } },
  }, async (req, reply) => {
    requireEnvironmentKey(req.principal);
    const b = req.body;
    checkSchemas(b.schemas, ['body', 'schemas']);
    const now = Date.now();
    const row: EventTypeRow = {
      environment_id: req.principal.environmentId, name: b.name, description: b.description, schemas: b.schemas ? JSON.stringify(b.schemas) : null,
      archived: b.archived ? 1 : 0, deprecated: b.deprecated ? 1 : 0, feature_flag: b.featureFlag ?? b.featureFlags?.[0] ?? null,
      group_name: b.groupName ?? null, created_at: now, updated_at: now,
    };
    if (!(await ctx.store.createEventType(row))) {
      const existing = await ctx.store.getEventType(row.environment_id, row.name);
      if (existing?.archived) {
        // Creating an archived name brings it back, as in Svix.
        const revived = { ...row, created_at: existing.created_at };
        await ctx.store.updateEventType(revived);
        return reply.code(201).send(eventTypeOut(revived));
      }
      throw new ApiError('conflict', `Event type "${b.name}" already exists; update it with PUT /api/v1/event-type/${b.name}.`);
    }
    return reply.code(201).send(eventTypeOut(row));
  });

  r.get('/api/v1/event-type/:event_type_name', {
    schema: { tags, operationId: 'v1.event-type.get', summary: 'Get an event type', params: Params, response: { 200: EventTypeOut, ...errorResponses } },
  }, async (req) => {
    const row = await ctx.store.getEventType(req.principal.environmentId, req.params.event_type_name);
    if (!row) throw notFoundError('Event type', req.params.event_type_name);
    return eventTypeOut(row);
  });

  const write = async (envId: string, name: string, b: Static<typeof EventTypePatch>, replace: boolean): Promise<{ row: EventTypeRow; created: boolean }> => {
    checkSchemas(b.schemas, ['body', 'schemas']);
    const cur = await ctx.store.getEventType(envId, name);
    const now = Date.now();
    if (!cur) {
      if (!replace) throw notFoundError('Event type', name);
      const row: EventTypeRow = {
        environment_id: envId, name, description: b.description ?? '', schemas: b.schemas ? JSON.stringify(b.schemas) : null,
        archived: b.archived ? 1 : 0, deprecated: b.deprecated ? 1 : 0, feature_flag: b.featureFlag ?? null, group_name: b.groupName ?? null,
        created_at: now, updated_at: now,
      };
      if (!(await ctx.store.createEventType(row))) throw new ApiError('conflict', 'The event type was created concurrently; retry.');
      return { row, created: true };
    }
    const pick = <T>(v: T | undefined, old: T, dflt: T): T => (v !== undefined ? v : replace ? dflt : old);
    const row: EventTypeRow = {
      ...cur,
      description: b.description ?? cur.description,
      schemas: b.schemas !== undefined ? (b.schemas ? JSON.stringify(b.schemas) : null) : replace ? null : cur.schemas,
      archived: pick(b.archived === undefined ? undefined : b.archived ? 1 : 0, cur.archived, 0),
      deprecated: pick(b.deprecated === undefined ? undefined : b.deprecated ? 1 : 0, cur.deprecated, 0),
      feature_flag: pick(b.featureFlag, cur.feature_flag, null),
      group_name: pick(b.groupName, cur.group_name, null),
      updated_at: now,
    };
    await ctx.store.updateEventType(row);
    return { row, created: false };
  };

  r.put('/api/v1/event-type/:event_type_name', {
    schema: { tags, operationId: 'v1.event-type.update', summary: 'Update (or create) an event type', params: Params, body: EventTypeUpdate, response: { 200: EventTypeOut, 201: EventTypeOut, ...errorResponses } },
  }, async (req, reply) => {
    requireEnvironmentKey(req.principal);
    const { row, created } = await write(req.principal.environmentId, req.params.event_type_name, req.body, true);
    return reply.code(created ? 201 : 200).send(eventTypeOut(row));
  });

  r.patch('/api/v1/event-type/:event_type_name', {
    schema: { tags, operationId: 'v1.event-type.patch', summary: 'Change some fields of an event type', params: Params, body: EventTypePatch, response: { 200: EventTypeOut, ...errorResponses } },
  }, async (req) => {
    requireEnvironmentKey(req.principal);
    return eventTypeOut((await write(req.principal.environmentId, req.params.event_type_name, req.body, false)).row);
  });

  r.delete('/api/v1/event-type/:event_type_name', {
    schema: {
      tags, operationId: 'v1.event-type.delete', summary: 'Archive an event type (or delete it with expunge=true)', params: Params,
      querystring: Type.Object({ expunge: Type.Optional(Type.Boolean({ default: false })) }), response: { 204: Type.Null(), ...errorResponses },
    },
  }, async (req, reply) => {
    requireEnvironmentKey(req.principal);
    const envId = req.principal.environmentId;
    const cur = await ctx.store.getEventType(envId, req.params.event_type_name);
    if (!cur) throw notFoundError('Event type', req.params.event_type_name);
    if (req.query.expunge) await ctx.store.deleteEventType(envId, cur.name);
    else await ctx.store.updateEventType({ ...cur, archived: 1, updated_at: Date.now() });
    return reply.code(204).send(null);
  });
}
