/**
 * Takes the screenshots in docs/screenshots/ (referenced from README.md and docs/dashboard.md):
 * starts a Koppel on a temporary SQLite store with two loopback receivers (one healthy, one
 * failing), fills it with an application, a catalogue, endpoints and messages through the API,
 * then photographs the dashboard and the portal in Debian's Chromium.
 *
 *   npm run screenshots          (builds the web UI first)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { startKoppel } from '../src/server.js';
import { launchBrowser } from '../test/e2e/browser.js';

const KEY = 'screenshot-admin-key-0123456789';
const OUT = fileDir('../docs/screenshots');

function fileDir(rel: string) {
  const dir = new URL(rel, import.meta.url).pathname;
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

async function receiver(status: number, body: string) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      // A little latency, so the numbers look like a real receiver's.
      setTimeout(() => {
        res.statusCode = status;
        res.setHeader('content-type', 'application/json');
        res.end(body);
      }, 20 + Math.random() * 60);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function main() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'koppel-shots-'));
  const config = loadConfig({
    KOPPEL_DATA_DIR: dataDir, KOPPEL_PORT: '0', KOPPEL_HOST: '127.0.0.1', KOPPEL_ADMIN_API_KEY: KEY,
    KOPPEL_ALLOWED_NETWORKS: '127.0.0.0/8', KOPPEL_RETRY_SCHEDULE: '0,0.2,0.4', KOPPEL_PORTAL_NAME: 'Acme Cloud',
  });
  const koppel = await startKoppel(config, { logger: pino({ level: 'silent' }) });
  const base = koppel.url!;
  const ok = await receiver(200, '{"received":true}');
  const bad = await receiver(503, '{"error":"maintenance window"}');
  const api = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(base + p, { method, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };

  try {
    for (const [name, uid] of [['Acme B.V.', 'acme'], ['Globex Logistics', 'globex'], ['Initech', 'initech'], ['Umbrella Retail', 'umbrella']]) {
      await api('POST', '/api/v1/app', { name, uid });
    }
    const types = [
      { name: 'invoice.created', groupName: 'invoices', description: 'A new invoice was issued.', example: { invoiceId: 'inv_1042', amount: 1250.0, currency: 'EUR' } },
      { name: 'invoice.paid', groupName: 'invoices', description: 'An invoice was paid in full.', example: { invoiceId: 'inv_1042', paidAt: '2026-11-28T10:15:00Z' } },
      { name: 'order.shipped', groupName: 'orders', description: 'An order left the warehouse.', example: { orderId: 'ord_77', carrier: 'PostNL', trackingCode: '3SKAB0012345' } },
      { name: 'customer.updated', groupName: 'customers', description: 'Customer details changed.', example: { customerId: 'cus_9', email: 'ap@acme.example' } },
    ];
    for (const t of types) {
      const properties = Object.fromEntries(Object.entries(t.example).map(([k, v]) => [k, { type: typeof v === 'number' ? 'number' : 'string' }]));
      await api('POST', '/api/v1/event-type', { name: t.name, description: t.description, groupName: t.groupName, schemas: { 1: { type: 'object', properties, required: Object.keys(t.example), examples: [t.example] } } });
    }
    const erp = await api('POST', '/api/v1/app/acme/endpoint', { url: `${ok.url}/webhooks/erp`, description: 'Acme ERP (production)', filterTypes: ['invoice.*'], rateLimit: 50, headers: { 'x-acme-tenant': 'nl-01' } });
    await api('POST', '/api/v1/app/acme/endpoint', { url: `${bad.url}/hooks/warehouse`, description: 'Warehouse system', filterTypes: ['order.shipped'] });
    await api('POST', '/api/v1/app/acme/endpoint', { url: `${ok.url}/crm`, description: 'CRM sync', filterTypes: ['customer.updated'], channels: ['sales'] });
    for (let i = 0; i < 12; i++) {
      const t = types[i % types.length];
      await api('POST', '/api/v1/app/acme/msg', { eventType: t.name, payload: { ...t.example, seq: i }, ...(t.name === 'customer.updated' ? { channels: ['sales'] } : {}) });
    }
    // A WooCommerce source with every kind of entry in its log, and an accounting endpoint that
    // maps its orders with a mapping table and logs in with an API key.
    const wcSecret = 'screenshot-woocommerce-secret';
    const shop = await api('POST', '/api/v1/app/acme/source', { name: 'Webshop (WooCommerce)', description: 'Orders from shop.acme.example', provider: 'woocommerce', secret: wcSecret });
    const books = await api('POST', '/api/v1/app/acme/endpoint', { url: `${ok.url}/boekhouding`, description: 'Boekhouding (accounting)', filterTypes: ['order.created'] });
    await api('PUT', `/api/v1/app/acme/endpoint/${books.id}/auth`, { type: 'api-key', header: 'X-Api-Key', key: 'screenshot-accounting-key' });
    await api('PATCH', `/api/v1/app/acme/endpoint/${books.id}/transformation`, {
      mapping: {
        fields: [
          { source: 'id', target: 'factuur.referentie' },
          { source: 'billing.email', target: 'klant.email' },
          { source: 'billing.last_name', target: 'klant.naam' },
          { source: 'klantstatus', target: 'klant.status', values: { 'Actieve Klant': 'actief', 'Oud-klant': 'inactief' }, default: 'onbekend' },
          { source: 'currency', target: 'factuur.valuta', default: 'EUR' },
          { expression: '$number(total)', target: 'factuur.totaal' },
          { value: 'webshop', target: 'bron' },
          { source: 'billing.phone', target: null, note: 'geen telefoonveld in het boekhoudpakket' },
        ],
      },
    });
    const ingest = (body: string, headers: Record<string, string>) => fetch(`${base}/in/${shop.id}`, { method: 'POST', headers, body });
    const wc = (body: string, delivery: string, secret = wcSecret) => ingest(body, {
      'content-type': 'application/json', 'x-wc-webhook-topic': 'order.created', 'x-wc-webhook-delivery-id': delivery,
      'x-wc-webhook-signature': crypto.createHmac('sha256', secret).update(body).digest('base64'),
    });
    await ingest('webhook_id=12', { 'content-type': 'application/x-www-form-urlencoded' });
    const orders = [
      { id: 5121, status: 'processing', currency: 'EUR', total: '129.95', klantstatus: 'Actieve Klant', billing: { first_name: 'Sanne', last_name: 'de Vries', email: 'sanne@example.nl', phone: '+31 20 555 0101' }, line_items: [{ sku: 'MUG-01', quantity: 2 }] },
      { id: 5122, status: 'processing', currency: 'EUR', total: '54.00', klantstatus: 'Oud-klant', billing: { first_name: 'Daan', last_name: 'Jansen', email: 'daan@example.nl', phone: '+31 30 555 0199' }, line_items: [{ sku: 'TEE-M', quantity: 1 }] },
    ];
    await wc(JSON.stringify(orders[0]), '901');
    await wc(JSON.stringify(orders[0]), '901');
    await wc(JSON.stringify(orders[1]), '902', 'an-old-secret');
    await wc(JSON.stringify(orders[1]), '903');
    await new Promise((r) => setTimeout(r, 3000));
    const msgs = await api('GET', '/api/v1/app/acme/msg?limit=20&event_types=order.shipped');
    const portal = await api('POST', '/api/v1/auth/app-portal-access/acme', { expiry: 3600, branding: { name: 'Acme Cloud', accentColor: '#0f766e' } });

    const browser = await launchBrowser();
    try {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
      const page = await ctx.newPage();
      const shot = async (file: string) => {
        await page.waitForTimeout(400);
        await page.screenshot({ path: path.join(OUT, file), fullPage: true });
        console.log(`docs/screenshots/${file}`);
      };
      await page.goto(`${base}/`);
      await page.getByLabel('API key').fill('kpl_…');
      await shot('sign-in.png');
      await page.getByLabel('API key').fill(KEY);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Applications' }).waitFor();
      await shot('applications.png');
      await page.getByRole('link', { name: 'Acme B.V.' }).click();
      await page.getByText('Acme ERP (production)').waitFor();
      await page.getByText(/attempts, \d+ failed/).waitFor();
      await shot('application.png');
      await page.goto(`${base}/apps/acme/endpoints/${erp.id}`);
      await page.getByLabel('Event type').selectOption('invoice.paid');
      await page.getByRole('button', { name: 'Send test event' }).click();
      await page.getByTestId('test-result').waitFor();
      await page.getByRole('button', { name: 'Reveal' }).click();
      await page.getByLabel('Signing secret', { exact: true }).waitFor();
      await shot('endpoint.png');
      await page.goto(`${base}/apps/acme/messages/${msgs.data[0].id}`);
      await page.locator('details summary').first().click();
      await shot('message.png');
      await page.goto(`${base}/apps/acme/sources/${shop.id}`);
      const log = page.getByTestId('source-log');
      await log.getByText('Rejected').waitFor();
      await log.locator('summary').filter({ hasText: 'Rejected' }).click();
      await shot('sources.png');
      await page.goto(`${base}/apps/acme/endpoints/${books.id}`);
      const editor = page.getByRole('form', { name: 'Transformation editor' });
      await editor.getByRole('button', { name: 'Preview' }).click();
      await page.getByTestId('preview-result').first().waitFor();
      await page.waitForTimeout(400);
      await page.locator('section').filter({ has: editor }).screenshot({ path: path.join(OUT, 'transformation.png') });
      console.log('docs/screenshots/transformation.png');
      await page.goto(`${base}/event-types`);
      await page.getByText('invoice.created').waitFor();
      await page.locator('details summary').first().click();
      await shot('event-types.png');

      const portalCtx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
      const pp = await portalCtx.newPage();
      await pp.goto(portal.url);
      await pp.getByText('Acme ERP (production)').waitFor();
      await pp.waitForTimeout(400);
      await pp.screenshot({ path: path.join(OUT, 'portal.png'), fullPage: true });
      console.log('docs/screenshots/portal.png');
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
      const mp = await phone.newPage();
      await mp.goto(portal.url);
      await mp.getByText('Acme ERP (production)').waitFor();
      await mp.waitForTimeout(400);
      await mp.screenshot({ path: path.join(OUT, 'portal-phone.png') });
      console.log('docs/screenshots/portal-phone.png');
    } finally {
      await browser.close();
    }
  } finally {
    await koppel.close();
    ok.server.close();
    bad.server.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
