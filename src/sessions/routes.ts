/**
 * Sign-in for the web UI and the customer portal's access links.
 *
 * Operator dashboard: `POST /api/v1/auth/session` takes an API key, checks it like any bearer
 * key and answers with an HttpOnly, SameSite=Strict cookie holding a sealed session (see
 * tokens.ts). The key never reaches the browser's storage or a URL. The dashboard is served by
 * Koppel itself, so the cookie is first-party and Strict costs nothing. Requests that change
 * something with the cookie must also carry the session's CSRF token in `X-Koppel-CSRF`: the
 * dashboard reads it from `GET /api/v1/auth/session` (cross-origin pages cannot read that answer),
 * which also covers sibling subdomains that SameSite does not count as cross-site.
 *
 * Customer portal: `POST /api/v1/auth/app-portal-access/{app_id}` (the Svix shape, with `expiry`,
 * `readOnly` and Koppel's `branding`) returns `{url, token}`. The token is scoped to one application
 * and expires; the URL carries it in the fragment (`/portal#token=…`), which browsers never send to
 * servers or in Referer. The portal keeps it in memory for the tab and sends it as a bearer token,
 * not a cookie: the portal usually runs in a cross-site iframe, where third-party cookies are
 * blocked or partitioned by current browsers and SameSite=None would reopen CSRF. A bearer token
 * is never sent automatically, so there is no CSRF to defend against.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { loadApp } from '../applications/routes.js';
import { ApplicationIn } from '../applications/schemas.js';
import { checkLogoUrl } from '../config.js';
import type { Context } from '../context.js';
import { hashApiKey, requireEnvironmentKey, type Authenticator, type CredentialResolver, type Principal } from '../http/auth.js';
import { ApiError, invalidField } from '../http/errors.js';
import { IdempotencyHeaders, Nullable, Uid, UnrecordedIdempotencyHeaders, errorResponses, iso } from '../http/common.js';
import { newId } from '../lib/ids.js';
import type { ApplicationRow } from '../store/schema.js';
import { CSRF_HEADER, PORTAL_TOKEN_PREFIX, SESSION_COOKIE, TokenSealer, readCookie, sameString, type Branding } from './tokens.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** What the resolver learnt about the credential, for GET /api/v1/auth/session. */
interface CredentialInfo {
  expiresAt: number | null;
  csrf: string | null;
  branding: Branding | null;
}
const infoOf = new WeakMap<FastifyRequest, CredentialInfo>();

export const SessionIn = Type.Object(
  { apiKey: Type.String({ minLength: 1, maxLength: 512, description: 'An API key created by Koppel (admin, environment or application key).' }) },
  { $id: 'SessionIn', additionalProperties: false },
);

const BrandingFields = {
  name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f\\u007f]+$', description: 'Name shown at the top of the portal, e.g. your product.' }),
  logoUrl: Nullable(Type.String({ minLength: 1, maxLength: 2048, description: 'https URL of a logo image.' })),
  accentColor: Type.String({ pattern: '^#[0-9a-fA-F]{6}$', description: 'Accent colour as #rrggbb.' }),
};
export const BrandingOut = Type.Object(BrandingFields, { $id: 'PortalBrandingOut' });
export const BrandingIn = Type.Object(
  { name: Type.Optional(BrandingFields.name), logoUrl: Type.Optional(BrandingFields.logoUrl), accentColor: Type.Optional(BrandingFields.accentColor) },
  { $id: 'PortalBrandingIn', additionalProperties: false, description: 'Koppel extension: how the portal looks; omitted fields use the KOPPEL_PORTAL_* settings.' },
);

export const SessionOut = Type.Object(
  {
    kind: Type.Union([Type.Literal('admin'), Type.Literal('environment'), Type.Literal('application')]),
    via: Type.Union([Type.Literal('key'), Type.Literal('session'), Type.Literal('portal')], { description: 'key: an API key in Authorization; session: the dashboard cookie; portal: a portal access token.' }),
    environmentId: Type.String(),
    applicationId: Nullable(Type.String()),
    readOnly: Type.Boolean(),
    expiresAt: Nullable(Type.String({ format: 'date-time' })),
    csrfToken: Nullable(Type.String({ description: 'For the dashboard cookie: send it as X-Koppel-CSRF with every request that changes something.' })),
    branding: Nullable(BrandingOut),
  },
  { $id: 'SessionOut' },
);

export const AppPortalAccessIn = Type.Object(
  {
    application: Type.Optional(Nullable(ApplicationIn)),
    expiry: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 604800, description: 'Seconds the link works; default KOPPEL_PORTAL_TOKEN_TTL (one hour).' }))),
    readOnly: Type.Optional(Nullable(Type.Boolean({ description: 'The customer may look but not change anything.' }))),
    branding: Type.Optional(Nullable(BrandingIn)),
  },
  { $id: 'AppPortalAccessIn', additionalProperties: false },
);
export const AppPortalAccessOut = Type.Object(
  {
    url: Type.String({ format: 'uri', description: 'Opens the portal for this application; embed it in an iframe or send it to the customer.' }),
    token: Type.String({ description: 'The access token inside the URL (kpp_…), for a portal you host yourself.' }),
  },
  { $id: 'AppPortalAccessOut' },
);

/** Checks the dashboard cookie and portal tokens; plugged into the Authenticator. */
export class SessionCredentials implements CredentialResolver {
  constructor(private readonly sealer: TokenSealer) {}

  async fromCookie(req: FastifyRequest, auth: Authenticator): Promise<Principal | null> {
    const value = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (value === null) return null;
    const opened = this.sealer.openSession(value);
    if (!opened.ok) {
      throw new ApiError('authentication_failed', opened.reason === 'expired' ? 'Your dashboard session has expired; sign in again.' : 'The session cookie is not valid; sign in again.');
    }
    const s = opened.claims;
    if (!SAFE_METHODS.has(req.method)) {
      const sent = req.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || !sameString(sent, s.csrf)) {
        throw new ApiError('forbidden', `Requests made with the dashboard session must send its CSRF token in the ${CSRF_HEADER} header (from GET /api/v1/auth/session).`);
      }
    }
    if (!/^[0-9a-f]{64}$/.test(s.keyHash)) throw new ApiError('authentication_failed', 'The session cookie is not valid; sign in again.');
    // The key is checked on every request, so a revoked key ends its sessions.
    const p = await auth.principalForKeyHash(s.keyHash, req).catch((e) => {
      if (e instanceof ApiError && e.code === 'authentication_failed') throw new ApiError('authentication_failed', 'The API key of this session was revoked; sign in again.');
      throw e;
    });
    infoOf.set(req, { expiresAt: s.exp, csrf: s.csrf, branding: null });
    return { ...p, via: 'session' };
  }

  async fromBearer(token: string, req: FastifyRequest): Promise<Principal | null> {
    if (!token.startsWith(PORTAL_TOKEN_PREFIX)) return null;
    const opened = this.sealer.openPortalToken(token);
    if (!opened.ok) {
      throw new ApiError('authentication_failed', opened.reason === 'expired' ? 'This portal link has expired; ask for a new one.' : 'This portal token is not valid; ask for a new link.');
    }
    const c = opened.claims;
    if (c.readOnly && !SAFE_METHODS.has(req.method)) {
      throw new ApiError('forbidden', 'This portal link is read-only; ask for a link with write access to make changes.');
    }
    // Looking is not holding the keys: a signing secret lets its holder forge deliveries.
    if (c.readOnly && /\/endpoint\/[^/]+\/secret\/?$/.test(req.url.split('?')[0])) {
      throw new ApiError('forbidden', 'A read-only portal link cannot reveal signing secrets; ask for a link with write access.');
    }
    infoOf.set(req, { expiresAt: c.exp, csrf: null, branding: c.branding });
    return { kind: 'application', environmentId: c.env, applicationId: c.app, keyId: null, via: 'portal', readOnly: c.readOnly };
  }
}

/** The Set-Cookie value for the session (or for clearing it with maxAgeS 0). */
function sessionCookie(ctx: Context, req: FastifyRequest, value: string, maxAgeS: number): string {
  // Secure whenever Koppel is reached over https; plain http only works for local use.
  const secure = ctx.config.publicUrl?.startsWith('https:') || req.protocol === 'https';
  // Path=/api/: the browser sends the cookie to the API only, never with static files.
  return `${SESSION_COOKIE}=${value}; Path=/api/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure ? '; Secure' : ''}`;
}

function noStore(reply: FastifyReply) {
  reply.header('cache-control', 'no-store');
}

const tags = ['Authentication'];

export function sessionRoutes(app: FastifyInstance, ctx: Context) {
  const sealer = new TokenSealer(ctx.box);
  ctx.auth.useCredentials(new SessionCredentials(sealer));
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  const sessionOut = (req: FastifyRequest, p: Principal): Static<typeof SessionOut> => {
    const info = infoOf.get(req);
    return {
      kind: p.kind, via: p.via ?? 'key', environmentId: p.environmentId, applicationId: p.applicationId, readOnly: p.readOnly === true,
      expiresAt: info?.expiresAt ? iso(info.expiresAt) : null, csrfToken: info?.csrf ?? null, branding: info?.branding ?? null,
    };
  };

  r.post('/api/v1/auth/session', {
    schema: {
      tags, operationId: 'v1.authentication.sign-in', summary: 'Sign in to the dashboard with an API key (Koppel extension)',
      description: 'Sets an HttpOnly session cookie; no Authorization header is needed. Answers 401 for an unknown or revoked key.',
      security: [], body: SessionIn, response: { 200: SessionOut, ...errorResponses },
    },
    // Signing in is not authenticated, so the idempotency hook never sees it; this keeps its
    // answer (the session's CSRF token) out of the database even if that changes.
    config: { idempotency: { kind: 'not-recorded' } },
  }, async (req, reply) => {
    noStore(reply);
    const hash = hashApiKey(req.body.apiKey.trim());
    const p = await ctx.auth.principalForKeyHash(hash, req).catch((e) => {
      if (e instanceof ApiError && e.code === 'authentication_failed') throw new ApiError('authentication_failed', 'That API key is not valid (unknown or revoked); copy it again from where Koppel printed or created it.');
      throw e;
    });
    const { value, claims } = sealer.newSession(hash, ctx.config.sessionTtlMs);
    reply.header('set-cookie', sessionCookie(ctx, req, value, Math.floor(ctx.config.sessionTtlMs / 1000)));
    infoOf.set(req, { expiresAt: claims.exp, csrf: claims.csrf, branding: null });
    return sessionOut(req, { ...p, via: 'session' });
  });

  r.get('/api/v1/auth/session', {
    schema: { tags, operationId: 'v1.authentication.get-session', summary: 'Who the caller is: kind, environment, application, expiry (Koppel extension)', response: { 200: SessionOut, ...errorResponses } },
  }, async (req, reply) => {
    noStore(reply);
    return sessionOut(req, req.principal);
  });

  r.post('/api/v1/auth/logout', {
    schema: {
      tags, operationId: 'v1.authentication.logout', summary: 'End the dashboard session (clears its cookie) or a portal session',
      description: 'API keys cannot be logged out (403); revoke them with DELETE /api/v1/api-key/{key_id}. A portal token is stateless: the portal forgets it, and it stops working at its expiry.',
      security: [], headers: IdempotencyHeaders, response: { 204: Type.Null(), ...errorResponses },
    },
  }, async (req, reply) => {
    noStore(reply);
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!m) throw new ApiError('authentication_failed');
      if (!m[1].startsWith(PORTAL_TOKEN_PREFIX)) {
        await ctx.auth.principalForKeyHash(hashApiKey(m[1]), req);
        throw new ApiError('forbidden', 'An API key cannot be logged out; revoke it with DELETE /api/v1/api-key/{key_id}.');
      }
    }
    // Always clear the cookie, even an expired or broken one, so the browser is signed out.
    reply.header('set-cookie', sessionCookie(ctx, req, '', 0));
    return reply.code(204).send(null);
  });

  r.post('/api/v1/auth/app-portal-access/:app_id', {
    schema: {
      tags, operationId: 'v1.authentication.app-portal-access', summary: 'Get a link to the customer portal of one application',
      description: 'The link holds a short-lived token limited to this application (read-only when asked). Needs an environment or admin key.',
      params: Type.Object({ app_id: Uid('Application id or uid.') }), headers: UnrecordedIdempotencyHeaders, body: Type.Optional(AppPortalAccessIn),
      response: { 200: AppPortalAccessOut, ...errorResponses },
    },
    // The answer is a bearer token, which must not sit in the database for replay; minting a
    // second short-lived one for a retry costs nothing (the Svix clients send a key every time).
    config: { idempotency: { kind: 'not-recorded' } },
  }, async (req, reply) => {
    requireEnvironmentKey(req.principal);
    const b = req.body ?? {};
    const brandingIn = b.branding ?? {};
    if (brandingIn.logoUrl) {
      const problem = checkLogoUrl(brandingIn.logoUrl);
      if (problem) throw invalidField(['body', 'branding', 'logoUrl'], `the logo URL ${problem}`, 'value_error.url');
    }
    let a: ApplicationRow;
    try {
      a = await loadApp(ctx, req.principal, req.params.app_id);
    } catch (e) {
      if (!(e instanceof ApiError) || e.code !== 'not_found' || !b.application) throw e;
      // As in Svix: `application` creates the application (uid from the path) when it is new.
      if (!/^[a-zA-Z0-9\-_.]+$/.test(req.params.app_id) || /^app_[0-9A-Z]{26}$/.test(req.params.app_id)) throw e;
      const now = Date.now();
      a = {
        id: newId('app'), environment_id: req.principal.environmentId, uid: req.params.app_id, name: b.application.name,
        throttle_rate: b.application.rateLimit ?? b.application.throttleRate ?? null, metadata: JSON.stringify(b.application.metadata ?? {}), created_at: now, updated_at: now,
      };
      if (!(await ctx.store.createApplication(a))) a = await loadApp(ctx, req.principal, req.params.app_id);
    }
    const branding: Branding = {
      name: brandingIn.name ?? ctx.config.portalName,
      logoUrl: brandingIn.logoUrl !== undefined ? brandingIn.logoUrl : ctx.config.portalLogoUrl,
      accentColor: (brandingIn.accentColor ?? ctx.config.portalAccentColor).toLowerCase(),
    };
    const ttlMs = b.expiry ? b.expiry * 1000 : ctx.config.portalTokenTtlMs;
    const token = sealer.newPortalToken({ env: a.environment_id, app: a.id, readOnly: b.readOnly === true, branding, exp: Date.now() + ttlMs });
    noStore(reply);
    return reply.code(200).send({ url: `${ctx.config.publicUrl}/portal#token=${token}`, token });
  });
}
