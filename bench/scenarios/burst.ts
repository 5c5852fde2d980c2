/**
 * (a) Burst: n messages to one endpoint, created as fast as the system takes them, through the
 * bulk API (BULK_BATCH per request, 4 requests in flight) or through single POSTs (100 in flight).
 *
 * BULK_BATCH is 500, not the API's maximum of 1,000: 1,000 messages of 1 KB make a body above
 * Koppel's default KOPPEL_BODY_LIMIT (1 MiB), which answers 413.
 * Reported: deliveries/s from the first create to the last receipt.
 */
import { burst } from '../lib/load.js';
import { nowMs } from '../lib/webhook.js';
import type { DeliveryScenario } from './runner.js';

export const BULK_BATCH = 500;

export function burstScenario(mode: 'bulk' | 'single', n: number): DeliveryScenario {
  return {
    id: `a-${mode}`,
    title: `burst of ${n.toLocaleString('en-US')} messages to 1 endpoint, ${mode === 'bulk' ? `bulk API (${BULK_BATCH} per request)` : 'single POSTs'}`,
    endpoints: [{ group: 'main', count: 1 }],
    messages: n,
    mainGroup: 'main',
    async load(d, deadline) {
      const r = await burst(d, n, mode, { concurrency: mode === 'bulk' ? 4 : 100, batch: BULK_BATCH, timeLimitMs: Math.max(0, deadline - nowMs()) });
      return { settled: Promise.resolve(r) };
    },
    waitMs: 300_000,
  };
}
