/**
 * The log an operator gets at the default level (info): every failed attempt with the ids that
 * find it (message, endpoint, delivery, attempt, application), successful attempts only at debug,
 * and every API error with the request id the response names, its method, route and status.
 */
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

const INFO = 30;
const ERROR = 50;

describe('logs', () => {
  const lines: LogLine[] = [];
  let logger: Logger;
  let k: TestKoppel;
  let rcv: Receiver;

  beforeAll(async () => {
    // pino writes each line as one JSON text to the destination's write().
    logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    k = await startTestKoppel({}, {}, { logger });
    rcv = await startReceiver();
  });
  afterAll(async () => {
    await k?.close();
    await rcv?.close();
  });

  it('a failed attempt is logged at info with its ids; the successful retry is not', async () => {
    let calls = 0;
    rcv.respond((_req, res) => {
      res.statusCode = ++calls === 1 ? 500 : 200;
      res.end(calls === 1 ? 'down' : 'ok');
    });
    const app = (await k.api('POST', '/api/v1/app', { name: 'Logged' })).body;
    const ep = (await k.api('POST', `/api/v1/app/${app.id}/endpoint`, { url: `${rcv.url}/hook` })).body;
    const msg = (await k.api('POST', `/api/v1/app/${app.id}/msg`, { eventType: 'log.test', payload: { a: 1 } })).body;
    expect(msg.id).toBeTruthy();
    await rcv.waitFor(2, 10_000);
    const attempts = await eventually(async () => {
      const r = await k.api('GET', `/api/v1/app/${app.id}/attempt/msg/${msg.id}`);
      return r.body.data.length === 2 ? r.body.data : null;
    });
    const failedAttempt = attempts.find((a: { responseStatusCode: number }) => a.responseStatusCode === 500);
    expect(failedAttempt).toBeDefined();

    const failed = lines.filter((l) => l.msg.startsWith('attempt failed'));
    expect(failed).toHaveLength(1);
    const line = failed[0];
    expect(line.level).toBe(INFO);
    expect(line).toMatchObject({ msgId: msg.id, endpointId: ep.id, attemptId: failedAttempt.id, appId: app.id, statusCode: 500, errorClass: 'http_status', error: 'HTTP 500', attempt: 1, trigger: 'scheduled' });
    expect(line.deliveryId).toMatch(/^\w+_/);
    expect(typeof line.durationMs).toBe('number');
    expect(line.retryInMs).toEqual(expect.any(Number));
    // The success that followed is below the level: at volume, successes would flood the log.
    expect(lines.filter((l) => l.msg.startsWith('attempt succeeded'))).toEqual([]);
  });

  it('a 4xx answer is logged at info with the request id the response names, its method, route and status', async () => {
    const r = await k.api('GET', '/api/v1/app/app_doesnotexist');
    expect(r.status).toBe(404);
    const reqId = r.headers.get('x-request-id');
    expect(reqId).toBeTruthy();
    const line = lines.find((l) => l.reqId === reqId);
    expect(line).toMatchObject({ level: INFO, msg: 'request', method: 'GET', route: '/api/v1/app/:app_id', path: '/api/v1/app/app_doesnotexist', statusCode: 404, code: 'not_found' });
    expect(typeof line!.durationMs).toBe('number');

    // Refused before any route: no route pattern, still the id, status and error code.
    const unauthenticated = await k.api('GET', '/api/v1/app', undefined, { key: 'wrong' });
    expect(unauthenticated.status).toBe(401);
    expect(lines.find((l) => l.reqId === unauthenticated.headers.get('x-request-id'))).toMatchObject({ level: INFO, method: 'GET', statusCode: 401, code: 'authentication_failed' });
  });

  it('a 5xx is logged at error with the request id, the error and its stack', async () => {
    const store = k.koppel.ctx.store;
    const original = store.listApplications;
    store.listApplications = async () => {
      throw new Error('injected store failure');
    };
    try {
      const r = await k.api('GET', '/api/v1/app');
      expect(r.status).toBe(500);
      const reqId = r.headers.get('x-request-id');
      const mine = lines.filter((l) => l.reqId === reqId);
      // One line, from the error handler (the request log does not repeat it).
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ level: ERROR, msg: 'request failed', method: 'GET', route: '/api/v1/app', statusCode: 500, code: 'internal' });
      expect((mine[0].err as { message: string; stack: string }).message).toBe('injected store failure');
      expect((mine[0].err as { stack: string }).stack).toContain('injected store failure');
    } finally {
      store.listApplications = original;
    }
  });

  it('keeps a request id a proxy sent, replaces one that is not a plain token', async () => {
    const kept = await k.api('GET', '/api/v1/app/app_missing2', undefined, { headers: { 'x-request-id': 'lb-7f3a.42' } });
    expect(kept.headers.get('x-request-id')).toBe('lb-7f3a.42');
    expect(lines.find((l) => l.reqId === 'lb-7f3a.42')).toMatchObject({ statusCode: 404 });

    const long = 'x'.repeat(300);
    const replaced = await k.api('GET', '/api/v1/app/app_missing3', undefined, { headers: { 'x-request-id': long } });
    const id = replaced.headers.get('x-request-id');
    expect(id).not.toBe(long);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('successful requests are logged only at debug (the access log)', async () => {
    const before = await k.api('GET', '/api/v1/app');
    expect(before.status).toBe(200);
    expect(lines.find((l) => l.reqId === before.headers.get('x-request-id'))).toBeUndefined();
    logger.level = 'debug';
    try {
      const r = await k.api('GET', '/api/v1/app');
      expect(lines.find((l) => l.reqId === r.headers.get('x-request-id'))).toMatchObject({ level: 20, msg: 'request', method: 'GET', route: '/api/v1/app', statusCode: 200, code: null });
    } finally {
      logger.level = 'info';
    }
  });
});
