/**
 * The retention job: every KOPPEL_RETENTION_INTERVAL it removes what is past its retention
 * (messages with their deliveries and attempts, old attempts and their response bodies, expired
 * idempotency keys, old operational events, old source events) in batches of a few hundred rows, each in its own
 * short transaction, pausing between batches so deliveries and API writes never queue behind it.
 * Several processes may run it at once: deleting an already deleted row is harmless.
 */
import type { Logger } from 'pino';
import type { PurgeCounts, Store } from '../store/port.js';

const BATCH = 500;
const MAX_BATCHES_PER_RUN = 200;
const PAUSE_MS = 20;

export class RetentionJob {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly retentionMs: number,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start() {
    this.schedule(Math.min(this.intervalMs, 5_000));
  }

  private schedule(ms: number) {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.runOnce().then(
        () => undefined,
        (e) => this.log.error({ err: e }, 'retention pass failed; it runs again next interval'),
      ).finally(() => {
        this.running = null;
        this.schedule(this.intervalMs);
      });
    }, ms);
    this.timer.unref();
  }

  /** Purges until nothing is left past retention (bounded per run); returns what it removed. */
  async runOnce(now = Date.now()): Promise<PurgeCounts> {
    const total: PurgeCounts = { messages: 0, deliveries: 0, attempts: 0, idempotencyKeys: 0, operationalEvents: 0, sourceEvents: 0 };
    for (let i = 0; i < MAX_BATCHES_PER_RUN && !this.stopped; i++) {
      const c = await this.store.purgeExpired(now, now - this.retentionMs, BATCH);
      for (const k of Object.keys(total) as (keyof PurgeCounts)[]) total[k] += c[k];
      if (Math.max(c.messages, c.attempts, c.idempotencyKeys, c.operationalEvents, c.sourceEvents) < BATCH) break;
      await new Promise((r) => setTimeout(r, PAUSE_MS));
    }
    if (Object.values(total).some((n) => n > 0)) this.log.info({ purged: total }, 'retention pass');
    return total;
  }

  async stop() {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.running) await this.running;
  }
}
