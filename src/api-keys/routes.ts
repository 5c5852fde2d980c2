/**
 * /api/v1/api-key (Koppel extension): API keys scoped to an environment and optionally to one
 * application. The key is returned once at creation; Koppel keeps only its SHA-256.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { loadApp } from '../applications/routes.js';
import type { Context } from '../context.js';
import { generateApiKey, hashApiKey, requireEnvironmentKey } from '../http/auth.js';
import { CredentialOnceIdempotencyHeaders, Nullable, errorResponses, iso, notFoundError } from '../http/common.js';
import { ListResponse, PaginationQuery, isIteratorOf, listPage } from '../http/pagination.js';
import { newId } from '../lib/ids.js';
import type { ApiKeyRow } from '../store/schema.js';

export const ApiKeyIn = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 256 }),
    applicationId: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 256, description: 'Limit the key to this application (id or uid).' }))),
  },
  { $id: 'ApiKeyIn', additionalProperties: false },
);
export const ApiKeyOut = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    prefix: Type.String({ description: 'First characters of the key, to recognise it.' }),
    environmentId: Type.String(),
    applicationId: Nullable(Type.String()),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'ApiKeyOut' },
);
export const ApiKeyCreatedOut = Type.Object({ ...ApiKeyOut.properties, key: Type.String({ description: 'The key itself; shown only now.' }) }, { $id: 'ApiKeyCreatedOut' });

const apiKeyOut = (k: ApiKeyRow): Static<typeof ApiKeyOut> => ({
  id: k.id, name: k.name, prefix: k.key_prefix, environmentId: k.environment_id ?? '', applicationId: k.application_id, createdAt: iso(Number(k.created_at)),
});

const tags = ['API Key'];

export function apiKeyRoutes(app: FastifyInstance, ctx: Context) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.get('/api/v1/api-key', {
    schema: { tags, operationId: 'v1.api-key.list', summary: 'List the environment\'s API keys (without the keys)', querystring: Type.Object(PaginationQuery), response: { 200: ListResponse(ApiKeyOut, 'ListResponse_ApiKeyOut_'), ...errorResponses } },
  }, async (req) => {
    requireEnvironmentKey(req.principal);
    return listPage(req.query, 'asc', (k: ApiKeyRow) => k.id, (page) => ctx.store.listApiKeys(req.principal.environmentId, page), apiKeyOut, isIteratorOf('key'));
  });

  r.post('/api/v1/api-key', {
    schema: { tags, operationId: 'v1.api-key.create', summary: 'Create an API key; the key is shown once', headers: CredentialOnceIdempotencyHeaders, body: ApiKeyIn, response: { 201: ApiKeyCreatedOut, ...errorResponses } },
    // The answer holds the key, which Koppel keeps only as a hash: it must not be stored for replay.
    config: {
      idempotency: {
        kind: 'credential-once',
        recovery: 'The key it created is listed by GET /api/v1/api-key (its id and prefix, not the key): if you no longer have the key, revoke it with DELETE /api/v1/api-key/{key_id}, and send the request with a new idempotency-key to create another.',
      },
    },
  }, async (req, reply) => {
    requireEnvironmentKey(req.principal);
    const appId = req.body.applicationId ? (await loadApp(ctx, req.principal, req.body.applicationId)).id : null;
    const key = generateApiKey();
    const row: ApiKeyRow = {
      id: newId('key'), environment_id: req.principal.environmentId, application_id: appId, name: req.body.name,
      key_hash: hashApiKey(key), key_prefix: key.slice(0, 8), created_at: Date.now(), revoked_at: null,
    };
    await ctx.store.createApiKey(row);
    return reply.code(201).send({ ...apiKeyOut(row), key });
  });

  r.delete('/api/v1/api-key/:key_id', {
    schema: { tags, operationId: 'v1.api-key.revoke', summary: 'Revoke an API key; it stops working within seconds', params: Type.Object({ key_id: Type.String({ maxLength: 64 }) }), response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    requireEnvironmentKey(req.principal);
    const k = await ctx.store.getApiKey(req.params.key_id);
    if (!k || k.environment_id !== req.principal.environmentId || k.revoked_at !== null) throw notFoundError('API key', req.params.key_id);
    await ctx.store.revokeApiKey(k.id, Date.now());
    ctx.auth.forget(k.key_hash);
    return reply.code(204).send(null);
  });
}
