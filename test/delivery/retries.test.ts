/**
 * Delivery behaviour end to end: a real Koppel per test (each needs its own settings) sending to
 * loopback receivers whose answers the test scripts.
 */
import crypto from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { generateSecret } from '../../src/delivery/signature.js';
import { eventually, startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let receivers: Receiver[] = [];
let koppels: TestKoppel[] = [];

afterEach(async () => {
  // Receivers first: attempts still waiting on a receiver end at once, so Koppel drains quickly.
  const rs = receivers;
  const ks = koppels;
  receivers = [];
  koppels = [];
  await Promise.allSettled(rs.map((r) => r.close()));
  await Promise.allSettled(ks.map((k) => k.close()));
});

async function receiver(): Promise<Receiver> {
  const r = await startReceiver();
  receivers.push(r);
  return r;
}

interface Attempt {
  id: string;
  msgId: string;
  endpointId: string;
  response: string;
  responseStatusCode: number;
  responseTruncated: boolean;
  status: number;
  timestamp: string;
  errorClass: string | null;
  errorDetail: string | null;
  requestHeaders: Record<string, string>;
}

/** A Koppel with one application and one endpoint pointing at `url`. */
async function setup(env: Record<string, string>, url: string, endpoint: Record<string, unknown> = {}) {
  const k = await startTestKoppel(env);
  koppels.push(k);
  const app = await k.api('POST', '/api/v1/app', { name: 'Acme' });
  expect(app.status).toBe(201);
  const appId: string = app.body.id;
  const addEndpoint = async (u: string, extra: Record<string, unknown> = {}) => {
    const ep = await k.api('POST', `/api/v1/app/${appId}/endpoint`, { url: u, ...extra });
    expect(ep.status, JSON.stringify(ep.body)).toBe(201);
    return ep.body.id as string;
  };
  const epId = await addEndpoint(url, endpoint);
  const send = async (payload: unknown = { n: 1 }) => {
    const m = await k.api('POST', `/api/v1/app/${appId}/msg`, { eventType: 'order.created', payload });
    expect(m.status, JSON.stringify(m.body)).toBe(202);
    return m.body.id as string;
  };
  /** Attempts of a message, oldest first. */
  const attempts = async (msgId: string): Promise<Attempt[]> => {
    const r = await k.api('GET', `/api/v1/app/${appId}/attempt/msg/${msgId}?limit=250`);
    expect(r.status).toBe(200);
    return (r.body.data as Attempt[]).slice().reverse();
  };
  /** Delivery state of a message at each of its endpoints. */
  const destinations = async (msgId: string): Promise<{ id: string; status: number }[]> => {
    const r = await k.api('GET', `/api/v1/app/${appId}/msg/${msgId}/endpoint`);
    expect(r.status).toBe(200);
    return r.body.data;
  };
  const getEndpoint = async (id = epId) => (await k.api('GET', `/api/v1/app/${appId}/endpoint/${id}`)).body;
  return { k, appId, epId, addEndpoint, send, attempts, destinations, getEndpoint };
}

describe('retries', () => {
  it('retries a 500 until a 200, with the same webhook-id and a fresh timestamp each attempt', async () => {
    const rcv = await receiver();
    let n = 0;
    rcv.respond((_req, res) => {
      n++;
      res.statusCode = n <= 2 ? 500 : 200;
      res.end(n <= 2 ? 'boom' : 'ok');
    });
    const s = await setup({ KOPPEL_RETRY_SCHEDULE: '0,0.1,0.2' }, `${rcv.url}/hook`);
    const secret = (await s.k.api('GET', `/api/v1/app/${s.appId}/endpoint/${s.epId}/secret`)).body.key as string;
    const msgId = await s.send({ id: 1 });

    await rcv.waitFor(3);
    const dest = await eventually(async () => {
      const d = await s.destinations(msgId);
      return d.length === 1 && d[0].status === 0 && d;
    });
    expect(dest[0].id).toBe(s.epId);
    const attempts = await eventually(async () => {
      const a = await s.attempts(msgId);
      return a.length === 3 && a;
    });
    await sleep(300); // nothing more may come
    expect(rcv.requests).toHaveLength(3);

    expect(attempts.map((a) => a.status)).toEqual([2, 2, 0]);
    expect(attempts.map((a) => a.responseStatusCode)).toEqual([500, 500, 200]);
    expect(attempts.map((a) => a.errorClass)).toEqual(['http_status', 'http_status', null]);

    const wh = new Webhook(secret);
    for (const [i, req] of rcv.requests.entries()) {
      expect(req.headers['webhook-id']).toBe(msgId);
      expect(req.headers['svix-id']).toBe(msgId);
      // The timestamp is taken when the attempt starts (not when the message was created) ...
      const ts = Number(req.headers['webhook-timestamp']);
      expect(Math.abs(ts - Math.floor(req.at / 1000))).toBeLessThanOrEqual(1);
      expect(attempts[i].requestHeaders['webhook-timestamp']).toBe(req.headers['webhook-timestamp']);
      expect(ts).toBe(Math.floor(Date.parse(attempts[i].timestamp) / 1000));
      // ... and the signature covers that attempt's timestamp.
      expect(wh.verify(req.body, req.headers as Record<string, string>)).toEqual({ id: 1 });
    }
    // Attempts are spaced by the schedule (0.1 s and 0.2 s, ±20 %).
    const gaps = [rcv.requests[1].at - rcv.requests[0].at, rcv.requests[2].at - rcv.requests[1].at];
    expect(gaps[0]).toBeGreaterThanOrEqual(70);
    expect(gaps[1]).toBeGreaterThanOrEqual(150);
  });

  it('works the same with the HTTP exchanges on a delivery thread (KOPPEL_DELIVERY_THREADS=1)', async () => {
    const rcv = await receiver();
    let n = 0;
    rcv.respond((_req, res) => {
      n++;
      res.statusCode = n === 1 ? 500 : 200;
      res.end(n === 1 ? 'boom' : 'ok');
    });
    const s = await setup({ KOPPEL_RETRY_SCHEDULE: '0,0.1', KOPPEL_DELIVERY_THREADS: '1' }, `${rcv.url}/hook`);
    const msgId = await s.send({ id: 1 });
    await rcv.waitFor(2);
    const attempts = await eventually(async () => {
      const a = await s.attempts(msgId);
      return a.length === 2 && a;
    });
    expect(attempts.map((a) => [a.status, a.responseStatusCode, a.response])).toEqual([[2, 500, 'boom'], [0, 200, 'ok']]);
    expect(rcv.requests[0].headers['webhook-id']).toBe(msgId);
  });

  it('gives up after the schedule is exhausted: status fail and one attempt per schedule entry', async () => {
    const rcv = await receiver();
    rcv.respond((_req, res) => {
      res.statusCode = 500;
      res.end('down');
    });
    const s = await setup({ KOPPEL_RETRY_SCHEDULE: '0,0.1,0.2' }, `${rcv.url}/hook`);
    const msgId = await s.send();
    await eventually(async () => {
      const d = await s.destinations(msgId);
      return d.length === 1 && d[0].status === 2;
    });
    await sleep(400);
    const attempts = await s.attempts(msgId);
    expect(attempts).toHaveLength(3);
    expect(attempts.every((a) => a.status === 2 && a.responseStatusCode === 500)).toBe(true);
    expect(rcv.requests).toHaveLength(3);
    expect((await s.destinations(msgId))[0].status).toBe(2);
  });

  it('honours Retry-After when it asks for a later retry than the schedule', async () => {
    const rcv = await receiver();
    let n = 0;
    rcv.respond((_req, res) => {
      n++;
      if (n === 1) {
        res.statusCode = 503;
        res.setHeader('retry-after', '1');
        res.end('busy');
      } else res.end('ok');
    });
    const s = await setup({ KOPPEL_RETRY_SCHEDULE: '0,0.05' }, `${rcv.url}/hook`);
    const msgId = await s.send();
    await rcv.waitFor(2, 5000);
    const gap = rcv.requests[1].at - rcv.requests[0].at;
    expect(gap).toBeGreaterThanOrEqual(900);
    expect(gap).toBeLessThan(3000);
    await eventually(async () => (await s.destinations(msgId))[0]?.status === 0);
  });

  it('treats a redirect as a failure and does not follow it', async () => {
    const target = await receiver();
    const rcv = await receiver();
    rcv.respond((_req, res) => {
      res.statusCode = 302;
      res.setHeader('location', `${target.url}/moved`);
      res.end();
    });
    const s = await setup({ KOPPEL_RETRY_SCHEDULE: '0,0.05' }, `${rcv.url}/hook`);
    const msgId = await s.send();
    await eventually(async () => (await s.destinations(msgId))[0]?.status === 2);
    const attempts = await s.attempts(msgId);
    expect(attempts).toHaveLength(2);
    for (const a of attempts) {
      expect(a.status).toBe(2);
      expect(a.responseStatusCode).toBe(302);
      expect(a.errorClass).toBe('http_status');
      expect(a.errorDetail).toContain('not followed');
    }
    await sleep(200);
    expect(target.requests).toHaveLength(0);
  });
});

describe('endpoint disabling', () => {
  it('disables an endpoint that answers 410 Gone, at once and for good', async () => {
    const rcv = await receiver();
    rcv.respond((_req, res) => {
      res.statusCode = 410;
      res.end('gone');
    });
    const s = await setup({ KOPPEL_RETRY_SCHEDULE: '0,0.05,0.1,0.2' }, `${rcv.url}/hook`);
    const msgId = await s.send();
    await eventually(async () => (await s.getEndpoint()).disabled === true);
    await eventually(async () => (await s.destinations(msgId))[0]?.status === 2);
    await sleep(500); // the schedule would have retried three times by now
    expect(rcv.requests).toHaveLength(1);
    const attempts = await s.attempts(msgId);
    expect(attempts).toHaveLength(1);
    expect(attempts[0].responseStatusCode).toBe(410);

    // New messages are not routed to the disabled endpoint at all.
    const later = await s.send({ n: 2 });
    await sleep(300);
    expect(await s.destinations(later)).toEqual([]);
    expect(rcv.requests).toHaveLength(1);
  });

  it('disables an endpoint that keeps failing longer than KOPPEL_DISABLE_AFTER and records endpoint.disabled', async () => {
    const rcv = await receiver();
    rcv.respond((_req, res) => {
      res.statusCode = 500;
      res.end('down');
    });
    const s = await setup({ KOPPEL_RETRY_SCHEDULE: '0,0.4,0.4,0.4,0.4', KOPPEL_DISABLE_AFTER: '1' }, `${rcv.url}/hook`);
    const msgId = await s.send();
    await eventually(async () => (await s.getEndpoint()).disabled === true, 8000);
    const envId = s.k.koppel.ctx.defaultEnvironmentId;
    const events = await eventually(async () => {
      const page = await s.k.koppel.ctx.store.listOperationalEvents(envId, { limit: 10, after: null, order: 'asc' });
      const found = page.items.filter((e) => e.event_type === 'endpoint.disabled');
      return found.length > 0 && found;
    });
    expect(events).toHaveLength(1);
    const payload = JSON.parse(events[0].payload);
    expect(payload).toMatchObject({ appId: s.appId, endpointId: s.epId, reason: 'failing' });
    expect(typeof payload.failSince).toBe('string');

    // Disabled after at least a second of failure, i.e. the 4th attempt at ~1.2 s at the earliest
    // (the 0.4 s gaps are jittered down to 0.32 s); the rest of the schedule is not used.
    const attempted = rcv.requests.length;
    expect(attempted).toBeGreaterThanOrEqual(4);
    expect(attempted).toBeLessThanOrEqual(5);
    await eventually(async () => (await s.destinations(msgId))[0]?.status === 2, 3000);
    await sleep(600);
    expect(rcv.requests).toHaveLength(attempted);
  });
});

describe('transport failures', () => {
  it('records a timeout when the receiver never answers', async () => {
    const rcv = await receiver();
    rcv.respond(() => {
      /* never answer */
    });
    const s = await setup({ KOPPEL_RETRY_SCHEDULE: '0', KOPPEL_REQUEST_TIMEOUT: '0.3', KOPPEL_TRANSFORM_TIMEOUT: '0.5', KOPPEL_LEASE: '2' }, `${rcv.url}/hook`);
    const msgId = await s.send();
    const [a] = await eventually(async () => {
      const list = await s.attempts(msgId);
      return list.length === 1 && list;
    }, 5000);
    expect(a.errorClass).toBe('timeout');
    expect(a.status).toBe(2);
    expect(a.responseStatusCode).toBe(0);
    expect(rcv.requests).toHaveLength(1);
    expect((await s.destinations(msgId))[0].status).toBe(2);
  });

  it('refuses a blocked (loopback) address and sends nothing', async () => {
    const rcv = await receiver();
    const s = await setup({ KOPPEL_RETRY_SCHEDULE: '0', KOPPEL_ALLOWED_NETWORKS: '' }, `${rcv.url}/hook`);
    const msgId = await s.send();
    const [a] = await eventually(async () => {
      const list = await s.attempts(msgId);
      return list.length === 1 && list;
    }, 5000);
    expect(a.errorClass).toBe('blocked');
    expect(a.responseStatusCode).toBe(0);
    await sleep(100);
    expect(rcv.requests).toHaveLength(0);
  });

  it('stores at most 64 KiB of a response and marks it truncated', async () => {
    const rcv = await receiver();
    rcv.respond((_req, res) => res.end('x'.repeat(200 * 1024)));
    const s = await setup({}, `${rcv.url}/hook`);
    const msgId = await s.send();
    const [a] = await eventually(async () => {
      const list = await s.attempts(msgId);
      return list.length === 1 && list;
    });
    expect(a.status).toBe(0);
    expect(a.response).toHaveLength(65536);
    expect(a.responseTruncated).toBe(true);
  });
});

describe('per-endpoint flow control', () => {
  it('keeps a slow endpoint from delaying a fast one', async () => {
    const slow = await receiver();
    slow.respond((_req, res) => {
      setTimeout(() => res.end('ok'), 1500);
    });
    const fast = await receiver();
    const s = await setup({ KOPPEL_ENDPOINT_CONCURRENCY: '4', KOPPEL_REQUEST_TIMEOUT: '3', KOPPEL_LEASE: '10' }, `${slow.url}/slow`, { filterTypes: ['slow'] });
    await s.addEndpoint(`${fast.url}/fast`, { filterTypes: ['fast'] });
    const started = Date.now();
    // Interleave so neither endpoint's work is all due first.
    for (let i = 0; i < 30; i++) {
      for (const eventType of ['slow', 'fast']) {
        const m = await s.k.api('POST', `/api/v1/app/${s.appId}/msg`, { eventType, payload: { i } });
        expect(m.status).toBe(202);
      }
    }
    await fast.waitFor(30, 8000);
    const fastDone = Date.now() - started;
    const slowSoFar = slow.requests.length;
    // 30 slow deliveries at 4 at a time and 1.5 s each need > 10 s.
    expect(slowSoFar).toBeLessThan(30);
    expect(new Set(fast.requests.map((r) => r.headers['webhook-id'])).size).toBe(30);
    console.info(`isolation: fast endpoint got 30 in ${fastDone} ms; slow endpoint had received ${slowSoFar}`);
  });

  it('spaces deliveries by the endpoint rate limit', async () => {
    const rcv = await receiver();
    const s = await setup({}, `${rcv.url}/hook`, { rateLimit: 5 });
    expect((await s.getEndpoint()).rateLimit).toBe(5);
    for (let i = 0; i < 10; i++) await s.send({ i });
    await rcv.waitFor(10, 8000);
    const span = rcv.requests[9].at - rcv.requests[0].at;
    // A full bucket of 5 goes at once, then one every 200 ms: the 10th ≈ 1 s after the first.
    expect(span).toBeGreaterThanOrEqual(850);
    expect(span).toBeLessThan(5000);
    await sleep(100);
    expect(rcv.requests).toHaveLength(10);
  });
});

describe('signatures', () => {
  it('signs with Ed25519 (v1a) for a whsk_ secret, verifiable with the published public key', async () => {
    const rcv = await receiver();
    const secret = generateSecret('ed25519');
    expect(secret.startsWith('whsk_')).toBe(true);
    const s = await setup({}, `${rcv.url}/hook`, { secret });
    const got = await s.k.api('GET', `/api/v1/app/${s.appId}/endpoint/${s.epId}/secret`);
    expect(got.body.key).toBe(secret);
    const publicKey: string = got.body.publicKey;
    expect(publicKey).toMatch(/^whpk_/);

    const msgId = await s.send({ hello: 'world' });
    const [req] = await rcv.waitFor(1);
    const id = req.headers['webhook-id'] as string;
    const ts = req.headers['webhook-timestamp'] as string;
    expect(id).toBe(msgId);
    const sigs = (req.headers['webhook-signature'] as string).split(' ');
    expect(sigs.length).toBeGreaterThanOrEqual(1);
    const key = crypto.createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey.slice('whpk_'.length), 'base64').toString('base64url') },
      format: 'jwk',
    });
    const signed = Buffer.from(`${id}.${ts}.${req.body}`, 'utf8');
    for (const s of sigs) {
      const [version, value] = s.split(',');
      expect(version).toBe('v1a');
      expect(crypto.verify(null, signed, key, Buffer.from(value, 'base64'))).toBe(true);
    }
    // A tampered body does not verify.
    const [, first] = sigs[0].split(',');
    expect(crypto.verify(null, Buffer.from(`${id}.${ts}.${req.body} `), key, Buffer.from(first, 'base64'))).toBe(false);
  });
});
