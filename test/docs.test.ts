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
    expect(() => loadConfig({ KOPPEL_LEASE: '5', KOPPEL_REQUEST_TIMEOUT: '10' })).toThrow(/must be longer than KOPPEL_REQUEST_TIMEOUT/);
  });

  it('has working defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8071);
    expect(c.role).toBe('all');
    expect(c.retrySchedule).toEqual([0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
    expect(c.requestTimeoutMs).toBe(15_000);
    expect(c.disableAfterFailingMs).toBe(5 * 86_400_000);
  });
});
