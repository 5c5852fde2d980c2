/** Schemas and helpers shared by every resource's routes. */
import { Type, type TSchema } from 'typebox';
import { ApiError, invalidField } from './errors.js';

export const NAME_PATTERN = '^[a-zA-Z0-9\\-_.]+$';

export const Uid = (description = 'Optional unique identifier you choose; usable instead of the id in paths.') =>
  Type.String({ minLength: 1, maxLength: 256, pattern: NAME_PATTERN, description });
export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
export const Metadata = Type.Record(Type.String(), Type.String(), { description: 'Free-form string key/value pairs.' });
export const DateTime = (description: string) => Type.String({ format: 'date-time', description });
export const Channel = Type.String({ maxLength: 128, pattern: NAME_PATTERN });
export const EventTypeName = Type.String({ minLength: 1, maxLength: 256, pattern: NAME_PATTERN });

export const HttpErrorOut = Type.Object(
  { code: Type.String(), detail: Type.String() },
  { $id: 'HttpErrorOut', description: 'An error: a stable code and a detail that says how to fix it.' },
);
export const ValidationErrorOut = Type.Object(
  {
    code: Type.String(),
    detail: Type.Array(
      Type.Object({ loc: Type.Array(Type.Union([Type.String(), Type.Integer()])), msg: Type.String(), type: Type.String() }),
    ),
  },
  { $id: 'HTTPValidationError', description: 'The request did not validate; each item names a field (`loc`) and the problem.' },
);

/** Standard error responses for the OpenAPI document. */
export const errorResponses = {
  400: HttpErrorOut,
  401: HttpErrorOut,
  403: HttpErrorOut,
  404: HttpErrorOut,
  409: HttpErrorOut,
  413: HttpErrorOut,
  422: ValidationErrorOut,
  429: HttpErrorOut,
};

const idempotencyKeyHeader = (description: string) => Type.Object({ 'idempotency-key': Type.Optional(Type.String({ description })) });

export const IdempotencyHeaders = idempotencyKeyHeader('Repeat-safe key: a retry with the same key and body returns the first response.');
/** For routes whose response holds a key shown once (idempotency policy `credential-once`). */
export const CredentialOnceIdempotencyHeaders = idempotencyKeyHeader(
  'Repeat-safe key: a retry with the same key and body creates nothing more, but answers 409 idempotency_not_replayable instead of the first response, because that response held a key that is shown only once and not kept.',
);
/** For routes that mint a short-lived credential per call (idempotency policy `not-recorded`). */
export const UnrecordedIdempotencyHeaders = idempotencyKeyHeader(
  'Accepted for the Svix clients, and not recorded: the response holds a short-lived token, which Koppel does not keep, so every request (a retry too) gets a fresh one.',
);

export const iso = (ms: number) => new Date(ms).toISOString();

/** Parses an optional ISO date-time query value (already format-checked) to ms. */
export function parseTime(value: string | undefined | null, field: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw invalidField(['query', field], 'not a valid date-time; use RFC 3339 like 2026-01-31T12:00:00Z', 'value_error.datetime');
  return ms;
}

/** Event type lists arrive as repeated params or one comma-separated value (as the Svix client sends them). */
export function splitList(value: string | string[] | undefined, field: string): string[] | undefined {
  if (value === undefined) return undefined;
  const items = (Array.isArray(value) ? value : [value]).flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!new RegExp(NAME_PATTERN).test(item) || item.length > 256) {
      throw invalidField(['query', field], `"${item}" is not a valid name; use letters, digits, "-", "_" and "."`, 'value_error.str.regex');
    }
  }
  return items.length ? items : undefined;
}

export const parseJson = <T>(text: string | null, fallback: T): T => (text === null ? fallback : (JSON.parse(text) as T));

export function notFoundError(what: string, id: string) {
  return new ApiError('not_found', `${what} "${id}" not found.`);
}

