/**
 * What every provider verifier shares: the request as it arrived (raw bytes, lower-case headers),
 * the result shape, and constant-time comparison of signatures decoded strictly from the encoding
 * the provider uses, so a hex digest sent where base64 is expected (or the reverse) never matches.
 */
import crypto from 'node:crypto';

export interface IncomingRequest {
  /** The body exactly as received; verification never looks at a parsed or re-serialised copy. */
  rawBody: Buffer;
  /** Lower-case header names; a repeated header keeps its first value. */
  headers: Record<string, string>;
  /** Milliseconds since the epoch, for timestamp tolerance checks. */
  now: number;
}

export type Verification =
  | {
      ok: true;
      /** The provider's id for this delivery (stable across its retries), for de-duplication. */
      deliveryId: string | null;
      /** The event type the provider names, before Koppel's clean-up. */
      eventType: string | null;
      /** Set when the request is a handshake or ping: answered 2xx, logged, never forwarded. */
      ignore?: string;
      /** A body the provider expects in the answer (Slack's URL verification challenge). */
      reply?: unknown;
    }
  | { ok: false; reason: string };

export type Encoding = 'hex' | 'base64';
export type Algorithm = 'sha1' | 'sha256' | 'sha512';

export function hmac(algorithm: Algorithm, key: string | Buffer, ...parts: (string | Buffer)[]): Buffer {
  const h = crypto.createHmac(algorithm, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Decodes a signature strictly: null unless `text` is canonical lower/upper hex or padded base64. */
export function decodeSignature(text: string, encoding: Encoding): Buffer | null {
  const t = text.trim();
  if (encoding === 'hex') {
    if (t.length === 0 || t.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(t)) return null;
    return Buffer.from(t, 'hex');
  }
  if (t.length === 0 || t.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(t)) return null;
  const bytes = Buffer.from(t, 'base64');
  return bytes.toString('base64') === t ? bytes : null;
}

/** Constant-time equality of an expected digest and a candidate (different lengths never match). */
export function digestMatches(expected: Buffer, candidate: Buffer | null): boolean {
  return candidate !== null && candidate.length === expected.length && crypto.timingSafeEqual(expected, candidate);
}

/** Why a timestamp is unacceptable, or null when it is within `toleranceSeconds` of now. */
export function staleReason(timestamp: string, now: number, toleranceSeconds: number, header: string): string | null {
  if (!/^\d{1,12}$/.test(timestamp)) return `${header} is not a Unix timestamp in seconds`;
  const age = Math.floor(now / 1000) - Number(timestamp);
  if (Math.abs(age) > toleranceSeconds) {
    return `the timestamp in ${header} is ${Math.abs(age)} s ${age > 0 ? 'old' : 'in the future'}, outside the ${toleranceSeconds} s tolerance (a replay, or a clock that is off)`;
  }
  return null;
}

/** Parses a JSON body for the fields a provider keeps there (ids, types); null if it is not JSON. */
export function jsonBody(raw: Buffer): any {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return null;
  }
}

export const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

export const missing = (header: string): Verification => ({ ok: false, reason: `the ${header} header is missing; is the provider set up with this source's URL and secret?` });
export const mismatch = (header: string): Verification => ({
  ok: false,
  reason: `the signature in ${header} does not match the body; check that the source's secret is the provider's signing secret`,
});
