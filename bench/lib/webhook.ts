/**
 * What every system sends: a 1 KB JSON payload that carries its sequence number and the time it
 * was created (ms, sub-millisecond precision, same clock in every process of this machine), and
 * Standard Webhooks signatures for the systems that sign themselves (ceiling, BullMQ baseline).
 */
import crypto from 'node:crypto';

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export const PAYLOAD_BYTES = 1024;
const PAD = 'x'.repeat(PAYLOAD_BYTES);

/**
 * A compact JSON object of exactly `bytes` bytes: {"seq":…,"t":…,"pad":"xxx…"}, or with a
 * leading "w":1 for warm-up messages, which the receiver verifies but leaves out of the results.
 */
export function makePayload(seq: number, t: number = nowMs(), warmup = false, bytes = PAYLOAD_BYTES): string {
  const head = `{${warmup ? '"w":1,' : ''}"seq":${seq},"t":${t.toFixed(3)},"pad":"`;
  const fill = Math.max(0, bytes - head.length - 2);
  return head + PAD.slice(0, fill) + '"}';
}

/** A new HMAC signing secret in the whsec_ form (24 random bytes). */
export function newSecret(): string {
  return 'whsec_' + crypto.randomBytes(24).toString('base64');
}

export function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
}

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. */
export function sign(key: Buffer, id: string, timestampS: number, body: string): string {
  return 'v1,' + crypto.createHmac('sha256', key).update(`${id}.${timestampS}.`).update(body).digest('base64');
}

/** The headers a Standard Webhooks sender adds. */
export function signedHeaders(key: Buffer, id: string, body: string): Record<string, string> {
  const ts = Math.floor(Date.now() / 1000);
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(ts),
    'webhook-signature': sign(key, id, ts, body),
  };
}
