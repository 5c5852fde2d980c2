/** /api/v1/app/{app_id}/endpoint: where an application's messages are delivered. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { AppParams, loadApp } from '../applications/routes.js';
import type { Context } from '../context.js';
import type { Principal } from '../http/auth.js';
import { validateSecret, publicKeyOf } from '../delivery/signature.js';
import { ApiError, invalidField } from '../http/errors.js';
import { IdempotencyHeaders, Uid, errorResponses, iso, notFoundError, parseTime } from '../http/common.js';
import { replayNoLaterThan } from '../http/idempotency.js';
import { ListResponse, PaginationQuery, isIteratorOf, listPage } from '../http/pagination.js';
import { newId } from '../lib/ids.js';
import type { ApplicationRow, EndpointRow } from '../store/schema.js';
import {
  EndpointHeadersIn, EndpointHeadersOut, EndpointHeadersPatchIn, EndpointIn, EndpointOut, EndpointPatch, EndpointSecretOut,
  EndpointSecretRotateIn, EndpointStats, EndpointUpdate, EventExampleIn, RecoverIn, RecoverOut,
} from './schemas.js';
import { currentSecret, rotateSecrets, sealNewSecrets } from './secrets.js';
import { sendExample } from '../messages/send-example.js';
import { MessageOut } from '../messages/schemas.js';
import { concurrentChange, saveEndpoint, versionRow } from './versions.js';
import { RESERVED_HEADERS } from './reserved-headers.js';

export const EndpointParams = Type.Object({ app_id: Uid('Application id or uid.'), endpoint_id: Uid('Endpoint id or uid.') });

const SENSITIVE_HEADERS = /(authorization|cookie|token|secret|key|password|credential|signature)/i;

export function endpointOut(r: EndpointRow): Static<typeof EndpointOut> {
  const types = r.event_types === null ? null : (JSON.parse(r.event_types) as string[]);
  return {
    id: r.id,
    uid: r.uid,
    url: r.url,
    description: r.description,
    eventTypes: types,
    filterTypes: types,
    channels: r.channels === null ? null : JSON.parse(r.channels),
    metadata: JSON.parse(r.metadata),
    throttleRate: r.throttle_rate,
    rateLimit: r.throttle_rate,
    disabled: !!r.disabled,
    version: r.version,
    createdAt: iso(Number(r.created_at)),
    updatedAt: iso(Number(r.updated_at)),
  };
}

function checkUrl(url: string, loc: string[]) {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalidField(loc, 'not a valid URL', 'value_error.url');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalidField(loc, 'the URL must start with http:// or https://', 'value_error.url.scheme');
  if (u.username || u.password) throw invalidField(loc, 'credentials in the URL are not allowed; use custom headers for authentication', 'value_error.url');
}

function checkHeaders(headers: Record<string, string | null> | null | undefined, loc: string[]) {
  if (!headers) return;
  const names = Object.keys(headers);
  if (names.length > 50) throw invalidField(loc, 'at most 50 custom headers');
  for (const name of names) {
    if (RESERVED_HEADERS.test(name)) throw invalidField([...loc, name], `"${name}" is set by Koppel and cannot be overridden`);
    const v = headers[name];
    if (v !== null && !/^[\t\x20-\x7e]*$/.test(v)) throw invalidField([...loc, name], 'header values may contain only printable ASCII characters, spaces and tabs');
  }
}

function checkSecret(secret: string | null | undefined, loc: string[]) {
  if (!secret) return;
  const problem = validateSecret(secret);
  if (problem) throw invalidField(loc, problem, 'value_error.secret');
}

export async function loadEndpoint(ctx: Context, p: Principal, appIdOrUid: string, endpointIdOrUid: string) {
  const app = await loadApp(ctx, p, appIdOrUid);
  const ep = await ctx.store.getEndpoint(app.id, endpointIdOrUid);
  if (!ep) throw notFoundError('Endpoint', endpointIdOrUid);
  return { app, ep };
}

const lowerKeys = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));

const tags = ['Endpoint'];

export function endpointRoutes(app: FastifyInstance, ctx: Context) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const base = '/api/v1/app/:app_id/endpoint';

  r.get(base, {
    schema: { tags, operationId: 'v1.endpoint.list', summary: 'List endpoints', params: AppParams, querystring: Type.Object(PaginationQuery), response: { 200: ListResponse(EndpointOut, 'ListResponse_EndpointOut_'), ...errorResponses } },
  }, async (req) => {
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    return listPage(req.query, 'asc', (e: EndpointRow) => e.id, (page) => ctx.store.listEndpoints(a.id, page), endpointOut, isIteratorOf('ep'));
  });

  /** Creates an endpoint (POST, or PUT to a uid that does not exist yet). */
  const create = async (a: ApplicationRow, b: Static<typeof EndpointIn>) => {
    checkUrl(b.url, ['body', 'url']);
    checkSecret(b.secret, ['body', 'secret']);
    checkHeaders(b.headers, ['body', 'headers']);
    const now = Date.now();
    const types = b.filterTypes !== undefined ? b.filterTypes : b.eventTypes;
    const row: EndpointRow = {
      id: newId('ep'), environment_id: a.environment_id, app_id: a.id, uid: b.uid ?? null, url: b.url, description: b.description ?? '',
      event_types: types ? JSON.stringify(types) : null, channels: b.channels ? JSON.stringify(b.channels) : null,
      metadata: JSON.stringify(b.metadata ?? {}), throttle_rate: b.rateLimit ?? b.throttleRate ?? null, disabled: b.disabled ? 1 : 0,
      headers: JSON.stringify(lowerKeys(b.headers ?? {})), secrets: sealNewSecrets(ctx.box, b.secret), failing_since: null, created_at: now, updated_at: now,
      auth: null, transformation: null, version: 1,
    };
    if (!(await ctx.store.createEndpoint(row, versionRow(row, 'created', now)))) throw new ApiError('conflict', `An endpoint with uid "${b.uid}" already exists in this application; choose another uid.`);
    return row;
  };

  r.post(base, {
    schema: { tags, operationId: 'v1.endpoint.create', summary: 'Create an endpoint', params: AppParams, headers: IdempotencyHeaders, body: EndpointIn, response: { 201: EndpointOut, ...errorResponses } },
  }, async (req, reply) => {
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    return reply.code(201).send(endpointOut(await create(a, req.body)));
  });

  r.get(`${base}/:endpoint_id`, {
    schema: { tags, operationId: 'v1.endpoint.get', summary: 'Get an endpoint', params: EndpointParams, response: { 200: EndpointOut, ...errorResponses } },
  }, async (req) => endpointOut((await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id)).ep));

  const update = async (p: Principal, appId: string, epId: string, b: Static<typeof EndpointPatch>, replace: boolean) => {
    const { ep } = await loadEndpoint(ctx, p, appId, epId);
    if (b.url !== undefined) checkUrl(b.url, ['body', 'url']);
    checkSecret(b.secret, ['body', 'secret']);
    const types = b.filterTypes !== undefined ? b.filterTypes : b.eventTypes;
    const pick = <T>(v: T | undefined, old: T, dflt: T): T => (v !== undefined ? v : replace ? dflt : old);
    const disabled = pick(b.disabled === undefined ? undefined : b.disabled ? 1 : 0, ep.disabled, 0);
    const next: EndpointRow = {
      ...ep,
      url: b.url ?? ep.url,
      description: pick(b.description, ep.description, ''),
      uid: pick(b.uid, ep.uid, null),
      event_types: pick(types === undefined ? undefined : types ? JSON.stringify(types) : null, ep.event_types, null),
      channels: pick(b.channels === undefined ? undefined : b.channels ? JSON.stringify(b.channels) : null, ep.channels, null),
      metadata: pick(b.metadata === undefined ? undefined : JSON.stringify(b.metadata), ep.metadata, '{}'),
      throttle_rate: pick(b.rateLimit !== undefined ? b.rateLimit : b.throttleRate, ep.throttle_rate, null),
      disabled,
      // Re-enabling starts a fresh failure window.
      failing_since: disabled === 0 && ep.disabled ? null : ep.failing_since,
      secrets: b.secret ? sealNewSecrets(ctx.box, b.secret) : ep.secrets,
      updated_at: Date.now(),
    };
    // A change of URL or filters becomes a new version (src/endpoints/versions.ts).
    return saveEndpoint(ctx, ep, next, 'updated');
  };

  r.put(`${base}/:endpoint_id`, {
    schema: { tags, operationId: 'v1.endpoint.update', summary: 'Update an endpoint (create it if the uid is new)', params: EndpointParams, body: EndpointUpdate, response: { 200: EndpointOut, 201: EndpointOut, ...errorResponses } },
  }, async (req, reply) => {
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    const existing = await ctx.store.getEndpoint(a.id, req.params.endpoint_id);
    if (!existing) {
      // Svix semantics: PUT to an unknown uid creates the endpoint with that uid.
      if (/^ep_[0-9A-Z]{26}$/.test(req.params.endpoint_id)) throw notFoundError('Endpoint', req.params.endpoint_id);
      return reply.code(201).send(endpointOut(await create(a, { ...req.body, uid: req.params.endpoint_id })));
    }
    return endpointOut(await update(req.principal, req.params.app_id, req.params.endpoint_id, req.body, true));
  });

  r.patch(`${base}/:endpoint_id`, {
    schema: { tags, operationId: 'v1.endpoint.patch', summary: 'Change some fields of an endpoint', params: EndpointParams, body: EndpointPatch, response: { 200: EndpointOut, ...errorResponses } },
  }, async (req) => endpointOut(await update(req.principal, req.params.app_id, req.params.endpoint_id, req.body, false)));

  r.delete(`${base}/:endpoint_id`, {
    schema: { tags, operationId: 'v1.endpoint.delete', summary: 'Delete an endpoint and its delivery history', params: EndpointParams, response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    const { app: a, ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    await ctx.store.deleteEndpoint(a.id, ep.id);
    return reply.code(204).send(null);
  });

  // ── headers ──────────────────────────────────────────────────────────────────────────────

  r.get(`${base}/:endpoint_id/headers`, {
    schema: { tags, operationId: 'v1.endpoint.get-headers', summary: 'Get the custom headers sent with every delivery', params: EndpointParams, response: { 200: EndpointHeadersOut, ...errorResponses } },
  }, async (req) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const all = JSON.parse(ep.headers) as Record<string, string>;
    const headers: Record<string, string> = {};
    const sensitive: string[] = [];
    for (const [k, v] of Object.entries(all)) {
      if (SENSITIVE_HEADERS.test(k)) sensitive.push(k);
      else headers[k] = v;
    }
    return { headers, sensitive };
  });

  r.put(`${base}/:endpoint_id/headers`, {
    schema: { tags, operationId: 'v1.endpoint.update-headers', summary: 'Replace the custom headers', params: EndpointParams, body: EndpointHeadersIn, response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    checkHeaders(req.body.headers, ['body', 'headers']);
    if ((await ctx.store.updateEndpoint(ep.app_id, ep.id, { headers: JSON.stringify(lowerKeys(req.body.headers)), updated_at: Date.now() })) !== 'ok') throw concurrentChange();
    return reply.code(204).send(null);
  });

  r.patch(`${base}/:endpoint_id/headers`, {
    schema: { tags, operationId: 'v1.endpoint.patch-headers', summary: 'Set or remove (null) some custom headers', params: EndpointParams, body: EndpointHeadersPatchIn, response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    checkHeaders(req.body.headers, ['body', 'headers']);
    const next = JSON.parse(ep.headers) as Record<string, string>;
    for (const [k, v] of Object.entries(req.body.headers)) {
      if (v === null) delete next[k.toLowerCase()];
      else next[k.toLowerCase()] = v;
    }
    checkHeaders(next, ['body', 'headers']);
    // Fenced on the headers it merged into, so a concurrent header change is not lost.
    if ((await ctx.store.updateEndpoint(ep.app_id, ep.id, { headers: JSON.stringify(next), updated_at: Date.now() }, { headers: ep.headers })) !== 'ok') throw concurrentChange();
    return reply.code(204).send(null);
  });

  // ── secret ───────────────────────────────────────────────────────────────────────────────

  r.get(`${base}/:endpoint_id/secret`, {
    schema: { tags, operationId: 'v1.endpoint.get-secret', summary: 'Get the current signing secret', params: EndpointParams, response: { 200: EndpointSecretOut, ...errorResponses } },
  }, async (req) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const key = currentSecret(ctx.box, ep.secrets);
    const pub = publicKeyOf(key);
    return pub ? { key, publicKey: pub } : { key };
  });

  r.post(`${base}/:endpoint_id/secret/rotate`, {
    schema: { tags, operationId: 'v1.endpoint.rotate-secret', summary: 'Rotate the signing secret; the old one keeps signing during the grace period', params: EndpointParams, headers: IdempotencyHeaders, body: Type.Optional(EndpointSecretRotateIn), response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const b = req.body ?? {};
    checkSecret(b.key, ['body', 'key']);
    const now = Date.now();
    const graceMs = (b.gracePeriodSeconds ?? 86400) * 1000;
    // Fenced on the secrets it rotated from: two rotations at once must not both answer 204
    // while one of the new keys is silently lost.
    if ((await ctx.store.updateEndpoint(ep.app_id, ep.id, { secrets: rotateSecrets(ctx.box, ep.secrets, b.key, graceMs, now), updated_at: now }, { secrets: ep.secrets })) !== 'ok') throw concurrentChange();
    return reply.code(204).send(null);
  });

  // ── stats, recover, send-example ─────────────────────────────────────────────────────────

  r.get(`${base}/:endpoint_id/stats`, {
    schema: {
      tags, operationId: 'v1.endpoint.get-stats', summary: 'Delivery counts by status', params: EndpointParams,
      querystring: Type.Object({ since: Type.Optional(Type.String({ format: 'date-time' })), until: Type.Optional(Type.String({ format: 'date-time' })) }),
      response: { 200: EndpointStats, ...errorResponses },
    },
  }, async (req) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const s = await ctx.store.endpointStats(ep.id, parseTime(req.query.since, 'since') ?? null, parseTime(req.query.until, 'until') ?? null);
    return { ...s, canceled: 0 };
  });

  r.post(`${base}/:endpoint_id/recover`, {
    schema: { tags, operationId: 'v1.endpoint.recover', summary: 'Re-send every failed message since a time', params: EndpointParams, headers: IdempotencyHeaders, body: RecoverIn, response: { 202: RecoverOut, ...errorResponses } },
  }, async (req, reply) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const now = Date.now();
    const since = parseTime(req.body.since, 'since')!;
    const until = parseTime(req.body.until ?? undefined, 'until') ?? now + 1;
    if (since > now) throw invalidField(['body', 'since'], 'must not be in the future');
    if (until <= since) throw invalidField(['body', 'until'], 'must be after since');
    const count = await ctx.store.recoverFailed(ep.id, since, until, now);
    ctx.wake();
    return reply.code(202).send({ id: newId('qtask'), status: 'finished', task: 'endpoint.recover', updatedAt: iso(now), count });
  });

  r.post(`${base}/:endpoint_id/send-example`, {
    schema: { tags, operationId: 'v1.endpoint.send-example', summary: 'Send an example event of a type to this endpoint only', params: EndpointParams, headers: IdempotencyHeaders, body: EventExampleIn, response: { 200: MessageOut, ...errorResponses } },
  }, async (req, reply) => {
    const { app: a, ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const { out, expiresAt } = await sendExample(ctx, a, ep, req.body.eventType, req.body.exampleIndex ?? 0);
    // The response holds the payload: a replay of it must not outlive it.
    replayNoLaterThan(req, expiresAt);
    return reply.code(200).send(out);
  });
}
