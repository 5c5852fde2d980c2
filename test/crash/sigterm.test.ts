/**
 * Graceful shutdown: SIGTERM while an attempt waits on a slow receiver lets that attempt finish,
 * records it, and exits 0; after a restart the API shows the recorded success and nothing is sent
 * again.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startReceiver, tempDir, type Receiver } from '../helpers.js';
import { freePort, startKoppelChild, type KoppelChild } from './child.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SIGTERM while an attempt is in flight', () => {
  let dataDir: string;
  let port: number;
  let rcv: Receiver;
  let child: KoppelChild | null = null;

  beforeAll(async () => {
    dataDir = tempDir('koppel-sigterm-');
    port = await freePort();
    rcv = await startReceiver();
    rcv.respond((_req, res) => {
      setTimeout(() => res.end('slow ok'), 500);
    });
  });

  afterAll(async () => {
    await child?.kill();
    await rcv?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('drains the attempt, records its success and exits 0', { timeout: 60_000 }, async () => {
    // A long lease: were the attempt not written back at shutdown, the restarted process would
    // not retry it within this test, and the missing attempt would show.
    const env = { KOPPEL_REQUEST_TIMEOUT: '5', KOPPEL_LEASE: '60' };
    child = await startKoppelChild({ dataDir, port, env });
    const app = await child.api('POST', '/api/v1/app', { name: 'drain' });
    expect(app.status).toBe(201);
    const appId: string = app.body.id;
    const ep = await child.api('POST', `/api/v1/app/${appId}/endpoint`, { url: `${rcv.url}/hook` });
    expect(ep.status).toBe(201);
    const msg = await child.api('POST', `/api/v1/app/${appId}/msg`, { eventType: 'drain.test', payload: { slow: true } });
    expect(msg.status).toBe(202);
    const msgId: string = msg.body.id;

    await rcv.waitFor(1, 10_000);
    const termAt = Date.now();
    child.proc.kill('SIGTERM');
    const exit = await Promise.race([child.exited, sleep(8000).then(() => null)]);
    expect(exit, `Koppel did not exit within 8 s of SIGTERM:\n${child.output()}`).not.toBeNull();
    expect(exit, child.output()).toEqual({ code: 0, signal: null });
    const tookMs = Date.now() - termAt;
    // It waited for the receiver (~0.5 s) rather than dropping the attempt.
    expect(tookMs).toBeGreaterThanOrEqual(300);
    console.info(`sigterm: exited 0 in ${tookMs} ms`);

    child = await startKoppelChild({ dataDir, port, env });
    const attempts = await child.api('GET', `/api/v1/app/${appId}/attempt/msg/${msgId}`);
    expect(attempts.status).toBe(200);
    expect(attempts.body.data).toHaveLength(1);
    const [a] = attempts.body.data;
    expect(a).toMatchObject({ status: 0, responseStatusCode: 200, response: 'slow ok', endpointId: ep.body.id });
    expect(a.responseDurationMs).toBeGreaterThanOrEqual(400);

    const dest = await child.api('GET', `/api/v1/app/${appId}/msg/${msgId}/endpoint`);
    expect(dest.body.data).toHaveLength(1);
    expect(dest.body.data[0].status).toBe(0);

    // The restarted process has nothing to resend.
    await sleep(500);
    expect(rcv.requests).toHaveLength(1);
    await eventually(async () => (await child!.api('GET', '/api/v1/health')).status === 204);
  });
});
