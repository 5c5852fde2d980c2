/**
 * Seed 001 as a walkthrough: a WooCommerce webshop's orders become invoices in an accounting
 * system, through Koppel. It talks only to Koppel's API and starts one small receiver that plays
 * the accounting system's "create invoice" API (which insists on its API key).
 *
 *   KOPPEL_URL=http://localhost:8071 KOPPEL_API_KEY=kpl_… npx tsx examples/webshop-to-accounting/run.ts
 *
 * Koppel must be allowed to deliver to this machine: start it with KOPPEL_ALLOWED_NETWORKS=127.0.0.0/8.
 * See README.md next to this file for what each step shows.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

export interface Options {
  koppelUrl: string;
  apiKey: string;
  /** Address the receiver listens on and Koppel delivers to. */
  receiverHost?: string;
  log?: (line: string) => void;
}

const ACCOUNTING_KEY = 'boekhoud-demo-key';
const WOO_SECRET = 'woo-demo-secret';

/** A WooCommerce "order.created" body, as the webshop sends it. */
function order(id: number) {
  return {
    id, number: String(id), status: 'processing', currency: 'EUR', total: '60.50', date_created: '2026-03-14T10:22:08',
    billing: { first_name: 'Jan', last_name: 'Jansen', company: 'Jansen Tuinen B.V.', email: 'jan@jansen-tuinen.example', phone: '0612345678', postcode: '3511 AB' },
    line_items: [
      { name: 'Snoeischaar', sku: 'SN-01', quantity: 2, price: 20, total: '40.00' },
      { name: 'Tuinhandschoenen', sku: 'TH-02', quantity: 1, price: 10, total: '10.00' },
    ],
    meta_data: [{ key: 'klantstatus', value: 'Actieve Klant' }],
  };
}

/** The data-mapping table from the article: webshop field → accounting field. */
const MAPPING = {
  fields: [
    { source: 'number', target: 'factuurnummer' },
    { expression: 'billing.first_name & " " & billing.last_name', target: 'klant.naam' },
    { source: 'billing.email', target: 'klant.email' },
    { source: 'billing.company', target: 'klant.bedrijf' },
    { expression: 'meta_data[key="klantstatus"].value', target: 'klant.status' },
    { source: 'status', target: 'status', values: { processing: 'open', completed: 'betaald' }, default: 'concept' },
    { expression: '[line_items.{"omschrijving": name, "aantal": quantity, "prijs": price}]', target: 'regels' },
    { expression: '$number(total)', target: 'totaal' },
    { source: 'currency', target: 'valuta', default: 'EUR' },
    { source: 'billing.phone', target: null, note: 'Het boekhoudpakket heeft geen telefoonveld' },
  ],
};
const INVOICE_SCHEMA = { type: 'object', required: ['factuurnummer', 'klant', 'regels', 'totaal'], properties: { klant: { type: 'object', required: ['naam', 'email'] } } };

export async function main(o: Options): Promise<{ invoices: unknown[] }> {
  const log = o.log ?? ((l: string) => console.log(l));
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${o.koppelUrl}${path}`, {
      method, headers: { authorization: `Bearer ${o.apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (res.status >= 400) throw new Error(`${method} ${path} → ${res.status} ${text}`);
    return json;
  };
  const until = async <T>(what: string, fn: () => Promise<T | undefined | null | false>, ms = 20_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  // The accounting system: answers 201 to a request with its API key, 401 otherwise.
  const invoices: unknown[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.headers['x-api-key'] !== ACCOUNTING_KEY) {
        res.writeHead(401).end('{"error":"missing API key"}');
        return;
      }
      invoices.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(201, { 'content-type': 'application/json' }).end('{"status":"succes"}');
    });
  });
  const host = o.receiverHost ?? '127.0.0.1';
  await new Promise<void>((r) => server.listen(0, host, r));
  const receiverUrl = `http://${host}:${(server.address() as AddressInfo).port}/api/v1/facturen`;
  try {
    log(`1. The accounting API listens at ${receiverUrl}`);
    const app = await api('POST', '/api/v1/app', { name: 'Jansen Tuinen (demo)', uid: `jansen-demo-${crypto.randomBytes(3).toString('hex')}` });
    const ep = await api('POST', `/api/v1/app/${app.id}/endpoint`, { url: receiverUrl, filterTypes: ['order.created'], description: 'Boekhouding: facturen' });
    log(`2. Application ${app.id} with endpoint ${ep.id} for order.created`);
    await api('PUT', `/api/v1/app/${app.id}/endpoint/${ep.id}/auth`, { type: 'api-key', header: 'X-Api-Key', key: ACCOUNTING_KEY });
    log('3. The endpoint sends the accounting API key (stored encrypted, never shown again)');

    const preview = await api('POST', `/api/v1/app/${app.id}/endpoint/${ep.id}/transformation/preview`, {
      mapping: MAPPING, targetSchema: INVOICE_SCHEMA, samples: [{ eventType: 'order.created', payload: order(100) }],
    });
    log(`4. Preview of the mapping: ${JSON.stringify(preview.results[0].output)}`);
    log(`   not used from the webshop: ${preview.unmappedSourceFields.join(', ') || '(none)'}; cannot be mapped: ${preview.notMappableFields.join(', ')}`);
    log(`   missing for the accounting API: ${preview.missingRequiredFields.join(', ') || '(none)'}`);
    await api('PATCH', `/api/v1/app/${app.id}/endpoint/${ep.id}/transformation`, { mapping: MAPPING, targetSchema: INVOICE_SCHEMA });
    const goodVersion = (await api('GET', `/api/v1/app/${app.id}/endpoint/${ep.id}`)).version;
    log(`5. Mapping saved as endpoint version ${goodVersion}`);

    const source = await api('POST', `/api/v1/app/${app.id}/source`, { name: 'WooCommerce', provider: 'woocommerce', secret: WOO_SECRET });
    log(`6. Source ${source.id}: point the WooCommerce webhook (topic "Order created") at ${source.ingestUrl}`);
    const post = async (body: string, headers: Record<string, string>) => {
      const res = await fetch(source.ingestUrl, { method: 'POST', headers, body });
      return { status: res.status, body: await res.json() };
    };
    const wooPost = (o2: object, deliveryId: string, secret = WOO_SECRET) => {
      const body = JSON.stringify(o2);
      return post(body, {
        'content-type': 'application/json', 'x-wc-webhook-topic': 'order.created', 'x-wc-webhook-delivery-id': deliveryId,
        'x-wc-webhook-signature': crypto.createHmac('sha256', secret).update(body).digest('base64'),
      });
    };
    const ping = await post('webhook_id=1', { 'content-type': 'application/x-www-form-urlencoded' });
    log(`7. WooCommerce's activation ping → ${ping.status} ${ping.body.status}`);
    const first = await wooPost(order(727), 'd-727');
    log(`8. Order 727 → ${first.status} ${first.body.status} (message ${first.body.messageId})`);
    await until('the first invoice', async () => invoices.length >= 1);
    log(`9. The accounting API received invoice ${JSON.stringify(invoices[0])}`);
    const again = await wooPost(order(727), 'd-727');
    log(`10. The same delivery again → ${again.status} ${again.body.status} (not forwarded)`);
    const forged = await wooPost(order(999), 'd-999', 'guessed-secret');
    log(`11. A forged order → ${forged.status} ${forged.body.detail}`);

    await api('PATCH', `/api/v1/app/${app.id}/endpoint/${ep.id}/transformation`, {
      code: 'function handler(webhook) { if (!webhook.payload.vat_number) throw new Error("vat_number ontbreekt"); return webhook; }',
    });
    log('12. A colleague saves a JavaScript transformation that throws for every order');
    const second = await wooPost(order(728), 'd-728');
    const failed = await until('a failed attempt', async () => {
      const a = await api('GET', `/api/v1/app/${app.id}/attempt/endpoint/${ep.id}?status=2`);
      return a.data.find((x: { msgId: string }) => x.msgId === second.body.messageId);
    });
    log(`13. Order 728's delivery fails (${failed.errorClass}): ${failed.errorDetail}`);
    const versions = await api('GET', `/api/v1/app/${app.id}/endpoint/${ep.id}/version`);
    for (const v of versions.data) log(`    version ${v.version} (${v.reason})${v.current ? ' ← current' : ''}: ${v.changes.map((c: { field: string }) => c.field).join(', ')}`);
    const rolled = await api('POST', `/api/v1/app/${app.id}/endpoint/${ep.id}/version/${goodVersion}/rollback`);
    log(`14. Rolled back to version ${goodVersion} (now version ${rolled.version})`);
    // Deliveries still retrying pick up the restored mapping on their next try; those whose retries
    // ran out are sent again by recover.
    const rec = await api('POST', `/api/v1/app/${app.id}/endpoint/${ep.id}/recover`, { since: new Date(Date.now() - 3_600_000).toISOString() });
    log(`15. Recover resent ${rec.count} failed deliveries`);
    await until('the second invoice', async () => invoices.length >= 2, 30_000);
    log(`16. The accounting API received invoice ${JSON.stringify(invoices[1])}`);
    return { invoices };
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const koppelUrl = process.env.KOPPEL_URL ?? 'http://localhost:8071';
  const apiKey = process.env.KOPPEL_API_KEY;
  if (!apiKey) {
    console.error('Set KOPPEL_API_KEY to the admin key Koppel printed (and KOPPEL_URL if it is not http://localhost:8071).');
    process.exit(2);
  }
  main({ koppelUrl, apiKey, receiverHost: process.env.RECEIVER_HOST }).then(
    () => console.log('Done.'),
    (e) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    },
  );
}
