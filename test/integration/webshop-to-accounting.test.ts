/**
 * Seed 001 end to end: a WooCommerce order posted to a source is verified, mapped to an accounting
 * system's invoice shape, and delivered to a loopback "accounting API" with the destination's API
 * key. Then a broken transformation version fails deliveries, is rolled back in one call, and the
 * failed messages are recovered. Runs on SQLite and PostgreSQL.
 */
import crypto from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint, pollApi, waitForPath } from '../api/support.js';
import { WOO_ORDER_BODY, WOO_ORDER_SIGNATURE, WOO_SECRET } from '../sources/fixtures.js';

const API_KEY = 'boekhoud-api-key-7f3a';

/** The invoice the accounting system expects (its "create invoice" API). */
const INVOICE_SCHEMA = {
  type: 'object',
  required: ['factuurnummer', 'klant', 'regels', 'totaal', 'valuta'],
  properties: {
    klant: { type: 'object', required: ['naam', 'email', 'btwNummer'] },
    regels: { type: 'array', items: { type: 'object', required: ['omschrijving', 'aantal', 'prijs'] } },
  },
};

const MAPPING = {
  fields: [
    { source: 'number', target: 'factuurnummer' },
    { expression: 'billing.first_name & " " & billing.last_name', target: 'klant.naam' },
    { source: 'billing.email', target: 'klant.email' },
    { source: 'billing.company', target: 'klant.bedrijf' },
    { expression: 'meta_data[key="klantstatus"].value', target: 'klant.statusTekst' },
    { source: 'status', target: 'status', values: { processing: 'open', completed: 'betaald' }, default: 'concept' },
    { expression: '[line_items.{"omschrijving": name, "aantal": quantity, "prijs": price, "sku": sku}]', target: 'regels' },
    { expression: '$number(total)', target: 'totaal' },
    { source: 'currency', target: 'valuta', default: 'EUR' },
    { value: 'webshop', target: 'bron' },
    { source: 'billing.phone', target: null, note: 'Het boekhoudpakket heeft geen telefoonveld' },
  ],
};

let k: TestKoppel;
let accounting: Receiver;

beforeAll(async () => {
  k = await startTestKoppel();
  accounting = await startReceiver();
  // The accounting API refuses requests without its key.
  accounting.respond((req, res) => {
    res.statusCode = req.headers['x-api-key'] === API_KEY ? 201 : 401;
    res.end(res.statusCode === 201 ? '{"status":"succes"}' : '{"error":"unauthorized"}');
  });
});
afterAll(async () => {
  await accounting.close();
  await k.close();
});

const wooSign = (body: string) => crypto.createHmac('sha256', WOO_SECRET).update(body).digest('base64');
async function postOrder(url: string, body: string, signature: string, deliveryId: string) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-wc-webhook-signature': signature, 'x-wc-webhook-topic': 'order.created', 'x-wc-webhook-delivery-id': deliveryId },
    body,
  });
  return { status: res.status, body: (await res.json()) as any };
}

describe('webshop to accounting', () => {
  it('verifies, maps, authenticates, delivers; a broken version is rolled back and its failures recovered', async () => {
    const app = await createApp(k, { name: 'Jansen Tuinen', uid: 'jansen' });
    const ep = await createEndpoint(k, app.id, { url: `${accounting.url}/api/v1/facturen`, filterTypes: ['order.created'], description: 'Boekhouding' });
    expect(ep.version).toBe(1);

    // The destination's auth, stored encrypted, shown without the key.
    const auth = await k.api('PUT', `/api/v1/app/${app.id}/endpoint/${ep.id}/auth`, { type: 'api-key', header: 'X-Api-Key', key: API_KEY });
    expect(auth.status, JSON.stringify(auth.body)).toBe(200);
    expect(auth.body).toEqual({ type: 'api-key', header: 'x-api-key', username: null });
    expect(JSON.stringify((await k.api('GET', `/api/v1/app/${app.id}/endpoint/${ep.id}/auth`)).body)).not.toContain(API_KEY);

    // Preview the mapping on a sample before saving it.
    const preview = await k.api('POST', `/api/v1/app/${app.id}/endpoint/${ep.id}/transformation/preview`, {
      mapping: MAPPING, targetSchema: INVOICE_SCHEMA, samples: [{ eventType: 'order.created', payload: JSON.parse(WOO_ORDER_BODY) }],
    });
    expect(preview.status, JSON.stringify(preview.body)).toBe(200);
    expect(preview.body.results[0]).toMatchObject({ ok: true, output: { factuurnummer: '727', klant: { naam: 'Jan Jansen' }, totaal: 60.5, status: 'open' } });
    expect(preview.body.missingRequiredFields).toEqual(['klant.btwNummer']);
    expect(preview.body.notMappableFields).toEqual(['billing.phone']);
    expect(preview.body.unmappedSourceFields).toEqual(expect.arrayContaining(['billing.address_1', 'billing.postcode', 'line_items[].total_tax']));
    expect(preview.body.unmappedSourceFields).not.toContain('billing.email');
    expect(preview.body.compiled).toContain('"factuurnummer"');

    const saved = await k.api('PATCH', `/api/v1/app/${app.id}/endpoint/${ep.id}/transformation`, { mapping: MAPPING, targetSchema: INVOICE_SCHEMA });
    expect(saved.status, JSON.stringify(saved.body)).toBe(204);
    const good = await k.api('GET', `/api/v1/app/${app.id}/endpoint/${ep.id}`);
    expect(good.body.version).toBe(3);

    // The webshop posts an order to the source.
    const source = (await k.api('POST', `/api/v1/app/${app.id}/source`, { name: 'WooCommerce', provider: 'woocommerce', secret: WOO_SECRET })).body;
    const first = await postOrder(source.ingestUrl, WOO_ORDER_BODY, WOO_ORDER_SIGNATURE, '1001');
    expect(first).toMatchObject({ status: 200, body: { status: 'accepted' } });
    const [delivered] = await waitForPath(accounting, '/api/v1/facturen', 1);
    const invoice = JSON.parse(delivered.body);
    expect(invoice).toEqual({
      factuurnummer: '727',
      klant: { naam: 'Jan Jansen', email: 'jan@jansen-tuinen.example', bedrijf: 'Jansen Tuinen B.V.', statusTekst: 'Actieve Klant' },
      status: 'open',
      regels: [
        { omschrijving: 'Snoeischaar', aantal: 2, prijs: 20, sku: 'SN-01' },
        { omschrijving: 'Tuinhandschoenen', aantal: 1, prijs: 10, sku: 'TH-02' },
      ],
      totaal: 60.5,
      valuta: 'EUR',
      bron: 'webshop',
    });
    expect(delivered.headers['x-api-key']).toBe(API_KEY);
    // The transformed body is what is signed.
    const secret = (await k.api('GET', `/api/v1/app/${app.id}/endpoint/${ep.id}/secret`)).body.key;
    expect(() => new Webhook(secret).verify(delivered.body, delivered.headers as Record<string, string>)).not.toThrow();
    // The recorded attempt hides the key.
    const attempts = await pollApi(k, `/api/v1/app/${app.id}/attempt/endpoint/${ep.id}`, (b) => (b.data.length ? b.data : null));
    expect(attempts[0].responseStatusCode).toBe(201);
    expect(JSON.stringify(attempts[0])).not.toContain(API_KEY);

    // A broken transformation version goes live.
    const broken = await k.api('PATCH', `/api/v1/app/${app.id}/endpoint/${ep.id}/transformation`, {
      code: 'function handler(webhook) { if (!webhook.payload.btw_nummer) throw new Error("btw_nummer ontbreekt"); return webhook; }',
    });
    expect(broken.status, JSON.stringify(broken.body)).toBe(204);
    const before = Date.now();
    const secondBody = WOO_ORDER_BODY.replace('"id":727', '"id":728').replace('"number":"727"', '"number":"728"');
    expect((await postOrder(source.ingestUrl, secondBody, wooSign(secondBody), '1002')).body.status).toBe('accepted');
    // Every attempt fails on the transformation, nothing reaches accounting, the delivery ends failed.
    await pollApi(k, `/api/v1/app/${app.id}/endpoint/${ep.id}/stats`, (b) => b.fail === 1);
    expect(accounting.requests).toHaveLength(1);
    const failed = (await k.api('GET', `/api/v1/app/${app.id}/attempt/endpoint/${ep.id}?status=2`)).body.data;
    expect(failed.length).toBeGreaterThan(0);
    expect(failed[0]).toMatchObject({ responseStatusCode: 0 });
    expect(failed[0].response + JSON.stringify(failed[0])).toContain('btw_nummer ontbreekt');

    // The versions show what changed; roll back to the mapping in one call.
    const versions = (await k.api('GET', `/api/v1/app/${app.id}/endpoint/${ep.id}/version`)).body.data;
    expect(versions.map((v: any) => [v.version, v.reason, v.current])).toEqual([[4, 'transformation', true], [3, 'transformation', false], [2, 'auth', false], [1, 'created', false]]);
    expect(versions[0].changes).toEqual([{ field: 'transformation', from: expect.objectContaining({ kind: 'mapping' }), to: expect.objectContaining({ kind: 'javascript' }) }]);
    expect(versions[2].changes).toEqual([{ field: 'auth', from: { type: 'none', header: null, username: null }, to: { type: 'api-key', header: 'x-api-key', username: null } }]);
    const rolled = await k.api('POST', `/api/v1/app/${app.id}/endpoint/${ep.id}/version/3/rollback`);
    expect(rolled.status, JSON.stringify(rolled.body)).toBe(200);
    expect(rolled.body.version).toBe(5);
    expect((await k.api('GET', `/api/v1/app/${app.id}/endpoint/${ep.id}/transformation`)).body).toMatchObject({ kind: 'mapping', enabled: true, code: null });
    expect((await k.api('GET', `/api/v1/app/${app.id}/endpoint/${ep.id}/version/5`)).body).toMatchObject({ reason: 'rollback to 3', current: true });

    // Recover what failed meanwhile: it is delivered with the restored mapping.
    const rec = await k.api('POST', `/api/v1/app/${app.id}/endpoint/${ep.id}/recover`, { since: new Date(before - 1000).toISOString() });
    expect(rec.body.count).toBe(1);
    const all = await waitForPath(accounting, '/api/v1/facturen', 2);
    expect(JSON.parse(all[1].body)).toMatchObject({ factuurnummer: '728', klant: { naam: 'Jan Jansen' }, totaal: 60.5 });
    expect(all[1].headers['x-api-key']).toBe(API_KEY);
  });
});
