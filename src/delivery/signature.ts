/**
 * Standard Webhooks signing (https://www.standardwebhooks.com/), compatible with Svix.
 *
 * Signed content is the UTF-8 bytes of `${msgId}.${timestampSeconds}.${body}`.
 * - `whsec_<base64>` secrets produce `v1,<base64 HMAC-SHA256>` signatures.
 * - `whsk_<base64 64 bytes>` secrets (32-byte seed followed by 32-byte public key, libsodium's
 *   layout) produce `v1a,<base64 Ed25519 signature>`; receivers verify with `whpk_<base64 32 bytes>`.
 *
 * Secrets are parsed strictly (canonical, padded standard base64) because Node's base64 decoder
 * silently skips invalid characters: a lenient parse would sign with bytes the receiver's
 * verifier (which decodes strictly) never derives, and every delivery would fail verification.
 */
import crypto, { type KeyObject } from 'node:crypto';

/** The two kinds of signing secret Standard Webhooks defines. */
export type SecretKind = 'hmac' | 'ed25519';

const HMAC_PREFIX = 'whsec_';
const ED25519_SECRET_PREFIX = 'whsk_';
const ED25519_PUBLIC_PREFIX = 'whpk_';

/** Bounds from Svix: its API accepts `^(whsec_)?[a-zA-Z0-9+/=]{32,100}$`, i.e. 24..64 bytes once decoded. */
const HMAC_MIN_BYTES = 24;
const HMAC_MAX_BYTES = 64;
const ED25519_SEED_BYTES = 32;
const ED25519_PUBLIC_BYTES = 32;
const ED25519_SIGNATURE_BYTES = 64;

// Fixed ASN.1 headers that wrap a raw Ed25519 seed / public key; node:crypto has no raw import.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

type ParsedKey =
  | { kind: 'hmac'; key: KeyObject }
  | { kind: 'ed25519'; privateKey: KeyObject; publicKey: KeyObject; publicKeyRaw: Buffer }
  | { kind: 'ed25519-public'; publicKey: KeyObject };

type Inspected =
  | { kind: 'hmac'; bytes: Buffer }
  | { kind: 'ed25519'; seed: Buffer; publicKeyRaw: Buffer }
  | { kind: 'ed25519-public'; publicKeyRaw: Buffer }
  | { error: string };

/** Decodes canonical, padded standard base64; null for anything else (see module comment for why). */
function decodeBase64Strict(text: string): Buffer | null {
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  // The round trip rejects non-zero padding bits, which other decoders may treat differently.
  return bytes.toString('base64') === text ? bytes : null;
}

function ed25519PrivateKeyFromSeed(seed: Buffer): KeyObject {
  return crypto.createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function ed25519PublicKeyFromRaw(raw: Buffer): KeyObject {
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

function rawPublicKey(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519_PREFIX.length);
}

/**
 * Single parser shared by validation, signing and verification so they can never disagree on
 * what a secret means. Error messages never echo the secret: they end up in API responses and logs.
 */
function inspect(input: string): Inspected {
  if (typeof input !== 'string' || input.length === 0) return { error: 'Secret is empty.' };
  const secret = normalizeSecret(input);

  if (secret.startsWith(ED25519_PUBLIC_PREFIX)) {
    const bytes = decodeBase64Strict(secret.slice(ED25519_PUBLIC_PREFIX.length));
    if (!bytes || bytes.length !== ED25519_PUBLIC_BYTES) {
      return { error: `A whpk_ public key must be followed by standard base64 of exactly ${ED25519_PUBLIC_BYTES} bytes.` };
    }
    return { kind: 'ed25519-public', publicKeyRaw: bytes };
  }

  if (secret.startsWith(ED25519_SECRET_PREFIX)) {
    const bytes = decodeBase64Strict(secret.slice(ED25519_SECRET_PREFIX.length));
    if (!bytes) return { error: 'A whsk_ secret must be followed by standard base64 (A-Z, a-z, 0-9, +, / and = padding).' };
    if (bytes.length !== ED25519_SEED_BYTES + ED25519_PUBLIC_BYTES) {
      return { error: `A whsk_ secret must hold exactly 64 bytes (32-byte seed, then 32-byte public key); this one holds ${bytes.length}.` };
    }
    const seed = bytes.subarray(0, ED25519_SEED_BYTES);
    const claimedPublic = bytes.subarray(ED25519_SEED_BYTES);
    const derivedPublic = rawPublicKey(crypto.createPublicKey(ed25519PrivateKeyFromSeed(seed)));
    // A mismatched half would make us publish a whpk_ that cannot verify what we sign.
    if (!derivedPublic.equals(claimedPublic)) return { error: 'The whsk_ secret is corrupt: its public-key half does not match its seed.' };
    return { kind: 'ed25519', seed: Buffer.from(seed), publicKeyRaw: derivedPublic };
  }

  const bytes = decodeBase64Strict(secret.slice(HMAC_PREFIX.length));
  if (!bytes) return { error: 'A secret must be "whsec_" followed by standard base64 (A-Z, a-z, 0-9, +, / and = padding).' };
  if (bytes.length < HMAC_MIN_BYTES || bytes.length > HMAC_MAX_BYTES) {
    return { error: `A whsec_ secret must decode to ${HMAC_MIN_BYTES}..${HMAC_MAX_BYTES} bytes; this one decodes to ${bytes.length}.` };
  }
  return { kind: 'hmac', bytes };
}

// Parsing (and for Ed25519 the seed → public key derivation) costs far more than an HMAC, and
// sign() runs once per delivery attempt, so parsed keys are memoised. Bounded so a long-running
// worker that sees many rotated secrets cannot grow without limit; Map order gives cheap LRU.
const KEY_CACHE_MAX = 1024;
const keyCache = new Map<string, ParsedKey>();

function parsedKey(input: string): ParsedKey {
  const secret = typeof input === 'string' ? normalizeSecret(input) : input;
  const hit = keyCache.get(secret);
  if (hit) {
    keyCache.delete(secret);
    keyCache.set(secret, hit);
    return hit;
  }
  const inspected = inspect(secret);
  if ('error' in inspected) throw new Error(inspected.error);
  let parsed: ParsedKey;
  if (inspected.kind === 'hmac') {
    parsed = { kind: 'hmac', key: crypto.createSecretKey(inspected.bytes) };
  } else if (inspected.kind === 'ed25519') {
    const privateKey = ed25519PrivateKeyFromSeed(inspected.seed);
    parsed = { kind: 'ed25519', privateKey, publicKey: crypto.createPublicKey(privateKey), publicKeyRaw: inspected.publicKeyRaw };
  } else {
    parsed = { kind: 'ed25519-public', publicKey: ed25519PublicKeyFromRaw(inspected.publicKeyRaw) };
  }
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value as string);
  keyCache.set(secret, parsed);
  return parsed;
}

/** `<msgId>.<timestamp>.`, what the signed content starts with. */
function signedPrefix(msgId: string, timestampSeconds: number): string {
  // A fractional or exponent-formatted timestamp would be signed as e.g. "1.5e9" while the receiver
  // parses the header as an integer and signs something else: fail loudly instead.
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new TypeError(`Webhook timestamp must be a non-negative integer number of seconds; got ${timestampSeconds}.`);
  }
  return `${msgId}.${timestampSeconds}.`;
}

function signedContent(msgId: string, timestampSeconds: number, body: string | Uint8Array): Buffer {
  const prefix = Buffer.from(signedPrefix(msgId, timestampSeconds), 'utf8');
  return Buffer.concat([prefix, typeof body === 'string' ? Buffer.from(body, 'utf8') : body]);
}

/**
 * Generates a new signing secret.
 * @param kind `'hmac'` → `whsec_` + base64 of 32 random bytes (the default, what Svix issues);
 *   `'ed25519'` → `whsk_` + base64 of the 64-byte secret key (seed followed by public key).
 */
export function generateSecret(kind: SecretKind = 'hmac'): string {
  if (kind === 'hmac') return HMAC_PREFIX + crypto.randomBytes(32).toString('base64');
  if (kind === 'ed25519') {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
    const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_ED25519_PREFIX.length);
    return ED25519_SECRET_PREFIX + Buffer.concat([seed, rawPublicKey(publicKey)]).toString('base64');
  }
  throw new TypeError(`Unknown secret kind "${String(kind)}"; expected "hmac" or "ed25519".`);
}

/**
 * The public key receivers need to verify `v1a` signatures made with a `whsk_` secret.
 * @returns `whpk_` + base64 of the 32-byte public key, or null for HMAC (`whsec_`/bare) secrets,
 *   which have no public half.
 * @throws Error (with the validateSecret message) if the secret is invalid.
 */
export function publicKeyOf(secret: string): string | null {
  const key = parsedKey(secret);
  if (key.kind === 'hmac') return null;
  if (key.kind === 'ed25519') return ED25519_PUBLIC_PREFIX + key.publicKeyRaw.toString('base64');
  throw new Error('This is already a whpk_ public key; publicKeyOf expects a whsk_ or whsec_ secret.');
}

/**
 * Checks a user-supplied or stored signing secret.
 * Accepts `whsec_` + base64 of 24..64 bytes, the same base64 without prefix (Svix accepts that;
 * store it via normalizeSecret), and `whsk_` + base64 of 64 bytes whose public half matches the seed.
 * @returns a human-readable error message, or null when the secret is usable.
 */
export function validateSecret(secret: string): string | null {
  const inspected = inspect(secret);
  if ('error' in inspected) return inspected.error;
  if (inspected.kind === 'ed25519-public') return 'This is a whpk_ public key; a signing secret (whsec_ or whsk_) is required.';
  return null;
}

/**
 * Adds the `whsec_` prefix to a bare base64 secret; strings that already carry a Standard
 * Webhooks prefix (`whsec_`, `whsk_`, `whpk_`) are returned unchanged. Does not validate.
 */
export function normalizeSecret(secret: string): string {
  if (secret.startsWith(HMAC_PREFIX) || secret.startsWith(ED25519_SECRET_PREFIX) || secret.startsWith(ED25519_PUBLIC_PREFIX)) {
    return secret;
  }
  return HMAC_PREFIX + secret;
}

/**
 * Signs one message with one secret.
 * @param secret `whsec_…` (or bare base64) for HMAC, `whsk_…` for Ed25519.
 * @param msgId value of the `webhook-id` header.
 * @param timestampSeconds value of the `webhook-timestamp` header (integer Unix seconds).
 * @param body the exact request body that will be sent (a string is encoded as UTF-8).
 * @returns `v1,<base64>` for HMAC or `v1a,<base64>` for Ed25519.
 * @throws Error if the secret is invalid or a public key; TypeError for a non-integer timestamp.
 */
export function sign(secret: string, msgId: string, timestampSeconds: number, body: string | Uint8Array): string {
  const key = parsedKey(secret);
  if (key.kind === 'hmac') {
    // The HMAC is fed the parts as they are: no buffer of the whole signed content per delivery.
    const prefix = signedPrefix(msgId, timestampSeconds);
    const hmac = crypto.createHmac('sha256', key.key).update(prefix, 'utf8');
    return 'v1,' + (typeof body === 'string' ? hmac.update(body, 'utf8') : hmac.update(body)).digest('base64');
  }
  if (key.kind === 'ed25519') return 'v1a,' + crypto.sign(null, signedContent(msgId, timestampSeconds, body), key.privateKey).toString('base64');
  throw new Error('Cannot sign with a whpk_ public key; use the matching whsk_ secret.');
}

/**
 * Builds the `webhook-signature` header value: one signature per secret, space-separated, so that
 * during a rotation grace period receivers holding either the old or the new secret accept it.
 * Duplicate signatures (same secret listed twice) are emitted once.
 * @throws Error if `secrets` is empty (an unsigned delivery is always a bug) or any secret is invalid.
 */
export function signatureHeader(secrets: string[], msgId: string, timestampSeconds: number, body: string | Uint8Array): string {
  if (secrets.length === 0) throw new Error('signatureHeader needs at least one secret.');
  if (secrets.length === 1) return sign(secrets[0], msgId, timestampSeconds, body);
  return [...new Set(secrets.map((s) => sign(s, msgId, timestampSeconds, body)))].join(' ');
}

/**
 * Verifies a `webhook-signature` header the way a receiver would (for tests and the SDK).
 * Only the signature is checked: callers must reject stale timestamps (Standard Webhooks suggests
 * a 5-minute tolerance) to prevent replays.
 * @param secretOrPublicKey `whsec_`/bare base64 (checks `v1` entries), or `whsk_`/`whpk_` (checks `v1a` entries).
 * @returns true if any entry of the header matches.
 * @throws Error if `secretOrPublicKey` itself is invalid; malformed headers just return false.
 */
export function verify(secretOrPublicKey: string, msgId: string, timestamp: number, body: string | Uint8Array, header: string): boolean {
  const key = parsedKey(secretOrPublicKey);
  if (typeof header !== 'string' || !Number.isSafeInteger(timestamp) || timestamp < 0) return false;
  const content = signedContent(msgId, timestamp, body);
  const expectedHmac = key.kind === 'hmac' ? Buffer.from(crypto.createHmac('sha256', key.key).update(content).digest('base64')) : null;

  let matched = false;
  for (const entry of header.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma < 0) continue;
    const version = entry.slice(0, comma);
    const value = entry.slice(comma + 1);
    if (expectedHmac && version === 'v1') {
      const candidate = Buffer.from(value);
      // Compare the base64 text (not re-decoded bytes) so sloppy encodings cannot match; the length
      // check leaks nothing because every valid HMAC-SHA256 signature has the same length.
      if (candidate.length === expectedHmac.length && crypto.timingSafeEqual(candidate, expectedHmac)) matched = true;
    } else if (key.kind !== 'hmac' && version === 'v1a') {
      const signature = decodeBase64Strict(value);
      if (signature && signature.length === ED25519_SIGNATURE_BYTES && crypto.verify(null, content, key.publicKey, signature)) matched = true;
    }
  }
  return matched;
}
