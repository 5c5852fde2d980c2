/**
 * Encryption of secrets at rest (endpoint signing secrets etc.) with AES-256-GCM.
 *
 * Sealed format: `v1:<keyId>:<base64url iv>:<base64url ciphertext>:<base64url tag>`.
 * The key id travels with each ciphertext so the master key can be rotated without a flag day:
 * new data is sealed with the current key, old rows still open with the previous keys until
 * they are re-encrypted. The `v1:<keyId>` header is also bound in as GCM additional data, so it
 * cannot be edited without failing authentication.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { createFileOnce, readIfExists } from '../lib/key-file.js';

const VERSION = 'v1';
const KEY_BYTES = 32;
const IV_BYTES = 12; // GCM's native nonce size; other sizes are hashed down and offer no benefit.
const TAG_BYTES = 16;
const MASTER_KEY_HELP = 'KOPPEL_SECRET_KEY must be base64 of 32 random bytes; generate one with: openssl rand -base64 32';

/** Decodes a master key; null unless it is canonical standard base64 of exactly 32 bytes. */
function decodeMasterKey(base64Key: string): Buffer | null {
  if (typeof base64Key !== 'string') return null;
  // Trim because keys pasted from `openssl rand -base64 32` or read from a file carry a newline.
  const text = base64Key.trim();
  // Node's decoder skips junk characters, so a typo would silently yield a different key; the
  // round trip makes the check strict.
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  return bytes.length === KEY_BYTES && bytes.toString('base64') === text ? bytes : null;
}

/**
 * Whether a value is usable as a master key (canonical base64 of 32 bytes, surrounding whitespace
 * allowed), so the configuration can refuse a bad KOPPEL_SECRET_KEY before anything starts.
 */
export function isMasterKey(base64Key: string): boolean {
  return decodeMasterKey(base64Key) !== null;
}

function decodeBase64Url(text: string): Buffer | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : null;
}

/**
 * Key id of a master key: first 8 hex chars of its SHA-256. Deterministic, so every process
 * configured with the same key agrees on it, and it reveals nothing usable about the key.
 */
export function keyIdOf(key: Buffer): string {
  return crypto.createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/** The authenticated data of a sealed value: format version, key id and, when given, purpose. */
function aad(keyId: string, purpose: string | undefined): Buffer {
  return Buffer.from(purpose === undefined ? `${VERSION}:${keyId}` : `${VERSION}:${keyId}:${purpose}`, 'utf8');
}

/** Seals and opens short secrets with AES-256-GCM under a rotatable set of 32-byte keys. */
export class SecretBox {
  private readonly keys = new Map<string, Buffer>();
  private readonly currentId: string;

  /**
   * @param keys every key that may have sealed existing data (ids must be unique, keys 32 bytes).
   * @param currentId id of the key used by encrypt(); must be one of `keys`.
   * @throws Error on a malformed key set.
   */
  constructor(keys: { id: string; key: Buffer }[], currentId: string) {
    for (const { id, key } of keys) {
      if (typeof id !== 'string' || !/^[A-Za-z0-9_-]+$/.test(id)) {
        throw new Error(`SecretBox key id "${String(id)}" is invalid; use letters, digits, "_" or "-" (":" would break the sealed format).`);
      }
      if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) throw new Error(`SecretBox key "${id}" must be exactly ${KEY_BYTES} bytes.`);
      const existing = this.keys.get(id);
      if (existing && !existing.equals(key)) throw new Error(`SecretBox key id "${id}" is used by two different keys.`);
      // Copy so later mutation of the caller's buffer cannot change what we decrypt with.
      this.keys.set(id, Buffer.from(key));
    }
    if (!this.keys.has(currentId)) throw new Error(`SecretBox current key id "${currentId}" is not among the configured keys.`);
    this.currentId = currentId;
  }

  /**
   * Builds a box from one master key (the `KOPPEL_SECRET_KEY` value).
   * @throws Error with instructions unless the value is base64 of exactly 32 bytes.
   */
  static fromMasterKey(base64Key: string): SecretBox {
    return SecretBox.fromMasterKeys(base64Key, []);
  }

  /**
   * Builds a box that encrypts with `current` and can still decrypt data sealed with any of
   * `previous` (use during master-key rotation until everything is re-encrypted).
   * @throws Error naming the offending key unless each value is base64 of exactly 32 bytes.
   */
  static fromMasterKeys(current: string, previous: string[]): SecretBox {
    const currentKey = decodeMasterKey(current);
    if (!currentKey) throw new Error(MASTER_KEY_HELP);
    const keys = [{ id: keyIdOf(currentKey), key: currentKey }];
    previous.forEach((value, index) => {
      const key = decodeMasterKey(value);
      if (!key) throw new Error(`Previous secret key #${index + 1} is invalid: ${MASTER_KEY_HELP}`);
      keys.push({ id: keyIdOf(key), key });
    });
    return new SecretBox(keys, keys[0].id);
  }

  /** Id of the key that encrypt() uses. */
  get currentKeyId(): string {
    return this.currentId;
  }

  /**
   * Encrypts a string under the current key with a fresh random IV. `purpose` is bound into the
   * authenticated data: a value sealed for one purpose (say a stored secret, whose text a user
   * chooses) never opens as another (a session or portal token). Stored secrets use none.
   */
  encrypt(plain: string, purpose?: string): string {
    if (typeof plain !== 'string') throw new TypeError('SecretBox.encrypt expects a string.');
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.keys.get(this.currentId)!, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(this.currentId, purpose));
    const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [VERSION, this.currentId, iv.toString('base64url'), ciphertext.toString('base64url'), tag.toString('base64url')].join(':');
  }

  /**
   * Decrypts a value produced by encrypt() with any configured key.
   * @throws Error if the value is malformed, sealed with an unknown key, or fails authentication
   *   (tampered, truncated or wrong key) — never returns unauthenticated data.
   */
  decrypt(sealed: string, purpose?: string): string {
    if (typeof sealed !== 'string') throw new Error('Cannot decrypt secret: expected a sealed string.');
    const parts = sealed.split(':');
    if (parts.length !== 5 || parts[0] !== VERSION) {
      throw new Error(`Cannot decrypt secret: not in the "${VERSION}:<keyId>:<iv>:<ciphertext>:<tag>" format.`);
    }
    const [, keyId, ivText, ciphertextText, tagText] = parts;
    const key = this.keys.get(keyId);
    if (!key) {
      throw new Error(`Cannot decrypt secret: it was sealed with key id "${keyId}", which is not configured (if the master key was rotated, add the previous key).`);
    }
    const iv = decodeBase64Url(ivText);
    const ciphertext = decodeBase64Url(ciphertextText);
    const tag = decodeBase64Url(tagText);
    if (!iv || iv.length !== IV_BYTES || !ciphertext || !tag || tag.length !== TAG_BYTES) {
      throw new Error('Cannot decrypt secret: the sealed value is corrupt (bad IV, ciphertext or tag encoding).');
    }
    // authTagLength pins the tag size so a truncated tag cannot be accepted.
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad(keyId, purpose));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    } catch {
      throw new Error(`Cannot decrypt secret: authentication failed for key id "${keyId}" (the value was tampered with or the key is wrong).`);
    }
  }
}

/**
 * Returns the master key stored in `<dataDir>/secret.key`, creating it (32 random bytes, base64,
 * mode 0600, parent directories as needed) on first use. Used when KOPPEL_SECRET_KEY is unset.
 * When an API and a worker process start at the same moment, both end up with the one key that
 * was written first (createFileOnce): a replaced key would make everything the other process
 * already encrypted unreadable.
 * @throws Error if an existing file does not hold a valid key — it is never overwritten, since it
 *   may be the only way to decrypt stored secrets.
 */
export function loadOrCreateMasterKey(dataDir: string): string {
  const file = path.join(dataDir, 'secret.key');
  const existing = readKeyFile(file);
  if (existing !== null) return existing;
  createFileOnce(file, `${crypto.randomBytes(KEY_BYTES).toString('base64')}\n`);
  // Re-read rather than return the generated key, so that whatever is on disk is what this process uses.
  return readKeyFile(file) ?? fail(file);
}

function readKeyFile(file: string): string | null {
  const text = readIfExists(file);
  if (text === null) return null;
  const key = text.trim();
  if (!decodeMasterKey(key)) fail(file);
  return key;
}

function fail(file: string): never {
  throw new Error(`${file} does not contain a valid master key (base64 of 32 bytes). Restore the original file, or if no secrets were stored yet, delete it to generate a new one.`);
}
