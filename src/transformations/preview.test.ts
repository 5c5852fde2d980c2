/**
 * The preview's schema check walks required/properties/items/type and local $refs in linear time
 * and never runs a schema's regular expressions; a preview stops at its time budget and answers
 * 503 when the sandbox cannot take it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../http/errors.js';
import { checkAgainstSchema, preview, type Sample } from './preview.js';
import { Sandbox } from './sandbox.js';

describe('the target schema check', () => {
  it('does not execute patterns: a catastrophic regular expression costs nothing', () => {
    const schema = { type: 'object', required: ['naam', 'kvk'], properties: { naam: { type: 'string', pattern: '^(a+)+$' }, kvk: { type: 'string', format: 'regex', pattern: '^(a|aa)+$' } } };
    const started = performance.now();
    const r = checkAgainstSchema({ naam: `${'a'.repeat(28)}!` }, schema);
    expect(performance.now() - started).toBeLessThan(100);
    expect(r).toEqual({ missing: ['kvk'], errors: [] });
  });

  it('follows nested objects, array items and local $refs, reporting missing fields by path', () => {
    const schema = {
      type: 'object',
      required: ['klant', 'regels'],
      properties: { klant: { $ref: '#/$defs/klant' }, regels: { type: 'array', items: { $ref: '#/definitions/regel' } }, paar: { type: 'array', items: [{ required: ['a'] }, { required: ['b'] }] } },
      $defs: { klant: { type: 'object', required: ['naam', 'adres'], properties: { adres: { $ref: '#/$defs/adres' } } }, adres: { required: ['land'] } },
      definitions: { regel: { type: 'object', required: ['prijs'] } },
    };
    const out = { klant: { naam: 'Jan', adres: {} }, regels: [{ prijs: 1 }, {}, {}], paar: [{}, { b: 1 }] };
    expect(checkAgainstSchema(out, schema)).toEqual({ missing: ['klant.adres.land', 'regels[].prijs', 'paar[0].a'], errors: [] });
    expect(checkAgainstSchema({ klant: 'x', regels: {} }, schema).errors).toEqual(['klant must be object', 'regels must be array']);
    expect(checkAgainstSchema('x', { type: ['object', 'null'] }).errors).toEqual(['(root) must be object or null']);
  });

  it('guards against reference cycles, remote references, deep nesting and huge outputs', () => {
    expect(checkAgainstSchema({}, { $ref: '#/$defs/a', $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/a' } } }).errors).toEqual([expect.stringContaining('leads back to itself')]);
    expect(checkAgainstSchema({ a: {} }, { properties: { a: { $ref: 'https://example.com/s.json' } } }).errors).toEqual([expect.stringContaining('is not followed')]);
    // A recursive schema over a deep value stops at the depth bound.
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 200; i++) deep = { child: deep };
    const tree = { $ref: '#/$defs/node', $defs: { node: { type: 'object', properties: { child: { $ref: '#/$defs/node' } } } } };
    expect(checkAgainstSchema(deep, tree).errors).toEqual([expect.stringContaining('nested deeper than 64 levels')]);
    const many = { regels: Array.from({ length: 100_000 }, () => ({})) };
    const started = performance.now();
    const r = checkAgainstSchema(many, { properties: { regels: { items: { required: ['a', 'b'] } } } });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(r.missing).toEqual(['regels[].a', 'regels[].b']);
    expect(r.errors).toEqual([expect.stringContaining('too large to check completely')]);
    // A malformed schema is a finding, not a crash.
    expect(checkAgainstSchema({}, { required: 'a' }).errors).toEqual([expect.stringContaining('"required" is not a list')]);
  });
});

describe('preview runs', () => {
  const sandbox = new Sandbox(1);
  afterAll(() => sandbox.close());
  beforeAll(() => sandbox.run('javascript', 'function handler(w) { return w; }', {}, { timeoutMs: 5000, memoryBytes: 8 << 20 })); // the thread and QuickJS are up
  const spin = (ms: number) => `function handler(w) { const end = Date.now() + ${ms}; while (Date.now() < end) {} return w; }`;
  const samples = (n: number): Sample[] => Array.from({ length: n }, (_, i) => ({ messageId: null, eventType: 't', payload: { i } }));
  const limits = { timeoutMs: 1000, memoryBytes: 8 << 20, maxWaitMs: 200 };
  const req = (code: string, n: number, budgetMs?: number) => ({ kind: 'javascript' as const, code, mapping: null, url: 'http://x', samples: samples(n), schemaFor: async () => null, budgetMs });

  it('stops running samples once its time budget is spent, and says so', async () => {
    const r = await preview(sandbox, limits, req(spin(120), 6, 300));
    expect(r.results.length).toBeGreaterThanOrEqual(1);
    expect(r.results.length).toBeLessThan(6);
    expect(r.skippedSamples).toBe(6 - r.results.length);
    expect(r.note).toMatch(/time budget \(300 ms\) was spent; \d of 6 samples were not run/);
    const all = await preview(sandbox, limits, req('function handler(w) { return w; }', 3));
    expect(all).toMatchObject({ skippedSamples: 0, note: null });
  });

  it('answers 503 with Retry-After when the sandbox cannot take it', async () => {
    const hog = sandbox.run('javascript', spin(800), {}, { timeoutMs: 2000, memoryBytes: 8 << 20 });
    const err = await preview(sandbox, limits, req('function handler(w) { return w; }', 2)).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 503, code: 'unavailable', headers: { 'retry-after': expect.stringMatching(/^\d+$/) } });
    await hog;
  });
});
