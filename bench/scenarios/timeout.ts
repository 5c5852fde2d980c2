/**
 * (d) Isolation: `healthy` endpoints that answer at once, alone ("d0") and beside one endpoint
 * that never answers, so every attempt to it runs into the sender's timeout ("d1"). Each message
 * goes to every endpoint, `rate` messages/s for `seconds`. Reported: p99 of the healthy endpoints;
 * it should not move between d0 and d1.
 *
 * The endpoint that times out is not checked for losses. After the wait, it starts answering, so
 * a system that queued healthy deliveries behind it can still deliver them (late, and counted).
 */
import { steady } from '../lib/load.js';
import type { DeliveryScenario } from './runner.js';

export function timeoutScenario(withTimeout: boolean, healthy: number, rate: number, seconds: number): DeliveryScenario {
  return {
    id: withTimeout ? 'd1' : 'd0',
    title: withTimeout ? `${healthy} healthy endpoints beside 1 that times out, ${rate} messages/s for ${seconds} s` : `${healthy} healthy endpoints alone, ${rate} messages/s for ${seconds} s`,
    endpoints: withTimeout ? [{ group: 'healthy', count: healthy }, { group: 'timeout', count: 1, hang: true, checkLoss: false }] : [{ group: 'healthy', count: healthy }],
    messages: rate * seconds,
    mainGroup: 'healthy',
    load: (d, deadline) => steady(d, rate, seconds * 1000, { maxInFlight: 5000, graceMs: 15_000, settleMs: 60_000, deadline }),
    warmup: { rate, seconds: 2 },
    waitMs: 60_000,
    drainMs: withTimeout ? 120_000 : undefined,
  };
}
