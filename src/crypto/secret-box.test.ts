import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretBox, keyIdOf, loadOrCreateMasterKey } from './secret-box.js';

const newKey = () => crypto.randomBytes(32).toString('base64');
const MASTER_KEY_ERROR = 'KOPPEL_SECRET_KEY must be base64 of 32 random bytes; generate one with: openssl rand -base64 32';

/** Flips one bit in the decoded bytes of part `index` of a sealed value. */
function flip(sealed: string, index: number): string {
  const parts = sealed.split(':');
  const bytes = Buffer.from(parts[index], 'base64url');
  bytes[0] ^= 0x01;
  parts[index] = bytes.toString('base64url');
  return parts.join(':');
}

describe('SecretBox', () => {
  it('round-trips, including empty and non-ASCII strings', () => {
    const box = SecretBox.fromMasterKey(newKey());
    for (const plain of ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '', 'grüße ✓ 🚀', 'x'.repeat(10_000)]) {
      expect(box.decrypt(box.encrypt(plain))).toBe(plain);
    }
  });

  it('binds a purpose: a value sealed for one purpose (or none) never opens as another', () => {
    const box = SecretBox.fromMasterKey(newKey());
    const stored = box.encrypt('{"typ":"portal"}');
    const token = box.encrypt('{"typ":"portal"}', 'token:portal');
    expect(box.decrypt(token, 'token:portal')).toBe('{"typ":"portal"}');
    expect(() => box.decrypt(stored, 'token:portal')).toThrow(/authentication failed/);
    expect(() => box.decrypt(token)).toThrow(/authentication failed/);
    expect(() => box.decrypt(token, 'token:session')).toThrow(/authentication failed/);
  });

  it('uses the documented format and a fresh IV every time', () => {
    const key = newKey();
    const box = SecretBox.fromMasterKey(key);
    const id = keyIdOf(Buffer.from(key, 'base64'));
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    expect(box.currentKeyId).toBe(id);
    const a = box.encrypt('same');
    const b = box.encrypt('same');
    expect(a).toMatch(new RegExp(`^v1:${id}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]*:[A-Za-z0-9_-]{22}$`));
    expect(a).not.toBe(b);
    expect(a.split(':')[2]).not.toBe(b.split(':')[2]);
  });

  it('detects tampering in IV, ciphertext, tag and header', () => {
    const box = SecretBox.fromMasterKey(newKey());
    const sealed = box.encrypt('whsec_secret-value');
    for (const part of [2, 3, 4]) expect(() => box.decrypt(flip(sealed, part))).toThrow(/authentication failed/);
    expect(() => box.decrypt(sealed.replace(/^v1:/, 'v2:'))).toThrow(/format/);
    expect(() => box.decrypt(sealed.slice(0, -2))).toThrow(/corrupt|authentication/);
    expect(() => box.decrypt(sealed + ':extra')).toThrow(/format/);
    expect(() => box.decrypt('not sealed at all')).toThrow(/format/);
    expect(() => box.decrypt(sealed.replace(/:([^:]*)$/, ':$1!'))).toThrow(/corrupt/);
  });

  it('rejects a value sealed with an unknown key id, naming it', () => {
    const a = SecretBox.fromMasterKey(newKey());
    const b = SecretBox.fromMasterKey(newKey());
    const sealed = a.encrypt('hello');
    expect(() => b.decrypt(sealed)).toThrow(new RegExp(`key id "${a.currentKeyId}".*not configured`));
    // Relabelling the ciphertext with b's id does not help: the id is authenticated.
    expect(() => b.decrypt(sealed.replace(a.currentKeyId, b.currentKeyId))).toThrow(/authentication failed/);
  });

  it('supports master key rotation', () => {
    const oldKey = newKey();
    const newMaster = newKey();
    const oldBox = SecretBox.fromMasterKey(oldKey);
    const sealedOld = oldBox.encrypt('old secret');

    const rotated = SecretBox.fromMasterKeys(newMaster, [oldKey]);
    expect(rotated.decrypt(sealedOld)).toBe('old secret');
    const sealedNew = rotated.encrypt('new secret');
    expect(sealedNew.split(':')[1]).toBe(keyIdOf(Buffer.from(newMaster, 'base64')));
    expect(rotated.decrypt(sealedNew)).toBe('new secret');
    expect(() => oldBox.decrypt(sealedNew)).toThrow(/not configured/);
  });

  it('validates master keys', () => {
    for (const bad of ['', 'abc', crypto.randomBytes(16).toString('base64'), crypto.randomBytes(33).toString('base64'), newKey().replace(/^./, '!')]) {
      expect(() => SecretBox.fromMasterKey(bad)).toThrow(MASTER_KEY_ERROR);
    }
    expect(() => SecretBox.fromMasterKeys(newKey(), [newKey(), 'nope'])).toThrow(/Previous secret key #2/);
    // A trailing newline (as from `openssl rand -base64 32 > file`) is fine.
    expect(() => SecretBox.fromMasterKey(newKey() + '\n')).not.toThrow();
  });

  it('validates constructor arguments', () => {
    const key = crypto.randomBytes(32);
    expect(() => new SecretBox([{ id: 'a', key }], 'b')).toThrow(/not among/);
    expect(() => new SecretBox([{ id: 'a:b', key }], 'a:b')).toThrow(/invalid/);
    expect(() => new SecretBox([{ id: 'a', key: crypto.randomBytes(16) }], 'a')).toThrow(/32 bytes/);
    expect(() => new SecretBox([{ id: 'a', key }, { id: 'a', key: crypto.randomBytes(32) }], 'a')).toThrow(/two different keys/);
  });
});

describe('loadOrCreateMasterKey', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'koppel-secret-box-'));
    dirs.push(dir);
    return dir;
  };

  it('creates the key once (mode 0600) and returns the same key afterwards', () => {
    const dataDir = path.join(tempDir(), 'nested', 'data');
    const first = loadOrCreateMasterKey(dataDir);
    expect(Buffer.from(first, 'base64')).toHaveLength(32);
    expect(() => SecretBox.fromMasterKey(first)).not.toThrow();

    const file = path.join(dataDir, 'secret.key');
    if (process.platform !== 'win32') expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(loadOrCreateMasterKey(dataDir)).toBe(first);
    // No temp files left behind.
    expect(fs.readdirSync(dataDir)).toEqual(['secret.key']);
  });

  it('reads an existing key file and refuses to overwrite an invalid one', () => {
    const dataDir = tempDir();
    const key = newKey();
    fs.writeFileSync(path.join(dataDir, 'secret.key'), `${key}\n`);
    expect(loadOrCreateMasterKey(dataDir)).toBe(key);

    fs.writeFileSync(path.join(dataDir, 'secret.key'), 'garbage');
    expect(() => loadOrCreateMasterKey(dataDir)).toThrow(/does not contain a valid master key/);
    expect(fs.readFileSync(path.join(dataDir, 'secret.key'), 'utf8')).toBe('garbage');
  });
});
