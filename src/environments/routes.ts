/**
 * /api/v1/environment (Koppel extension): isolated namespaces such as live and test, each with its
 * own keys, event types and applications. Creating one returns its first API key, shown once.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { Context } from '../context.js';
import { generateApiKey, hashApiKey, requireAdmin } from '../http/auth.js';
import { CredentialOnceIdempotencyHeaders, errorResponses, iso, notFoundError } from '../http/common.js';
import { ListResponse, PaginationQuery, isIteratorOf, listPage } from '../http/pagination.js';
import { newId } from '../lib/ids.js';
import type { ApiKeyRow, EnvironmentRow } from '../store/schema.js';

export const EnvironmentIn = Type.Object({ name: Type.String({ minLength: 1, maxLength: 256 }) }, { $id: 'EnvironmentIn', additionalProperties: false });
export const EnvironmentOut = Type.Object({ id: Type.String(), name: Type.String(), createdAt: Type.String({ format: 'date-time' }) }, { $id: 'EnvironmentOut' });
export const EnvironmentCreatedOut = Type.Object(
  { id: Type.String(), name: Type.String(), createdAt: Type.String({ format: 'date-time' }), apiKey: Type.String({ description: 'The environment\'s first API key; shown only now.' }), apiKeyId: Type.String() },
  { $id: 'EnvironmentCreatedOut' },
);

const environmentOut = (e: EnvironmentRow): Static<typeof EnvironmentOut> => ({ id: e.id, name: e.name, createdAt: iso(Number(e.created_at)) });

/** The rows of a new environment and its first key, and that key in clear (shown once). */
export function newEnvironmentRows(name: string) {
  const now = Date.now();
  const environment: EnvironmentRow = { id: newId('env'), name, created_at: now };
  const key = generateApiKey();
  const apiKey: ApiKeyRow = { id: newId('key'), environment_id: environment.id, application_id: null, name: `${name} (initial key)`, key_hash: hashApiKey(key), key_prefix: key.slice(0, 8), created_at: now, revoked_at: null };
  return { environment, apiKey, key };
}

/** Creates an environment with a first key. */
async function createEnvironment(ctx: Pick<Context, 'store'>, name: string) {
  const { environment: env, apiKey, key } = newEnvironmentRows(name);
  await ctx.store.createEnvironment(env);
  await ctx.store.createApiKey(apiKey);
  return { env, key, keyId: apiKey.id };
}

const tags = ['Environment'];

export function environmentRoutes(app: FastifyInstance, ctx: Context) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.get('/api/v1/environment', {
    schema: { tags, operationId: 'v1.environment.list', summary: 'List environments (admin key)', querystring: Type.Object(PaginationQuery), response: { 200: ListResponse(EnvironmentOut, 'ListResponse_EnvironmentOut_'), ...errorResponses } },
  }, async (req) => {
    requireAdmin(req.principal);
    return listPage(req.query, 'asc', (e: EnvironmentRow) => e.id, (page) => ctx.store.listEnvironments(page), environmentOut, isIteratorOf('env'));
  });

  r.post('/api/v1/environment', {
    schema: { tags, operationId: 'v1.environment.create', summary: 'Create an environment and its first API key (admin key)', headers: CredentialOnceIdempotencyHeaders, body: EnvironmentIn, response: { 201: EnvironmentCreatedOut, ...errorResponses } },
    // The answer holds the environment's first key, which Koppel keeps only as a hash: it must not
    // be stored for replay.
    config: {
      idempotency: {
        kind: 'credential-once',
        recovery: 'The environment it created is listed by GET /api/v1/environment, and its first key by GET /api/v1/api-key with the header Koppel-Environment: <environment id>: if you no longer have that key, revoke it with DELETE /api/v1/api-key/{key_id} and create another with POST /api/v1/api-key (same header). A new idempotency-key would create a second environment.',
      },
    },
  }, async (req, reply) => {
    requireAdmin(req.principal);
    const { env, key, keyId } = await createEnvironment(ctx, req.body.name);
    return reply.code(201).send({ ...environmentOut(env), apiKey: key, apiKeyId: keyId });
  });

  r.get('/api/v1/environment/:env_id', {
    schema: { tags, operationId: 'v1.environment.get', summary: 'Get an environment', params: Type.Object({ env_id: Type.String({ maxLength: 64 }) }), response: { 200: EnvironmentOut, ...errorResponses } },
  }, async (req) => {
    const p = req.principal;
    if (p.kind !== 'admin' && p.environmentId !== req.params.env_id) throw notFoundError('Environment', req.params.env_id);
    const env = await ctx.store.getEnvironment(req.params.env_id);
    if (!env) throw notFoundError('Environment', req.params.env_id);
    return environmentOut(env);
  });
}
