import { createServer as createHttpServer, type IncomingHttpHeaders, type RequestListener, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, it, expect } from 'vitest';

import { HttpSender, parseRetryAfter, type SenderOptions } from './http-sender.js';

// Resources opened by a test, closed after it whatever the outcome.
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function sender(opts: Partial<SenderOptions> = {}): HttpSender {
  const s = new HttpSender({ allowedNetworks: ['127.0.0.0/8'], deadlineMs: 2000, maxResponseBytes: 64 * 1024, ...opts });
  cleanups.push(() => s.close());
  return s;
}

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Receiver {
  port: number;
  url: string;
  seen: Seen[];
  connections: number;
}

async function listen(server: HttpServer | NetServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** An HTTP receiver on 127.0.0.1 that records what it was sent before `handler` answers. */
async function httpReceiver(handler: RequestListener): Promise<Receiver> {
  const seen: Seen[] = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      handler(req, res);
    });
  });
  const receiver = { port: 0, url: '', seen, connections: 0 };
  server.on('connection', () => receiver.connections++);
  receiver.port = await listen(server);
  receiver.url = `http://127.0.0.1:${receiver.port}/hook`;
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return receiver;
}

/** A raw TCP receiver for misbehaviour node:http would not produce. */
async function tcpReceiver(onSocket: (socket: Socket) => void): Promise<Receiver> {
  const sockets = new Set<Socket>();
  const receiver = { port: 0, url: '', seen: [] as Seen[], connections: 0 };
  const server = createNetServer((socket) => {
    receiver.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  receiver.port = await listen(server);
  receiver.url = `http://127.0.0.1:${receiver.port}/hook`;
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return receiver;
}

/** Calls `fn` once the request head has arrived on the socket. */
function afterRequestHead(socket: Socket, fn: () => void): void {
  let received = '';
  let done = false;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
    if (!done && received.includes('\r\n\r\n')) {
      done = true;
      fn();
    }
  });
}

// Self-signed EC certificate for DNS:localhost, generated once with openssl for these tests only.
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgdJhBBMLpqzht1Djd
QFW7mlFt+UG6mYXvyOJTNzK2tEWhRANCAARC4J4lDFHxUY/Y1zRdJdnzctwlxQ5E
BOfRp8dZQKlnhITGbW8KI5yTKzHaU3BxjhwGbacaxo26FMJ9awkGQ76T
-----END PRIVATE KEY-----
`;
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBlTCCATugAwIBAgIUfaLPCYXfegehdHnIf+O0gg4LXc4wCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMzE1MTUwMVoYDzIxMjYxMDMw
MTUxNTAxWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARC4J4lDFHxUY/Y1zRdJdnzctwlxQ5EBOfRp8dZQKlnhITGbW8KI5yT
KzHaU3BxjhwGbacaxo26FMJ9awkGQ76To2kwZzAdBgNVHQ4EFgQUzGMYq+b6V6Lo
Oe3rf676OIe1SrwwHwYDVR0jBBgwFoAUzGMYq+b6V6LoOe3rf676OIe1SrwwDwYD
VR0TAQH/BAUwAwEB/zAUBgNVHREEDTALgglsb2NhbGhvc3QwCgYIKoZIzj0EAwID
SAAwRQIhAKbp/t225O2+CI9GS9ReC24mSL2pJPHCqj2mFwjxyTQPAiBWFdnlJzOe
XsYvco6HnFz2ZGuviXqymge6YgqKI42EEQ==
-----END CERTIFICATE-----
`;

const payload = { url: '', headers: { 'webhook-id': 'msg_1' }, body: '{"hello":"world"}' };

describe('HttpSender against real receivers', () => {
  it('delivers a POST and reports a 2xx as ok', async () => {
    const rx = await httpReceiver((_req, res) => {
      res.setHeader('X-Receiver', 'yes');
      res.end('thanks');
    });
    const result = await sender().send({ ...payload, url: rx.url });

    expect(result).toMatchObject({
      ok: true,
      status: 200,
      body: 'thanks',
      truncated: false,
      errorClass: null,
      error: null,
      retryAfterMs: null,
    });
    expect(result.headers['x-receiver']).toBe('yes');
    expect(result.durationMs).toBeGreaterThanOrEqual(0);

    expect(rx.seen).toHaveLength(1);
    const [seen] = rx.seen;
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/hook');
    expect(seen.body).toBe(payload.body);
    expect(seen.headers['content-type']).toBe('application/json');
    expect(seen.headers['user-agent']).toBe('Koppel-Webhooks/1.0');
    expect(seen.headers['webhook-id']).toBe('msg_1');
    expect(seen.headers.host).toBe(`127.0.0.1:${rx.port}`);
    expect(seen.headers['accept-encoding']).toBeUndefined();
  });

  it('keeps the caller content-type and never sends accept-encoding or a foreign host', async () => {
    const rx = await httpReceiver((_req, res) => res.end());
    await sender({ userAgent: 'Custom/2' }).send({
      url: rx.url,
      headers: { 'Content-Type': 'application/cloudevents+json', 'Accept-Encoding': 'gzip', Host: 'internal.example' },
      body: '{}',
    });
    const [seen] = rx.seen;
    expect(seen.headers['content-type']).toBe('application/cloudevents+json');
    expect(seen.headers['user-agent']).toBe('Custom/2');
    expect(seen.headers['accept-encoding']).toBeUndefined();
    expect(seen.headers.host).toBe(`127.0.0.1:${rx.port}`);
  });

  it('reuses the kept-alive connection', async () => {
    const rx = await httpReceiver((_req, res) => res.end('ok'));
    const s = sender();
    for (let i = 0; i < 6; i++) expect((await s.send({ ...payload, url: rx.url })).ok).toBe(true);
    // undici marks a connection free a tick after the body ends, so back-to-back
    // sends may alternate between two kept-alive sockets, but never more.
    expect(rx.connections).toBeLessThanOrEqual(2);
  });

  it('reports a 500 as http_status and keeps the body', async () => {
    const rx = await httpReceiver((_req, res) => {
      res.statusCode = 500;
      res.end('database on fire');
    });
    const result = await sender().send({ ...payload, url: rx.url });
    expect(result).toMatchObject({ ok: false, status: 500, body: 'database on fire', errorClass: 'http_status' });
    expect(result.error).toContain('500');
  });

  it.each([301, 302, 307, 308])('does not follow a %i redirect', async (status) => {
    const target = await httpReceiver((_req, res) => res.end('should never be reached'));
    const rx = await httpReceiver((_req, res) => {
      res.writeHead(status, { Location: target.url });
      res.end('moved');
    });
    const result = await sender().send({ ...payload, url: rx.url });
    expect(result).toMatchObject({ ok: false, status, errorClass: 'http_status', body: 'moved' });
    expect(result.headers.location).toBe(target.url);
    expect(target.seen).toHaveLength(0);
    expect(target.connections).toBe(0);
  });

  it('parses Retry-After as delta-seconds', async () => {
    const rx = await httpReceiver((_req, res) => {
      res.writeHead(429, { 'Retry-After': '120' });
      res.end();
    });
    const result = await sender().send({ ...payload, url: rx.url });
    expect(result).toMatchObject({ status: 429, errorClass: 'http_status', retryAfterMs: 120_000 });
  });

  it('parses Retry-After as an HTTP date', async () => {
    const rx = await httpReceiver((_req, res) => {
      res.writeHead(503, { 'Retry-After': new Date(Date.now() + 60_000).toUTCString() });
      res.end();
    });
    const result = await sender().send({ ...payload, url: rx.url });
    // toUTCString drops milliseconds and some time passes in between.
    expect(result.retryAfterMs).toBeGreaterThan(55_000);
    expect(result.retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it('times out a receiver that never answers, near the deadline', async () => {
    const rx = await httpReceiver(() => {
      /* never respond */
    });
    const result = await sender({ deadlineMs: 300 }).send({ ...payload, url: rx.url });
    expect(result).toMatchObject({ ok: false, status: null, errorClass: 'timeout' });
    expect(result.error).toBe('deadline of 300 ms exceeded before the response headers arrived');
    expect(result.durationMs).toBeGreaterThanOrEqual(290);
    expect(result.durationMs).toBeLessThan(1000);
  });

  /**
   * A receiver on a thread of its own, so a stall of this thread does not stall it; `delayMs`
   * before each answer (-1: never answer).
   */
  async function threadReceiver(delayMs: number): Promise<{ url: string; received: () => Promise<number> }> {
    const w = new Worker(
      `const http = require('node:http');
       const { parentPort, workerData } = require('node:worker_threads');
       let n = 0;
       const s = http.createServer((q, r) => { q.resume(); q.on('end', () => { n++; if (workerData >= 0) setTimeout(() => r.end('ok'), workerData); }); });
       parentPort.on('message', () => parentPort.postMessage(n));
       s.listen(0, '127.0.0.1', () => parentPort.postMessage(s.address().port));`,
      { eval: true, workerData: delayMs },
    );
    cleanups.push(async () => void (await w.terminate()));
    const port = await new Promise<number>((resolve) => w.once('message', resolve));
    return {
      url: `http://127.0.0.1:${port}/hook`,
      received: () => new Promise<number>((resolve) => (w.once('message', resolve), w.postMessage('count'))),
    };
  }
  const stall = (ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      /* this thread busy, as in a GC pause or a large request's parsing */
    }
  };

  it('does not fail as a timeout an exchange the receiver answered in time while this process stalled', async () => {
    const rx = await threadReceiver(0);
    const s = sender({ deadlineMs: 300, stallGraceMs: 500 });
    expect((await s.send({ ...payload, url: rx.url })).ok).toBe(true);
    // Stalled past the deadline right after the send: the request may not even be written yet
    // when the late timer fires. Without the time given back most of these failed as timeouts
    // while the receiver got (and answered) every request, the retry's duplicate in the making.
    const outcomes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const sent = s.send({ ...payload, url: rx.url });
      stall(600);
      const r = await sent;
      outcomes.push(r.ok ? 'ok' : `${r.errorClass} after ${r.durationMs} ms`);
    }
    expect(outcomes).toEqual(Array(6).fill('ok'));
    expect(await rx.received()).toBe(7);
  });

  it('gives a stalled exchange back at most stallGraceMs, once', async () => {
    const rx = await threadReceiver(-1);
    const sent = sender({ deadlineMs: 300, stallGraceMs: 200 }).send({ ...payload, url: rx.url });
    stall(600);
    const r = await sent;
    expect(r).toMatchObject({ ok: false, errorClass: 'timeout', error: 'deadline of 300 ms exceeded before the response headers arrived' });
    // The timer fired ~300 ms late; 200 of them are given back, and no more after that.
    expect(r.durationMs).toBeGreaterThanOrEqual(790);
    expect(r.durationMs).toBeLessThan(1500);
  });

  it('stops a slow-drip body at the deadline', async () => {
    const rx = await tcpReceiver((socket) => {
      afterRequestHead(socket, () => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n');
        // One byte every 50 ms; bounded so a broken sender cannot keep the test alive.
        let sent = 0;
        const timer = setInterval(() => {
          if (socket.destroyed || ++sent > 200) return clearInterval(timer);
          socket.write('1\r\nx\r\n');
        }, 50);
        socket.on('close', () => clearInterval(timer));
      });
    });
    const result = await sender({ deadlineMs: 300 }).send({ ...payload, url: rx.url });
    expect(result).toMatchObject({ ok: false, status: 200, errorClass: 'timeout' });
    expect(result.error).toBe('deadline of 300 ms exceeded while reading the body');
    expect(result.body).toMatch(/^x+$/);
    expect(result.durationMs).toBeGreaterThanOrEqual(290);
    expect(result.durationMs).toBeLessThan(1000);
  });

  it('reports a connection reset in the middle of the response head', async () => {
    const rx = await tcpReceiver((socket) => {
      afterRequestHead(socket, () => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Le', () => socket.destroy());
      });
    });
    const result = await sender().send({ ...payload, url: rx.url });
    expect(result).toMatchObject({ ok: false, status: null, errorClass: 'connection_reset' });
  });

  it('reports a connection reset in the middle of the body, keeping what arrived', async () => {
    const rx = await tcpReceiver((socket) => {
      afterRequestHead(socket, () => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial', () => socket.destroy());
      });
    });
    const result = await sender().send({ ...payload, url: rx.url });
    expect(result).toMatchObject({ ok: false, status: 200, errorClass: 'connection_reset', body: 'partial' });
  });

  it('reports a closed port as connection_refused', async () => {
    const probe = createNetServer();
    const port = await listen(probe);
    await new Promise((resolve) => probe.close(resolve));
    const result = await sender().send({ ...payload, url: `http://127.0.0.1:${port}/` });
    expect(result).toMatchObject({ ok: false, status: null, errorClass: 'connection_refused' });
    expect(result.error).toContain('ECONNREFUSED');
  });

  it('caps a 10 MB body at maxResponseBytes and returns quickly', async () => {
    const rx = await httpReceiver((_req, res) => res.end(Buffer.alloc(10 * 1024 * 1024, 'a')));
    const result = await sender({ maxResponseBytes: 64 * 1024 }).send({ ...payload, url: rx.url });
    expect(result).toMatchObject({ ok: true, status: 200, truncated: true });
    expect(result.body.length).toBe(64 * 1024);
    expect(result.durationMs).toBeLessThan(1000);
  });

  it('stops reading an endless body', async () => {
    const rx = await tcpReceiver((socket) => {
      afterRequestHead(socket, () => {
        socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
        const chunk = `10000\r\n${'b'.repeat(0x10000)}\r\n`;
        // Writes until the sender hangs up; the bound (~1 GB) only guards the test.
        let writes = 0;
        const pump = (): void => {
          while (!socket.destroyed && writes++ < 16_384) if (!socket.write(chunk)) return void socket.once('drain', pump);
        };
        pump();
      });
    });
    const result = await sender({ maxResponseBytes: 1000 }).send({ ...payload, url: rx.url });
    expect(result).toMatchObject({ status: 200, truncated: true });
    expect(result.body).toBe('b'.repeat(1000));
    expect(result.durationMs).toBeLessThan(1000);
  });

  it('stores a gzip bomb as received bytes without decompressing it', async () => {
    const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024));
    const rx = await httpReceiver((_req, res) => {
      res.writeHead(200, { 'Content-Encoding': 'gzip', 'Content-Type': 'text/plain' });
      res.end(bomb);
    });

    const capped = await sender({ maxResponseBytes: 1024 }).send({ ...payload, url: rx.url });
    expect(capped).toMatchObject({ status: 200, truncated: true });
    expect(capped.headers['content-encoding']).toBe('gzip');
    // Lossy UTF-8 decoding never yields more UTF-16 units than input bytes.
    expect(capped.body.length).toBeLessThanOrEqual(1024);
    expect(capped.body.charCodeAt(0)).toBe(0x1f); // gzip magic, i.e. still compressed

    const whole = await sender({ maxResponseBytes: 1024 * 1024 }).send({ ...payload, url: rx.url });
    expect(whole).toMatchObject({ ok: true, truncated: false });
    expect(whole.body.length).toBeLessThanOrEqual(bomb.length);
    expect(whole.body.charCodeAt(0)).toBe(0x1f);

    for (const seen of rx.seen) expect(seen.headers['accept-encoding']).toBeUndefined();
  });

  it('reports an https URL answered by a plain HTTP server as a tls error', async () => {
    const rx = await httpReceiver((_req, res) => res.end());
    const result = await sender().send({ ...payload, url: `https://127.0.0.1:${rx.port}/` });
    expect(result).toMatchObject({ ok: false, status: null, errorClass: 'tls' });
  });

  it('dials the checked IP but validates the certificate for the hostname (SNI)', async () => {
    const snis: string[] = [];
    const server = createHttpsServer({
      key: TEST_KEY,
      cert: TEST_CERT,
      SNICallback: (name, cb) => {
        snis.push(name);
        cb(null);
      },
    });
    const port = await listen(server);
    cleanups.push(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    const result = await sender({ allowedNetworks: ['127.0.0.0/8', '::1/128'] }).send({ ...payload, url: `https://localhost.:${port}/` });
    // Self-signed and not trusted: verification is on, and it ran against "localhost".
    expect(result).toMatchObject({ ok: false, status: null, errorClass: 'tls' });
    expect(snis).toEqual(['localhost']);
  });

  it('reports an unresolvable host as dns', async () => {
    const result = await sender({ allowedNetworks: [] }).send({ ...payload, url: 'http://nonexistent.invalid/' });
    expect(result).toMatchObject({ ok: false, status: null, errorClass: 'dns' });
  });

  it.each(['ftp://example.com/', 'file:///etc/passwd', 'not a url', 'javascript:alert(1)', ''])('rejects %j as invalid_url', async (url) => {
    const result = await sender().send({ ...payload, url });
    expect(result).toMatchObject({ ok: false, status: null, errorClass: 'invalid_url' });
  });
});

describe('HttpSender SSRF guard', () => {
  const spellings = [
    'http://127.0.0.1:PORT/',
    'http://localhost:PORT/',
    'http://localhost.:PORT/',
    'http://LocalHost:PORT/',
    'http://api.localhost:PORT/',
    'http://0x7f.0.0.1:PORT/',
    'http://2130706433:PORT/',
    'http://0177.0.0.1:PORT/',
    'http://127.1:PORT/',
    'http://[::1]:PORT/',
    'http://[::ffff:127.0.0.1]:PORT/',
    'http://[::ffff:7f00:1]:PORT/',
    'http://0.0.0.0:PORT/',
    'http://0:PORT/',
    'https://127.0.0.1:PORT/',
  ];

  it('blocks every spelling of loopback without connecting', async () => {
    const rx = await tcpReceiver((socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    const s = sender({ allowedNetworks: [] });
    for (const spelling of spellings) {
      const result = await s.send({ ...payload, url: spelling.replace('PORT', String(rx.port)) });
      expect({ spelling, ...result }).toMatchObject({ spelling, ok: false, status: null, errorClass: 'blocked' });
      expect(result.error).toMatch(/^blocked: .+ is an? /);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(rx.connections).toBe(0);
  });

  it('names the address and the reason', async () => {
    const result = await sender({ allowedNetworks: [] }).send({ ...payload, url: 'http://169.254.169.254/latest/meta-data/' });
    expect(result).toMatchObject({ errorClass: 'blocked', error: 'blocked: 169.254.169.254 is a link-local address' });
  });

  it('blocks private addresses outside the allowed networks', async () => {
    const result = await sender().send({ ...payload, url: 'http://10.0.0.1/' });
    expect(result).toMatchObject({ errorClass: 'blocked', error: 'blocked: 10.0.0.1 is a private address' });
  });

  it('refuses localhost unless every address it stands for is allowed', async () => {
    const rx = await httpReceiver((_req, res) => res.end('hi'));
    const url = `http://localhost:${rx.port}/`;

    const partly = await sender({ allowedNetworks: ['127.0.0.0/8'] }).send({ ...payload, url });
    expect(partly).toMatchObject({ errorClass: 'blocked', error: 'blocked: ::1 is a loopback address' });
    expect(rx.connections).toBe(0);

    const fully = await sender({ allowedNetworks: ['127.0.0.0/8', '::1/128'] }).send({ ...payload, url });
    expect(fully).toMatchObject({ ok: true, body: 'hi' });
    expect(rx.seen[0].headers.host).toBe(`localhost:${rx.port}`);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');

  it.each([
    ['0', 0],
    ['  30 ', 30_000],
    ['Wed, 01 Jan 2025 00:01:00 GMT', 60_000],
    ['Wednesday, 01-Jan-25 00:01:00 GMT', 60_000],
    ['Wed Jan  1 00:01:00 2025', 60_000],
    ['Tue, 31 Dec 2024 23:00:00 GMT', 0],
  ])('parses %j', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });

  it.each([undefined, '', 'soon', '-5', '1.5', '+30', '12abc', 'Wed, 99 Foo 2025 00:00:00 GMT', '9'.repeat(400)])('ignores %j', (value) => {
    expect(parseRetryAfter(value, now)).toBeNull();
  });
});
