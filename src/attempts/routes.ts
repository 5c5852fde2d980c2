/** Attempts (one HTTP try of one message to one endpoint) and per-destination delivery state. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { loadApp } from '../applications/routes.js';
import type { Context } from '../context.js';
import { EndpointParams, endpointOut, loadEndpoint } from '../endpoints/routes.js';
import { endpointOutFields } from '../endpoints/schemas.js';
import { IdempotencyHeaders, Nullable, Uid, errorResponses, iso, notFoundError, parseTime, splitList } from '../http/common.js';
import { ListResponse, PaginationQuery, isIteratorOf, listPage } from '../http/pagination.js';
import { newId } from '../lib/ids.js';
import { MessageListQuery, MessageParams, loadMessage, messageOut } from '../messages/routes.js';
import { messageOutFields } from '../messages/schemas.js';
import { Status, type AttemptRow, type DeliveryRow, type EndpointRow } from '../store/schema.js';

const STATUS_TEXT = ['success', 'pending', 'fail', 'sending'] as const;
const MessageStatus = Type.Integer({ minimum: 0, maximum: 3, description: '0 success, 1 pending, 2 fail, 3 sending.' });
const StatusText = Type.String({ description: 'success, pending, fail or sending.' });

export const MessageAttemptOut = Type.Object(
  {
    id: Type.String({ description: 'Koppel id, atmpt_…' }),
    msgId: Type.String(),
    endpointId: Type.String(),
    url: Type.String(),
    response: Type.String({ description: 'Receiver response body (first 64 KiB).' }),
    responseStatusCode: Type.Integer({ description: 'HTTP status, 0 when no response arrived.' }),
    responseDurationMs: Type.Integer(),
    responseTruncated: Type.Boolean(),
    status: MessageStatus,
    statusText: StatusText,
    triggerType: Type.Integer({ description: '0 scheduled, 1 manual.' }),
    timestamp: Type.String({ format: 'date-time' }),
    errorClass: Nullable(Type.String({ description: 'timeout, connection_refused, connection_reset, dns, tls, blocked, invalid_url, http_status or network.' })),
    errorDetail: Nullable(Type.String()),
    requestHeaders: Type.Record(Type.String(), Type.String(), { description: 'Headers sent (signatures redacted).' }),
  },
  { $id: 'MessageAttemptOut' },
);

export const MessageEndpointOut = Type.Object(
  { ...endpointOutFields, status: MessageStatus, statusText: StatusText, nextAttempt: Nullable(Type.String({ format: 'date-time' })) },
  { $id: 'MessageEndpointOut' },
);
export const EndpointMessageOut = Type.Object(
  { ...messageOutFields, status: MessageStatus, statusText: StatusText, nextAttempt: Nullable(Type.String({ format: 'date-time' })) },
  { $id: 'EndpointMessageOut' },
);

export function attemptOut(a: AttemptRow, withContent = true): Static<typeof MessageAttemptOut> {
  return {
    id: a.id,
    msgId: a.message_id,
    endpointId: a.endpoint_id,
    url: a.url,
    response: withContent ? a.response : '',
    responseStatusCode: a.response_status_code,
    responseDurationMs: a.duration_ms,
    responseTruncated: !!a.response_truncated,
    status: a.status,
    statusText: STATUS_TEXT[a.status] ?? 'fail',
    triggerType: a.trigger_type,
    timestamp: iso(Number(a.created_at)),
    errorClass: a.error_class,
    errorDetail: a.error,
    requestHeaders: JSON.parse(a.request_headers),
  };
}

const nextAttempt = (d: DeliveryRow) => (d.status === Status.pending && d.due_at !== null ? iso(d.due_at) : null);

const AttemptQuery = {
  ...MessageListQuery,
  status: Type.Optional(MessageStatus),
  status_code_class: Type.Optional(Type.Union([0, 100, 200, 300, 400, 500].map((n) => Type.Literal(n)), { description: '0 (no response), 100, 200, 300, 400 or 500.' })),
};

const tags = ['Message Attempt'];

export function attemptRoutes(app: FastifyInstance, ctx: Context) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  const filterOf = (q: Static<ReturnType<typeof Type.Object<typeof AttemptQuery>>>) => ({
    eventTypes: splitList(q.event_types, 'event_types'),
    channel: q.channel,
    before: parseTime(q.before, 'before'),
    after: parseTime(q.after, 'after'),
    status: q.status,
    statusCodeClass: q.status_code_class,
  });

  r.get('/api/v1/app/:app_id/attempt/endpoint/:endpoint_id', {
    schema: { tags, operationId: 'v1.message-attempt.list-by-endpoint', summary: 'List attempts to an endpoint, newest first', params: EndpointParams, querystring: Type.Object(AttemptQuery), response: { 200: ListResponse(MessageAttemptOut, 'ListResponse_MessageAttemptOut_'), ...errorResponses } },
  }, async (req) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const q = req.query;
    return listPage(q, 'desc', (a: AttemptRow) => a.id, (page) => ctx.store.listAttempts({ endpointId: ep.id }, filterOf(q), page), (a) => attemptOut(a, q.with_content !== false), isIteratorOf('atmpt'));
  });

  r.get('/api/v1/app/:app_id/attempt/msg/:msg_id', {
    schema: {
      tags, operationId: 'v1.message-attempt.list-by-msg', summary: 'List attempts of a message, newest first', params: MessageParams,
      querystring: Type.Object({ ...AttemptQuery, endpoint_id: Type.Optional(Uid('Only attempts to this endpoint.')) }),
      response: { 200: ListResponse(MessageAttemptOut, 'ListResponse_MessageAttemptOut_'), ...errorResponses },
    },
  }, async (req) => {
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    const m = await loadMessage(ctx, a, req.params.msg_id);
    const q = req.query;
    let endpointId: string | undefined;
    if (q.endpoint_id) {
      const ep = await ctx.store.getEndpoint(a.id, q.endpoint_id);
      if (!ep) throw notFoundError('Endpoint', q.endpoint_id);
      endpointId = ep.id;
    }
    return listPage(q, 'desc', (x: AttemptRow) => x.id, (page) => ctx.store.listAttempts({ messageId: m.id }, { ...filterOf(q), endpointId }, page), (x) => attemptOut(x, q.with_content !== false), isIteratorOf('atmpt'));
  });

  r.get('/api/v1/app/:app_id/msg/:msg_id/attempt/:attempt_id', {
    schema: { tags, operationId: 'v1.message-attempt.get', summary: 'Get one attempt', params: Type.Object({ app_id: Uid(), msg_id: Uid(), attempt_id: Uid() }), response: { 200: MessageAttemptOut, ...errorResponses } },
  }, async (req) => {
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    const m = await loadMessage(ctx, a, req.params.msg_id);
    const at = await ctx.store.getAttempt(m.id, req.params.attempt_id);
    if (!at) throw notFoundError('Attempt', req.params.attempt_id);
    return attemptOut(at);
  });

  r.delete('/api/v1/app/:app_id/msg/:msg_id/attempt/:attempt_id/content', {
    schema: { tags, operationId: 'v1.message-attempt.expunge-content', summary: 'Delete the stored response body of an attempt', params: Type.Object({ app_id: Uid(), msg_id: Uid(), attempt_id: Uid() }), response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    const m = await loadMessage(ctx, a, req.params.msg_id);
    const at = await ctx.store.getAttempt(m.id, req.params.attempt_id);
    if (!at) throw notFoundError('Attempt', req.params.attempt_id);
    await ctx.store.expungeAttemptResponse(m.id, at.id);
    return reply.code(204).send(null);
  });

  r.get('/api/v1/app/:app_id/msg/:msg_id/endpoint', {
    schema: { tags, operationId: 'v1.message-attempt.list-attempted-destinations', summary: 'Endpoints a message goes to, with its delivery state at each', params: MessageParams, querystring: Type.Object(PaginationQuery), response: { 200: ListResponse(MessageEndpointOut, 'ListResponse_MessageEndpointOut_'), ...errorResponses } },
  }, async (req) => {
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    const m = await loadMessage(ctx, a, req.params.msg_id);
    const page = await listPage(req.query, 'asc', (d: DeliveryRow) => d.endpoint_id, (p) => ctx.store.listDeliveriesOfMessage(m.id, p), (d) => d, isIteratorOf('ep'));
    const eps = new Map((await ctx.store.getEndpointsByIds(page.data.map((d) => d.endpoint_id))).map((e) => [e.id, e] as [string, EndpointRow]));
    return {
      ...page,
      data: page.data.filter((d) => eps.has(d.endpoint_id)).map((d) => ({ ...endpointOut(eps.get(d.endpoint_id)!), status: d.status, statusText: STATUS_TEXT[d.status], nextAttempt: nextAttempt(d) })),
    };
  });

  r.get('/api/v1/app/:app_id/endpoint/:endpoint_id/msg', {
    schema: { tags, operationId: 'v1.message-attempt.list-attempted-messages', summary: 'Messages sent to an endpoint, with their delivery state, newest first', params: EndpointParams, querystring: Type.Object({ ...MessageListQuery, status: Type.Optional(MessageStatus) }), response: { 200: ListResponse(EndpointMessageOut, 'ListResponse_EndpointMessageOut_'), ...errorResponses } },
  }, async (req) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const q = req.query;
    const filter = { eventTypes: splitList(q.event_types, 'event_types'), channel: q.channel, before: parseTime(q.before, 'before'), after: parseTime(q.after, 'after'), status: q.status };
    return listPage(q, 'desc', (x: { message: { id: string } }) => x.message.id, (p) => ctx.store.listDeliveriesOfEndpoint(ep.id, filter, p),
      (x) => ({ ...messageOut(x.message, q.with_content !== false), status: x.delivery.status, statusText: STATUS_TEXT[x.delivery.status], nextAttempt: nextAttempt(x.delivery) }), isIteratorOf('msg'));
  });

  r.post('/api/v1/app/:app_id/msg/:msg_id/endpoint/:endpoint_id/resend', {
    schema: { tags, operationId: 'v1.message-attempt.resend', summary: 'Send a message to an endpoint again, now', params: Type.Object({ app_id: Uid(), msg_id: Uid(), endpoint_id: Uid() }), headers: IdempotencyHeaders, response: { 202: Type.Object({}), ...errorResponses } },
  }, async (req, reply) => {
    const { app: a, ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const m = await loadMessage(ctx, a, req.params.msg_id);
    const now = Date.now();
    await ctx.store.scheduleResend({
      id: newId('dlv', now), message_id: m.id, endpoint_id: ep.id, app_id: a.id, environment_id: a.environment_id, status: Status.pending,
      due_at: now, attempts: 0, trigger_type: 1, lease_owner: null, last_attempt_at: null, created_at: now, updated_at: now,
    }, now);
    ctx.wake();
    return reply.code(202).send({});
  });
}
