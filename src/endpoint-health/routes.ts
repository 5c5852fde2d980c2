/**
 * GET /api/v1/app/{app_id}/endpoint-health (Koppel extension): what the dashboard shows beside each
 * endpoint (state, success rate, mean latency, last error) and the deliveries-over-time chart, in
 * one request. Svix's per-endpoint `stats` counts deliveries by status only; this counts attempts
 * in a time window, grouped in the database, so it stays one query however busy the endpoints are.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { AppParams, loadApp } from '../applications/routes.js';
import type { Context } from '../context.js';
import { invalidField } from '../http/errors.js';
import { Nullable, Uid, errorResponses, iso, notFoundError, parseTime } from '../http/common.js';
import { Status, type EndpointRow } from '../store/schema.js';

const DAY = 86_400_000;
const MAX_ENDPOINTS = 1000;

const LastError = Type.Object({
  attemptId: Type.String(),
  msgId: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
  responseStatusCode: Type.Integer({ description: '0 when no response arrived.' }),
  errorClass: Nullable(Type.String()),
  errorDetail: Nullable(Type.String()),
});

export const EndpointHealthOut = Type.Object(
  {
    since: Type.String({ format: 'date-time' }),
    until: Type.String({ format: 'date-time' }),
    bucketSeconds: Type.Integer({ description: 'Width of each timeline bucket.' }),
    endpoints: Type.Array(
      Type.Object({
        endpointId: Type.String(),
        state: Type.Union([Type.Literal('healthy'), Type.Literal('failing'), Type.Literal('disabled')], { description: 'failing: the latest attempts failed and the failure window runs; disabled: by hand, after sustained failure, or on 410.' }),
        failingSince: Nullable(Type.String({ format: 'date-time' })),
        attempts: Type.Integer({ description: 'Attempts in the window.' }),
        successes: Type.Integer(),
        failures: Type.Integer(),
        successRate: Nullable(Type.Number({ description: 'successes / attempts in the window, 0–1; null without attempts.' })),
        meanLatencyMs: Nullable(Type.Integer({ description: 'Mean attempt duration in the window.' })),
        lastAttemptAt: Nullable(Type.String({ format: 'date-time' })),
        lastError: Type.Union([LastError, Type.Null()], { description: 'The most recent failed attempt, at any time.' }),
      }),
    ),
    timeline: Type.Array(
      Type.Object({ start: Type.String({ format: 'date-time' }), attempts: Type.Integer(), successes: Type.Integer(), failures: Type.Integer() }),
      { description: 'Attempts of the listed endpoints per bucket, oldest first, empty buckets included.' },
    ),
  },
  { $id: 'EndpointHealthOut' },
);

type HealthOut = Static<typeof EndpointHealthOut>;

export function endpointHealthRoutes(app: FastifyInstance, ctx: Context) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.get('/api/v1/app/:app_id/endpoint-health', {
    schema: {
      tags: ['Endpoint'], operationId: 'v1.endpoint.health', summary: 'Health of the endpoints of an application and attempts over time (Koppel extension)',
      params: AppParams,
      querystring: Type.Object({
        since: Type.Optional(Type.String({ format: 'date-time', description: 'Start of the window; default 24 hours before until.' })),
        until: Type.Optional(Type.String({ format: 'date-time', description: 'End of the window; default now.' })),
        buckets: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 24, description: 'Number of timeline buckets.' })),
        endpoint_id: Type.Optional(Uid('Only this endpoint.')),
      }),
      response: { 200: EndpointHealthOut, ...errorResponses },
    },
  }, async (req): Promise<HealthOut> => {
    const a = await loadApp(ctx, req.principal, req.params.app_id);
    const q = req.query;
    const until = parseTime(q.until, 'until') ?? Date.now();
    const since = parseTime(q.since, 'since') ?? until - DAY;
    if (since >= until) throw invalidField(['query', 'since'], 'must be before until');
    if (until - since > 90 * DAY) throw invalidField(['query', 'since'], 'the window may be at most 90 days');
    const buckets = q.buckets ?? 24;
    const bucketMs = Math.max(1000, Math.ceil((until - since) / buckets / 1000) * 1000);

    let endpoints: EndpointRow[] = [];
    if (q.endpoint_id) {
      const ep = await ctx.store.getEndpoint(a.id, q.endpoint_id);
      if (!ep) throw notFoundError('Endpoint', q.endpoint_id);
      endpoints = [ep];
    } else {
      let after: string | null = null;
      for (;;) {
        const page = await ctx.store.listEndpoints(a.id, { limit: 250, after, order: 'asc' });
        endpoints.push(...page.items);
        if (page.done || page.items.length === 0 || endpoints.length >= MAX_ENDPOINTS) break;
        after = page.items[page.items.length - 1].id;
      }
    }

    const rows = await ctx.store.attemptBuckets(endpoints.map((e) => e.id), since, until, bucketMs);
    const count = Math.ceil((until - since) / bucketMs);
    const timeline = Array.from({ length: count }, (_, i) => ({ start: iso(since + i * bucketMs), attempts: 0, successes: 0, failures: 0 }));
    const per = new Map<string, { attempts: number; successes: number; durationMs: number; lastAt: number }>();
    for (const row of rows) {
      const t = timeline[Math.min(Math.max(row.bucket, 0), count - 1)];
      t.attempts += row.attempts;
      t.successes += row.successes;
      t.failures += row.attempts - row.successes;
      const s = per.get(row.endpointId) ?? { attempts: 0, successes: 0, durationMs: 0, lastAt: 0 };
      s.attempts += row.attempts;
      s.successes += row.successes;
      s.durationMs += row.durationMs;
      s.lastAt = Math.max(s.lastAt, row.lastAt);
      per.set(row.endpointId, s);
    }

    const out = await Promise.all(endpoints.map(async (ep) => {
      const s = per.get(ep.id);
      const failed = await ctx.store.listAttempts({ endpointId: ep.id }, { status: Status.fail }, { limit: 1, after: null, order: 'desc' });
      const e = failed.items[0];
      return {
        endpointId: ep.id,
        state: ep.disabled ? 'disabled' as const : ep.failing_since !== null ? 'failing' as const : 'healthy' as const,
        failingSince: ep.failing_since !== null ? iso(Number(ep.failing_since)) : null,
        attempts: s?.attempts ?? 0,
        successes: s?.successes ?? 0,
        failures: s ? s.attempts - s.successes : 0,
        successRate: s && s.attempts ? s.successes / s.attempts : null,
        meanLatencyMs: s && s.attempts ? Math.round(s.durationMs / s.attempts) : null,
        lastAttemptAt: s ? iso(s.lastAt) : null,
        lastError: e ? {
          attemptId: e.id, msgId: e.message_id, timestamp: iso(Number(e.created_at)), responseStatusCode: e.response_status_code,
          errorClass: e.error_class, errorDetail: e.error,
        } : null,
      };
    }));
    return { since: iso(since), until: iso(until), bucketSeconds: bucketMs / 1000, endpoints: out, timeline };
  });
}
