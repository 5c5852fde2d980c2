/**
 * /api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation: get, change (Svix's shape: `code`
 * and `enabled`, plus Koppel's `expression`, `mapping` and `targetSchema`) and preview. Every
 * change is checked in the sandbox before it is saved and becomes a new endpoint version.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { Context } from '../context.js';
import { endpointMatches } from '../endpoints/filter.js';
import { EndpointParams, loadEndpoint } from '../endpoints/routes.js';
import { saveEndpoint } from '../endpoints/versions.js';
import { ValidationFailed, invalidField } from '../http/errors.js';
import { EventTypeName, HttpErrorOut, IdempotencyHeaders, Nullable, errorResponses, iso } from '../http/common.js';
import { replayNoLaterThan } from '../http/idempotency.js';
import type { EndpointRow } from '../store/schema.js';
import { MappingTable, checkMapping, compileMapping } from './mapping.js';
import { preview, type Sample } from './preview.js';
import { throwIfBusy } from './busy.js';
import { limitsOf, sharedSandbox } from './sandbox.js';
import { buildTransformation, parseTransformation, type StoredTransformation, type TransformationKind } from './transformation.js';

const Code = Type.String({ minLength: 1, maxLength: 65536, description: 'JavaScript defining function handler(webhook) { …; return webhook; } (as in Svix).' });
const Expression = Type.String({ minLength: 1, maxLength: 65536, description: 'A JSONata expression over the payload; its value is sent ($eventType and $messageId are bound).' });
const TargetSchema = Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema of what the target API expects; the preview reports required fields the output lacks (it checks required, properties, items, type and local $refs only).' });

export const EndpointTransformationIn = Type.Object(
  {
    code: Type.Optional(Nullable(Code)),
    expression: Type.Optional(Nullable(Expression)),
    mapping: Type.Optional(Nullable(MappingTable)),
    enabled: Type.Optional(Type.Boolean()),
    targetSchema: Type.Optional(Nullable(TargetSchema)),
  },
  { $id: 'EndpointTransformationIn', additionalProperties: false },
);

export const EndpointTransformationOut = Type.Object(
  {
    code: Nullable(Type.String()),
    enabled: Type.Boolean(),
    kind: Nullable(Type.Union([Type.Literal('javascript'), Type.Literal('jsonata'), Type.Literal('mapping')])),
    expression: Nullable(Type.String({ description: 'The JSONata that runs (for a mapping: compiled from the table).' })),
    mapping: Nullable(MappingTable),
    targetSchema: Nullable(TargetSchema),
    updatedAt: Nullable(Type.String({ format: 'date-time' })),
  },
  { $id: 'EndpointTransformationOut' },
);

const PreviewSample = Type.Object({ eventType: EventTypeName, payload: Type.Unknown() }, { additionalProperties: false });
export const TransformationPreviewIn = Type.Object(
  {
    code: Type.Optional(Code),
    expression: Type.Optional(Expression),
    mapping: Type.Optional(MappingTable),
    targetSchema: Type.Optional(Nullable(TargetSchema)),
    count: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, default: 10, description: 'How many recent messages to run it on.' })),
    samples: Type.Optional(Type.Array(PreviewSample, { minItems: 1, maxItems: 50, description: 'Run on these instead of recent messages.' })),
  },
  { $id: 'TransformationPreviewIn', additionalProperties: false, description: 'What to preview: a candidate (code, expression or mapping) or, with none, the saved transformation.' },
);

export const TransformationPreviewOut = Type.Object(
  {
    kind: Type.String(),
    compiled: Nullable(Type.String({ description: 'For a mapping: the JSONata it compiles to.' })),
    results: Type.Array(
      Type.Object({
        messageId: Nullable(Type.String()),
        eventType: Type.String(),
        ok: Type.Boolean(),
        input: Type.Unknown(),
        output: Type.Unknown(),
        error: Nullable(Type.String()),
        errorKind: Nullable(Type.String()),
        durationMs: Type.Number(),
        missingRequiredFields: Type.Array(Type.String()),
        schemaErrors: Type.Array(Type.String()),
      }),
    ),
    skippedSamples: Type.Integer({ description: "Samples not run because the preview's time budget was spent or the sandbox was busy." }),
    note: Nullable(Type.String({ description: 'Why samples were skipped, if any were.' })),
    unmappedSourceFields: Type.Array(Type.String({ description: 'Source fields the transformation does not use.' })),
    notMappableFields: Type.Array(Type.String({ description: 'Source fields the mapping marks as not mappable.' })),
    missingRequiredFields: Type.Array(Type.String({ description: 'Required target fields missing from at least one output.' })),
  },
  { $id: 'TransformationPreviewOut' },
);

export function transformationOut(t: StoredTransformation | null): Static<typeof EndpointTransformationOut> {
  if (!t) return { code: null, enabled: false, kind: null, expression: null, mapping: null, targetSchema: null, updatedAt: null };
  return {
    code: t.kind === 'javascript' ? t.code : null, enabled: t.enabled, kind: t.kind, expression: t.kind === 'javascript' ? null : t.code,
    mapping: t.mapping, targetSchema: t.targetSchema, updatedAt: iso(t.updatedAt),
  };
}

/** Which candidate a body names: at most one of code, expression, mapping. */
function candidateOf(b: { code?: string | null; expression?: string | null; mapping?: Static<typeof MappingTable> | null }): { kind: TransformationKind; field: 'code' | 'expression' | 'mapping' } | null {
  const given = (['code', 'expression', 'mapping'] as const).filter((f) => b[f] !== undefined && b[f] !== null);
  if (given.length > 1) throw invalidField(['body', given[1]], `give only one of code (JavaScript), expression (JSONata) or mapping; this request has ${given.join(' and ')}`);
  if (given.length === 0) return null;
  return { field: given[0], kind: given[0] === 'code' ? 'javascript' : given[0] === 'expression' ? 'jsonata' : 'mapping' };
}

/** Compiles a candidate in the sandbox; a problem becomes a 422 on the field that holds it. */
async function checkCandidate(ctx: Context, kind: TransformationKind, field: 'code' | 'expression' | 'mapping', b: { code?: string | null; expression?: string | null; mapping?: Static<typeof MappingTable> | null }): Promise<string> {
  let code: string;
  if (kind === 'mapping') {
    const problems = checkMapping(b.mapping!);
    if (problems.length) throw new ValidationFailed(problems.map((p) => ({ loc: p.loc, msg: p.msg, type: 'value_error.mapping' })));
    code = compileMapping(b.mapping!);
    for (const [i, f] of b.mapping!.fields.entries()) {
      if (f.expression === undefined) continue;
      const r = await sharedSandbox(ctx.config.transformThreads).check('jsonata', f.expression, limitsOf(ctx.config));
      throwIfBusy(r);
      if (!r.ok) throw invalidField(['body', 'mapping', 'fields', i, 'expression'], `not a valid JSONata expression: ${r.error}`, 'value_error.jsonata');
    }
  } else {
    code = kind === 'javascript' ? b.code! : b.expression!;
  }
  const r = await sharedSandbox(ctx.config.transformThreads).check(kind === 'javascript' ? 'javascript' : 'jsonata', code, limitsOf(ctx.config));
  // A busy sandbox says nothing about the code: 503 and retry, not a 422 on the field.
  throwIfBusy(r);
  if (!r.ok) throw invalidField(['body', field], kind === 'javascript' ? `the JavaScript does not load: ${r.error}` : `not a valid JSONata expression: ${r.error}`, kind === 'javascript' ? 'value_error.javascript' : 'value_error.jsonata');
  return code;
}

/** The latest schema of an event type, for the preview's missing-field report. */
async function eventTypeSchema(ctx: Context, environmentId: string, eventType: string): Promise<Record<string, unknown> | null> {
  const et = await ctx.store.getEventType(environmentId, eventType);
  if (!et?.schemas) return null;
  const schemas = JSON.parse(et.schemas) as Record<string, Record<string, unknown>>;
  const latest = Object.keys(schemas).sort((a, b) => Number(b) - Number(a) || (b < a ? -1 : 1))[0];
  return latest === undefined ? null : schemas[latest];
}

/**
 * The most recent messages this endpoint would receive (its filters applied), newest first, and
 * when the first of their payloads expires (Infinity for none).
 */
async function recentSamples(ctx: Context, ep: EndpointRow, count: number): Promise<{ samples: Sample[]; expiresAt: number }> {
  const out: Sample[] = [];
  let expiresAt = Infinity;
  let after: string | null = null;
  // Read a few pages at most: an endpoint that matches almost nothing must not scan everything.
  for (let pages = 0; pages < 5 && out.length < count; pages++) {
    const page = await ctx.store.listMessages(ep.app_id, {}, { limit: 100, after, order: 'desc' });
    for (const m of page.items) {
      if (m.payload === null || !endpointMatches({ ...ep, disabled: 0 }, m.event_type, m.channels === null ? null : JSON.parse(m.channels))) continue;
      out.push({ messageId: m.id, eventType: m.event_type, payload: JSON.parse(m.payload) });
      expiresAt = Math.min(expiresAt, Number(m.expires_at));
      if (out.length >= count) break;
    }
    if (page.done || page.items.length === 0) break;
    after = page.items[page.items.length - 1].id;
  }
  return { samples: out, expiresAt };
}

const tags = ['Endpoint'];

export function transformationRoutes(app: FastifyInstance, ctx: Context) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const path = '/api/v1/app/:app_id/endpoint/:endpoint_id/transformation';

  r.get(path, {
    schema: { tags, operationId: 'v1.endpoint.transformation-get', summary: "Get the endpoint's transformation", params: EndpointParams, response: { 200: EndpointTransformationOut, ...errorResponses } },
  }, async (req) => transformationOut(parseTransformation((await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id)).ep.transformation)));

  r.patch(path, {
    schema: { tags, operationId: 'v1.endpoint.patch-transformation', summary: 'Set, change, enable or remove the transformation (creates a new endpoint version)', params: EndpointParams, body: EndpointTransformationIn, response: { 204: Type.Null(), ...errorResponses, 503: HttpErrorOut } },
  }, async (req, reply) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const b = req.body;
    const cur = parseTransformation(ep.transformation);
    const cand = candidateOf(b);
    const now = Date.now();
    let next: StoredTransformation | null;
    if (cand) {
      const code = await checkCandidate(ctx, cand.kind, cand.field, b);
      next = { ...buildTransformation(cand.kind, { code: b.code ?? undefined, expression: b.expression ?? undefined, mapping: b.mapping ?? undefined }, b.enabled ?? cur?.enabled ?? true, b.targetSchema !== undefined ? b.targetSchema : (cur?.targetSchema ?? null), now), code };
    } else if ((['code', 'expression', 'mapping'] as const).some((f) => b[f] === null)) {
      if (b.enabled) throw invalidField(['body', 'enabled'], 'cannot enable a transformation while removing it; give code, expression or mapping');
      next = null;
    } else {
      if (!cur) {
        if (b.enabled || b.targetSchema) throw invalidField(['body'], 'this endpoint has no transformation yet; give code (JavaScript), expression (JSONata) or mapping', 'value_error.missing');
        return reply.code(204).send(null);
      }
      next = { ...cur, enabled: b.enabled ?? cur.enabled, targetSchema: b.targetSchema !== undefined ? b.targetSchema : cur.targetSchema, updatedAt: now };
    }
    await saveEndpoint(ctx, ep, { ...ep, transformation: next === null ? null : JSON.stringify(next), updated_at: now }, 'transformation');
    return reply.code(204).send(null);
  });

  r.post(`${path}/preview`, {
    schema: {
      tags, operationId: 'v1.endpoint.transformation-preview', summary: 'Run a transformation on recent messages (or samples) without saving it: outputs, unmapped and missing fields (Koppel extension)',
      params: EndpointParams, headers: IdempotencyHeaders, body: TransformationPreviewIn, response: { 200: TransformationPreviewOut, ...errorResponses, 503: HttpErrorOut },
    },
  }, async (req) => {
    const { ep } = await loadEndpoint(ctx, req.principal, req.params.app_id, req.params.endpoint_id);
    const b = req.body;
    const saved = parseTransformation(ep.transformation);
    const cand = candidateOf(b);
    let kind: TransformationKind;
    let code: string;
    let mapping: Static<typeof MappingTable> | null = null;
    if (cand) {
      kind = cand.kind;
      code = await checkCandidate(ctx, cand.kind, cand.field, b);
      mapping = b.mapping ?? null;
    } else if (saved) {
      ({ kind, code, mapping } = saved);
    } else {
      throw invalidField(['body'], 'this endpoint has no transformation to preview; give code (JavaScript), expression (JSONata) or mapping', 'value_error.missing');
    }
    const targetSchema = b.targetSchema !== undefined ? b.targetSchema : (saved?.targetSchema ?? null);
    let samples: Sample[];
    if (b.samples) {
      samples = b.samples.map((s) => ({ messageId: null, eventType: s.eventType, payload: s.payload }));
    } else {
      const recent = await recentSamples(ctx, ep, b.count ?? 10);
      samples = recent.samples;
      // The outputs are made from stored payloads: a replay of them must not outlive those.
      if (recent.samples.length) replayNoLaterThan(req, recent.expiresAt);
    }
    const schemaCache = new Map<string, Promise<Record<string, unknown> | null>>();
    return preview(sharedSandbox(ctx.config.transformThreads), limitsOf(ctx.config), {
      kind, code, mapping, url: ep.url, samples,
      schemaFor: (s) => {
        if (targetSchema) return Promise.resolve(targetSchema);
        let p = schemaCache.get(s.eventType);
        if (!p) schemaCache.set(s.eventType, (p = eventTypeSchema(ctx, ep.environment_id, s.eventType)));
        return p;
      },
    });
  });
}
