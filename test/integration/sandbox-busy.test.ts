/**
 * When the transformation sandbox cannot take more work, API calls and webhooks that need it get
 * a prompt 503 `unavailable` with Retry-After (never a hang, a 422 or a misrouted event), and
 * work again once it has room. Runs on SQLite and PostgreSQL.
 */
import { sign as octokitSign } from '@octokit/webhooks-methods';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedSandbox, API_MAX_QUEUED, type RunResult } from '../../src/transformations/sandbox.js';
import { startTestKoppel, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint } from '../api/support.js';

let k: TestKoppel;
let appId: string;

beforeAll(async () => {
  k = await startTestKoppel();
  appId = (await createApp(k, { name: 'Busy' })).id;
});
afterAll(() => k.close());

/** Occupies every thread for ~4 s (ample on a loaded machine) and fills the queue up to the API runs' cap. */
async function fillSandbox(): Promise<{ done: Promise<RunResult[]> }> {
  const sandbox = sharedSandbox(k.koppel.config.transformThreads);
  const runs: Promise<RunResult>[] = [];
  for (let i = 0; i < k.koppel.config.transformThreads; i++) runs.push(sandbox.run('javascript', 'function handler(w) { for (;;) {} }', {}, { timeoutMs: 4000, memoryBytes: 8 << 20 }));
  // Until every thread has taken its loop, the loops count as queued.
  while (sandbox.queued > 0) await new Promise((r) => setTimeout(r, 5));
  while (sandbox.queued < API_MAX_QUEUED) runs.push(sandbox.run('jsonata', '1', {}, { timeoutMs: 1000, memoryBytes: 8 << 20, maxWaitMs: 20_000 }));
  // Wrapped: an async function returning the promise itself would wait for every run.
  return { done: Promise.all(runs) };
}

describe('a busy sandbox', () => {
  it('answers 503 with Retry-After to previews, transformation changes and webhooks that need it, then recovers', async () => {
    const ep = await createEndpoint(k, appId, { url: 'http://127.0.0.1:9/never' });
    const source = await k.api('POST', `/api/v1/app/${appId}/source`, {
      name: 'form', provider: 'hmac', secret: 'busy-secret', hmac: { header: 'X-Sig', algorithm: 'sha256', encoding: 'hex' }, eventTypeExpression: '"form." & body.kind',
    });
    expect(source.status, JSON.stringify(source.body)).toBe(201);
    const body = JSON.stringify({ kind: 'sent' });
    const sig = (await octokitSign('busy-secret', body)).slice(7);
    const ingest = () => fetch(source.body.ingestUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'x-sig': sig }, body });

    const filled = await fillSandbox();
    const refused = await ingest();
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await refused.json()).toMatchObject({ code: 'unavailable', detail: expect.stringContaining('sandbox is busy') });
    const tp = `/api/v1/app/${appId}/endpoint/${ep.id}/transformation`;
    for (const [method, path, b] of [['POST', `${tp}/preview`, { expression: '$', samples: [{ eventType: 'a', payload: {} }] }], ['PATCH', tp, { expression: '$' }]] as const) {
      const started = Date.now();
      const r = await k.api(method, path, b);
      expect(r.status, JSON.stringify(r.body)).toBe(503);
      expect(r.body).toMatchObject({ code: 'unavailable', detail: expect.stringContaining('sandbox is busy') });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(Date.now() - started).toBeLessThan(1000);
    }

    await filled.done;
    // The provider's retry goes through, with the event type its expression names.
    const accepted = await ingest();
    expect(accepted.status).toBe(200);
    const ok = (await accepted.json()) as { status: string; messageId: string };
    expect(ok.status).toBe('accepted');
    expect((await k.api('GET', `/api/v1/app/${appId}/msg/${ok.messageId}`)).body.eventType).toBe('form.sent');
    expect((await k.api('PATCH', tp, { expression: '$' })).status).toBe(204);
    const pv = await k.api('POST', `${tp}/preview`, { samples: [{ eventType: 'a', payload: { x: 1 } }] });
    expect(pv.status, JSON.stringify(pv.body)).toBe(200);
    expect(pv.body).toMatchObject({ skippedSamples: 0, note: null, results: [{ ok: true, output: { x: 1 } }] });
  });
});
