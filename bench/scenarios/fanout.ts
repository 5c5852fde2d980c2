/**
 * (c) Fan-out: `messages` messages, each to `endpoints` endpoints (500 × 100 = 50,000 deliveries),
 * created with single POSTs, 10 in flight. Reported: deliveries/s and latency.
 */
import { burst } from '../lib/load.js';
import { nowMs } from '../lib/webhook.js';
import type { DeliveryScenario } from './runner.js';

export function fanoutScenario(messages: number, endpoints: number): DeliveryScenario {
  return {
    id: 'c',
    title: `fan-out: ${messages} messages to ${endpoints} endpoints each`,
    endpoints: [{ group: 'main', count: endpoints }],
    messages,
    mainGroup: 'main',
    async load(d, deadline) {
      const r = await burst(d, messages, 'single', { concurrency: 10, batch: 1, timeLimitMs: Math.max(0, deadline - nowMs()) });
      return { settled: Promise.resolve(r) };
    },
    waitMs: 300_000,
  };
}
