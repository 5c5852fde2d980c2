/**
 * (b) Steady: `rate` messages per second for `seconds` to one endpoint, one POST each.
 * Reported: p50 / p99 / max from create to receipt.
 */
import { steady } from '../lib/load.js';
import type { DeliveryScenario } from './runner.js';

export function steadyScenario(rate: number, seconds: number): DeliveryScenario {
  return {
    id: 'b',
    title: `steady ${rate.toLocaleString('en-US')} messages/s for ${seconds} s to 1 endpoint`,
    endpoints: [{ group: 'main', count: 1 }],
    messages: rate * seconds,
    mainGroup: 'main',
    load: (d, deadline) => steady(d, rate, seconds * 1000, { maxInFlight: 2000, graceMs: 15_000, settleMs: 60_000, deadline }),
    warmup: { rate, seconds: 2 },
    waitMs: 120_000,
  };
}
