/** /api/v1/app/{app_id}/endpoint/{endpoint_id}/version: list, get and roll back endpoint versions. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { Context } from '../context.js';
import { ApiError } from '../http/errors.js';
import { IdempotencyHeaders, Nullable, errorResponses, iso } from '../http/common.js';
import { ListResponse, PaginationQuery, isIteratorOf, listPage } from '../http/pagination.js';
import type { EndpointRow, EndpointVersionRow } from '../store/schema.js';
import { EndpointAuthOut, authSummary, openAuth } from './auth.js';
import { EndpointParams, endpointOut, loadEndpoint } from './routes.js';
import { EndpointOut } from './schemas.js';
import { diffSnapshots, publicTransformation, saveEndpoint, type Snapshot } from './versions.js';

export const EndpointVersionOut = Type.Object(
  {
    version: Type.Integer(),
    reason: Type.String({ description: 'What made this version: created, updated, auth, transformation or "rollback to N".' }),
    current: Type.Boolean(),
    createdAt: Type.String({ format: 'date-time' }),
    url: Type.String(),
    eventTypes: Nullable(Type.Array(Type.String())),
    channels: Nullable(Type.Array(Type.String())),
    auth: EndpointAuthOut,
    transformation: Nullable(Type.Object({ kind: Type.String(), enabled: Type.Boolean(), code: Nullable(Type.String()), expression: Nullable(Type.String()), mapping: Nullable(Type.Unknown()) })),
    changes: Type.Array(Type.Object({ field: Type.String(), from: Type.Unknown(), to: Type.Unknown() }), { description: 'What differs from the version before.' }),
  },
  { $id: 'EndpointVersionOut' },
);

const tags = ['Endpoint'];

export function endpointVersionRoutes(app: FastifyInstance, ctx: Context) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  // Built here, not at module level: this module and endpoints/routes.ts import each other.
  const VersionParams = Type.Object({ ...EndpointParams.properties, version: Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'Version number.' }) });
  const base = '/api/v1/app/:app_id/endpoint/:endpoint_id/version';

  const out = (ep: EndpointRow, v: EndpointVersionRow, prev: EndpointVersionRow | undefined): Static<typeof EndpointVersionOut> => {
    const s = JSON.parse(v.snapshot) as Snapshot;
    return {
      version: v.version, reason: v.reason, current: v.version === ep.version, createdAt: iso(v.created_at), url: s.url, eventTypes: s.eventTypes, channels: s.channels,
      auth: authSummary(openAuth(ctx.box, s.auth)), transformation: publicTransformation(s.transformation),
      changes: diffSnapshots(ctx, prev ? (JSON.parse(prev.snapshot) as Snapshot) : null, s),
    };
  };

  r.get(base, {
    schema: { tags, operationId: 'v1.endpoint.list-versions', summary: 'List the versions of an endpoint with what changed in each (Koppel extension)', params: EndpointParams, querystring: Type.Object(PaginationQuery), response: { 200: ListResponse(EndpointVersionOut, 'ListResponse_EndpointVersionOut_'), ...errorResponses } },
  }, async (req) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const page = await listPage(req.query, 'desc', (v: EndpointVersionRow) => v.id, (p) => ctx.store.listEndpointVersions(ep.id, p), (v) => v, isIteratorOf('epv'));
    const byVersion = new Map(page.data.map((v) => [v.version, v]));
    const data = [];
    for (const v of page.data) {
      const prev = v.version > 1 ? (byVersion.get(v.version - 1) ?? (await ctx.store.getEndpointVersion(ep.id, v.version - 1))) : undefined;
      data.push(out(ep, v, prev));
    }
    return { ...page, data };
  });

  r.get(`${base}/:version`, {
    schema: { tags, operationId: 'v1.endpoint.get-version', summary: 'Get one version of an endpoint (Koppel extension)', params: VersionParams, response: { 200: EndpointVersionOut, ...errorResponses } },
  }, async (req) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const v = await ctx.store.getEndpointVersion(ep.id, req.params.version);
    if (!v) throw new ApiError('not_found', `Endpoint ${ep.id} has no version ${req.params.version}; it is at version ${ep.version}.`);
    return out(ep, v, v.version > 1 ? await ctx.store.getEndpointVersion(ep.id, v.version - 1) : undefined);
  });

  r.post(`${base}/:version/rollback`, {
    schema: { tags, operationId: 'v1.endpoint.rollback', summary: 'Restore the URL, filters, auth and transformation of an earlier version, as a new version (Koppel extension)', params: VersionParams, headers: IdempotencyHeaders, response: { 200: EndpointOut, ...errorResponses } },
  }, async (req) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const v = await ctx.store.getEndpointVersion(ep.id, req.params.version);
    if (!v) throw new ApiError('not_found', `Endpoint ${ep.id} has no version ${req.params.version}; it is at version ${ep.version}.`);
    const s = JSON.parse(v.snapshot) as Snapshot;
    const restored: EndpointRow = {
      ...ep,
      url: s.url,
      event_types: s.eventTypes === null ? null : JSON.stringify(s.eventTypes),
      channels: s.channels === null ? null : JSON.stringify(s.channels),
      auth: s.auth,
      transformation: s.transformation === null ? null : JSON.stringify(s.transformation),
      updated_at: Date.now(),
    };
    return endpointOut(await saveEndpoint(ctx, ep, restored, `rollback to ${v.version}`));
  });
}
