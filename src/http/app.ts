/**
 * The HTTP server: Fastify with TypeBox schemas on every route, which validate requests (strictly:
 * no type coercion of bodies, unknown fields refused), serialise responses, and generate the
 * OpenAPI document at /api/v1/openapi.json.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import type { Context } from '../context.js';
import { ApiError, ERRORS, ValidationFailed, type ValidationItem } from './errors.js';
import { registerIdempotency } from './idempotency.js';
import { registerRoutes } from './routes.js';
import { uiRoutes } from '../ui/static.js';

function makeAjv(coerce: boolean) {
  const ajv = new Ajv({
    coerceTypes: coerce ? 'array' : false,
    useDefaults: true,
    removeAdditional: false,
    allErrors: true,
    strict: false,
  });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  return ajv;
}

/** Converts ajv errors to Svix/FastAPI-style `{loc, msg, type}` items. */
function toValidationItems(errors: any[], context: string): ValidationItem[] {
  return errors.map((e) => {
    const path = String(e.instancePath ?? '')
      .split('/')
      .filter(Boolean)
      .map((p: string) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, '/').replace(/~0/g, '~')));
    const loc: (string | number)[] = [context, ...path];
    let msg = String(e.message ?? 'is invalid');
    let type = `value_error.${e.keyword}`;
    if (e.keyword === 'additionalProperties') {
      loc.push(e.params.additionalProperty);
      msg = `unknown field "${e.params.additionalProperty}"; remove it or check its spelling`;
      type = 'value_error.extra';
    } else if (e.keyword === 'required') {
      loc.push(e.params.missingProperty);
      msg = 'field required';
      type = 'value_error.missing';
    } else if (e.keyword === 'type') {
      msg = `must be ${e.params.type}`;
      type = `type_error.${e.params.type}`;
    }
    return { loc, msg, type };
  });
}

const MAX_JSON_DEPTH = 512;

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Set by the error and not-found handlers: the error code the request was answered with, for
     * its log line, and whether the handler already logged it (with the error's stack).
     */
    failure?: { code: string; logged: boolean };
  }
}

export const REQUEST_ID_HEADER = 'x-request-id';
/** What a caller's (or proxy's) request id may look like to be kept: a plain token, bounded. */
const PLAIN_REQUEST_ID = /^[A-Za-z0-9._:@+=/-]{1,128}$/;

/**
 * The request id: the one a proxy in front of Koppel (or the caller) sent in x-request-id, so one
 * id follows the request through both logs, when it is a plain token; otherwise a new UUID (unique
 * across API processes, unlike Fastify's default per-process counter).
 */
function requestId(raw: IncomingMessage): string {
  const sent = raw.headers[REQUEST_ID_HEADER];
  return typeof sent === 'string' && PLAIN_REQUEST_ID.test(sent) ? sent : randomUUID();
}

/** The fields of a request's log line. Built only for a level that is enabled. */
function requestFields(req: FastifyRequest, statusCode: number) {
  const q = req.url.indexOf('?');
  return {
    reqId: req.id,
    method: req.method,
    // The route pattern groups requests; the path (without its query) names the resources.
    route: req.routeOptions.url ?? null,
    path: q < 0 ? req.url : req.url.slice(0, q),
    statusCode,
    code: req.failure?.code ?? null,
    environmentId: req.principal?.environmentId ?? null,
    keyId: req.principal?.keyId ?? null,
  };
}

/** Deepest nesting of objects and arrays in a JSON text, ignoring brackets inside strings. */
export function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \\ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > max) max = depth;
    } else if (c === 125 || c === 93) depth--;
  }
  return max;
}

/**
 * Whether a JSON text has more than `limit` opening brackets, the most its nesting can be. Counted
 * with indexOf, which is native and many times faster than the character loop of nestingDepth, so
 * ordinary bodies (a few dozen brackets) skip that loop.
 */
export function mayNestDeeperThan(text: string, limit: number): boolean {
  let n = 0;
  for (const bracket of ['{', '[']) {
    for (let i = text.indexOf(bracket); i !== -1; i = text.indexOf(bracket, i + 1)) if (++n > limit) return true;
  }
  return false;
}

export async function buildApp(ctx: Context): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: ctx.config.bodyLimitBytes,
    // Svix ids and uids never contain these, but keep routing strict and predictable.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 300 },
    return503OnClosing: true,
    genReqId: requestId,
    forceCloseConnections: 'idle',
    // Router-level rejections (bad percent-encoding, over-long path segment) get the {code, detail}
    // shape too, instead of Fastify's own error body.
    frameworkErrors: (error, req, reply) => {
      const detail = error.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? 'A path segment is longer than 300 characters; ids and uids are at most 256.'
        : 'The URL path is not validly percent-encoded.';
      (req as FastifyRequest).failure = { code: 'bad_request', logged: false };
      (reply as FastifyReply).code(400).send({ code: 'bad_request', detail });
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  // Request ids and the request log, added before any plugin or route so every response has
  // them (the API docs' too). Every response names its request id, which is the reqId of its log
  // lines. Levels: a 5xx is Koppel's fault (error; a 503, the database away or shutting down, is
  // warn), a 4xx is the caller's and worth seeing (info: a failing integration shows up without
  // debug on), and every other response is the access log (debug). Callback hooks, and fields
  // built only when their level is enabled: at info, a 2xx costs a level check.
  app.addHook('onRequest', (req, reply, done) => {
    reply.header(REQUEST_ID_HEADER, req.id);
    done();
  });
  app.addHook('onResponse', (req, reply, done) => {
    const status = reply.statusCode;
    const level = status >= 500 ? (status === 503 ? 'warn' : 'error') : status >= 400 ? 'info' : 'debug';
    // The error handler has logged this one already, with the error's stack.
    if (ctx.log.isLevelEnabled(level) && !req.failure?.logged) {
      ctx.log[level]({ ...requestFields(req, status), durationMs: Math.round(reply.elapsedTime * 10) / 10 }, 'request');
    }
    done();
  });
  // The API takes JSON only; without this Fastify's built-in text/plain parser hands the body to
  // validation as a string (422) instead of refusing the media type (415).
  app.removeContentTypeParser('text/plain');
  // JSON bodies: refuse absurd nesting before parsing (a payload thousands of levels deep would
  // exhaust the stack in validation or serialisation), then parse with prototype-poisoning keys
  // refused, as Fastify's own parser does.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = body as string;
    if (mayNestDeeperThan(text, MAX_JSON_DEPTH) && nestingDepth(text) > MAX_JSON_DEPTH) {
      done(new ApiError('bad_request', `The JSON body is nested more than ${MAX_JSON_DEPTH} levels deep; flatten the payload.`), undefined);
      return;
    }
    parseJson(req, text, (err, value) => {
      if (err && /"(__proto__|constructor)"\s*:/.test(text)) {
        done(new ApiError('invalid_json', 'The JSON body contains a "__proto__" or "constructor.prototype" key, which Koppel refuses; rename that field.'), undefined);
        return;
      }
      done(err, value);
    });
  });

  const strictAjv = makeAjv(false);
  const coercingAjv = makeAjv(true);
  app.setValidatorCompiler(({ schema, httpPart }) =>
    httpPart === 'body' ? strictAjv.compile(schema) : coercingAjv.compile(schema),
  );
  app.setSchemaErrorFormatter((errors, dataVar) => {
    const err = new ValidationFailed(toValidationItems(errors, dataVar === 'querystring' ? 'query' : dataVar));
    return err;
  });

  app.setErrorHandler((error: FastifyError | ApiError | ValidationFailed, req, reply) => {
    // The caller's mistakes: answered, and logged once the response is sent (onResponse below).
    const refuse = (status: number, body: { code: string; detail: unknown }) => {
      req.failure = { code: body.code, logged: false };
      return reply.code(status).send(body);
    };
    if (error instanceof ValidationFailed) {
      return refuse(422, { code: 'validation', detail: error.items });
    }
    if (error instanceof ApiError) {
      req.failure = { code: error.code, logged: false };
      for (const [k, v] of Object.entries(error.headers)) reply.header(k, v);
      // Serialised directly: routes declare 422 with the validation shape (detail is a list), so
      // a 422 ApiError such as idempotency_key_reused would otherwise fail serialisation (500).
      return reply.code(error.status).type('application/json; charset=utf-8').serializer(JSON.stringify).send({ code: error.code, detail: error.message });
    }
    const fe = error as FastifyError;
    switch (fe.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return refuse(413, { code: 'payload_too_large', detail: `The request body is larger than ${ctx.config.bodyLimitBytes} bytes; send less per request or raise KOPPEL_BODY_LIMIT.` });
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        // The public /in/ route takes any media type; only a malformed header gets here from it.
        return refuse(415, {
          code: 'unsupported_media_type',
          detail: req.url.startsWith('/in/') ? 'The Content-Type header is malformed; send a valid media type such as application/json.' : ERRORS.unsupported_media_type.detail,
        });
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return refuse(400, { code: 'invalid_json', detail: 'The body is empty but Content-Type says JSON: send a JSON document or no Content-Type.' });
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return refuse(400, { code: 'invalid_json', detail: `${ERRORS.invalid_json.detail} (${fe.message})` });
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return refuse(400, { code: 'bad_request', detail: 'Content-Length does not match the body that was sent.' });
    }
    if (fe.statusCode === 400 && (fe instanceof SyntaxError || /JSON/i.test(fe.message))) {
      return refuse(400, { code: 'invalid_json', detail: `${ERRORS.invalid_json.detail} (${fe.message})` });
    }
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
      return refuse(fe.statusCode, { code: 'bad_request', detail: fe.message });
    }
    if (ctx.store.isInvalidText(error)) {
      return refuse(400, { code: 'invalid_text', detail: ERRORS.invalid_text.detail });
    }
    if (ctx.store.isUnavailable(error)) {
      req.failure = { code: 'unavailable', logged: true };
      ctx.log.warn({ err: error, ...requestFields(req, 503) }, 'database unavailable');
      return reply.code(503).header('retry-after', '1').send({ code: 'unavailable', detail: ERRORS.unavailable.detail });
    }
    req.failure = { code: 'internal', logged: true };
    ctx.log.error({ err: error, ...requestFields(req, 500) }, 'request failed');
    return reply.code(500).send({ code: 'internal', detail: ERRORS.internal.detail });
  });

  app.setNotFoundHandler((req, reply) => {
    req.failure = { code: 'not_found', logged: false };
    reply.code(404).send({ code: 'not_found', detail: `No route for ${req.method} ${req.url.split('?')[0]}; see /api/v1/openapi.json for the API.` });
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Koppel API',
        version: '1.0.0',
        description: 'Koppel sends webhooks for your platform: applications, event types, endpoints, messages and attempts, compatible with the Svix v1 API, plus environments and API keys.',
      },
      components: {
        securitySchemes: { HTTPBearer: { type: 'http', scheme: 'bearer', description: 'An API key created by Koppel.' } },
      },
      security: [{ HTTPBearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true } });

  // Authentication runs for every /api/v1 route except the public ones, before validation, so
  // a caller without a key learns nothing about the API's shapes.
  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0];
    if (!path.startsWith('/api/v1/') || path.startsWith('/api/v1/health') || path === '/api/v1/openapi.json') return;
    // Signing in takes the key in the body; logging out must work with an expired session too.
    if (req.method === 'POST' && (path === '/api/v1/auth/session' || path === '/api/v1/auth/logout')) return;
    req.principal = await ctx.auth.authenticate(req);
  });
  registerIdempotency(app, ctx.store, ctx.config.idempotencyTtlMs);

  await registerRoutes(app, ctx);
  await uiRoutes(app, ctx);

  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
