/**
 * Preview: runs a transformation (saved or about to be saved) over real recent messages or given
 * samples and reports, besides each output, which source fields the transformation never uses and
 * which required target fields its output lacks, so a mapping can be checked before it goes live.
 * A preview has a total time budget: once it is spent no further samples run, and the response
 * says how many were skipped, so one request cannot hold the sandbox for samples × timeout.
 */
import { mappedSources, normalisePath, type MappingTable } from './mapping.js';
import { applyTransformation, runnableOf, type Runnable } from './transformation.js';
import type { Sandbox, SandboxLimits, ErrorKind } from './sandbox.js';
import { sandboxBusy } from './busy.js';

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

/*
 * The target-schema check. It only walks the schema's `required`, `properties`, `items` and `type`
 * along the output, following local `$ref`s, so it costs at most one step per output value (and
 * per required name), capped in total. It deliberately does not compile the schema with a JSON
 * Schema validator: the schema comes from API callers (a preview's or a saved `targetSchema`, an
 * event type's schema), and a validator would run its `pattern`s as regular expressions on this
 * thread, where one catastrophic pattern blocks the API and the delivery worker for as long as it
 * likes, and would cache every compiled schema for good.
 */

/** Output levels followed below the root; deeper values are not checked. */
const MAX_SCHEMA_DEPTH = 64;
/** `$ref`s followed in a row for one value (a longer chain is reported, not followed). */
const MAX_REF_HOPS = 16;
/** Steps (values checked plus required names looked up) per output. */
const MAX_STEPS = 50_000;
/** Findings kept per list per output. */
const MAX_FINDINGS = 100;

type SchemaNode = Record<string, unknown>;
const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const JSON_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);

function hasType(v: unknown, t: string): boolean {
  switch (t) {
    case 'string': return typeof v === 'string';
    case 'number': return typeof v === 'number';
    case 'integer': return typeof v === 'number' && Number.isInteger(v);
    case 'boolean': return typeof v === 'boolean';
    case 'object': return isPlainObject(v);
    case 'array': return Array.isArray(v);
    case 'null': return v === null;
    default: return true;
  }
}

/** What a local `$ref` (`#`, `#/definitions/…`, `#/$defs/…`) points to in `root`, or undefined. */
function localRef(root: SchemaNode, ref: string): unknown {
  if (ref === '#') return root;
  if (!ref.startsWith('#/definitions/') && !ref.startsWith('#/$defs/')) return undefined;
  let cur: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    } catch {
      return undefined;
    }
    if (!isPlainObject(cur) || !Object.hasOwn(cur, seg)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

/**
 * Required fields missing from `output` (as paths: `klant.kvk`, array items as `regels[].prijs`)
 * and values of the wrong `type`, found by walking the schema's `required`, `properties`, `items`
 * and `type` along the output and following local `$ref`s. Other keywords are not checked.
 */
export function checkAgainstSchema(output: unknown, schema: Record<string, unknown> | null): { missing: string[]; errors: string[] } {
  if (!schema) return { missing: [], errors: [] };
  const root = schema;
  const missing = new Set<string>();
  const errors = new Set<string>();
  let steps = 0;
  let cut: string | null = null;
  const note = (set: Set<string>, text: string) => {
    if (set.size < MAX_FINDINGS) set.add(text);
    else cut ??= `only the first ${MAX_FINDINGS} findings are listed`;
  };
  const join = (path: string, name: string) => (path ? `${path}.${name}` : name);

  /** The schema node to apply, after its `$ref`s; null when there is nothing to check. */
  function resolve(node: unknown, where: string): SchemaNode | null {
    let cur = node;
    const seen = new Set<string>();
    while (isPlainObject(cur) && typeof cur.$ref === 'string') {
      const ref = cur.$ref;
      if (seen.has(ref) || seen.size >= MAX_REF_HOPS) {
        note(errors, `${where}: the $ref "${ref}" leads back to itself; not followed`);
        return null;
      }
      seen.add(ref);
      const target = localRef(root, ref);
      if (target === undefined) {
        note(errors, `${where}: the $ref "${ref}" is not followed (only #, #/definitions/… and #/$defs/… in the same schema are)`);
        return null;
      }
      cur = target;
    }
    return isPlainObject(cur) ? cur : null;
  }

  function walk(value: unknown, node: unknown, path: string, depth: number) {
    if (cut || ++steps > MAX_STEPS) {
      cut ??= `the output is too large to check completely (stopped after ${MAX_STEPS} steps)`;
      return;
    }
    const where = path || '(root)';
    const s = resolve(node, where);
    if (!s) return;
    if (s.type !== undefined) {
      const types = (Array.isArray(s.type) ? s.type : [s.type]).filter((t): t is string => typeof t === 'string' && JSON_TYPES.has(t));
      if (types.length > 0 && !types.some((t) => hasType(value, t))) {
        note(errors, `${where} must be ${types.join(' or ')}`);
        return;
      }
    }
    if (depth >= MAX_SCHEMA_DEPTH) {
      cut ??= `values nested deeper than ${MAX_SCHEMA_DEPTH} levels are not checked`;
      return;
    }
    if (isPlainObject(value)) {
      if (s.required !== undefined) {
        if (!Array.isArray(s.required)) note(errors, `${where}: the schema's "required" is not a list of field names`);
        else {
          steps += s.required.length;
          for (const name of s.required) if (typeof name === 'string' && !Object.hasOwn(value, name)) note(missing, join(path, name));
        }
      }
      // Over the output's own fields, so the cost follows the output, not the schema's size.
      if (isPlainObject(s.properties)) {
        for (const [name, v] of Object.entries(value)) if (Object.hasOwn(s.properties, name)) walk(v, s.properties[name], join(path, name), depth + 1);
      }
    } else if (Array.isArray(value) && s.items !== undefined) {
      if (Array.isArray(s.items)) {
        for (let i = 0; i < Math.min(value.length, s.items.length); i++) walk(value[i], s.items[i], `${path}[${i}]`, depth + 1);
      } else {
        for (const v of value) walk(v, s.items, `${path}[]`, depth + 1);
      }
    }
  }

  walk(output, root, '', 0);
  const errs = [...errors];
  if (cut) errs.push(`the check is incomplete: ${cut}`);
  return { missing: [...missing], errors: errs };
}

export interface PreviewRequest {
  kind: 'javascript' | 'jsonata' | 'mapping';
  code: string;
  mapping: MappingTable | null;
  url: string;
  samples: Sample[];
  /** Schema per sample: the transformation's target schema, else the event type's latest schema. */
  schemaFor: (s: Sample) => Promise<Record<string, unknown> | null>;
  /** Total time for running samples (default PREVIEW_BUDGET_MS); the last run may overrun it by its own limit. */
  budgetMs?: number;
}

/** Time one preview may spend running samples: 50 samples that each run to a 1 s timeout would take 50 s. */
export const PREVIEW_BUDGET_MS = 5000;

export async function preview(sandbox: Sandbox, limits: SandboxLimits, req: PreviewRequest) {
  const runnable: Runnable = runnableOf({ kind: req.kind, code: req.code });
  const results: SampleResult[] = [];
  const budgetMs = req.budgetMs ?? PREVIEW_BUDGET_MS;
  const started = performance.now();
  const total = req.samples.length;
  let note: string | null = null;
  for (const [i, s] of req.samples.entries()) {
    const left = budgetMs - (performance.now() - started);
    if (left <= 0) {
      note = `the preview's time budget (${budgetMs} ms) was spent; ${total - i} of ${total} samples were not run`;
      break;
    }
    // Waiting for a thread counts against the budget too.
    const r = await applyTransformation(sandbox, runnable, s.payload, { url: req.url, eventType: s.eventType, messageId: s.messageId ?? 'msg_preview' }, { ...limits, maxWaitMs: Math.min(limits.maxWaitMs ?? Infinity, left) });
    if (!r.ok && r.errorKind === 'busy') {
      // Nothing to show yet: a 503 the caller can retry. Otherwise show what ran and say so.
      if (results.length === 0) throw sandboxBusy(r.error);
      note = `the transformation sandbox was busy; ${total - i} of ${total} samples were not run`;
      break;
    }
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
    skippedSamples: total - results.length,
    note,
    unmappedSourceFields: unmapped,
    notMappableFields: notMappable,
    missingRequiredFields: [...new Set(results.flatMap((r) => r.missingRequiredFields))].sort(),
  };
}
