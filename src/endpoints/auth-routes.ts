/** /api/v1/app/{app_id}/endpoint/{endpoint_id}/auth: the credentials sent to the target API. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Context } from '../context.js';
import { errorResponses } from '../http/common.js';
import { EndpointAuthIn, EndpointAuthOut, authFromInput, authSummary, openAuth, sealAuth } from './auth.js';
import { EndpointParams, loadEndpoint } from './routes.js';
import { saveEndpoint } from './versions.js';

const tags = ['Endpoint'];

export function endpointAuthRoutes(app: FastifyInstance, ctx: Context) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const path = '/api/v1/app/:app_id/endpoint/:endpoint_id/auth';

  r.get(path, {
    schema: { tags, operationId: 'v1.endpoint.get-auth', summary: 'How Koppel authenticates to the endpoint (Koppel extension; secrets are not returned)', params: EndpointParams, response: { 200: EndpointAuthOut, ...errorResponses } },
  }, async (req) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    return authSummary(openAuth(ctx.box, ep.auth));
  });

  r.put(path, {
    schema: { tags, operationId: 'v1.endpoint.update-auth', summary: 'Set the credentials sent to the endpoint (creates a new endpoint version)', params: EndpointParams, body: EndpointAuthIn, response: { 200: EndpointAuthOut, ...errorResponses } },
  }, async (req) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const auth = authFromInput(req.body);
    await saveEndpoint(ctx, ep, { ...ep, auth: sealAuth(ctx.box, auth), updated_at: Date.now() }, 'auth');
    return authSummary(auth);
  });

  r.delete(path, {
    schema: { tags, operationId: 'v1.endpoint.delete-auth', summary: 'Stop sending credentials to the endpoint (creates a new endpoint version)', params: EndpointParams, response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    if (ep.auth !== null) await saveEndpoint(ctx, ep, { ...ep, auth: null, updated_at: Date.now() }, 'auth');
    return reply.code(204).send(null);
  });
}
