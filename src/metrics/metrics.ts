/**
 * Prometheus metrics of one Koppel process, served at GET /metrics. Each process has its own
 * registry (not prom-client's global one) so several Koppels in one test process stay apart.
 * Queue depth is read from the database at scrape time: it is a property of the shared queue,
 * not of this process.
 */
import client from 'prom-client';
import { idTime } from '../lib/ids.js';
import type { Store } from '../store/port.js';
import { Status, type AttemptRow } from '../store/schema.js';

export class Metrics {
  readonly registry = new client.Registry();
  readonly attempts: client.Counter<'outcome' | 'error_class' | 'trigger'>;
  readonly deliveryLatency: client.Histogram;
  readonly attemptDuration: client.Histogram<'outcome'>;
  readonly httpRequests: client.Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: client.Histogram<'method' | 'route'>;
  readonly messagesCreated: client.Counter;

  constructor(store: Store | null) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'koppel_' });
    this.attempts = new client.Counter({
      name: 'koppel_delivery_attempts_total',
      help: 'Delivery attempts by outcome (success or failure), error class and trigger (scheduled or manual).',
      labelNames: ['outcome', 'error_class', 'trigger'],
      registers: [this.registry],
    });
    this.deliveryLatency = new client.Histogram({
      name: 'koppel_delivery_latency_seconds',
      help: 'Time from message creation to the first successful (2xx) attempt of a scheduled delivery.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000, 86400],
      registers: [this.registry],
    });
    this.attemptDuration = new client.Histogram({
      name: 'koppel_attempt_duration_seconds',
      help: 'Duration of delivery attempts (request to end of response body).',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30],
      registers: [this.registry],
    });
    this.httpRequests = new client.Counter({
      name: 'koppel_http_requests_total',
      help: 'API requests by method, route pattern and status code.',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.httpDuration = new client.Histogram({
      name: 'koppel_http_request_duration_seconds',
      help: 'API request duration by method and route pattern.',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
    this.messagesCreated = new client.Counter({ name: 'koppel_messages_created_total', help: 'Messages accepted (202).', registers: [this.registry] });
    if (store) {
      // Registered on construction; read at scrape time through collect().
      new client.Gauge({
        name: 'koppel_queue_deliveries',
        help: 'Deliveries in the queue by state: due (any worker may take them now, expired leases included), scheduled (retry later) and in_flight (leased to a worker, lease running).',
        labelNames: ['state'],
        registers: [this.registry],
        async collect() {
          try {
            const d = await store.queueDepth(Date.now());
            this.set({ state: 'due' }, d.due);
            this.set({ state: 'scheduled' }, d.scheduled);
            this.set({ state: 'in_flight' }, d.inFlight);
          } catch {
            // A scrape during a database outage still returns the process metrics.
          }
        },
      });
    }
  }

  /** Records one settled attempt. */
  recordAttempt(a: AttemptRow) {
    const ok = a.status === Status.success;
    this.attempts.inc({ outcome: ok ? 'success' : 'failure', error_class: a.error_class ?? 'none', trigger: a.trigger_type === 1 ? 'manual' : 'scheduled' });
    this.attemptDuration.observe({ outcome: ok ? 'success' : 'failure' }, a.duration_ms / 1000);
    if (ok && a.trigger_type === 0) this.deliveryLatency.observe(Math.max(0, Number(a.created_at) + a.duration_ms - idTime(a.message_id)) / 1000);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
