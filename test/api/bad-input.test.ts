import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, startTestKoppel, type TestKoppel } from '../helpers.js';
import { createApp } from './support.js';

const BODY_LIMIT = 2048;

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

/**
 * A POST written straight with node:http: chunked (no Content-Length) or with an explicit
 * Content-Length, which fetch does not let a caller set.
 */
function rawPost(url: string, chunks: string[], framing: 'chunked' | 'content-length'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
    if (framing === 'chunked') headers['transfer-encoding'] = 'chunked';
    else headers['content-length'] = String(chunks.reduce((n, c) => n + Buffer.byteLength(c), 0));
    const req = http.request(url, { method: 'POST', headers });
    let answered = false;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error('no response within 5 s'));
    }, 5000);
    req.on('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        clearTimeout(timer);
        let body: any = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* keep text */
        }
        resolve({ status: res.statusCode!, headers: res.headers, body });
      });
    });
    // The server may answer 413 and close while we still write; that is the expected outcome.
    req.on('error', (e) => {
      if (!answered) {
        clearTimeout(timer);
        reject(e);
      }
    });
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe('bad input', () => {
  let k: TestKoppel;
  let app: any;
  /** Every status seen in this file, to check none was a 5xx. */
  const seen: { what: string; status: number }[] = [];

  const raw = async (what: string, method: string, path: string, init: { body?: string; headers?: Record<string, string>; auth?: string | null } = {}) => {
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (init.auth !== null) headers.authorization = init.auth ?? `Bearer ${ADMIN_KEY}`;
    const res = await fetch(k.url + path, { method, headers, body: init.body });
    const text = await res.text();
    let body: any = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      /* keep text */
    }
    seen.push({ what, status: res.status });
    return { status: res.status, body, headers: res.headers };
  };
  const json = (what: string, method: string, path: string, body: string, headers: Record<string, string> = {}) =>
    raw(what, method, path, { body, headers: { 'content-type': 'application/json', ...headers } });
  const locs = (body: any) => body.detail.map((d: any) => d.loc);

  beforeAll(async () => {
    k = await startTestKoppel({ KOPPEL_BODY_LIMIT: String(BODY_LIMIT) });
    app = await createApp(k, { name: 'Bad input' });
  });
  afterAll(async () => {
    await k.close();
  });

  it('a NUL character in a text field → stored (SQLite) or 400 invalid_text (PostgreSQL), never 500', async () => {
    const r = await k.api('POST', '/api/v1/app', { name: 'Acme\u0000B.V.' });
    if (k.koppel.ctx.store.dialect === 'postgres') {
      expect(r.status).toBe(400);
      expect(r.body).toEqual({ code: 'invalid_text', detail: expect.stringContaining('NUL') });
    } else {
      expect(r.status).toBe(201);
      expect(r.body.name).toBe('Acme\u0000B.V.');
    }
    // The same character inside a message payload is JSON and is stored escaped on both.
    const app = await createApp(k);
    const m = await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'a.b', payload: { note: 'x\u0000y' } });
    expect(m.status).toBe(202);
    expect((await k.api('GET', `/api/v1/app/${app.id}/msg/${m.body.id}`)).body.payload).toEqual({ note: 'x\u0000y' });
  });

  it('malformed JSON → 400 invalid_json', async () => {
    for (const body of ['{"name":', '{name: "x"}', "{'name':'x'}", '{"name":"x"}}']) {
      const r = await json(`malformed ${body}`, 'POST', '/api/v1/app', body);
      expect(r.status, body).toBe(400);
      expect(r.body.code).toBe('invalid_json');
      expect(typeof r.body.detail).toBe('string');
    }
    const empty = await json('empty JSON body', 'POST', '/api/v1/app', '');
    expect(empty.status).toBe(400);
    expect(empty.body.code).toBe('invalid_json');
  });

  it('JSON nested absurdly deep → 400 naming the limit, not a crash', async () => {
    // Its own server: this file's body limit is too small for these bodies.
    const big = await startTestKoppel({ KOPPEL_BODY_LIMIT: '1048576' });
    const bigApp = await createApp(big);
    const deep = '{"eventType":"a.b","payload":{"x":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}}';
    const r = await big.api('POST', `/api/v1/app/${bigApp.id}/msg`, deep);
    seen.push({ what: 'deep nesting', status: r.status });
    expect(r.status).toBe(400);
    expect(r.body.detail).toMatch(/nested more than 512 levels/);
    const fine = '{"eventType":"a.b","payload":{"x":' + '['.repeat(500) + ']'.repeat(500) + ',"s":"' + '['.repeat(600) + '"}}';
    expect((await big.api('POST', `/api/v1/app/${bigApp.id}/msg`, fine)).status).toBe(202);
    await big.close();
  });

  it('a __proto__ key → 400 saying which key to rename', async () => {
    const r = await json('__proto__ key', 'POST', `/api/v1/app/${app.id}/msg`, '{"eventType":"a.b","payload":{"__proto__":{"admin":true}}}');
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('invalid_json');
    expect(r.body.detail).toMatch(/__proto__/);
  });

  it('wrong types → 422 with loc naming the field', async () => {
    const name = await json('name number', 'POST', '/api/v1/app', JSON.stringify({ name: 123 }));
    expect(name.status).toBe(422);
    expect(name.body.code).toBe('validation');
    expect(locs(name.body)).toContainEqual(['body', 'name']);
    expect(name.body.detail[0]).toMatchObject({ msg: expect.any(String), type: expect.any(String) });

    const payload = await json('payload string', 'POST', `/api/v1/app/${app.id}/msg`, JSON.stringify({ eventType: 'a.b', payload: 'not an object' }));
    expect(payload.status).toBe(422);
    expect(locs(payload.body)).toContainEqual(['body', 'payload']);

    const nested = await json('filterTypes item', 'POST', `/api/v1/app/${app.id}/endpoint`, JSON.stringify({ url: 'https://example.com/', filterTypes: ['ok.type', 5] }));
    expect(nested.status).toBe(422);
    expect(locs(nested.body)).toContainEqual(['body', 'filterTypes', 1]);

    const query = await raw('limit not a number', 'GET', '/api/v1/app?limit=lots');
    expect(query.status).toBe(422);
    expect(locs(query.body)).toContainEqual(['query', 'limit']);
  });

  it('unknown fields → 422 naming the field', async () => {
    const r = await json('unknown field', 'POST', '/api/v1/app', JSON.stringify({ name: 'x', nmae: 'typo' }));
    expect(r.status).toBe(422);
    expect(locs(r.body)).toContainEqual(['body', 'nmae']);
    expect(r.body.detail[0].msg).toContain('nmae');

    const msg = await json('unknown message field', 'POST', `/api/v1/app/${app.id}/msg`, JSON.stringify({ eventType: 'a.b', payload: {}, evenType: 'x' }));
    expect(msg.status).toBe(422);
    expect(locs(msg.body)).toContainEqual(['body', 'evenType']);
  });

  it('missing required fields → 422 naming each', async () => {
    const r = await json('missing name', 'POST', '/api/v1/app', '{}');
    expect(r.status).toBe(422);
    expect(r.body.detail).toContainEqual({ loc: ['body', 'name'], msg: 'field required', type: 'value_error.missing' });

    const msg = await json('missing eventType and payload', 'POST', `/api/v1/app/${app.id}/msg`, '{}');
    expect(msg.status).toBe(422);
    expect(locs(msg.body)).toEqual(expect.arrayContaining([['body', 'eventType'], ['body', 'payload']]));
  });

  it('a body over the limit with Content-Length → 413', async () => {
    const r = await rawPost(`${k.url}/api/v1/app`, [JSON.stringify({ name: 'x'.repeat(BODY_LIMIT + 100) })], 'content-length');
    seen.push({ what: 'oversized with content-length', status: r.status });
    expect(r.status).toBe(413);
    expect(r.body.code).toBe('payload_too_large');
    // fetch sets Content-Length itself for a string body.
    const viaFetch = await json('oversized via fetch', 'POST', '/api/v1/app', JSON.stringify({ name: 'x'.repeat(BODY_LIMIT) }));
    expect(viaFetch.status).toBe(413);
  });

  it('a body over the limit sent chunked (no Content-Length) → 413', async () => {
    const big = await rawPost(`${k.url}/api/v1/app`, ['{"name":"', ...Array.from({ length: 10 }, () => 'y'.repeat(500)), '"}'], 'chunked');
    seen.push({ what: 'oversized chunked', status: big.status });
    expect(big.status).toBe(413);
    expect(big.body.code).toBe('payload_too_large');

    // A chunked body under the limit is fine: the 413 is about size, not framing.
    const small = await rawPost(`${k.url}/api/v1/app`, ['{"name":', '"chunked ok"}'], 'chunked');
    seen.push({ what: 'small chunked', status: small.status });
    expect(small.status).toBe(201);
    expect(small.body.name).toBe('chunked ok');
  });

  it('a non-JSON content type → 415', async () => {
    for (const ct of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'application/xml']) {
      const r = await raw(`content-type ${ct}`, 'POST', '/api/v1/app', { body: '{"name":"x"}', headers: { 'content-type': ct } });
      expect(r.status, ct).toBe(415);
      expect(r.body.code).toBe('unsupported_media_type');
    }
    const put = await raw('PUT text/plain', 'PUT', `/api/v1/app/${app.id}`, { body: '{"name":"x"}', headers: { 'content-type': 'text/plain' } });
    expect(put.status).toBe(415);
  });

  it('no API key → 401; a wrong or malformed key → 401', async () => {
    const none = await raw('no auth', 'GET', '/api/v1/app', { auth: null });
    expect(none.status).toBe(401);
    expect(none.body.code).toBe('authentication_failed');
    const wrong = await raw('wrong key', 'GET', '/api/v1/app', { auth: 'Bearer kpl_not-a-real-key' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.code).toBe('authentication_failed');
    const basic = await raw('basic auth', 'GET', '/api/v1/app', { auth: 'Basic dXNlcjpwYXNz' });
    expect(basic.status).toBe(401);
    // Authentication comes before validation: a keyless caller learns nothing about shapes.
    const keylessBad = await raw('no auth with bad body', 'POST', '/api/v1/app', { auth: null, body: '{', headers: { 'content-type': 'application/json' } });
    expect(keylessBad.status).toBe(401);
  });

  it('unknown route → 404 {code, detail}', async () => {
    for (const [method, path] of [['GET', '/api/v1/nothing-here'], ['DELETE', '/api/v1/app'], ['GET', '/nothing-here']] as const) {
      const r = await raw(`unknown ${method} ${path}`, method, path);
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.body).toEqual({ code: 'not_found', detail: expect.any(String) });
    }
  });

  it('invalid iterator → 422', async () => {
    for (const path of ['/api/v1/app?iterator=garbage', `/api/v1/app/${app.id}/endpoint?iterator=garbage`, `/api/v1/app/${app.id}/msg?iterator=garbage`, `/api/v1/app/${app.id}/msg?iterator=-app_nope`]) {
      const r = await raw(`iterator ${path}`, 'GET', path);
      expect(r.status, path).toBe(422);
      expect(locs(r.body)).toContainEqual(['query', 'iterator']);
    }
  });

  it('odd requests get the fitting 4xx, never a 5xx', async () => {
    const deep = JSON.stringify({ eventType: 'a.b', payload: JSON.parse('{"a":'.repeat(300) + '1' + '}'.repeat(300)) });
    const cases: { what: string; method: string; path: string; body?: string; headers?: Record<string, string>; status: number }[] = [
      { what: 'JSON array body', method: 'POST', path: '/api/v1/app', body: '[]', status: 422 },
      { what: 'JSON null body', method: 'POST', path: '/api/v1/app', body: 'null', status: 422 },
      { what: 'JSON string body', method: 'POST', path: '/api/v1/app', body: '"app"', status: 422 },
      { what: 'JSON number body', method: 'POST', path: '/api/v1/app', body: '42', status: 422 },
      { what: 'limit 0', method: 'GET', path: '/api/v1/app?limit=0', status: 422 },
      { what: 'limit huge', method: 'GET', path: '/api/v1/app?limit=100000', status: 422 },
      { what: 'bad event_types', method: 'GET', path: `/api/v1/app/${app.id}/msg?event_types=no%20spaces`, status: 422 },
      { what: 'bad status filter', method: 'GET', path: `/api/v1/app/${app.id}/attempt/endpoint/ep_x?status=9`, status: 422 },
      { what: 'id with control characters', method: 'GET', path: '/api/v1/app/%00%01', status: 422 },
      { what: 'id too long for the router', method: 'GET', path: `/api/v1/app/${'a'.repeat(400)}`, status: 400 },
      { what: 'id too long for a uid', method: 'GET', path: `/api/v1/app/${'a'.repeat(280)}`, status: 422 },
      { what: 'broken percent-encoding', method: 'GET', path: '/api/v1/app/%E0%A4%A', status: 400 },
      { what: 'message to an unknown app', method: 'POST', path: '/api/v1/app/app_00000000000000000000000000/msg', body: JSON.stringify({ eventType: 'a.b', payload: {} }), status: 404 },
      { what: 'bad after', method: 'GET', path: `/api/v1/app/${app.id}/msg?after=not-a-date`, status: 422 },
      { what: 'event type name with spaces', method: 'POST', path: '/api/v1/event-type', body: JSON.stringify({ name: 'has spaces', description: 'x' }), status: 422 },
      { what: 'schema with a bad type', method: 'POST', path: '/api/v1/event-type', body: JSON.stringify({ name: 'bad.schema', description: 'x', schemas: { '1': { type: 5 } } }), status: 422 },
      { what: 'negative rate limit', method: 'POST', path: '/api/v1/app', body: JSON.stringify({ name: 'x', rateLimit: -1 }), status: 422 },
      { what: 'idempotency key too long', method: 'POST', path: '/api/v1/app', body: JSON.stringify({ name: 'x' }), headers: { 'idempotency-key': 'x'.repeat(300) }, status: 400 },
      { what: 'send-example to an unknown endpoint', method: 'POST', path: `/api/v1/app/${app.id}/endpoint/ep_missing/send-example`, body: JSON.stringify({ eventType: 'a.b' }), status: 404 },
      // Deeply nested but valid and small: accepted.
      { what: 'deeply nested payload', method: 'POST', path: `/api/v1/app/${app.id}/msg`, body: deep, status: 202 },
    ];
    for (const c of cases) {
      const headers = { ...(c.body === undefined ? {} : { 'content-type': 'application/json' }), ...(c.headers ?? {}) };
      const r = await raw(c.what, c.method, c.path, { body: c.body, headers });
      expect(r.status, `${c.what}: ${JSON.stringify(r.body)}`).toBe(c.status);
      if (c.status >= 400) expect(r.body, c.what).toEqual({ code: expect.stringMatching(/^[a-z_]+$/), detail: expect.anything() });
    }
  });

  it('none of the requests in this file produced a 5xx', () => {
    expect(seen.length).toBeGreaterThan(20);
    expect(seen.filter((s) => s.status >= 500)).toEqual([]);
  });
});
