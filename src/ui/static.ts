/**
 * Serves the web UI built from `web/` into `web/dist/` (`npm run build:web`): the operator
 * dashboard at `/` and the customer portal at `/portal`, one single-page app, with the browser
 * security headers that make it safe to show third-party data.
 *
 * - Hashed assets under `/assets/` are cached for a year (their names change with their content);
 *   `index.html` is revalidated on every load so a new release is picked up at once.
 * - The client-side routes (`/`, `/apps/…`, `/event-types`, `/portal/…`) all answer `index.html`;
 *   every other unknown path keeps answering the API's JSON 404.
 * - A strict Content-Security-Policy: scripts, styles and connections only from Koppel itself, no
 *   inline script or style, no plugins, no <base>, and Trusted Types required, so even a bug that
 *   wrote third-party text into HTML could not run it. The dashboard may never be framed; the
 *   portal may be framed by the origins in KOPPEL_PORTAL_FRAME_ANCESTORS and may show a logo from
 *   any https URL (branding).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import type { Context } from '../context.js';

/** Where `vite build` puts the UI; the same relative path from src/ui and dist/ui. */
export const UI_DIR = fileURLToPath(new URL('../../web/dist/', import.meta.url));

/** Client-side routes of the single-page app (each also with any sub-path). */
const SPA_ROUTES = ['/apps', '/event-types', '/portal'];

function csp(frameAncestors: string, imgSrc: string): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src ${imgSrc}`,
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    `frame-ancestors ${frameAncestors}`,
    "require-trusted-types-for 'script'",
    'trusted-types none',
  ].join('; ');
}

/** Content-Security-Policy of the dashboard and the portal pages. */
export function uiPolicies(frameAncestorOrigins: string[]) {
  return {
    dashboard: csp("'none'", "'self' data:"),
    portal: csp(["'self'", ...frameAncestorOrigins].join(' '), "'self' data: https:"),
  };
}

export async function uiRoutes(app: FastifyInstance, ctx: Context) {
  const policies = uiPolicies(ctx.config.portalFrameAncestors);
  // JSON answers are never rendered as documents: no sniffing, nothing to run, never framed.
  const apiPolicy = "default-src 'none'; frame-ancestors 'none'";

  app.addHook('onSend', async (req, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    if (req.url.startsWith('/api/')) {
      reply.header('content-security-policy', apiPolicy);
      reply.header('x-frame-options', 'DENY');
    }
    return payload;
  });

  await app.register(fastifyStatic, {
    root: path.join(UI_DIR, 'assets'),
    prefix: '/assets/',
    decorateReply: false,
    index: false,
    // Asset names carry a content hash, so they never change under one URL.
    immutable: true,
    maxAge: '365d',
    suppressWarning: true,
    setHeaders: (reply) => {
      reply.header('cross-origin-resource-policy', 'same-origin');
    },
  });

  let indexHtml: string | null = null;
  const readIndex = (): string | null => {
    // Read once; retried while missing so a build made after the start is picked up.
    if (indexHtml === null) {
      try {
        indexHtml = fs.readFileSync(path.join(UI_DIR, 'index.html'), 'utf8');
      } catch {
        return null;
      }
    }
    return indexHtml;
  };

  const serve = (portal: boolean) => async (req: FastifyRequest, reply: FastifyReply) => {
    const html = readIndex();
    if (html === null) {
      return reply.code(404).send({ code: 'not_found', detail: 'The web UI is not built; run npm run build:web (npm start does it).' });
    }
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('content-security-policy', portal ? policies.portal : policies.dashboard)
      .header('referrer-policy', 'no-referrer')
      .header('cross-origin-opener-policy', 'same-origin')
      .header('permissions-policy', 'camera=(), microphone=(), geolocation=(), payment=(), usb=()');
    // frame-ancestors decides framing; X-Frame-Options is for browsers that predate it.
    if (!portal) reply.header('x-frame-options', 'DENY');
    return reply.send(html);
  };

  const hide = { schema: { hide: true } };
  app.get('/', hide, serve(false));
  for (const base of SPA_ROUTES) {
    const portal = base === '/portal';
    app.get(base, hide, serve(portal));
    app.get(`${base}/*`, hide, serve(portal));
  }

  app.get('/favicon.svg', hide, async (_req, reply) => {
    try {
      const svg = fs.readFileSync(path.join(UI_DIR, 'favicon.svg'));
      return reply.header('content-type', 'image/svg+xml').header('cache-control', 'public, max-age=86400').send(svg);
    } catch {
      return reply.code(404).send({ code: 'not_found', detail: 'No favicon; the web UI is not built.' });
    }
  });
}
