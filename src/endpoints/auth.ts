/**
 * Credentials for the target API an endpoint delivers to (seed 001: the accounting system's API
 * key): an API-key header, a bearer token or basic auth. Stored sealed with the SecretBox like
 * signing secrets, never returned by the API (only the type, header name and user name are), and
 * redacted in recorded attempts. The worker opens them once per endpoint version, not per delivery.
 */
import { Type, type Static } from 'typebox';
import type { SecretBox } from '../crypto/secret-box.js';
import { invalidField } from '../http/errors.js';
import { RESERVED_HEADERS } from './reserved-headers.js';

export type AuthType = 'api-key' | 'bearer' | 'basic';

/** The clear-text form, only ever inside the sealed value and the worker's memory. */
export interface StoredAuth {
  type: AuthType;
  header?: string;
  value?: string;
  username?: string;
  password?: string;
}

const HEADER_NAME = '^[!#$%&\'*+\\-.^_`|~0-9A-Za-z]+$';
const secretText = (description: string) => Type.String({ minLength: 1, maxLength: 4096, description });

export const EndpointAuthIn = Type.Object(
  {
    type: Type.Union([Type.Literal('api-key'), Type.Literal('bearer'), Type.Literal('basic')], { description: 'api-key: a header with a key; bearer: Authorization: Bearer <token>; basic: Authorization: Basic.' }),
    header: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: HEADER_NAME, description: 'For api-key: the header name, e.g. X-Api-Key.' })),
    key: Type.Optional(secretText('For api-key: the key.')),
    token: Type.Optional(secretText('For bearer: the token.')),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'For basic: the user name (no ":").' })),
    password: Type.Optional(secretText('For basic: the password.')),
  },
  { $id: 'EndpointAuthIn', additionalProperties: false, description: 'Credentials Koppel sends to the endpoint (Koppel extension); stored encrypted.' },
);

export const EndpointAuthOut = Type.Object(
  {
    type: Type.Union([Type.Literal('none'), Type.Literal('api-key'), Type.Literal('bearer'), Type.Literal('basic')]),
    header: Type.Union([Type.String(), Type.Null()], { description: 'The header the credentials go in.' }),
    username: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: 'EndpointAuthOut', description: 'How Koppel authenticates to the endpoint; the secret part is never returned.' },
);

// What an HTTP header value may hold (visible ASCII, space and tab): anything else is refused by
// the HTTP client at send time, which would fail every delivery instead of this request.
const noLineBreaks = (v: string | undefined, loc: string[]) => {
  if (v !== undefined && !/^[\t\x20-\x7e]*$/.test(v)) throw invalidField(loc, 'may contain only printable ASCII characters, spaces and tabs (it is sent in an HTTP header)');
};

/** Validates an EndpointAuthIn and turns it into what is sealed. */
export function authFromInput(b: Static<typeof EndpointAuthIn>): StoredAuth {
  const need = (field: 'header' | 'key' | 'token' | 'username' | 'password') => {
    if (b[field] === undefined) throw invalidField(['body', field], `required for type "${b.type}"`, 'value_error.missing');
  };
  const unexpected = (fields: ('header' | 'key' | 'token' | 'username' | 'password')[]) => {
    for (const f of fields) if (b[f] !== undefined) throw invalidField(['body', f], `not used with type "${b.type}"; remove it`, 'value_error.extra');
  };
  for (const f of ['key', 'token'] as const) noLineBreaks(b[f], ['body', f]);
  // Basic credentials travel base64-encoded (UTF-8), so any text works but control characters.
  for (const f of ['username', 'password'] as const) {
    if (b[f] !== undefined && /[\x00-\x1f\x7f]/.test(b[f]!)) throw invalidField(['body', f], 'may not contain control characters');
  }
  if (b.type === 'api-key') {
    need('header');
    need('key');
    unexpected(['token', 'username', 'password']);
    if (RESERVED_HEADERS.test(b.header!)) throw invalidField(['body', 'header'], `"${b.header}" is set by Koppel and cannot carry credentials; use a header such as X-Api-Key`);
    return { type: 'api-key', header: b.header!.toLowerCase(), value: b.key! };
  }
  if (b.type === 'bearer') {
    need('token');
    unexpected(['header', 'key', 'username', 'password']);
    return { type: 'bearer', value: b.token! };
  }
  need('username');
  need('password');
  unexpected(['header', 'key', 'token']);
  if (b.username!.includes(':')) throw invalidField(['body', 'username'], 'may not contain ":" (basic auth separates user and password with it)');
  return { type: 'basic', username: b.username!, password: b.password! };
}

export const sealAuth = (box: SecretBox, a: StoredAuth): string => box.encrypt(JSON.stringify(a));
export const openAuth = (box: SecretBox, sealed: string | null): StoredAuth | null => (sealed === null ? null : (JSON.parse(box.decrypt(sealed)) as StoredAuth));

/** The headers that carry the credentials (lower-case names). */
export function authHeaders(a: StoredAuth | null): Record<string, string> {
  if (!a) return {};
  if (a.type === 'api-key') return { [a.header!]: a.value! };
  if (a.type === 'bearer') return { authorization: `Bearer ${a.value}` };
  return { authorization: `Basic ${Buffer.from(`${a.username}:${a.password}`, 'utf8').toString('base64')}` };
}

/** What the API shows: never the secret. */
export function authSummary(a: StoredAuth | null): Static<typeof EndpointAuthOut> {
  if (!a) return { type: 'none', header: null, username: null };
  return { type: a.type, header: a.type === 'api-key' ? a.header! : 'authorization', username: a.type === 'basic' ? a.username! : null };
}
