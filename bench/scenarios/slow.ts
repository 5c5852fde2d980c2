/**
 * (e) Slow receivers: `endpoints` endpoints that each answer after `delayMs`; `rate` messages/s
 * for `seconds`, each message to every endpoint (50 × 100 = 5,000 deliveries/s, about 1,000
 * requests in flight when every delivery takes 200 ms). Reported: deliveries/s and latency.
 */
import { steady } from '../lib/load.js';
import type { DeliveryScenario } from './runner.js';

export function slowScenario(endpoints: number, delayMs: number, rate: number, seconds: number): DeliveryScenario {
  return {
    id: 'e',
    title: `slow receivers: ${endpoints} endpoints answering after ${delayMs} ms, ${(rate * endpoints).toLocaleString('en-US')} deliveries/s offered for ${seconds} s`,
    endpoints: [{ group: 'main', count: endpoints, delayMs }],
    messages: rate * seconds,
    mainGroup: 'main',
    load: (d, deadline) => steady(d, rate, seconds * 1000, { maxInFlight: 2000, graceMs: 15_000, settleMs: 60_000, deadline }),
    warmup: { rate, seconds: 2 },
    waitMs: 180_000,
  };
}
