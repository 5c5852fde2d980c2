/** The log of rejected requests is bounded per source, so a flood cannot fill the database. */
import { describe, expect, it } from 'vitest';
import { RejectedLogLimit } from '../../src/sources/ingress.js';

describe('rejected request log limit', () => {
  it('logs a burst of 20, then one a second, and says how many it left out', () => {
    const limit = new RejectedLogLimit();
    const t0 = 1_000_000;
    const burst = Array.from({ length: 25 }, () => limit.take('src_a', t0));
    expect(burst.filter((r) => r.log)).toHaveLength(20);
    expect(burst.slice(20).every((r) => !r.log)).toBe(true);
    // Another source has its own allowance.
    expect(limit.take('src_b', t0)).toEqual({ log: true, skipped: 0 });
    // A second later one more is logged, carrying the count of those left out.
    expect(limit.take('src_a', t0 + 500)).toEqual({ log: false, skipped: 0 });
    expect(limit.take('src_a', t0 + 1000)).toEqual({ log: true, skipped: 6 });
    expect(limit.take('src_a', t0 + 1001)).toEqual({ log: false, skipped: 0 });
    // After a quiet minute the full burst is back.
    const later = Array.from({ length: 20 }, () => limit.take('src_a', t0 + 61_000));
    expect(later.every((r) => r.log)).toBe(true);
    expect(later[0].skipped).toBe(1);
  });
});
