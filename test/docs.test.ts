import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigDoc } from '../src/config-doc.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { ERRORS } from '../src/http/errors.js';

const read = (p: string) => fs.readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');

describe('documentation matches the code', () => {
  it('docs/configuration.md is the rendering of src/config.ts (run npm run docs:config)', () => {
    expect(read('docs/configuration.md')).toBe(renderConfigDoc());
  });

  it('docs/api.md lists every error code of the catalogue with its status', () => {
    const doc = read('docs/api.md');
    for (const [code, e] of Object.entries(ERRORS)) {
      expect(doc, `docs/api.md should list ${code}`).toMatch(new RegExp(`\\| \`${code}\` \\| ${e.status} \\|`));
    }
  });
});

describe('configuration validation', () => {
  it('names the variable and the fix for a bad value', () => {
    expect(() => loadConfig({ KOPPEL_PORT: 'eighty' })).toThrow(/KOPPEL_PORT="eighty" is not a whole number/);
    expect(() => loadConfig({ KOPPEL_RETRY_SCHEDULE: '0,five' })).toThrow(ConfigError);
    expect(() => loadConfig({ KOPPEL_ALLOWED_NETWORKS: '10.0.0.0' })).toThrow(/not a CIDR block/);
    expect(() => loadConfig({ KOPPEL_ROLE: 'boss' })).toThrow(/use api, worker or all/);
    expect(() => loadConfig({ KOPPEL_PROT: '1' })).toThrow(/KOPPEL_PROT is not a Koppel setting/);
  });

  const message = (env: Record<string, string>): string => {
    try {
      loadConfig(env);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
  };

  it('validates each allowed network fully, naming the variable and the entry', () => {
    expect(message({ KOPPEL_ALLOWED_NETWORKS: '127.0.0.0/8,300.0.0.0/8' })).toMatch(/^KOPPEL_ALLOWED_NETWORKS: "300\.0\.0\.0\/8" is not a CIDR block: "300\.0\.0\.0" is not an IPv4 or IPv6 address; write each block as address\/prefix/);
    expect(message({ KOPPEL_ALLOWED_NETWORKS: '10.0.0.0/33' })).toMatch(/^KOPPEL_ALLOWED_NETWORKS: "10\.0\.0\.0\/33" .*prefix length of an IPv4 address is at most 32/);
    expect(message({ KOPPEL_ALLOWED_NETWORKS: '::/129' })).toMatch(/^KOPPEL_ALLOWED_NETWORKS: "::\/129" .*at most 128/);
    // Shorthand the address parser would read as another network (0.0.0.10/8, octal 8.0.0.0/8).
    expect(message({ KOPPEL_ALLOWED_NETWORKS: '10/8' })).toMatch(/^KOPPEL_ALLOWED_NETWORKS: "10\/8" is not a CIDR block/);
    expect(message({ KOPPEL_ALLOWED_NETWORKS: '010.0.0.0/8' })).toMatch(/^KOPPEL_ALLOWED_NETWORKS: "010\.0\.0\.0\/8" is not a CIDR block/);
    expect(message({ KOPPEL_ALLOWED_NETWORKS: '10.0.0.0' })).toMatch(/^KOPPEL_ALLOWED_NETWORKS: "10\.0\.0\.0" is not a CIDR block; .*one host is \/32/);
    expect(loadConfig({ KOPPEL_ALLOWED_NETWORKS: '127.0.0.0/8, ::1/128, ::ffff:10.0.0.0/104' }).allowedNetworks).toEqual(['127.0.0.0/8', '::1/128', '::ffff:10.0.0.0/104']);
  });

  it('checks the format of KOPPEL_SECRET_KEY without echoing it', () => {
    const m = message({ KOPPEL_SECRET_KEY: 'hunter2-not-a-key' });
    expect(m).toMatch(/^KOPPEL_SECRET_KEY is not base64 of 32 bytes; generate one with: openssl rand -base64 32/);
    expect(m).not.toContain('hunter2');
    // 31 bytes: valid base64, wrong length.
    expect(message({ KOPPEL_SECRET_KEY: Buffer.alloc(31, 7).toString('base64') })).toMatch(/^KOPPEL_SECRET_KEY is not base64 of 32 bytes/);
    const key = Buffer.alloc(32, 7).toString('base64');
    expect(loadConfig({ KOPPEL_SECRET_KEY: `${key}\n` }).secretKey).toBe(key);
  });

  it('gives each URL setting its own schemes', () => {
    expect(message({ KOPPEL_PUBLIC_URL: 'postgres://x' })).toMatch(/^KOPPEL_PUBLIC_URL="postgres:\/\/x" must be an http:\/\/ or https:\/\/ URL/);
    expect(message({ KOPPEL_PUBLIC_URL: 'webhooks.example.com' })).toMatch(/^KOPPEL_PUBLIC_URL="webhooks\.example\.com" is not a URL; write it like https:/);
    expect(loadConfig({ KOPPEL_PUBLIC_URL: 'https://webhooks.example.com/' }).publicUrl).toBe('https://webhooks.example.com');
    const m = message({ KOPPEL_DATABASE_URL: 'http://koppel:s3cret@db.internal/koppel' });
    expect(m).toMatch(/^KOPPEL_DATABASE_URL must be a postgres:\/\/ or postgresql:\/\/ URL \(it is http:\)/);
    expect(m).not.toContain('s3cret');
    expect(message({ KOPPEL_DATABASE_URL: 'db.internal' })).toMatch(/^KOPPEL_DATABASE_URL is not a URL; write it like postgres:/);
    expect(loadConfig({ KOPPEL_DATABASE_URL: 'postgresql://koppel@db.internal:5432/koppel' }).databaseUrl).toBe('postgresql://koppel@db.internal:5432/koppel');
    expect(loadConfig({ KOPPEL_DATABASE_URL: 'postgres://koppel@db.internal/koppel' }).databaseUrl).toBe('postgres://koppel@db.internal/koppel');
  });

  it('accepts an IP address or host name for KOPPEL_HOST and nothing else', () => {
    for (const host of ['0.0.0.0', '127.0.0.1', '::', '::1', 'localhost', 'koppel-api.internal', 'koppel_api']) {
      expect(loadConfig({ KOPPEL_HOST: host }).host).toBe(host);
    }
    for (const host of ['not a host', '300.1.2.3', 'http://localhost', '', '-x.example']) {
      expect(message({ KOPPEL_HOST: host })).toMatch(/^KOPPEL_HOST=".*" is not an IP address or host name; use an IP address such as 0\.0\.0\.0/);
    }
    expect(message({ KOPPEL_HOST: '[::1]' })).toMatch(/^KOPPEL_HOST="\[::1\]": write the IPv6 address without brackets \(::1\)/);
  });

  it('refuses a lease an attempt with a transformation could outlast, naming the minimum', () => {
    // request 10 s + transformation 1 s + 1 s hard-kill grace + 0.1 s shortest thread wait.
    expect(message({ KOPPEL_LEASE: '5', KOPPEL_REQUEST_TIMEOUT: '10' })).toMatch(
      /^KOPPEL_LEASE \(5s\) must be longer than .* 12\.1s: KOPPEL_REQUEST_TIMEOUT \(10s\) \+ KOPPEL_TRANSFORM_TIMEOUT \(1s\) \+ 1s .*Set KOPPEL_LEASE above 12\.1,/,
    );
    // Longer than the request timeout alone is not enough: the transformation comes first.
    expect(message({ KOPPEL_LEASE: '16', KOPPEL_REQUEST_TIMEOUT: '15', KOPPEL_TRANSFORM_TIMEOUT: '1' })).toMatch(/^KOPPEL_LEASE \(16s\) .*above 17\.1,/);
    expect(message({ KOPPEL_LEASE: '17.1' })).toMatch(/above 17\.1,/);
    expect(message({ KOPPEL_LEASE: '20', KOPPEL_TRANSFORM_TIMEOUT: '5' })).toMatch(/KOPPEL_TRANSFORM_TIMEOUT \(5s\).*above 21\.1,/);
    expect(loadConfig({ KOPPEL_LEASE: '17.2' }).leaseMs).toBe(17_200);
    // Fractions are shown rounded, not as binary floating point.
    expect(message({ KOPPEL_LEASE: '2', KOPPEL_REQUEST_TIMEOUT: '0.3' })).toMatch(/, 2\.4s: .*above 2\.4,/);
  });

  it('has working defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8071);
    expect(c.role).toBe('all');
    expect(c.retrySchedule).toEqual([0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
    expect(c.requestTimeoutMs).toBe(15_000);
    expect(c.disableAfterFailingMs).toBe(5 * 86_400_000);
    // The default lease covers the default attempt's worst case (15 s + 1 s + 1.1 s).
    expect(c.leaseMs).toBe(60_000);
    expect(c.transformTimeoutMs).toBe(1_000);
  });
});
