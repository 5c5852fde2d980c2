/**
 * When to try again. The schedule lists the delay before each attempt (the first entry, normally
 * 0, is the initial attempt); after the last entry the delivery has failed for good. Non-zero
 * delays get ±20 % jitter so a receiver that comes back is not hit by every retry at once. A
 * receiver's Retry-After can push the next attempt later (never sooner), up to a bound.
 */
export interface RetryDecision {
  retry: boolean;
  delayMs: number;
}

export function jitter(ms: number, random = Math.random): number {
  if (ms <= 0) return 0;
  return Math.round(ms * (0.8 + 0.4 * random()));
}

/**
 * @param attemptsMade attempts made so far, including the one that just failed
 * @param schedule     delays in ms, one per attempt
 */
export function nextRetry(attemptsMade: number, schedule: number[], retryAfterMs: number | null, retryAfterMaxMs: number, random = Math.random): RetryDecision {
  if (attemptsMade >= schedule.length) return { retry: false, delayMs: 0 };
  let delay = jitter(schedule[attemptsMade], random);
  if (retryAfterMs !== null) delay = Math.max(delay, Math.min(retryAfterMs, retryAfterMaxMs));
  return { retry: true, delayMs: delay };
}
