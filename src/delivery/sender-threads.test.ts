import { createServer, type RequestListener, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { SenderThreads } from './sender-threads.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function receiver(handler: RequestListener): Promise<string> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return `http://127.0.0.1:${address.port}`;
}

function threads(count = 1, allowedNetworks = ['127.0.0.0/8']) {
  const s = new SenderThreads(count, { allowedNetworks, deadlineMs: 2000, maxResponseBytes: 1024 });
  cleanups.push(() => s.close());
  return s;
}

describe('SenderThreads', () => {
  it('carries out exchanges on a thread with the same results as HttpSender', async () => {
    const bodies: string[] = [];
    const url = await receiver((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        bodies.push(body);
        res.writeHead(req.url === '/fail' ? 503 : 200, { 'retry-after': '7', 'x-seen': req.headers['x-test'] as string });
        res.end('x'.repeat(2000));
      });
    });
    const s = threads(2);
    await s.ready;
    const [ok, failed] = await Promise.all([
      s.send({ url: `${url}/ok`, headers: { 'x-test': 'a' }, body: '{"n":1}' }),
      s.send({ url: `${url}/fail`, headers: { 'x-test': 'b' }, body: '{"n":2}' }),
    ]);
    expect(ok).toMatchObject({ ok: true, status: 200, errorClass: null, truncated: true, retryAfterMs: 7000 });
    expect(ok.headers['x-seen']).toBe('a');
    expect(ok.body).toHaveLength(1024);
    expect(failed).toMatchObject({ ok: false, status: 503, errorClass: 'http_status', error: 'HTTP 503' });
    expect(bodies.sort()).toEqual(['{"n":1}', '{"n":2}']);
  });

  it('applies the address policy on the thread', async () => {
    const url = await receiver((_req, res) => res.end('ok'));
    const s = threads(1, []);
    const r = await s.send({ url, headers: {}, body: '{}' });
    expect(r).toMatchObject({ ok: false, errorClass: 'blocked' });
  });

  it('fails what a dead thread had in flight and replaces the thread', async () => {
    let answer = false;
    const url = await receiver((_req, res) => {
      if (answer) res.end('ok');
      // else never answer
    });
    const s = threads(1);
    await s.ready;
    const hanging = s.send({ url, headers: {}, body: '{}' });
    await new Promise((r) => setTimeout(r, 100));
    await (s as unknown as { threads: { worker: { terminate(): Promise<number> } }[] }).threads[0].worker.terminate();
    expect(await hanging).toMatchObject({ ok: false, errorClass: 'network', error: expect.stringMatching(/delivery thread exited/) });
    answer = true;
    expect(await s.send({ url, headers: {}, body: '{}' })).toMatchObject({ ok: true, status: 200 });
  });

  it('lets exchanges in flight finish when closing, and refuses new ones', async () => {
    const url = await receiver((_req, res) => setTimeout(() => res.end('late'), 200));
    const s = new SenderThreads(1, { allowedNetworks: ['127.0.0.0/8'], deadlineMs: 2000, maxResponseBytes: 1024 });
    await s.ready;
    const inFlight = s.send({ url, headers: {}, body: '{}' });
    await new Promise((r) => setTimeout(r, 50));
    const closed = s.close();
    expect(await s.send({ url, headers: {}, body: '{}' })).toMatchObject({ ok: false, errorClass: 'network' });
    expect(await inFlight).toMatchObject({ ok: true, body: 'late' });
    await closed;
  });
});
