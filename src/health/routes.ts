/** GET /api/v1/health: 204 when the database answers, 503 otherwise (for load balancers). */
import type { FastifyInstance } from 'fastify';
import type { Context } from '../context.js';
import { Type } from 'typebox';
import { HttpErrorOut } from '../http/common.js';

export function healthRoutes(app: FastifyInstance, ctx: Context) {
  const handler = async (_req: unknown, reply: import('fastify').FastifyReply) => {
    try {
      await ctx.store.ping();
    } catch (e) {
      ctx.log.warn({ err: e }, 'health check: database unreachable');
      return reply.code(503).send({ code: 'unavailable', detail: 'The database is unreachable.' });
    }
    return reply.code(204).send(null);
  };
  const schema = { tags: ['Health'], security: [], response: { 204: Type.Null(), 503: HttpErrorOut } };
  app.get('/api/v1/health', { schema: { ...schema, operationId: 'v1.health.get', summary: 'Health check' } }, handler);
  app.get('/api/v1/health/ping', { schema: { ...schema, summary: 'Liveness ping' } }, async (_req, reply) => reply.code(204).send(null));
}
