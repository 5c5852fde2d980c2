/**
 * The load generator: creates messages in a system, either as fast as it takes them (burst) or
 * at a fixed rate (steady). Every message carries seq (0..n-1) and its create time, taken just
 * before the create call. Bounded in count (n) and in time (a hard deadline).
 */
import { sleep } from './proc.js';
import { makePayload, nowMs } from './webhook.js';
import type { Deployment } from '../systems/types.js';

export interface LoadResult {
  /** Messages the system accepted. */
  created: number;
  /** Create calls that failed (each counts its messages). */
  failed: number;
  firstError: string | null;
  /** Messages not even attempted because the time limit hit first. */
  skipped: number;
  startedAt: number;
  endedAt: number;
  /** Accepted messages per second while creating. */
  createRate: number;
  /** Steady mode: how far behind schedule sends went (p99 and max, ms). */
  lagP99Ms: number | null;
  lagMaxMs: number | null;
}

function result(created: number, failed: number, firstError: string | null, skipped: number, startedAt: number, lags: number[] | null): LoadResult {
  const endedAt = nowMs();
  let lagP99Ms: number | null = null;
  let lagMaxMs: number | null = null;
  if (lags && lags.length) {
    const s = Float64Array.from(lags).sort();
    lagP99Ms = s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)];
    lagMaxMs = s[s.length - 1];
  }
  return { created, failed, firstError, skipped, startedAt, endedAt, createRate: created / Math.max(0.001, (endedAt - startedAt) / 1000), lagP99Ms, lagMaxMs };
}

/**
 * Creates n messages as fast as the system accepts them: `concurrency` create calls in flight,
 * each carrying one message (single) or up to `batch` (bulk).
 */
export async function burst(d: Deployment, n: number, mode: 'single' | 'bulk', opts: { concurrency: number; batch: number; timeLimitMs: number }): Promise<LoadResult> {
  const startedAt = nowMs();
  const deadline = startedAt + opts.timeLimitMs;
  let next = 0;
  let created = 0;
  let failed = 0;
  let firstError: string | null = null;
  const size = mode === 'bulk' ? Math.min(opts.batch, d.maxBatch) : 1;
  const lane = async () => {
    while (next < n && nowMs() < deadline) {
      const from = next;
      const to = Math.min(n, from + size);
      next = to;
      try {
        if (mode === 'bulk') {
          const t = nowMs();
          const bodies: string[] = [];
          for (let s = from; s < to; s++) bodies.push(makePayload(s, t));
          await d.createMany(bodies);
        } else {
          await d.createOne(makePayload(from));
        }
        created += to - from;
      } catch (e) {
        failed += to - from;
        firstError ??= (e as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, lane));
  return result(created, failed, firstError, n - next, startedAt, null);
}

/**
 * Creates `rate` messages per second for `durationMs` (n = rate × duration), one create call
 * each, with at most `maxInFlight` calls outstanding. A send that cannot start on time (the
 * system is slower than the rate and maxInFlight is reached) starts late; its create time is when
 * it actually started, and the lag is reported. Stops sending at durationMs + graceMs.
 *
 * Resolves when the last send has started; `settled` resolves once every create has answered
 * (or `settleMs` after sending ended), so the caller can watch deliveries meanwhile.
 */
export async function steady(
  d: Deployment,
  rate: number,
  durationMs: number,
  opts: { maxInFlight: number; graceMs: number; settleMs: number; deadline?: number; warmup?: boolean },
): Promise<{ sent: number; settled: Promise<LoadResult> }> {
  const n = Math.round((rate * durationMs) / 1000);
  const startedAt = nowMs();
  const hardEnd = Math.min(startedAt + durationMs + opts.graceMs, opts.deadline ?? Infinity);
  let sent = 0;
  let inFlight = 0;
  let created = 0;
  let failed = 0;
  let firstError: string | null = null;
  const lags: number[] = [];
  const pending = new Set<Promise<void>>();
  for (let iter = 0; iter < 50_000_000 && sent < n; iter++) {
    const now = nowMs();
    if (now >= hardEnd) break;
    const due = Math.min(n, Math.floor(((now - startedAt) * rate) / 1000) + 1);
    while (sent < due && inFlight < opts.maxInFlight) {
      const seq = sent++;
      const t = nowMs();
      lags.push(Math.max(0, t - (startedAt + (seq * 1000) / rate)));
      inFlight++;
      const p: Promise<void> = d
        .createOne(makePayload(seq, t, opts.warmup ?? false))
        .then(
          () => void created++,
          (e: Error) => {
            failed++;
            firstError ??= e.message;
          },
        )
        .finally(() => {
          inFlight--;
          pending.delete(p);
        });
      pending.add(p);
    }
    await sleep(1);
  }
  const sendEnded = nowMs();
  const settled = (async () => {
    await Promise.race([Promise.allSettled([...pending]), sleep(Math.max(0, sendEnded + opts.settleMs - nowMs()))]);
    const unanswered = pending.size;
    const r = result(created, failed + unanswered, firstError ?? (unanswered ? `${unanswered} creates still unanswered ${opts.settleMs} ms after the last send` : null), n - sent, startedAt, lags);
    // The create phase ended when the last send started, not when we stopped waiting.
    r.endedAt = sendEnded;
    r.createRate = sent / Math.max(0.001, (sendEnded - startedAt) / 1000);
    return r;
  })();
  return { sent, settled };
}
