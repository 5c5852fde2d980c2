/**
 * Example payloads for an event type: the schema's own `examples` first, otherwise one built from
 * the schema (const, default, enum, then a value of the declared type), so send-example works for
 * every event type in the catalogue.
 */
type Schema = Record<string, any>;

export function exampleFromSchema(schema: Schema | undefined, depth = 0): unknown {
  if (!schema || typeof schema !== 'object' || depth > 8) return null;
  if (Array.isArray(schema.examples) && schema.examples.length) return schema.examples[0];
  if (schema.example !== undefined) return schema.example;
  if (schema.const !== undefined) return schema.const;
  if (schema.default !== undefined) return schema.default;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  for (const k of ['oneOf', 'anyOf', 'allOf']) if (Array.isArray(schema[k]) && schema[k].length) return exampleFromSchema(schema[k][0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type.find((t: string) => t !== 'null') : schema.type;
  switch (type) {
    case 'object':
    case undefined: {
      if (!schema.properties) return type === 'object' ? {} : null;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(schema.properties)) out[k] = exampleFromSchema(v as Schema, depth + 1);
      return out;
    }
    case 'array':
      return schema.items ? [exampleFromSchema(schema.items, depth + 1)] : [];
    case 'string':
      if (schema.format === 'date-time') return '2026-01-01T12:00:00Z';
      if (schema.format === 'email') return 'user@example.com';
      if (schema.format === 'uri') return 'https://example.com/';
      return 'string';
    case 'integer':
      return schema.minimum ?? 1;
    case 'number':
      return schema.minimum ?? 1.5;
    case 'boolean':
      return true;
    default:
      return null;
  }
}

/** The payload to send for an event type's example number `index` (schema version "1" first). */
export function exampleForEventType(schemas: Record<string, Schema> | null, index: number): Record<string, unknown> | null {
  if (!schemas) return null;
  const versions = Object.keys(schemas).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const s = schemas[v];
    if (Array.isArray(s.examples) && s.examples[index] && typeof s.examples[index] === 'object') return s.examples[index];
  }
  const built = exampleFromSchema(schemas[versions[0]]);
  return built && typeof built === 'object' && !Array.isArray(built) ? (built as Record<string, unknown>) : null;
}
