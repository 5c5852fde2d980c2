/** /api/v1/app: applications, one per customer company. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { Context } from '../context.js';
import { requireEnvironmentKey, type Principal } from '../http/auth.js';
import { ApiError } from '../http/errors.js';
import { IdempotencyHeaders, Uid, errorResponses, iso, notFoundError } from '../http/common.js';
import { ListResponse, PaginationQuery, isIteratorOf, listPage } from '../http/pagination.js';
import { newId } from '../lib/ids.js';
import type { ApplicationRow } from '../store/schema.js';
import { ApplicationIn, ApplicationOut, ApplicationPatch } from './schemas.js';

export const AppParams = Type.Object({ app_id: Uid('Application id or uid.') });

export function applicationOut(r: ApplicationRow): Static<typeof ApplicationOut> {
  return {
    id: r.id,
    uid: r.uid,
    name: r.name,
    metadata: JSON.parse(r.metadata),
    throttleRate: r.throttle_rate,
    rateLimit: r.throttle_rate,
    createdAt: iso(Number(r.created_at)),
    updatedAt: iso(Number(r.updated_at)),
  };
}

/**
 * Finds an application the caller may see. A key limited to another application gets the same
 * 404 as a missing id, so ids of other tenants cannot be probed.
 */
export async function loadApp(ctx: Context, p: Principal, idOrUid: string, opts: { cached?: boolean } = {}): Promise<ApplicationRow> {
  const app = opts.cached ? await ctx.apps.get(p.environmentId, idOrUid) : await ctx.store.getApplication(p.environmentId, idOrUid);
  if (!app || (p.applicationId !== null && app.id !== p.applicationId)) throw notFoundError('Application', idOrUid);
  return app;
}

const tags = ['Application'];

export function applicationRoutes(app: FastifyInstance, ctx: Context) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.get('/api/v1/app', {
    schema: { tags, operationId: 'v1.application.list', summary: 'List applications', querystring: Type.Object(PaginationQuery), response: { 200: ListResponse(ApplicationOut, 'ListResponse_ApplicationOut_'), ...errorResponses } },
  }, async (req) => {
    requireEnvironmentKey(req.principal);
    return listPage(req.query, 'asc', (a: ApplicationRow) => a.id, (page) => ctx.store.listApplications(req.principal.environmentId, page), applicationOut, isIteratorOf('app'));
  });

  r.post('/api/v1/app', {
    schema: {
      tags, operationId: 'v1.application.create', summary: 'Create an application',
      querystring: Type.Object({ get_if_exists: Type.Optional(Type.Boolean({ default: false, description: 'Return the existing application with this uid instead of a 409.' })) }),
      headers: IdempotencyHeaders, body: ApplicationIn, response: { 200: ApplicationOut, 201: ApplicationOut, ...errorResponses },
    },
  }, async (req, reply) => {
    requireEnvironmentKey(req.principal);
    const b = req.body;
    const envId = req.principal.environmentId;
    if (req.query.get_if_exists && b.uid) {
      const existing = await ctx.store.getApplication(envId, b.uid);
      if (existing) return reply.code(200).send(applicationOut(existing));
    }
    const now = Date.now();
    const row: ApplicationRow = {
      id: newId('app'), environment_id: envId, uid: b.uid ?? null, name: b.name, throttle_rate: b.rateLimit ?? b.throttleRate ?? null,
      metadata: JSON.stringify(b.metadata ?? {}), created_at: now, updated_at: now,
    };
    if (!(await ctx.store.createApplication(row))) {
      if (req.query.get_if_exists && b.uid) {
        const existing = await ctx.store.getApplication(envId, b.uid);
        if (existing) return reply.code(200).send(applicationOut(existing));
      }
      throw new ApiError('conflict', `An application with uid "${b.uid}" already exists; use another uid or get_if_exists=true.`);
    }
    return reply.code(201).send(applicationOut(row));
  });

  r.get('/api/v1/app/:app_id', {
    schema: { tags, operationId: 'v1.application.get', summary: 'Get an application', params: AppParams, response: { 200: ApplicationOut, ...errorResponses } },
  }, async (req) => applicationOut(await loadApp(ctx, req.principal, req.params.app_id)));

  const update = async (principal: Principal, idOrUid: string, b: Static<typeof ApplicationPatch>, replace: boolean) => {
    const cur = await loadApp(ctx, principal, idOrUid);
    const next: ApplicationRow = {
      ...cur,
      name: b.name ?? cur.name,
      uid: b.uid !== undefined ? b.uid : replace ? null : cur.uid,
      metadata: b.metadata !== undefined ? JSON.stringify(b.metadata) : replace ? '{}' : cur.metadata,
      throttle_rate: b.rateLimit !== undefined ? b.rateLimit : b.throttleRate !== undefined ? b.throttleRate : replace ? null : cur.throttle_rate,
      updated_at: Date.now(),
    };
    ctx.apps.clear();
    if (!(await ctx.store.updateApplication(next))) throw new ApiError('conflict', `An application with uid "${b.uid}" already exists; choose another uid.`);
    return next;
  };

  r.put('/api/v1/app/:app_id', {
    schema: { tags, operationId: 'v1.application.update', summary: 'Update an application (create it if the uid is new)', params: AppParams, body: ApplicationIn, response: { 200: ApplicationOut, 201: ApplicationOut, ...errorResponses } },
  }, async (req, reply) => {
    const existing = await ctx.store.getApplication(req.principal.environmentId, req.params.app_id);
    if (!existing) {
      // Svix semantics: PUT to an unknown uid creates the application with that uid.
      requireEnvironmentKey(req.principal);
      if (!/^[a-zA-Z0-9\-_.]+$/.test(req.params.app_id) || /^app_[0-9A-Z]{26}$/.test(req.params.app_id)) throw notFoundError('Application', req.params.app_id);
      const now = Date.now();
      const b = req.body;
      const row: ApplicationRow = {
        id: newId('app'), environment_id: req.principal.environmentId, uid: req.params.app_id, name: b.name,
        throttle_rate: b.rateLimit ?? b.throttleRate ?? null, metadata: JSON.stringify(b.metadata ?? {}), created_at: now, updated_at: now,
      };
      if (!(await ctx.store.createApplication(row))) throw new ApiError('conflict', 'The application was created concurrently; retry.');
      return reply.code(201).send(applicationOut(row));
    }
    return applicationOut(await update(req.principal, req.params.app_id, req.body, true));
  });

  r.patch('/api/v1/app/:app_id', {
    schema: { tags, operationId: 'v1.application.patch', summary: 'Change some fields of an application', params: AppParams, body: ApplicationPatch, response: { 200: ApplicationOut, ...errorResponses } },
  }, async (req) => applicationOut(await update(req.principal, req.params.app_id, req.body, false)));

  r.delete('/api/v1/app/:app_id', {
    schema: { tags, operationId: 'v1.application.delete', summary: 'Delete an application with its endpoints, messages and attempts', params: AppParams, response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    requireEnvironmentKey(req.principal);
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    ctx.apps.clear();
    await ctx.store.deleteApplication(a.environment_id, a.id);
    ctx.apps.clear();
    return reply.code(204).send(null);
  });
}
