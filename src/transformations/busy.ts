/**
 * A sandbox too busy to take a run on behalf of an HTTP caller (a preview, a save-time check, a
 * source's expressions) is a temporary condition of this process, not a fault of the request:
 * it is answered 503 `unavailable` with Retry-After, so clients and providers retry later.
 */
import { ApiError } from '../http/errors.js';
import type { RunResult } from './sandbox.js';

/** Seconds a caller is asked to wait: about the longest a run can hold a thread (timeout + kill). */
export const BUSY_RETRY_AFTER_S = 2;

export function sandboxBusy(reason: string): ApiError {
  return new ApiError('unavailable', `The transformation sandbox is busy (${reason}); retry in a few seconds.`, { 'retry-after': String(BUSY_RETRY_AFTER_S) });
}

/** Throws the 503 for a run refused as busy; any other result is the caller's to judge. */
export function throwIfBusy(r: RunResult): void {
  if (!r.ok && r.errorKind === 'busy') throw sandboxBusy(r.error);
}
