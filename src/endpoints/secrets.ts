/**
 * An endpoint's signing secrets, sealed at rest. The current secret comes first; after a rotation
 * the previous ones stay with an expiry (the grace period) and keep signing beside the new one, so
 * receivers can switch over without dropping a delivery.
 */
import type { SecretBox } from '../crypto/secret-box.js';
import { generateSecret, normalizeSecret } from '../delivery/signature.js';

interface StoredSecret {
  sealed: string;
  expiresAt: number | null;
}

export function sealNewSecrets(box: SecretBox, secret: string | null | undefined): string {
  const plain = secret ? normalizeSecret(secret) : generateSecret('hmac');
  return JSON.stringify([{ sealed: box.encrypt(plain), expiresAt: null }] satisfies StoredSecret[]);
}

/** The current secret in clear text. */
export function currentSecret(box: SecretBox, secrets: string): string {
  const list = JSON.parse(secrets) as StoredSecret[];
  return box.decrypt(list[0].sealed);
}

/** All secrets of an endpoint in clear text with their expiry (null for the current one). */
export function openSecrets(box: SecretBox, secrets: string): { secret: string; expiresAt: number | null }[] {
  return (JSON.parse(secrets) as StoredSecret[]).map((s) => ({ secret: box.decrypt(s.sealed), expiresAt: s.expiresAt }));
}

/** Of opened secrets, those that sign at `now`: the current one and those in their grace period. */
export function activeSecrets(opened: { secret: string; expiresAt: number | null }[], now: number): string[] {
  return opened.filter((s, i) => i === 0 || (s.expiresAt !== null && s.expiresAt > now)).map((s) => s.secret);
}

/** Every secret that signs at `now`: the current one and those still in their grace period. */
export function signingSecrets(box: SecretBox, secrets: string, now: number): string[] {
  return activeSecrets(openSecrets(box, secrets), now);
}

/** Rotates: the new secret becomes current, the old current expires after the grace period. */
export function rotateSecrets(box: SecretBox, secrets: string, newSecret: string | null | undefined, graceMs: number, now: number): string {
  const list = JSON.parse(secrets) as StoredSecret[];
  const plain = newSecret ? normalizeSecret(newSecret) : generateSecret(box.decrypt(list[0].sealed).startsWith('whsk_') ? 'ed25519' : 'hmac');
  const kept = list
    .map((s, i) => (i === 0 ? { ...s, expiresAt: now + graceMs } : s))
    .filter((s) => s.expiresAt !== null && s.expiresAt > now);
  return JSON.stringify([{ sealed: box.encrypt(plain), expiresAt: null }, ...kept].slice(0, 10));
}
