/**
 * Resource ids: a type prefix (`app_`, `msg_`, …) and 26 characters of Crockford base32 that sort
 * by creation time (48 bits of milliseconds, then 80 bits that are random on the first id of a
 * millisecond and incremented after it). Keyset pagination relies on that order: "after this id"
 * is "created after", with no second column and no offset.
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

let lastMs = -1;
const lastRandom = new Uint8Array(10);

function encodeTime(ms: number): string {
  let out = '';
  for (let i = 9; i >= 0; i--) {
    const mod = ms % 32;
    out = ALPHABET[mod] + out;
    ms = (ms - mod) / 32;
  }
  return out;
}

function encodeRandom(bytes: Uint8Array): string {
  // 80 bits → 16 base32 characters, 5 bits at a time.
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const b of bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  return out;
}

/** Makes a new id with the given prefix, monotonic within this process. */
export function newId(prefix: string, now = Date.now()): string {
  if (now <= lastMs) {
    // Same (or a backwards-stepping) millisecond: increment so ids stay strictly ordered.
    for (let i = lastRandom.length - 1; i >= 0; i--) {
      if (lastRandom[i] < 255) {
        lastRandom[i]++;
        break;
      }
      lastRandom[i] = 0;
    }
    now = lastMs;
  } else {
    lastRandom.set(randomBytes(10));
    // Leave headroom so increments within one millisecond never overflow the 80 bits.
    lastRandom[0] &= 0x7f;
    lastMs = now;
  }
  return `${prefix}_${encodeTime(now)}${encodeRandom(lastRandom)}`;
}

/** The smallest id of this prefix created at or after `ms`: a lower bound for time filters. */
export function idAtTime(prefix: string, ms: number): string {
  return `${prefix}_${encodeTime(Math.max(0, Math.floor(ms)))}0000000000000000`;
}

/** Milliseconds since the epoch encoded in an id made by newId. */
export function idTime(id: string): number {
  const body = id.slice(id.indexOf('_') + 1, id.indexOf('_') + 11);
  let ms = 0;
  for (const ch of body) ms = ms * 32 + ALPHABET.indexOf(ch);
  return ms;
}

export const ID_PATTERN = /^[a-z]+_[0-9A-HJKMNP-TV-Z]{26}$/;

/** An id for exactly time `ms` (random tail, not monotonic): for rows made with a given past time. */
export function idForTime(prefix: string, ms: number): string {
  return `${prefix}_${encodeTime(Math.max(0, Math.floor(ms)))}${encodeRandom(randomBytes(10))}`;
}
