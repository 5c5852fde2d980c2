/** The mapping table (seed 001's CRM → newsletter example) compiles to JSONata that does what the table says. */
import jsonata from 'jsonata';
import { describe, expect, it } from 'vitest';
import { checkMapping, compileMapping, sourcePathToJsonata, type MappingTable } from './mapping.js';
import { unmappedFields, checkAgainstSchema } from './preview.js';

const table: MappingTable = {
  fields: [
    { source: 'Voornaam', target: 'FNAME' },
    { source: 'E-mailadres', target: 'EMAIL' },
    { source: 'Klantstatus', target: 'TAGS', values: { 'Actieve Klant': 'actief' } },
    { source: 'Land', target: 'adres.land', default: 'NL' },
    { value: 'crm', target: 'bron' },
    { expression: '$uppercase(Voornaam)', target: 'weergave.naam' },
    { source: 'Telefoonnummer', target: null, note: 'Niet aanwezig in het nieuwsbriefsysteem' },
  ],
};
const crm = { Voornaam: 'Jan', 'E-mailadres': 'jan@example.nl', Klantstatus: 'Actieve Klant', Telefoonnummer: '0612345678', Bedrijf: 'Jansen B.V.' };

describe('mapping table', () => {
  it('compiles to JSONata that copies, translates values, fills defaults and constants, and leaves out unmappable fields', async () => {
    expect(checkMapping(table)).toEqual([]);
    const out = await jsonata(compileMapping(table)).evaluate(crm);
    expect(out).toEqual({ FNAME: 'Jan', EMAIL: 'jan@example.nl', TAGS: 'actief', adres: { land: 'NL' }, bron: 'crm', weergave: { naam: 'JAN' } });
    // An unlisted value passes through; a default replaces it only when set.
    expect((await jsonata(compileMapping(table)).evaluate({ ...crm, Klantstatus: 'Prospect', Land: 'BE' }))).toMatchObject({ TAGS: 'Prospect', adres: { land: 'BE' } });
    const withDefault: MappingTable = { fields: [{ source: 's', target: 't', values: { a: 'A' }, default: 'other' }] };
    expect(await jsonata(compileMapping(withDefault)).evaluate({ s: 'b' })).toEqual({ t: 'other' });
    expect(await jsonata(compileMapping(withDefault)).evaluate({ s: 'a' })).toEqual({ t: 'A' });
    expect(await jsonata(compileMapping(withDefault)).evaluate({})).toEqual({ t: 'other' });
  });

  it('quotes field names so spaces, dashes and keywords are plain names, and supports array indexes', async () => {
    expect(sourcePathToJsonata('line_items[0].sku')).toBe('`line_items`[0].`sku`');
    expect(sourcePathToJsonata('a`b')).toBeNull();
    const t: MappingTable = { fields: [{ source: 'and.or', target: 'x' }, { source: 'line_items[1].sku', target: 'y' }, { source: 'first name', target: 'z' }] };
    expect(await jsonata(compileMapping(t)).evaluate({ and: { or: 1 }, line_items: [{ sku: 'A' }, { sku: 'B' }], 'first name': 'Jan' })).toEqual({ x: 1, y: 'B', z: 'Jan' });
  });

  it('names each problem with its row', () => {
    const bad: MappingTable = {
      fields: [
        { target: 'a', source: 'x', value: 1 },
        { target: 'b' },
        { target: 'c', source: 'x..y' },
        { target: 'a', source: 'z' },
        { target: null, expression: '1' },
        { target: 'd', expression: 'x', default: 1 },
        { target: 'a.b', source: 'q' },
      ],
    };
    const problems = checkMapping(bad).map((p) => `${p.loc.slice(3).join('.')}: ${p.msg}`);
    expect(problems).toEqual(expect.arrayContaining([
      '0: give exactly one of source, expression or value',
      '1: give exactly one of source, expression or value',
      expect.stringMatching(/^2\.source: not a field path/),
      expect.stringMatching(/^3\.target: "a" is already the target of row 0/),
      expect.stringMatching(/^4\.target: a row without a target/),
      '5: values and default apply to a source field; use them with source',
      expect.stringMatching(/"a" is a value but "a.b" puts a field inside it/),
    ]));
  });
});

describe('preview reports', () => {
  it('lists source fields no row uses, apart from those marked not mappable', () => {
    const r = unmappedFields([crm, { ...crm, Land: 'NL', Extra: { Diep: 1 } }], 'mapping', compileMapping(table), table);
    expect(r).toEqual({ unmapped: ['Bedrijf', 'Extra.Diep'], notMappable: ['Telefoonnummer'] });
  });

  it('counts a field as used by code when the code names every part of its path', () => {
    const payload = { billing: { email: 'a', phone: 'b' }, items: [{ sku: 1, qty: 2 }] };
    expect(unmappedFields([payload], 'javascript', 'function handler(w) { w.payload = { mail: w.payload.billing.email, skus: w.payload.items.map(i => i.sku) }; return w; }', null).unmapped).toEqual(['billing.phone', 'items[].qty']);
    expect(unmappedFields([payload], 'jsonata', '{"m": billing.email, "p": billing.phone, "s": items.sku, "q": items.qty}', null).unmapped).toEqual([]);
  });

  it('reports required target fields the output lacks', () => {
    const schema = { type: 'object', required: ['klant', 'regels'], properties: { klant: { type: 'object', required: ['naam', 'kvk'] }, regels: { type: 'array' } } };
    expect(checkAgainstSchema({ klant: { naam: 'Jan' } }, schema)).toEqual({ missing: ['regels', 'klant.kvk'], errors: [] });
    expect(checkAgainstSchema({ klant: { naam: 'Jan', kvk: '1' }, regels: 'x' }, schema)).toEqual({ missing: [], errors: ['regels must be array'] });
    expect(checkAgainstSchema({}, null)).toEqual({ missing: [], errors: [] });
  });
});
