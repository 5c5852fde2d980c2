/**
 * Sealed, stateless credentials for the web UI, encrypted and authenticated with the SecretBox
 * (AES-256-GCM under the master key), so no table is needed and every API process accepts them:
 *
 * - the operator dashboard's session: the SHA-256 of the API key that signed in, a CSRF token and
 *   an expiry. It lives in an HttpOnly cookie; each request re-checks the key, so revoking the key
 *   ends the session within the Authenticator's two-second cache.
 * - the customer portal's access token (`kpp_…`): one application of one environment, read-only or
 *   not, the branding to show, and an expiry. It travels as a bearer token.
 *
 * Each payload names its type, and a token of one type is never accepted as the other. A token
 * cannot be altered without failing GCM authentication; one sealed under a master key that is no
 * longer configured is simply refused.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { SecretBox } from '../crypto/secret-box.js';

/** Prefix of portal access tokens; API keys start with `kpl_`. */
export const PORTAL_TOKEN_PREFIX = 'kpp_';
export const SESSION_COOKIE = 'koppel_session';
export const CSRF_HEADER = 'x-koppel-csrf';

export interface Branding {
  name: string;
  logoUrl: string | null;
  accentColor: string;
}

export interface SessionClaims {
  typ: 'session';
  /** SHA-256 (hex) of the API key used to sign in. */
  keyHash: string;
  csrf: string;
  exp: number;
}

export interface PortalClaims {
  typ: 'portal';
  env: string;
  app: string;
  readOnly: boolean;
  branding: Branding;
  exp: number;
}

type Claims = SessionClaims | PortalClaims;

/** Outcome of opening a token: the claims, or why it was refused (for a precise 401). */
export type Opened<T> = { ok: true; claims: T } | { ok: false; reason: 'malformed' | 'expired' };

const MAX_TOKEN_LIFE_MS = 30 * 86_400_000;

export class TokenSealer {
  constructor(private readonly box: SecretBox) {}

  private seal(claims: Claims): string {
    // base64url of the sealed text: the SecretBox format contains ":" which is not cookie- or
    // URL-fragment-friendly.
    return Buffer.from(this.box.encrypt(JSON.stringify(claims), `token:${claims.typ}`), 'utf8').toString('base64url');
  }

  private open(text: string, typ: Claims['typ'], now: number): Opened<Claims> {
    if (text.length === 0 || text.length > 8192 || !/^[A-Za-z0-9_-]+$/.test(text)) return { ok: false, reason: 'malformed' };
    let claims: Claims;
    try {
      claims = JSON.parse(this.box.decrypt(Buffer.from(text, 'base64url').toString('utf8'), `token:${typ}`)) as Claims;
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (!claims || claims.typ !== typ || typeof claims.exp !== 'number') return { ok: false, reason: 'malformed' };
    if (claims.exp <= now) return { ok: false, reason: 'expired' };
    // No token Koppel issues lives longer than this (sessions 30 days, portal links 7 days).
    if (claims.exp - now > MAX_TOKEN_LIFE_MS) return { ok: false, reason: 'malformed' };
    return { ok: true, claims };
  }

  newSession(keyHash: string, ttlMs: number, now = Date.now()): { value: string; claims: SessionClaims } {
    const claims: SessionClaims = { typ: 'session', keyHash, csrf: randomBytes(24).toString('base64url'), exp: now + ttlMs };
    return { value: this.seal(claims), claims };
  }

  openSession(value: string, now = Date.now()): Opened<SessionClaims> {
    return this.open(value, 'session', now) as Opened<SessionClaims>;
  }

  newPortalToken(claims: Omit<PortalClaims, 'typ'>): string {
    return PORTAL_TOKEN_PREFIX + this.seal({ typ: 'portal', ...claims });
  }

  openPortalToken(token: string, now = Date.now()): Opened<PortalClaims> {
    if (!token.startsWith(PORTAL_TOKEN_PREFIX)) return { ok: false, reason: 'malformed' };
    return this.open(token.slice(PORTAL_TOKEN_PREFIX.length), 'portal', now) as Opened<PortalClaims>;
  }
}

/** Constant-time comparison of two strings (false when the lengths differ). */
export function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The value of one cookie in a Cookie header, or null. */
export function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}
