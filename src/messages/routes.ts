/** /api/v1/app/{app_id}/msg: messages (events) and their fan-out to endpoints. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { AppParams, loadApp } from '../applications/routes.js';
import type { Context } from '../context.js';
import { ApiError, invalidField } from '../http/errors.js';
import { replayNoLaterThan } from '../http/idempotency.js';
import { Channel, IdempotencyHeaders, Uid, errorResponses, iso, notFoundError, parseJson, parseTime, splitList } from '../http/common.js';
import { ListResponse, PaginationQuery, isIteratorOf, listPage } from '../http/pagination.js';
import { newId } from '../lib/ids.js';
import type { ApplicationRow, MessageRow } from '../store/schema.js';
import { BulkMessageIn, BulkMessageOut, MessageIn, MessageOut } from './schemas.js';

export const MessageParams = Type.Object({ app_id: Uid('Application id or uid.'), msg_id: Uid('Message id or eventId.') });

const DAY = 86_400_000;

export function messageOut(m: MessageRow, withContent = true): Static<typeof MessageOut> {
  return {
    id: m.id,
    eventType: m.event_type,
    eventId: m.event_id,
    channels: parseJson<string[] | null>(m.channels, null),
    tags: parseJson<string[] | null>(m.tags, null),
    payload: withContent && m.payload !== null ? JSON.parse(m.payload) : {},
    timestamp: iso(Number(m.created_at)),
  };
}

/**
 * The MessageOut JSON of a message just drafted from a request, as text: the payload goes in as
 * the JSON text that is stored and delivered, instead of being parsed back into an object and
 * serialised again (for a bulk request of 1 KB payloads, most of the response's cost). Only for
 * drafted rows, whose JSON columns Koppel itself has just written.
 */
function draftedMessageJson(m: MessageRow, withContent: boolean): string {
  const payload = withContent && m.payload !== null ? m.payload : '{}';
  return `{"id":${JSON.stringify(m.id)},"eventType":${JSON.stringify(m.event_type)},"eventId":${m.event_id === null ? 'null' : JSON.stringify(m.event_id)},"channels":${m.channels ?? 'null'},"tags":${m.tags ?? 'null'},"payload":${payload},"timestamp":"${iso(Number(m.created_at))}"}`;
}

/**
 * Sends JSON text as it is: fastify does not serialise a string whose content type is JSON. (The
 * route's typed reply only takes the response object, hence the plain FastifyReply.)
 */
function sendJsonText(reply: FastifyReply, statusCode: number, text: string) {
  return reply.code(statusCode).type('application/json; charset=utf-8').send(text);
}

const duplicateEventId = (eventId: string | null | undefined, existingId: string) =>
  new ApiError('conflict', `A message with eventId "${eventId}" already exists in this application (${existingId}); each eventId is sent once.`);

/** Turns a validated MessageIn into the row to store and its first due time. */
function draftMessage(ctx: Context, a: ApplicationRow, b: Static<typeof MessageIn>, now: number, loc: (string | number)[]) {
  const deliverAt = parseTime(b.deliverAt ?? undefined, 'deliverAt');
  if (deliverAt !== undefined && deliverAt > now + 90 * DAY) throw invalidField([...loc, 'deliverAt'], 'must be within 90 days');
  const retentionMs = b.payloadRetentionHours ? b.payloadRetentionHours * 3_600_000 : b.payloadRetentionPeriod ? b.payloadRetentionPeriod * DAY : ctx.config.retentionMs;
  const message: MessageRow = {
    id: newId('msg', now), environment_id: a.environment_id, app_id: a.id, event_type: b.eventType, event_id: b.eventId ?? null,
    channels: b.channels ? JSON.stringify(b.channels) : null, tags: b.tags ? JSON.stringify(b.tags) : null,
    payload: JSON.stringify(b.payload), created_at: now, expires_at: now + retentionMs,
  };
  return { message, dueAt: Math.max(now, deliverAt ?? now) };
}

export async function loadMessage(ctx: Context, app: ApplicationRow, idOrEventId: string) {
  const m = await ctx.store.getMessage(app.id, idOrEventId);
  if (!m) throw notFoundError('Message', idOrEventId);
  return m;
}

/** Query filters shared by the message and attempt lists. */
export const MessageListQuery = {
  ...PaginationQuery,
  event_types: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description: 'Only these event types (comma-separated or repeated).' })),
  channel: Type.Optional(Channel),
  before: Type.Optional(Type.String({ format: 'date-time', description: 'Only items created before this time.' })),
  after: Type.Optional(Type.String({ format: 'date-time', description: 'Only items created after this time.' })),
  with_content: Type.Optional(Type.Boolean({ default: true, description: 'Include payloads.' })),
};

const tags = ['Message'];

export function messageRoutes(app: FastifyInstance, ctx: Context) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const base = '/api/v1/app/:app_id/msg';

  r.get(base, {
    schema: { tags, operationId: 'v1.message.list', summary: 'List messages, newest first', params: AppParams, querystring: Type.Object(MessageListQuery), response: { 200: ListResponse(MessageOut, 'ListResponse_MessageOut_'), ...errorResponses } },
  }, async (req) => {
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    const q = req.query;
    const filter = { eventTypes: splitList(q.event_types, 'event_types'), channel: q.channel, before: parseTime(q.before, 'before'), after: parseTime(q.after, 'after') };
    return listPage(q, 'desc', (m: MessageRow) => m.id, (page) => ctx.store.listMessages(a.id, filter, page), (m) => messageOut(m, q.with_content !== false), isIteratorOf('msg'));
  });

  r.post(base, {
    schema: {
      tags, operationId: 'v1.message.create', summary: 'Send a message to every matching endpoint', params: AppParams, headers: IdempotencyHeaders,
      querystring: Type.Object({ with_content: Type.Optional(Type.Boolean({ default: true })) }), body: MessageIn, response: { 202: MessageOut, ...errorResponses },
    },
  }, async (req, reply) => {
    const b = req.body;
    const now = Date.now();
    let a: ApplicationRow;
    try {
      a = await loadApp(ctx, req.principal, req.params.app_id, { cached: true });
    } catch (e) {
      if (!(e instanceof ApiError) || e.code !== 'not_found' || !b.application || req.principal.kind === 'application') throw e;
      // Svix: a message can create its application on the fly (uid taken from the path).
      const row: ApplicationRow = {
        id: newId('app'), environment_id: req.principal.environmentId, uid: b.application.uid ?? req.params.app_id, name: b.application.name,
        throttle_rate: b.application.rateLimit ?? b.application.throttleRate ?? null, metadata: JSON.stringify(b.application.metadata ?? {}), created_at: now, updated_at: now,
      };
      if (!(await ctx.store.createApplication(row))) a = await loadApp(ctx, req.principal, row.uid!);
      else a = row;
    }
    const { message, dueAt } = draftMessage(ctx, a, b, now, ['body']);
    const body = draftedMessageJson(message, req.query.with_content !== false);
    // With an idempotency key (the Svix clients send one on every POST), the 202 is recorded in
    // the message's own transaction, and exactly that text is the response; it holds the
    // payload, so the key is kept no later than the payload is.
    const idem = req.idempotency;
    const result = await ctx.messages.write({
      message, dueAt,
      idempotency: idem ? { environmentId: idem.environmentId, key: idem.key, statusCode: 202, response: body, expiresAt: message.expires_at } : undefined,
    });
    if (!result.ok) throw duplicateEventId(b.eventId, result.existingId);
    if (idem) idem.recorded = true;
    return sendJsonText(reply, 202, body);
  });

  r.post(`${base}/bulk`, {
    schema: {
      tags, operationId: 'v1.message.create-bulk', summary: 'Send up to 1,000 messages in one request (Koppel extension)', params: AppParams, headers: IdempotencyHeaders,
      querystring: Type.Object({ with_content: Type.Optional(Type.Boolean({ default: true })) }),
      body: BulkMessageIn,
      response: { 202: BulkMessageOut, ...errorResponses },
    },
  }, async (req, reply) => {
    const a = await loadApp(ctx, req.principal, req.params.app_id, { cached: true });
    const now = Date.now();
    // Validate everything before writing anything: one bad item refuses the whole request.
    const drafts = req.body.messages.map((m, i) => draftMessage(ctx, a, m, now, ['body', 'messages', i]));
    const results = await Promise.all(ctx.messages.writeMany(drafts));
    // The response holds every payload: a replay of it ends when the first of them expires.
    replayNoLaterThan(req, Math.min(...drafts.map((d) => d.message.expires_at)));
    const withContent = req.query.with_content !== false;
    const errors: { index: number; code: string; detail: string }[] = [];
    const data = results.map((r, i) => {
      if (r.ok) return draftedMessageJson(drafts[i].message, withContent);
      const e = duplicateEventId(drafts[i].message.event_id, r.existingId);
      errors.push({ index: i, code: e.code, detail: e.message });
      return 'null';
    });
    return sendJsonText(reply, 202, `{"data":[${data.join(',')}],"errors":${JSON.stringify(errors)}}`);
  });

  r.get(`${base}/:msg_id`, {
    schema: { tags, operationId: 'v1.message.get', summary: 'Get a message by id or eventId', params: MessageParams, querystring: Type.Object({ with_content: Type.Optional(Type.Boolean({ default: true })) }), response: { 200: MessageOut, ...errorResponses } },
  }, async (req) => {
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    return messageOut(await loadMessage(ctx, a, req.params.msg_id), req.query.with_content !== false);
  });

  r.delete(`${base}/:msg_id/content`, {
    schema: { tags, operationId: 'v1.message.expunge-content', summary: 'Delete the payload of a message (the message and its attempts stay)', params: MessageParams, response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    const m = await loadMessage(ctx, a, req.params.msg_id);
    await ctx.store.expungeMessagePayload(a.id, m.id);
    return reply.code(204).send(null);
  });
}
