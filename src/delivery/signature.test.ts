import crypto from 'node:crypto';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { Webhook as SvixWebhook } from 'svix';
import { describe, expect, it } from 'vitest';
import { generateSecret, normalizeSecret, publicKeyOf, sign, signatureHeader, validateSecret, verify } from './signature.js';

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

const now = () => Math.floor(Date.now() / 1000);
const bodyOf = (n: number) => JSON.stringify({ type: 'invoice.paid', data: { n, note: 'grüße ✓ 🚀' } });

function standardVerifies(secret: string, msgId: string, ts: number, body: string, header: string): boolean {
  try {
    new StandardWebhook(secret).verify(body, { 'webhook-id': msgId, 'webhook-timestamp': String(ts), 'webhook-signature': header });
    return true;
  } catch {
    return false;
  }
}

function svixVerifies(secret: string, msgId: string, ts: number, body: string, header: string): boolean {
  try {
    new SvixWebhook(secret).verify(body, { 'svix-id': msgId, 'svix-timestamp': String(ts), 'svix-signature': header });
    return true;
  } catch {
    return false;
  }
}

describe('HMAC signatures (whsec_)', () => {
  it('matches the published Standard Webhooks test vector', () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const sig = sign(secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}');
    expect(sig).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    expect(verify(secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}', sig)).toBe(true);
    // Bare base64 is the same secret.
    expect(sign('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}')).toBe(sig);
  });

  it('generates whsec_ secrets of 32 random bytes', () => {
    const a = generateSecret();
    const b = generateSecret('hmac');
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(a.slice(6), 'base64')).toHaveLength(32);
    expect(a).not.toBe(b);
    expect(validateSecret(a)).toBeNull();
    expect(publicKeyOf(a)).toBeNull();
  });

  it('is accepted by the standardwebhooks and svix verifiers, which reject a tampered body', () => {
    for (let i = 0; i < 5; i++) {
      const secret = generateSecret();
      const msgId = `msg_${crypto.randomBytes(8).toString('hex')}`;
      const ts = now();
      const body = bodyOf(i);
      const header = signatureHeader([secret], msgId, ts, body);
      expect(header).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);

      expect(standardVerifies(secret, msgId, ts, body, header)).toBe(true);
      expect(svixVerifies(secret, msgId, ts, body, header)).toBe(true);

      const tampered = body.replace('"n":', '"n": ');
      expect(standardVerifies(secret, msgId, ts, tampered, header)).toBe(false);
      expect(svixVerifies(secret, msgId, ts, tampered, header)).toBe(false);
      expect(verify(secret, msgId, ts, tampered, header)).toBe(false);
      // Also bound to id and timestamp.
      expect(standardVerifies(secret, `${msgId}x`, ts, body, header)).toBe(false);
      expect(svixVerifies(secret, msgId, ts - 1, body, header)).toBe(false);
    }
  });

  it('produces the same signature as the standardwebhooks reference signer (incl. 24- and 64-byte secrets)', () => {
    for (const size of [24, 32, 48, 64]) {
      const secret = 'whsec_' + crypto.randomBytes(size).toString('base64');
      const ts = 1700000000 + size;
      const body = bodyOf(size);
      expect(sign(secret, 'msg_x', ts, body)).toBe(new StandardWebhook(secret).sign('msg_x', new Date(ts * 1000), body));
      // Bytes and strings sign identically.
      expect(sign(secret, 'msg_x', ts, Buffer.from(body))).toBe(sign(secret, 'msg_x', ts, body));
    }
  });

  it.each([
    ['old secret first', true],
    ['new secret first', false],
  ])('rotation header (%s) is accepted with either secret by both verifiers', (_label, oldFirst) => {
    const oldSecret = generateSecret();
    const newSecret = generateSecret();
    const msgId = 'msg_rotation';
    const ts = now();
    const body = bodyOf(42);
    const header = signatureHeader(oldFirst ? [oldSecret, newSecret] : [newSecret, oldSecret], msgId, ts, body);
    expect(header.split(' ')).toHaveLength(2);
    for (const secret of [oldSecret, newSecret]) {
      expect(standardVerifies(secret, msgId, ts, body, header)).toBe(true);
      expect(svixVerifies(secret, msgId, ts, body, header)).toBe(true);
      expect(verify(secret, msgId, ts, body, header)).toBe(true);
      expect(standardVerifies(secret, msgId, ts, body + ' ', header)).toBe(false);
      expect(svixVerifies(secret, msgId, ts, body + ' ', header)).toBe(false);
    }
    expect(verify(generateSecret(), msgId, ts, body, header)).toBe(false);
  });

  it('rejects non-integer timestamps and empty secret lists', () => {
    const secret = generateSecret();
    expect(() => sign(secret, 'msg', 1.5, '{}')).toThrow(/integer/);
    expect(() => sign(secret, 'msg', -1, '{}')).toThrow(/integer/);
    expect(() => signatureHeader([], 'msg', 1, '{}')).toThrow(/at least one secret/);
    expect(verify(secret, 'msg', Number.NaN, '{}', sign(secret, 'msg', 1, '{}'))).toBe(false);
  });

  it('verify ignores malformed header entries', () => {
    const secret = generateSecret();
    const good = sign(secret, 'msg', 100, '{}');
    expect(verify(secret, 'msg', 100, '{}', '')).toBe(false);
    expect(verify(secret, 'msg', 100, '{}', 'garbage v2,abc v1,')).toBe(false);
    expect(verify(secret, 'msg', 100, '{}', `garbage  ${good}`)).toBe(true);
    // The same bytes under the wrong version tag do not count.
    expect(verify(secret, 'msg', 100, '{}', good.replace('v1,', 'v1a,'))).toBe(false);
  });
});

describe('Ed25519 signatures (whsk_)', () => {
  it('generates a 64-byte whsk_ secret whose second half is the whpk_ public key', () => {
    const secret = generateSecret('ed25519');
    expect(secret).toMatch(/^whsk_[A-Za-z0-9+/]{86}==$/);
    const raw = Buffer.from(secret.slice(5), 'base64');
    expect(raw).toHaveLength(64);
    const pub = publicKeyOf(secret);
    expect(pub).toMatch(/^whpk_/);
    expect(Buffer.from(pub!.slice(5), 'base64').equals(raw.subarray(32))).toBe(true);
    expect(validateSecret(secret)).toBeNull();
  });

  it('signs v1a signatures that node:crypto verifies with the whpk_ key, and rejects a tampered body', () => {
    const secret = generateSecret('ed25519');
    const pub = publicKeyOf(secret)!;
    const publicKey = crypto.createPublicKey({
      key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(pub.slice(5), 'base64')]),
      format: 'der',
      type: 'spki',
    });
    const msgId = 'msg_ed';
    const ts = now();
    const body = bodyOf(7);
    const sig = sign(secret, msgId, ts, body);
    expect(sig.startsWith('v1a,')).toBe(true);
    const sigBytes = Buffer.from(sig.slice(4), 'base64');
    expect(sigBytes).toHaveLength(64);

    expect(crypto.verify(null, Buffer.from(`${msgId}.${ts}.${body}`), publicKey, sigBytes)).toBe(true);
    expect(crypto.verify(null, Buffer.from(`${msgId}.${ts}.${body}x`), publicKey, sigBytes)).toBe(false);

    expect(verify(pub, msgId, ts, body, sig)).toBe(true);
    expect(verify(secret, msgId, ts, body, sig)).toBe(true);
    expect(verify(pub, msgId, ts, body + 'x', sig)).toBe(false);
    expect(verify(publicKeyOf(generateSecret('ed25519'))!, msgId, ts, body, sig)).toBe(false);
  });

  it('mixes with HMAC during a switch from whsec_ to whsk_', () => {
    const hmac = generateSecret();
    const ed = generateSecret('ed25519');
    const ts = now();
    const header = signatureHeader([hmac, ed], 'msg_mix', ts, '{}');
    expect(header).toMatch(/^v1,\S+ v1a,\S+$/);
    expect(standardVerifies(hmac, 'msg_mix', ts, '{}', header)).toBe(true);
    expect(verify(publicKeyOf(ed)!, 'msg_mix', ts, '{}', header)).toBe(true);
  });

  it('cannot sign with a public key', () => {
    const pub = publicKeyOf(generateSecret('ed25519'))!;
    expect(() => sign(pub, 'msg', 1, '{}')).toThrow(/public key/);
  });
});

describe('validateSecret / normalizeSecret', () => {
  it('accepts well-formed secrets', () => {
    expect(validateSecret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')).toBeNull(); // 24 bytes
    expect(validateSecret('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')).toBeNull(); // bare base64
    expect(validateSecret('whsec_' + crypto.randomBytes(64).toString('base64'))).toBeNull();
    expect(validateSecret(crypto.randomBytes(32).toString('base64'))).toBeNull();
  });

  it('rejects bad secrets with a message', () => {
    expect(validateSecret('')).toMatch(/empty/);
    expect(validateSecret('whsec_')).toMatch(/base64/);
    expect(validateSecret('whsec_' + crypto.randomBytes(16).toString('base64'))).toMatch(/24\.\.64 bytes.*16/);
    expect(validateSecret('whsec_' + crypto.randomBytes(65).toString('base64'))).toMatch(/24\.\.64 bytes.*65/);
    expect(validateSecret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La!aSw')).toMatch(/base64/); // bad character
    expect(validateSecret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS')).toMatch(/base64/); // truncated
    expect(validateSecret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ')).toMatch(/base64/); // whitespace
    expect(validateSecret('whsec_' + crypto.randomBytes(32).toString('base64url'))).not.toBeNull();
    expect(validateSecret('short')).toMatch(/base64/);
  });

  it('checks whsk_ layout and consistency', () => {
    const secret = generateSecret('ed25519');
    const raw = Buffer.from(secret.slice(5), 'base64');
    expect(validateSecret('whsk_' + raw.subarray(0, 32).toString('base64'))).toMatch(/64 bytes/);
    const wrongPublic = Buffer.concat([raw.subarray(0, 32), crypto.randomBytes(32)]);
    expect(validateSecret('whsk_' + wrongPublic.toString('base64'))).toMatch(/does not match/);
    expect(validateSecret(publicKeyOf(secret)!)).toMatch(/public key/);
    expect(() => sign('whsk_' + wrongPublic.toString('base64'), 'msg', 1, '{}')).toThrow(/does not match/);
  });

  it('normalizeSecret adds whsec_ only when no prefix is present', () => {
    expect(normalizeSecret('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')).toBe('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    expect(normalizeSecret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')).toBe('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    const ed = generateSecret('ed25519');
    expect(normalizeSecret(ed)).toBe(ed);
  });

  it('error messages never echo the secret', () => {
    const secret = 'whsec_' + crypto.randomBytes(16).toString('base64');
    expect(validateSecret(secret)).not.toContain(secret.slice(6));
  });
});
