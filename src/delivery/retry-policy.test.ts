import { describe, expect, it } from 'vitest';
import { jitter, nextRetry } from './retry-policy.js';

/** A deterministic "random" source returning the given values in turn. */
const fixed = (...values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length];
};

describe('jitter', () => {
  it('stays within ±20 % of the delay', () => {
    for (const ms of [1, 10, 100, 5000, 300_000, 36_000_000]) {
      for (let i = 0; i < 200; i++) {
        const j = jitter(ms);
        expect(j).toBeGreaterThanOrEqual(Math.floor(ms * 0.8));
        expect(j).toBeLessThanOrEqual(Math.ceil(ms * 1.2));
      }
    }
  });

  it('reaches both ends of the band at the extremes of the random source', () => {
    expect(jitter(1000, () => 0)).toBe(800);
    expect(jitter(1000, () => 0.5)).toBe(1000);
    // Math.random() is < 1; just below 1 gives the top of the band.
    expect(jitter(1000, () => 0.999999)).toBe(1200);
  });

  it('leaves zero (and negative) delays at zero', () => {
    for (let i = 0; i < 50; i++) expect(jitter(0)).toBe(0);
    expect(jitter(0, () => 0.999)).toBe(0);
    expect(jitter(-5, () => 0.999)).toBe(0);
  });

  it('returns whole milliseconds', () => {
    for (let i = 0; i < 100; i++) expect(Number.isInteger(jitter(333))).toBe(true);
  });
});

describe('nextRetry', () => {
  const schedule = [0, 5000, 300_000];
  const mid = () => 0.5; // no jitter: 0.8 + 0.4 * 0.5 = 1

  it('uses the schedule entry for the next attempt, jittered', () => {
    expect(nextRetry(1, schedule, null, 3_600_000, mid)).toEqual({ retry: true, delayMs: 5000 });
    expect(nextRetry(2, schedule, null, 3_600_000, mid)).toEqual({ retry: true, delayMs: 300_000 });
    const low = nextRetry(1, schedule, null, 3_600_000, () => 0);
    expect(low).toEqual({ retry: true, delayMs: 4000 });
    for (let i = 0; i < 100; i++) {
      const d = nextRetry(2, schedule, null, 3_600_000);
      expect(d.retry).toBe(true);
      expect(d.delayMs).toBeGreaterThanOrEqual(240_000);
      expect(d.delayMs).toBeLessThanOrEqual(360_000);
    }
  });

  it('gives up once every scheduled attempt has been made', () => {
    expect(nextRetry(3, schedule, null, 3_600_000, mid)).toEqual({ retry: false, delayMs: 0 });
    expect(nextRetry(4, schedule, null, 3_600_000, mid).retry).toBe(false);
    // A Retry-After cannot extend an exhausted schedule.
    expect(nextRetry(3, schedule, 1000, 3_600_000, mid).retry).toBe(false);
    // A one-entry schedule means a single attempt.
    expect(nextRetry(1, [0], null, 3_600_000, mid).retry).toBe(false);
  });

  it('counts a zero entry as an immediate retry', () => {
    expect(nextRetry(1, [0, 0, 0], null, 3_600_000, () => 0.9)).toEqual({ retry: true, delayMs: 0 });
  });

  it('lets Retry-After push the next attempt later', () => {
    expect(nextRetry(1, schedule, 60_000, 3_600_000, mid)).toEqual({ retry: true, delayMs: 60_000 });
    expect(nextRetry(1, [0, 0], 2000, 3_600_000, mid)).toEqual({ retry: true, delayMs: 2000 });
  });

  it('caps Retry-After at retryAfterMax', () => {
    expect(nextRetry(1, schedule, 86_400_000, 3_600_000, mid)).toEqual({ retry: true, delayMs: 3_600_000 });
    expect(nextRetry(1, [0, 0], 10_000, 1000, mid)).toEqual({ retry: true, delayMs: 1000 });
  });

  it('never lets Retry-After make the next attempt sooner than scheduled', () => {
    // Shorter than the scheduled (jittered) delay: the schedule wins.
    expect(nextRetry(2, schedule, 1000, 3_600_000, mid)).toEqual({ retry: true, delayMs: 300_000 });
    expect(nextRetry(1, schedule, 0, 3_600_000, mid)).toEqual({ retry: true, delayMs: 5000 });
    for (const r of [0, 0.25, 0.5, 0.75, 0.999]) {
      const scheduled = nextRetry(2, schedule, null, 3_600_000, fixed(r)).delayMs;
      expect(nextRetry(2, schedule, 200_000, 3_600_000, fixed(r)).delayMs).toBeGreaterThanOrEqual(scheduled);
      expect(nextRetry(2, schedule, 500_000, 3_600_000, fixed(r)).delayMs).toBe(500_000);
    }
  });

  // A receiver's Retry-After may only push the next attempt later: a cap below the scheduled
  // delay must not pull it forward.
  it('never lets a capped Retry-After make the next attempt sooner than scheduled', () => {
    for (const r of [0, 0.5, 0.999]) {
      const scheduled = nextRetry(2, schedule, null, 3_600_000, fixed(r)).delayMs;
      expect(nextRetry(2, schedule, 3_000_000, 1000, fixed(r)).delayMs).toBeGreaterThanOrEqual(scheduled);
    }
    const defaults = [0, 5, 300, 1800, 7200, 18000, 36000, 36000].map((s) => s * 1000);
    expect(nextRetry(6, defaults, 50_000_000, 3_600_000, mid).delayMs).toBeGreaterThanOrEqual(36_000_000 * 0.8);
  });
});
