/** Every route of the REST API, one registration per resource folder. */
import type { FastifyInstance } from 'fastify';
import type { Context } from '../context.js';
import { apiKeyRoutes } from '../api-keys/routes.js';
import { applicationRoutes } from '../applications/routes.js';
import { attemptRoutes } from '../attempts/routes.js';
import { endpointHealthRoutes } from '../endpoint-health/routes.js';
import { endpointRoutes } from '../endpoints/routes.js';
import { environmentRoutes } from '../environments/routes.js';
import { eventTypeRoutes } from '../event-types/routes.js';
import { healthRoutes } from '../health/routes.js';
import { messageRoutes } from '../messages/routes.js';
import { metricsRoutes } from '../metrics/routes.js';
import { sessionRoutes } from '../sessions/routes.js';
import { endpointAuthRoutes } from '../endpoints/auth-routes.js';
import { endpointVersionRoutes } from '../endpoints/version-routes.js';
import { ingressRoutes } from '../sources/ingress.js';
import { sourceRoutes } from '../sources/routes.js';
import { transformationRoutes } from '../transformations/routes.js';
import { HttpErrorOut, ValidationErrorOut } from './common.js';

export async function registerRoutes(app: FastifyInstance, ctx: Context) {
  metricsRoutes(app, ctx.metrics);
  app.addSchema(HttpErrorOut);
  app.addSchema(ValidationErrorOut);
  healthRoutes(app, ctx);
  environmentRoutes(app, ctx);
  apiKeyRoutes(app, ctx);
  applicationRoutes(app, ctx);
  eventTypeRoutes(app, ctx);
  endpointRoutes(app, ctx);
  messageRoutes(app, ctx);
  attemptRoutes(app, ctx);
  endpointHealthRoutes(app, ctx);
  sessionRoutes(app, ctx);
  endpointAuthRoutes(app, ctx);
  endpointVersionRoutes(app, ctx);
  transformationRoutes(app, ctx);
  sourceRoutes(app, ctx);
  await ingressRoutes(app, ctx);
}
