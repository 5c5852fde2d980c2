/**
 * /api/v1/app/{app_id}/source (Koppel extension): sources receive a provider's webhooks at their
 * `ingestUrl` and turn each verified request into a message of the application, so endpoints,
 * filters, retries, health and logs apply as to any other message. Sources belong to an
 * application, so application keys manage their own and nothing else.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { AppParams, loadApp } from '../applications/routes.js';
import type { Context } from '../context.js';
import { validateSecret } from '../delivery/signature.js';
import { ApiError, invalidField } from '../http/errors.js';
import { IdempotencyHeaders, Uid, errorResponses, iso, notFoundError } from '../http/common.js';
import { ListResponse, PaginationQuery, isIteratorOf, listPage } from '../http/pagination.js';
import { newId } from '../lib/ids.js';
import type { ApplicationRow, SourceEventRow, SourceRow } from '../store/schema.js';
import { throwIfBusy } from '../transformations/busy.js';
import { limitsOf, sharedSandbox } from '../transformations/sandbox.js';
import { DEFAULT_DEDUPE_WINDOW_S, DEFAULT_TOLERANCE_S, parseSourceConfig, sourceOut, type SourceConfig } from './source-config.js';
import { SourceEventOut, SourceIn, SourceOut, SourcePatch } from './schemas.js';
import type { Principal } from '../http/auth.js';

export const SourceParams = Type.Object({ app_id: Uid('Application id or uid.'), source_id: Uid('Source id or uid.') });

export function sourceEventOut(e: SourceEventRow): Static<typeof SourceEventOut> {
  return {
    id: e.id, status: e.status, reason: e.reason, eventType: e.event_type, dedupeKey: e.dedupe_key, messageId: e.message_id,
    headers: JSON.parse(e.headers), payload: e.payload, bodyBytes: e.body_bytes, timestamp: iso(e.created_at),
  };
}

export async function loadSource(ctx: Context, p: Principal, appIdOrUid: string, sourceIdOrUid: string) {
  const app = await loadApp(ctx, p, appIdOrUid);
  const source = await ctx.store.getSource(app.id, sourceIdOrUid);
  if (!source) throw notFoundError('Source', sourceIdOrUid);
  return { app, source };
}

type SourceFields = Partial<Static<typeof SourceIn>>;

/** Checks the combination of fields a schema cannot express; JSONata is compiled in the sandbox. */
async function checkSource(ctx: Context, provider: string, secret: string | undefined, c: SourceConfig) {
  if (provider === 'hmac' && !c.hmac) throw invalidField(['body', 'hmac'], 'required for provider "hmac": give header, algorithm and encoding', 'value_error.missing');
  if (provider !== 'hmac' && c.hmac) throw invalidField(['body', 'hmac'], `only used with provider "hmac"; ${provider} has a fixed scheme`, 'value_error.extra');
  if (secret !== undefined) {
    if (/[\r\n\0]/.test(secret)) throw invalidField(['body', 'secret'], 'may not contain line breaks or NUL');
    if (provider === 'standard-webhooks' && !secret.startsWith('whpk_')) {
      const problem = validateSecret(secret);
      if (problem) throw invalidField(['body', 'secret'], `a Standard Webhooks secret is whsec_… (or a whpk_ public key): ${problem}`, 'value_error.secret');
    }
  }
  if (c.dedupe.by === 'expression' && !c.dedupe.expression) throw invalidField(['body', 'dedupe', 'expression'], 'required when dedupe.by is "expression"', 'value_error.missing');
  const sandbox = sharedSandbox(ctx.config.transformThreads);
  for (const [loc, expr] of [[['body', 'eventTypeExpression'], c.eventTypeExpression], [['body', 'dedupe', 'expression'], c.dedupe.expression]] as const) {
    if (!expr) continue;
    const r = await sandbox.check('jsonata', expr, limitsOf(ctx.config));
    throwIfBusy(r);
    if (!r.ok) throw invalidField([...loc], `not a valid JSONata expression: ${r.error}`, 'value_error.jsonata');
  }
}

function configFrom(b: SourceFields, prev: SourceConfig | null): SourceConfig {
  const pick = <T>(v: T | undefined, old: T | undefined, dflt: T): T => (v !== undefined ? v : old !== undefined ? old : dflt);
  const d = b.dedupe;
  return {
    hmac: pick(b.hmac, prev?.hmac, null),
    toleranceSeconds: pick(b.toleranceSeconds, prev?.toleranceSeconds, DEFAULT_TOLERANCE_S),
    eventTypeExpression: pick(b.eventTypeExpression, prev?.eventTypeExpression, null),
    defaultEventType: pick(b.defaultEventType, prev?.defaultEventType, null),
    dedupe: d ? { by: d.by, expression: d.expression ?? null, windowSeconds: d.windowSeconds ?? DEFAULT_DEDUPE_WINDOW_S } : (prev?.dedupe ?? { by: 'provider', expression: null, windowSeconds: DEFAULT_DEDUPE_WINDOW_S }),
    channels: pick(b.channels, prev?.channels, null),
    metadata: pick(b.metadata, prev?.metadata, {}),
  };
}

const uidTaken = (uid: string | null | undefined) => new ApiError('conflict', `A source with uid "${uid}" already exists in this application; choose another uid.`);
const tags = ['Source'];

export function sourceRoutes(app: FastifyInstance, ctx: Context) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const base = '/api/v1/app/:app_id/source';

  r.get(base, {
    schema: { tags, operationId: 'v1.source.list', summary: 'List sources (Koppel extension)', params: AppParams, querystring: Type.Object(PaginationQuery), response: { 200: ListResponse(SourceOut, 'ListResponse_SourceOut_'), ...errorResponses } },
  }, async (req) => {
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    return listPage(req.query, 'asc', (s: SourceRow) => s.id, (page) => ctx.store.listSources(a.id, page), (s) => sourceOut(s, ctx.config), isIteratorOf('src'));
  });

  r.post(base, {
    schema: { tags, operationId: 'v1.source.create', summary: 'Create a source: a URL that receives and verifies one provider\'s webhooks (Koppel extension)', params: AppParams, headers: IdempotencyHeaders, body: SourceIn, response: { 201: SourceOut, ...errorResponses } },
  }, async (req, reply) => {
    const a: ApplicationRow = await loadApp(ctx, req.principal, req.params.app_id);
    const b = req.body;
    const config = configFrom(b, null);
    await checkSource(ctx, b.provider, b.secret, config);
    const now = Date.now();
    const row: SourceRow = {
      id: newId('src', now), environment_id: a.environment_id, app_id: a.id, uid: b.uid ?? null, name: b.name, description: b.description ?? '',
      provider: b.provider, config: JSON.stringify(config), secret: ctx.box.encrypt(b.secret), disabled: b.disabled ? 1 : 0, created_at: now, updated_at: now,
    };
    if (!(await ctx.store.createSource(row))) throw uidTaken(b.uid);
    return reply.code(201).send(sourceOut(row, ctx.config));
  });

  r.get(`${base}/:source_id`, {
    schema: { tags, operationId: 'v1.source.get', summary: 'Get a source (Koppel extension)', params: SourceParams, response: { 200: SourceOut, ...errorResponses } },
  }, async (req) => sourceOut((await loadSource(ctx, req.principal, req.params.app_id, req.params.source_id)).source, ctx.config));

  r.patch(`${base}/:source_id`, {
    schema: { tags, operationId: 'v1.source.patch', summary: 'Change some fields of a source; a new secret replaces the old one (Koppel extension)', params: SourceParams, body: SourcePatch, response: { 200: SourceOut, ...errorResponses } },
  }, async (req) => {
    const { source } = await loadSource(ctx, req.principal, req.params.app_id, req.params.source_id);
    const b = req.body;
    const provider = b.provider ?? source.provider;
    // Switching to or from "hmac" without saying otherwise drops or requires the HMAC settings.
    const config = configFrom(b.provider && b.provider !== source.provider && b.hmac === undefined ? { ...b, hmac: null } : b, parseSourceConfig(source));
    if (b.provider && b.provider !== source.provider && b.secret === undefined) throw invalidField(['body', 'secret'], 'changing the provider needs that provider\'s secret too', 'value_error.missing');
    await checkSource(ctx, provider, b.secret, config);
    const next: SourceRow = {
      ...source,
      uid: b.uid !== undefined ? b.uid : source.uid,
      name: b.name ?? source.name,
      description: b.description ?? source.description,
      provider,
      config: JSON.stringify(config),
      secret: b.secret !== undefined ? ctx.box.encrypt(b.secret) : source.secret,
      disabled: b.disabled === undefined ? source.disabled : b.disabled ? 1 : 0,
      updated_at: Date.now(),
    };
    if (!(await ctx.store.updateSource(next))) throw uidTaken(b.uid);
    return sourceOut(next, ctx.config);
  });

  r.delete(`${base}/:source_id`, {
    schema: { tags, operationId: 'v1.source.delete', summary: 'Delete a source and its event log (Koppel extension)', params: SourceParams, response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    const { app: a, source } = await loadSource(ctx, req.principal, req.params.app_id, req.params.source_id);
    await ctx.store.deleteSource(a.id, source.id);
    return reply.code(204).send(null);
  });

  r.get(`${base}/:source_id/event`, {
    schema: {
      tags, operationId: 'v1.source.list-events', summary: "The source's log: every request it received, newest first (Koppel extension)", params: SourceParams,
      querystring: Type.Object({ ...PaginationQuery, status: Type.Optional(Type.Union([Type.Literal('accepted'), Type.Literal('duplicate'), Type.Literal('rejected'), Type.Literal('ignored')])) }),
      response: { 200: ListResponse(SourceEventOut, 'ListResponse_SourceEventOut_'), ...errorResponses },
    },
  }, async (req) => {
    const { source } = await loadSource(ctx, req.principal, req.params.app_id, req.params.source_id);
    return listPage(req.query, 'desc', (e: SourceEventRow) => e.id, (page) => ctx.store.listSourceEvents(source.id, { status: req.query.status }, page), sourceEventOut, isIteratorOf('sevt'));
  });

  r.get(`${base}/:source_id/event/:event_id`, {
    schema: { tags, operationId: 'v1.source.get-event', summary: 'One request a source received (Koppel extension)', params: Type.Object({ ...SourceParams.properties, event_id: Uid('Source event id, sevt_…') }), response: { 200: SourceEventOut, ...errorResponses } },
  }, async (req) => {
    const { source } = await loadSource(ctx, req.principal, req.params.app_id, req.params.source_id);
    const e = await ctx.store.getSourceEvent(source.id, req.params.event_id);
    if (!e) throw notFoundError('Source event', req.params.event_id);
    return sourceEventOut(e);
  });
}
