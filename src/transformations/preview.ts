/**
 * Preview: runs a transformation (saved or about to be saved) over real recent messages or given
 * samples and reports, besides each output, which source fields the transformation never uses and
 * which required target fields its output lacks, so a mapping can be checked before it goes live.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { mappedSources, normalisePath, type MappingTable } from './mapping.js';
import { applyTransformation, runnableOf, type Runnable } from './transformation.js';
import type { Sandbox, SandboxLimits, ErrorKind } from './sandbox.js';

export interface Sample {
  messageId: string | null;
  eventType: string;
  payload: unknown;
}

export interface SampleResult {
  messageId: string | null;
  eventType: string;
  ok: boolean;
  input: unknown;
  output: unknown;
  error: string | null;
  errorKind: ErrorKind | null;
  durationMs: number;
  missingRequiredFields: string[];
  schemaErrors: string[];
}

/** Every leaf field of a JSON value as a path (`a.b`, arrays as `items[].sku`). */
export function leafPaths(value: unknown, prefix = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    if (value.length === 0 && prefix) out.add(`${prefix}[]`);
    for (const v of value) leafPaths(v, `${prefix}[]`, out);
  } else if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0 && prefix) out.add(prefix);
    for (const [k, v] of entries) leafPaths(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out.add(prefix);
  }
  return out;
}

/** Names a piece of code mentions: identifiers, backquoted names and string literals. */
function mentionedNames(code: string): Set<string> {
  const names = new Set<string>();
  for (const m of code.matchAll(/[A-Za-z_$][\w$]*/g)) names.add(m[0]);
  for (const m of code.matchAll(/`([^`]+)`|"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'/g)) names.add(m[1] ?? m[2] ?? m[3]);
  return names;
}

const segmentsOf = (path: string) => path.split('.').map((s) => s.replace(/\[\]/g, '')).filter(Boolean);

/**
 * Source fields no row (for a mapping table) or no mention (for code) accounts for. For a table the
 * answer is exact; for JSONata and JavaScript a field counts as used when the code names every
 * segment of its path, which is what a reader would check too.
 */
export function unmappedFields(samples: unknown[], kind: 'javascript' | 'jsonata' | 'mapping', code: string, mapping: MappingTable | null): { unmapped: string[]; notMappable: string[] } {
  const leaves = new Set<string>();
  for (const s of samples) leafPaths(s, '', leaves);
  const covers = (prefix: string, leaf: string) => leaf === prefix || leaf.startsWith(`${prefix}.`) || leaf.startsWith(`${prefix}[`);
  let notMappable: string[] = [];
  let isUsed: (leaf: string) => boolean;
  if (kind === 'mapping' && mapping) {
    const m = mappedSources(mapping);
    notMappable = m.notMappable;
    const exprNames = mentionedNames(mapping.fields.map((f) => f.expression ?? '').join('\n'));
    isUsed = (leaf) => m.mapped.some((p) => covers(p, leaf)) || m.notMappable.some((p) => covers(p, leaf)) || segmentsOf(leaf).every((s) => exprNames.has(s));
  } else {
    const names = mentionedNames(code);
    isUsed = (leaf) => segmentsOf(leaf).every((s) => names.has(s));
  }
  return { unmapped: [...leaves].filter((l) => !isUsed(l)).sort(), notMappable: notMappable.map(normalisePath) };
}

const ajv = new Ajv({ allErrors: true, strict: false });
(addFormats as unknown as (a: Ajv) => void)(ajv);
const validators = new Map<string, ValidateFunction | Error>();

function validatorFor(schema: Record<string, unknown>): ValidateFunction | Error {
  const key = JSON.stringify(schema);
  let v = validators.get(key);
  if (!v) {
    try {
      v = ajv.compile(schema);
    } catch (e) {
      v = new Error(`the target schema is not a valid JSON Schema: ${(e as Error).message}`);
    }
    if (validators.size > 200) validators.clear();
    validators.set(key, v);
  }
  return v;
}

const dotted = (pointer: string) => pointer.split('/').filter(Boolean).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')).join('.');

/** Required fields missing from `output`, and other schema violations, as readable paths. */
export function checkAgainstSchema(output: unknown, schema: Record<string, unknown> | null): { missing: string[]; errors: string[] } {
  if (!schema) return { missing: [], errors: [] };
  const v = validatorFor(schema);
  if (v instanceof Error) return { missing: [], errors: [v.message] };
  if (v(output)) return { missing: [], errors: [] };
  const missing: string[] = [];
  const errors: string[] = [];
  for (const e of (v.errors ?? []) as ErrorObject[]) {
    if (e.keyword === 'required') {
      const base = dotted(e.instancePath);
      missing.push(base ? `${base}.${(e.params as { missingProperty: string }).missingProperty}` : (e.params as { missingProperty: string }).missingProperty);
    } else {
      errors.push(`${dotted(e.instancePath) || '(root)'} ${e.message}`);
    }
  }
  return { missing, errors };
}

export interface PreviewRequest {
  kind: 'javascript' | 'jsonata' | 'mapping';
  code: string;
  mapping: MappingTable | null;
  url: string;
  samples: Sample[];
  /** Schema per sample: the transformation's target schema, else the event type's latest schema. */
  schemaFor: (s: Sample) => Promise<Record<string, unknown> | null>;
}

export async function preview(sandbox: Sandbox, limits: SandboxLimits, req: PreviewRequest) {
  const runnable: Runnable = runnableOf({ kind: req.kind, code: req.code });
  const results: SampleResult[] = [];
  for (const s of req.samples) {
    const r = await applyTransformation(sandbox, runnable, s.payload, { url: req.url, eventType: s.eventType, messageId: s.messageId ?? 'msg_preview' }, limits);
    const check = r.ok ? checkAgainstSchema(r.output, await req.schemaFor(s)) : { missing: [], errors: [] };
    results.push({
      messageId: s.messageId, eventType: s.eventType, ok: r.ok, input: s.payload, output: r.ok ? r.output : null, error: r.ok ? null : r.error,
      errorKind: r.ok ? null : r.errorKind, durationMs: r.durationMs, missingRequiredFields: check.missing, schemaErrors: check.errors,
    });
  }
  const { unmapped, notMappable } = unmappedFields(req.samples.map((s) => s.payload), req.kind, req.code, req.mapping);
  return {
    kind: req.kind,
    compiled: req.kind === 'mapping' ? req.code : null,
    results,
    unmappedSourceFields: unmapped,
    notMappableFields: notMappable,
    missingRequiredFields: [...new Set(results.flatMap((r) => r.missingRequiredFields))].sort(),
  };
}
