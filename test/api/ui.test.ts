/**
 * The web UI as served by Koppel: the single-page app at / and /portal with its client-side
 * routes, the Content-Security-Policy and other browser security headers, asset caching, and the
 * API's own headers. The UI is built by test/build-web.ts (vitest globalSetup).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKoppel, type TestKoppel } from '../helpers.js';

const directives = (csp: string) => Object.fromEntries(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));

describe('web UI serving and security headers', () => {
  let k: TestKoppel;
  beforeAll(async () => {
    k = await startTestKoppel({ KOPPEL_PORTAL_FRAME_ANCESTORS: 'https://app.example.com, https://*.acme.example' });
  });
  afterAll(async () => {
    await k.close();
  });

  it('serves the dashboard with a strict policy that forbids inline code and every framing', async () => {
    const res = await fetch(`${k.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toMatch(/<div id="root">/);
    // No inline script or style in the page itself.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|style="/);
    const csp = directives(res.headers.get('content-security-policy')!);
    expect(csp['default-src']).toEqual(["'self'"]);
    expect(csp['script-src']).toEqual(["'self'"]);
    expect(csp['style-src']).toEqual(["'self'"]);
    expect(csp['object-src']).toEqual(["'none'"]);
    expect(csp['base-uri']).toEqual(["'none'"]);
    expect(csp['frame-ancestors']).toEqual(["'none'"]);
    expect(csp['img-src']).toEqual(["'self'", 'data:']);
    expect(csp['require-trusted-types-for']).toEqual(["'script'"]);
    expect(JSON.stringify(csp)).not.toMatch(/unsafe-(inline|eval)/);
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('cache-control')).toBe('no-cache');
  });

  it('serves the portal framable by the configured origins only, with https logos allowed', async () => {
    for (const path of ['/portal', '/portal/', '/portal/endpoints/ep_1', '/portal/messages']) {
      const res = await fetch(`${k.url}${path}`);
      expect(res.status, path).toBe(200);
      const csp = directives(res.headers.get('content-security-policy')!);
      expect(csp['frame-ancestors']).toEqual(["'self'", 'https://app.example.com', 'https://*.acme.example']);
      expect(csp['img-src']).toEqual(["'self'", 'data:', 'https:']);
      expect(csp['script-src']).toEqual(["'self'"]);
      expect(res.headers.get('x-frame-options')).toBeNull();
      await res.arrayBuffer();
    }
  });

  it('answers client-side routes with the app, and unknown paths with the API 404', async () => {
    for (const path of ['/apps/app_x', '/apps/app_x/endpoints/ep_y', '/event-types']) {
      const res = await fetch(`${k.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      await res.arrayBuffer();
    }
    for (const path of ['/nope', '/api/v1/nope', '/assets/missing.js', '/portalx']) {
      const res = await fetch(`${k.url}${path}`, { headers: { authorization: 'Bearer x' } });
      expect(res.status, path).toBeGreaterThanOrEqual(401);
      expect(res.headers.get('content-type'), path).toMatch(/^application\/json/);
      await res.arrayBuffer();
    }
  });

  it('caches hashed assets for a year and serves them with their own types', async () => {
    const html = await (await fetch(`${k.url}/`)).text();
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1];
    const css = /href="(\/assets\/[^"]+\.css)"/.exec(html)![1];
    const r1 = await fetch(k.url + js);
    expect(r1.status).toBe(200);
    expect(r1.headers.get('content-type')).toMatch(/javascript/);
    expect(r1.headers.get('cache-control')).toMatch(/max-age=31536000.*immutable/);
    expect(r1.headers.get('x-content-type-options')).toBe('nosniff');
    await r1.arrayBuffer();
    const r2 = await fetch(k.url + css);
    expect(r2.headers.get('content-type')).toMatch(/^text\/css/);
    await r2.arrayBuffer();
    const icon = await fetch(`${k.url}/favicon.svg`);
    expect(icon.headers.get('content-type')).toBe('image/svg+xml');
    await icon.arrayBuffer();
  });

  it('marks API answers as data that is never rendered or framed', async () => {
    for (const [path, auth] of [['/api/v1/app', true], ['/api/v1/app', false]] as const) {
      const res = await fetch(`${k.url}${path}`, { headers: auth ? { authorization: 'Bearer test-admin-key-0123456789' } : {} });
      expect(res.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      await res.arrayBuffer();
    }
  });

  it('refuses a frame-ancestors setting that could change the policy', async () => {
    const { loadConfig } = await import('../../src/config.js');
    expect(() => loadConfig({ KOPPEL_PORTAL_FRAME_ANCESTORS: "https://a.example; script-src 'unsafe-inline'" })).toThrow(/not an origin/);
    expect(() => loadConfig({ KOPPEL_PORTAL_FRAME_ANCESTORS: 'https://a.example/path' })).toThrow(/not an origin/);
    expect(() => loadConfig({ KOPPEL_PORTAL_ACCENT_COLOR: 'red' })).toThrow(/#rrggbb/);
    expect(() => loadConfig({ KOPPEL_PORTAL_LOGO_URL: 'http://x.example/logo.png' })).toThrow(/https/);
  });
});
