/**
 * HttpSender with hostnames whose DNS answers the test controls: node:dns/promises is replaced
 * by a resolver that answers from a table (and counts its calls), so a name can stand for any mix
 * of addresses without a DNS server. The receivers are real sockets on 127.0.0.1, so "no
 * connection" and "the connection went there" are observed, not inferred.
 */
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';

const dns = vi.hoisted(() => ({
  /** hostname → the answer to each call in turn (the last one repeats). */
  answers: new Map<string, string[][]>(),
  calls: [] as string[],
}));

vi.mock('node:dns/promises', () => ({
  lookup: async (hostname: string, opts: { all?: boolean }) => {
    dns.calls.push(hostname);
    if (opts?.all !== true) throw new Error('the sender must ask for every address (all: true)');
    const answers = dns.answers.get(hostname);
    if (!answers) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    const seen = dns.calls.filter((h) => h === hostname).length;
    return answers[Math.min(seen, answers.length) - 1].map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  },
}));

const { HttpSender } = await import('./http-sender.js');

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  dns.answers.clear();
  dns.calls.length = 0;
});

function sender(allowedNetworks: string[]) {
  const s = new HttpSender({ allowedNetworks, deadlineMs: 1000, maxResponseBytes: 64 * 1024 });
  cleanups.push(() => s.close());
  return s;
}

/** An HTTP receiver on 127.0.0.1 that counts connections and records where each request arrived. */
async function receiver() {
  const seen: { localAddress: string | undefined; headers: IncomingHttpHeaders }[] = [];
  const server = createHttpServer((req, res) => {
    seen.push({ localAddress: req.socket.localAddress, headers: req.headers });
    res.end('ok');
  });
  const rx = { port: 0, connections: 0, seen };
  server.on('connection', () => rx.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  rx.port = (server.address() as AddressInfo).port;
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return rx;
}

const PUBLIC = '93.184.215.14';
const payload = { headers: { 'webhook-id': 'msg_1' }, body: '{}' };

describe('HttpSender: every resolved address is checked, and the connection goes to a checked address', () => {
  it.each([
    ['public first', [PUBLIC, '127.0.0.1']],
    ['loopback first', ['127.0.0.1', PUBLIC]],
  ])('refuses a name that resolves to a public and a loopback address (%s) without connecting', async (_order, records) => {
    const rx = await receiver();
    dns.answers.set('hooks.example.com', [records]);
    const result = await sender([]).send({ ...payload, url: `http://hooks.example.com:${rx.port}/hook` });
    expect(result).toMatchObject({ ok: false, status: null, errorClass: 'blocked', error: 'blocked: 127.0.0.1 is a loopback address' });
    expect(dns.calls).toEqual(['hooks.example.com']);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(rx.connections).toBe(0);
  });

  it('refuses the whole name when one of its addresses is private, even though the other is allowed and listening', async () => {
    const rx = await receiver();
    dns.answers.set('mixed.example.com', [['127.0.0.1', '10.20.30.40']]);
    const result = await sender(['127.0.0.0/8']).send({ ...payload, url: `http://mixed.example.com:${rx.port}/hook` });
    expect(result).toMatchObject({ ok: false, status: null, errorClass: 'blocked', error: 'blocked: 10.20.30.40 is a private address' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(rx.connections).toBe(0);
    expect(rx.seen).toEqual([]);
  });

  it('connects to the address it checked, not to a later answer for the same name (DNS rebinding)', async () => {
    const rx = await receiver();
    // The first answer is allowed; every later one points into the private network.
    dns.answers.set('rebind.example.com', [['127.0.0.1'], ['10.20.30.40']]);
    const result = await sender(['127.0.0.0/8']).send({ ...payload, url: `http://rebind.example.com:${rx.port}/hook` });
    expect(result).toMatchObject({ ok: true, status: 200, body: 'ok', errorClass: null });
    // Resolved once; that answer was checked and dialled.
    expect(dns.calls).toEqual(['rebind.example.com']);
    expect(rx.connections).toBe(1);
    expect(rx.seen).toHaveLength(1);
    expect(rx.seen[0].localAddress).toBe('127.0.0.1');
    // The request still names the host from the URL.
    expect(rx.seen[0].headers.host).toBe(`rebind.example.com:${rx.port}`);
  });
});
