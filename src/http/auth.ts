/**
 * API keys. A key is `kpl_` + 43 characters of base64url (32 random bytes); only its SHA-256 is
 * stored. Three kinds of principal come out of a key:
 * - admin: the key from KOPPEL_ADMIN_API_KEY or the generated one; acts on the default environment
 *   or on the one named in the `Koppel-Environment` header, and manages environments and keys;
 * - environment: everything inside one environment;
 * - application: only one application of one environment (its endpoints, messages, attempts).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Store } from '../store/port.js';
import type { ApiKeyRow } from '../store/schema.js';
import { ApiError } from './errors.js';

export interface Principal {
  kind: 'admin' | 'environment' | 'application';
  environmentId: string;
  applicationId: string | null;
  keyId: string | null;
  /** How the caller signed in: an API key (the default), a dashboard session cookie or a portal token. */
  via?: 'key' | 'session' | 'portal';
  /** A read-only portal token: every write is refused (enforced where the token is checked). */
  readOnly?: boolean;
}

/**
 * Credentials other than API keys, checked by src/sessions/: the dashboard's session cookie and
 * the customer portal's short-lived tokens. Each method returns null when the request does not
 * carry that kind of credential, so plain API keys keep working unchanged.
 */
export interface CredentialResolver {
  fromCookie(req: FastifyRequest, auth: Authenticator): Promise<Principal | null>;
  fromBearer(token: string, req: FastifyRequest): Promise<Principal | null>;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

export const KEY_PREFIX = 'kpl_';

export function generateApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

const CACHE_MS = 2_000;

/** Resolves bearer tokens to principals, with a short cache so revocation takes effect fast. */
export class Authenticator {
  private readonly adminHashes: Buffer[];
  private readonly cache = new Map<string, { row: ApiKeyRow | null; at: number }>();
  private credentials: CredentialResolver | null = null;

  constructor(
    private readonly store: Store,
    adminKeys: string[],
    private readonly defaultEnvironmentId: () => string,
  ) {
    this.adminHashes = adminKeys.map((k) => Buffer.from(hashApiKey(k), 'hex'));
  }

  forget(hash?: string) {
    if (hash) this.cache.delete(hash);
    else this.cache.clear();
  }

  /** Adds session cookies and portal tokens (src/sessions/) to the accepted credentials. */
  useCredentials(resolver: CredentialResolver) {
    this.credentials = resolver;
  }

  async authenticate(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    if (header === undefined && this.credentials) {
      const p = await this.credentials.fromCookie(req, this);
      if (p) return p;
    }
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) throw new ApiError('authentication_failed');
    const token = m[1];
    if (this.credentials) {
      const p = await this.credentials.fromBearer(token, req);
      if (p) return p;
    }
    return this.principalForKeyHash(hashApiKey(token), req);
  }

  /**
   * The principal of the API key with this SHA-256 (admin keys included), checked afresh (with
   * the short cache), so a session made from a key ends when the key is revoked.
   * @throws ApiError authentication_failed for unknown or revoked keys.
   */
  async principalForKeyHash(hash: string, req: FastifyRequest): Promise<Principal> {
    const hashBuf = Buffer.from(hash, 'hex');
    // Compare against every admin key without stopping early, so timing reveals nothing.
    let isAdmin = false;
    for (const h of this.adminHashes) isAdmin = timingSafeEqual(h, hashBuf) || isAdmin;
    if (isAdmin) {
      const env = req.headers['koppel-environment'];
      let environmentId = this.defaultEnvironmentId();
      if (typeof env === 'string' && env !== '') {
        const row = await this.store.getEnvironment(env);
        if (!row) throw new ApiError('not_found', `Environment ${env} (from the Koppel-Environment header) not found.`);
        environmentId = row.id;
      }
      return { kind: 'admin', environmentId, applicationId: null, keyId: null };
    }
    const now = Date.now();
    let cached = this.cache.get(hash);
    if (!cached || now - cached.at > CACHE_MS) {
      cached = { row: (await this.store.findApiKeyByHash(hash)) ?? null, at: now };
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(hash, cached);
    }
    const row = cached.row;
    if (!row || row.revoked_at !== null || row.environment_id === null) throw new ApiError('authentication_failed');
    return {
      kind: row.application_id ? 'application' : 'environment',
      environmentId: row.environment_id,
      applicationId: row.application_id,
      keyId: row.id,
    };
  }
}

/** Refuses application-scoped keys where a whole-environment key is needed. */
export function requireEnvironmentKey(p: Principal) {
  if (p.kind === 'application') throw new ApiError('forbidden', 'This API key is limited to one application; use an environment key for this.');
}

export function requireAdmin(p: Principal) {
  if (p.kind !== 'admin') throw new ApiError('forbidden', 'Only the admin API key may manage environments.');
}
