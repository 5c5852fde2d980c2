/**
 * The mapping table: the declarative form of a transformation that the dashboard shows and edits
 * as rows (source field → target field, value maps, defaults, constants, fields that cannot be
 * mapped). It compiles to one JSONata expression, which is what runs; the table itself is kept so
 * it can be edited as a table again.
 *
 * A row is one of:
 * - `{source: "billing.email", target: "klant.email"}` — copy a field (dotted path, `[n]` picks
 *   an array item);
 * - the same with `values: {"Actieve Klant": "actief"}` — translate values (unlisted values pass
 *   through unchanged unless `default` is set) and/or `default` — used when the field is absent;
 * - `{expression: "$sum(line_items.total)", target: "totaal"}` — any JSONata expression;
 * - `{value: "webshop", target: "bron"}` — a constant;
 * - `{source: "billing.phone", target: null, note: "…"}` — documented as not mappable: shown in
 *   the table, left out of the output, and not reported as an unmapped field.
 */
import { Type, type Static } from 'typebox';

const Json = Type.Unknown({ description: 'Any JSON value.' });

export const MappingField = Type.Object(
  {
    target: Type.Union([Type.String({ minLength: 1, maxLength: 512, description: 'Dotted path in the output, e.g. "klant.email".' }), Type.Null()], {
      description: 'Where the value goes; null marks a source field that cannot be mapped.',
    }),
    source: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'Dotted path in the message payload, e.g. "billing.email" or "line_items[0].sku".' })),
    expression: Type.Optional(Type.String({ minLength: 1, maxLength: 16384, description: 'A JSONata expression over the payload, instead of a source path.' })),
    value: Type.Optional(Json),
    values: Type.Optional(Type.Record(Type.String(), Json, { description: 'Value map: source value (as text) → target value.' })),
    default: Type.Optional(Json),
    note: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);
export const MappingTable = Type.Object(
  { fields: Type.Array(MappingField, { minItems: 1, maxItems: 500 }) },
  { $id: 'MappingTable', additionalProperties: false, description: 'A field mapping, compiled to JSONata.' },
);
export type MappingTable = Static<typeof MappingTable>;
export type MappingField = Static<typeof MappingField>;

export interface MappingProblem {
  loc: (string | number)[];
  msg: string;
}

const SEGMENT = /^([^.[\]`]+)((?:\[\d{1,6}\])*)$/;

/** `a.b[0].c` → `` `a`.`b`[0].`c` ``; null when the path cannot be expressed. */
export function sourcePathToJsonata(path: string): string | null {
  const parts = path.split('.');
  const out: string[] = [];
  for (const p of parts) {
    const m = SEGMENT.exec(p);
    if (!m) return null;
    out.push('`' + m[1] + '`' + m[2]);
  }
  return out.join('.');
}

/** The field path without array indexes, as the unmapped-field report names fields: `a.b[].c`. */
export const normalisePath = (path: string) => path.replace(/\[\d+\]/g, '[]');

const literal = (v: unknown) => JSON.stringify(v ?? null);

function valueExpression(f: MappingField, path: string): string {
  const src = sourcePathToJsonata(path)!;
  const hasDefault = f.default !== undefined;
  if (!f.values && !hasDefault) return src;
  const fallback = hasDefault ? literal(f.default) : '$v';
  if (!f.values) return `($v := ${src}; $exists($v) ? $v : ${fallback})`;
  // Values are looked up by their text, so 1 and "1" both find the key "1".
  return `($v := ${src}; $m := ${literal(f.values)}; $exists($v) and $exists($lookup($m, $string($v))) ? $lookup($m, $string($v)) : ${fallback})`;
}

/** Checks a table; every problem names the row and field to fix. */
export function checkMapping(table: MappingTable): MappingProblem[] {
  const problems: MappingProblem[] = [];
  const targets = new Map<string, number>();
  table.fields.forEach((f, i) => {
    const loc = ['body', 'mapping', 'fields', i];
    const kinds = ['source', 'expression', 'value'].filter((k) => (f as Record<string, unknown>)[k] !== undefined);
    if (kinds.length !== 1) problems.push({ loc, msg: 'give exactly one of source, expression or value' });
    if (f.source !== undefined && sourcePathToJsonata(f.source) === null) {
      problems.push({ loc: [...loc, 'source'], msg: 'not a field path; use names separated by "." with optional [n] indexes, e.g. billing.email or line_items[0].sku (or use expression)' });
    }
    if ((f.values !== undefined || f.default !== undefined) && f.source === undefined) {
      problems.push({ loc, msg: 'values and default apply to a source field; use them with source' });
    }
    if (f.target === null) {
      if (f.source === undefined) problems.push({ loc: [...loc, 'target'], msg: 'a row without a target documents a source field that cannot be mapped; give its source' });
      return;
    }
    const segs = f.target.split('.');
    if (segs.some((s) => s === '')) problems.push({ loc: [...loc, 'target'], msg: 'not a field path; use names separated by "."' });
    const prev = targets.get(f.target);
    if (prev !== undefined) problems.push({ loc: [...loc, 'target'], msg: `"${f.target}" is already the target of row ${prev}` });
    targets.set(f.target, i);
  });
  // "a" and "a.b" cannot both be set: one would overwrite the other.
  for (const [t, i] of targets) {
    for (const [u] of targets) {
      if (u.startsWith(t + '.')) problems.push({ loc: ['body', 'mapping', 'fields', i, 'target'], msg: `"${t}" is a value but "${u}" puts a field inside it` });
    }
  }
  return problems;
}

interface Node {
  [key: string]: Node | string;
}

/** Compiles a checked table to a JSONata expression that builds the output object. */
export function compileMapping(table: MappingTable): string {
  const root: Node = {};
  for (const f of table.fields) {
    if (f.target === null) continue;
    const expr = f.source !== undefined ? valueExpression(f, f.source) : f.expression !== undefined ? `(${f.expression})` : literal(f.value);
    const segs = f.target.split('.');
    let node = root;
    for (const s of segs.slice(0, -1)) {
      if (typeof node[s] !== 'object') node[s] = {};
      node = node[s] as Node;
    }
    node[segs[segs.length - 1]] = expr;
  }
  const render = (n: Node, indent: string): string => {
    const inner = indent + '  ';
    const entries = Object.entries(n).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${typeof v === 'string' ? v : render(v, inner)}`);
    return `{\n${entries.join(',\n')}\n${indent}}`;
  };
  return render(root, '');
}

/** Source paths a table reads (normalised), and those it marks as not mappable. */
export function mappedSources(table: MappingTable): { mapped: string[]; notMappable: string[] } {
  const mapped: string[] = [];
  const notMappable: string[] = [];
  for (const f of table.fields) {
    if (f.source === undefined) continue;
    (f.target === null ? notMappable : mapped).push(normalisePath(f.source));
  }
  return { mapped, notMappable };
}
