/**
 * The retention job: every KOPPEL_RETENTION_INTERVAL it removes what is past its retention
 * (message payloads past their own expiry; messages past the retention period with their
 * deliveries and attempts; old attempts and their response bodies, expired idempotency keys, old
 * operational events, old source events, expired de-duplication keys, idle rate buckets; see
 * Store.purgeExpired) in batches of a few hundred rows, each in its own short transaction,
 * pausing between batches so deliveries and API writes never queue behind it. Several processes
 * may run it at once: deleting an already deleted row is harmless.
 */
import type { Logger } from 'pino';
import type { PurgeCounts, Store } from '../store/port.js';

export interface RetentionOptions {
  /** Rows per query of one batch (default 500). */
  batch?: number;
  /** Batches per run at most (default 200), so one run ends even if rows keep coming. */
  maxBatches?: number;
  /** Pause between batches in ms (default 20). */
  pauseMs?: number;
}

export class RetentionJob {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly batch: number;
  private readonly maxBatches: number;
  private readonly pauseMs: number;

  constructor(
    private readonly store: Store,
    private readonly retentionMs: number,
    private readonly intervalMs: number,
    private readonly log: Logger,
    opts: RetentionOptions = {},
  ) {
    this.batch = opts.batch ?? 500;
    this.maxBatches = opts.maxBatches ?? 200;
    this.pauseMs = opts.pauseMs ?? 20;
  }

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
    const total: PurgeCounts = { messages: 0, payloads: 0, deliveries: 0, attempts: 0, idempotencyKeys: 0, operationalEvents: 0, sourceEvents: 0, dedupeKeys: 0, rateBuckets: 0 };
    for (let i = 0; i < this.maxBatches && !this.stopped; i++) {
      const c = await this.store.purgeExpired(now, now - this.retentionMs, this.batch);
      for (const k of Object.keys(total) as (keyof PurgeCounts)[]) total[k] += c[k];
      // A query that filled its batch may have left more behind. Both message queries feed
      // messages + payloads, so their sum is the bound; a count above a batch only costs one more
      // (empty) batch. Deliveries go with their messages and have no batch of their own.
      const fullest = Math.max(c.messages + c.payloads, c.attempts, c.idempotencyKeys, c.operationalEvents, c.sourceEvents, c.dedupeKeys, c.rateBuckets);
      if (fullest < this.batch) break;
      await new Promise((r) => setTimeout(r, this.pauseMs));
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
