import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKoppel, type TestKoppel } from '../helpers.js';

/**
 * The operations of the Svix v1.1.1 API document (paths and methods) that Koppel serves, all of
 * them; HEAD is served by Fastify for every GET and not listed separately.
 */
const SVIX_OPERATIONS: Record<string, string[]> = {
  '/api/v1/app': ['get', 'post'],
  '/api/v1/app/{app_id}': ['get', 'put', 'patch', 'delete'],
  '/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}': ['get'],
  '/api/v1/app/{app_id}/attempt/msg/{msg_id}': ['get'],
  '/api/v1/app/{app_id}/endpoint': ['get', 'post'],
  '/api/v1/app/{app_id}/endpoint/{endpoint_id}': ['get', 'put', 'patch', 'delete'],
  '/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers': ['get', 'put', 'patch'],
  '/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg': ['get'],
  '/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover': ['post'],
  '/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret': ['get'],
  '/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate': ['post'],
  '/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example': ['post'],
  '/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats': ['get'],
  '/api/v1/app/{app_id}/msg': ['get', 'post'],
  '/api/v1/app/{app_id}/msg/{msg_id}': ['get'],
  '/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}': ['get'],
  '/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content': ['delete'],
  '/api/v1/app/{app_id}/msg/{msg_id}/content': ['delete'],
  '/api/v1/app/{app_id}/msg/{msg_id}/endpoint': ['get'],
  '/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend': ['post'],
  '/api/v1/auth/app-portal-access/{app_id}': ['post'],
  '/api/v1/auth/logout': ['post'],
  '/api/v1/event-type': ['get', 'post'],
  '/api/v1/event-type/{event_type_name}': ['get', 'put', 'patch', 'delete'],
  '/api/v1/health': ['get'],
  '/api/v1/health/ping': ['get'],
};

/** Success statuses the Svix document gives where Koppel must answer the same. */
const SVIX_SUCCESS: [string, string, string][] = [
  ['/api/v1/app', 'post', '201'],
  ['/api/v1/app/{app_id}', 'delete', '204'],
  ['/api/v1/app/{app_id}/endpoint', 'post', '201'],
  ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover', 'post', '202'],
  ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate', 'post', '204'],
  ['/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example', 'post', '200'],
  ['/api/v1/app/{app_id}/msg', 'post', '202'],
  ['/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend', 'post', '202'],
  ['/api/v1/auth/app-portal-access/{app_id}', 'post', '200'],
  ['/api/v1/auth/logout', 'post', '204'],
  ['/api/v1/event-type', 'post', '201'],
  ['/api/v1/health', 'get', '204'],
];

describe('OpenAPI document and docs page', () => {
  let k: TestKoppel;
  let doc: any;
  beforeAll(async () => {
    k = await startTestKoppel();
    const res = await fetch(`${k.url}/api/v1/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    doc = await res.json();
  });
  afterAll(async () => {
    await k.close();
  });

  it('is OpenAPI 3.1, served without an API key', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info.title).toBeTruthy();
    expect(doc.components.securitySchemes.HTTPBearer).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('contains every path and method of the Svix reference', () => {
    const missing: string[] = [];
    for (const [path, methods] of Object.entries(SVIX_OPERATIONS)) {
      for (const m of methods) if (!doc.paths[path]?.[m]) missing.push(`${m.toUpperCase()} ${path}`);
    }
    expect(missing).toEqual([]);
  });

  it('answers with the Svix success statuses', () => {
    const wrong = SVIX_SUCCESS.filter(([path, m, status]) => !doc.paths[path]?.[m]?.responses?.[status]).map(([p, m, s]) => `${m.toUpperCase()} ${p} → ${s}`);
    expect(wrong).toEqual([]);
  });

  it('names operations and documents errors', () => {
    for (const [path, methods] of Object.entries(SVIX_OPERATIONS)) {
      if (path.startsWith('/api/v1/health')) continue;
      for (const m of methods) {
        const op = doc.paths[path][m];
        expect(op.operationId, `${m} ${path}`).toBeTruthy();
        expect(Object.keys(op.responses), `${m} ${path}`).toEqual(expect.arrayContaining(['401', '404', '422']));
      }
    }
  });

  it('/docs answers 200 with HTML', async () => {
    const res = await fetch(`${k.url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect((await res.text()).toLowerCase()).toContain('<html');
  });
});
