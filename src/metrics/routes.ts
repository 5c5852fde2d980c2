/** GET /metrics (Prometheus text format) and the HTTP request metrics that feed it. */
import type { FastifyInstance } from 'fastify';
import type { Metrics } from './metrics.js';

export function metricsRoutes(app: FastifyInstance, metrics: Metrics) {
  app.addHook('onResponse', async (req, reply) => {
    // The route pattern, not the raw URL, keeps label cardinality bounded.
    const route = req.routeOptions.url ?? 'unmatched';
    if (route === '/metrics') return;
    metrics.httpRequests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.text();
  });
}
