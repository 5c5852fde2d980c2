/**
 * End-to-end: connecting systems in the dashboard, in Chromium against a real Koppel. An operator
 * creates a WooCommerce source and sees a signed order (and a forged one) in its log; builds a
 * mapping-table transformation on an endpoint, previews it on that order and saves it; changes
 * the URL, reads the diff between the versions and rolls back. A customer with a read-only portal
 * link on a phone sees the same endpoint's transformation and versions but can change nothing.
 */
import crypto from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint, waitForPath } from '../api/support.js';
import { haveChromium, launchBrowser, watch } from './browser.js';

const WC_SECRET = 'wc-secret-3f9a1c';
const order = {
  id: 1042,
  status: 'processing',
  currency: 'EUR',
  klantstatus: 'Actieve Klant',
  billing: { first_name: 'Anna', email: 'anna@example.nl', phone: '+31 20 123 4567' },
};

if (!haveChromium) {
  it('connecting browser tests: Chromium is not installed at /usr/bin/chromium (apt-get install chromium)', () => {
    expect(process.env.CI, 'CI must run the browser tests; .ci/run installs Chromium').not.toBe('true');
  });
} else {
  // The tests build on each other (the order from the first is what the later ones transform).
  describe('sources, transformations and versions in Chromium', { timeout: 60_000 }, () => {
    let k: TestKoppel;
    let rcv: Receiver;
    let browser: Browser;
    let appId: string;
    let endpointId: string;
    const contexts: BrowserContext[] = [];
    const newPage = async (opts: { phone?: boolean } = {}) => {
      const ctx = await browser.newContext(opts.phone ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true } : { viewport: { width: 1280, height: 900 } });
      contexts.push(ctx);
      const page = await ctx.newPage();
      page.setDefaultTimeout(15_000);
      return page;
    };
    const signIn = async (page: Page) => {
      await page.goto(`${k.url}/`);
      await page.getByLabel('API key').fill(ADMIN_KEY);
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Applications' }).waitFor();
    };

    beforeAll(async () => {
      [k, rcv, browser] = await Promise.all([startTestKoppel(), startReceiver(), launchBrowser()]);
      appId = (await createApp(k, { name: 'Webshop Noord' })).id;
      endpointId = (await createEndpoint(k, appId, { url: `${rcv.url}/v1`, description: 'Boekhouding' })).id;
    });
    afterAll(async () => {
      for (const c of contexts) await c.close().catch(() => undefined);
      await browser?.close();
      await rcv?.close();
      await k?.close();
    });

    it('an operator creates a WooCommerce source and sees a signed order accepted and a forged one rejected in its log', async () => {
      const page = await newPage();
      const seen = watch(page, k.url);
      await signIn(page);
      await page.goto(`${k.url}/apps/${appId}`);
      await page.getByRole('link', { name: 'Sources' }).click();
      await page.getByRole('heading', { name: 'Sources' }).waitFor();
      await page.getByRole('button', { name: 'New source' }).click();
      const dialog = page.getByRole('dialog', { name: 'New source' });
      await dialog.getByLabel('Name').fill('WooCommerce <b>shop</b>');
      await dialog.getByLabel('Provider').selectOption('woocommerce');
      await dialog.getByLabel('Signing secret').fill(WC_SECRET);
      await dialog.getByRole('button', { name: 'Create source' }).click();
      await page.getByRole('heading', { name: 'WooCommerce <b>shop</b>' }).waitFor();

      const url = (await page.getByLabel('Source URL').textContent()) ?? '';
      const sourceId = /\/in\/(src_[A-Za-z0-9]+)$/.exec(url)?.[1];
      expect(sourceId).toBeTruthy();
      const stored = await k.api('GET', `/api/v1/app/${appId}/source/${sourceId}`);
      expect(stored.body).toMatchObject({ provider: 'woocommerce', name: 'WooCommerce <b>shop</b>' });
      expect(JSON.stringify(stored.body)).not.toContain(WC_SECRET);

      // The list shows it with its URL.
      await page.getByRole('link', { name: '← Sources' }).click();
      const row = page.getByRole('row', { name: /WooCommerce <b>shop<\/b>/ });
      await expect.poll(() => row.textContent()).toContain(`/in/${sourceId}`);
      expect(await row.textContent()).toContain('WooCommerce');
      await row.getByRole('link').click();
      await page.getByRole('heading', { name: 'WooCommerce <b>shop</b>' }).waitFor();

      const body = JSON.stringify(order);
      const signature = crypto.createHmac('sha256', WC_SECRET).update(body).digest('base64');
      const post = (sig: string) => fetch(`${k.url}/in/${sourceId}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-wc-webhook-signature': sig, 'x-wc-webhook-topic': 'order.created', 'x-wc-webhook-delivery-id': '77' },
        body,
      });
      const ok = await post(signature);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ status: 'accepted' });
      const forged = await fetch(`${k.url}/in/${sourceId}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-wc-webhook-signature': crypto.createHmac('sha256', 'wrong').update(body).digest('base64'), 'x-wc-webhook-topic': 'order.created', 'x-evil': '<img src="http://127.0.0.1:9/x" onerror="alert(1)">' },
        body,
      });
      expect(forged.status).toBe(401);

      const log = page.getByTestId('source-log');
      await expect.poll(() => log.textContent(), { timeout: 15_000 }).toContain('Rejected');
      expect(await log.textContent()).toContain('Accepted');
      expect(await log.textContent()).toContain('order.created');
      // Filtered to rejected: only the forged one, with the reason.
      await page.getByLabel('Status', { exact: true }).selectOption('rejected');
      await expect.poll(async () => (await log.textContent()) ?? '').not.toContain('Accepted');
      expect(await log.locator('li').count()).toBe(1);
      expect((await log.textContent())?.toLowerCase()).toContain('signature');
      // Its headers, markup included, are shown as text.
      await log.locator('summary').first().click();
      await log.getByText('x-evil: <img src="http://127.0.0.1:9/x" onerror="alert(1)">').waitFor();

      // Switch the source to a generic HMAC scheme: that needs the new scheme's settings and secret.
      await page.getByRole('button', { name: 'Edit', exact: true }).click();
      const edit = page.getByRole('dialog', { name: 'Edit source' });
      await edit.getByLabel('Provider').selectOption('hmac');
      await edit.getByLabel('Signature header').fill('X-Signature');
      await edit.getByLabel('Encoding').selectOption('base64');
      await edit.getByLabel('Timestamp header (optional)').fill('X-Timestamp');
      await edit.getByLabel('Signing secret').fill('hmac-secret-1');
      await edit.getByRole('button', { name: 'Save source' }).click();
      await page.getByText('SHA256, base64, in X-Signature').waitFor();
      const hmac = (await k.api('GET', `/api/v1/app/${appId}/source/${sourceId}`)).body;
      expect(hmac).toMatchObject({ provider: 'hmac', hmac: { header: 'X-Signature', algorithm: 'sha256', encoding: 'base64', timestampHeader: 'X-Timestamp' } });

      // Delete another source.
      const spare = (await k.api('POST', `/api/v1/app/${appId}/source`, { name: 'Old GitHub', provider: 'github', secret: 'gh' })).body;
      await page.goto(`${k.url}/apps/${appId}/sources/${spare.id}`);
      await page.getByRole('heading', { name: 'Old GitHub' }).waitFor();
      await page.getByRole('button', { name: 'Delete' }).click();
      await page.getByRole('dialog', { name: 'Delete source' }).getByRole('button', { name: 'Delete source' }).click();
      await page.getByRole('heading', { name: 'Sources' }).waitFor();
      await page.getByText('WooCommerce <b>shop</b>').waitFor();
      expect(await page.getByText('Old GitHub').count()).toBe(0);
      expect((await k.api('GET', `/api/v1/app/${appId}/source/${spare.id}`)).status).toBe(404);

      // The order went on to the endpoint as a message.
      await waitForPath(rcv, '/v1', 1);
      expect(seen.dialogs).toEqual([]);
      expect(seen.violations).toEqual([]);
      expect(seen.foreignRequests).toEqual([]);
    });

    it('an operator builds a mapping table, previews it on the order, saves it, changes the URL, reads the diff and rolls back', async () => {
      const page = await newPage();
      const seen = watch(page, k.url);
      await signIn(page);
      await page.goto(`${k.url}/apps/${appId}/endpoints/${endpointId}`);
      await page.getByRole('heading', { name: `${rcv.url}/v1` }).waitFor();

      const editor = page.getByRole('form', { name: 'Transformation editor' });
      const row = (n: number) => editor.getByRole('group', { name: `Row ${n}`, exact: true });
      // JSONata and JavaScript candidates preview too; a broken one is explained, not saved.
      await editor.getByRole('radio', { name: 'JSONata' }).check();
      await editor.getByLabel('JSONata expression').fill('{"naam": billing.first_name}');
      await editor.getByRole('button', { name: 'Preview' }).click();
      await expect.poll(async () => JSON.parse((await page.getByLabel('Output 1').textContent().catch(() => null)) ?? 'null')).toEqual({ naam: 'Anna' });
      await editor.getByRole('radio', { name: 'JavaScript' }).check();
      await editor.getByLabel('JavaScript code').fill('function handler(webhook) { webhook.payload = { n: webhook.payload.id + 1 }; return webhook; }');
      await editor.getByRole('button', { name: 'Preview' }).click();
      await expect.poll(async () => JSON.parse((await page.getByLabel('Output 1').textContent().catch(() => null)) ?? 'null')).toEqual({ n: 1043 });
      await editor.getByLabel('JavaScript code').fill('function handler(webhook) { return webhook');
      await editor.getByRole('button', { name: 'Preview' }).click();
      await editor.getByRole('alert').filter({ hasText: 'does not load' }).waitFor();
      await editor.getByRole('radio', { name: 'Mapping table' }).check();
      await row(1).getByLabel('Source field').fill('billing.email');
      await row(1).getByLabel('Target field').fill('klant.email');
      // Keyboard only: Enter on "Add row" puts the cursor in the new row's source field.
      await editor.getByRole('button', { name: 'Add row' }).focus();
      await page.keyboard.press('Enter');
      await page.keyboard.type('klantstatus');
      expect(await row(2).getByLabel('Source field').inputValue()).toBe('klantstatus');
      await page.keyboard.press('Tab');
      await page.keyboard.type('klant.status');
      expect(await row(2).getByLabel('Target field').inputValue()).toBe('klant.status');
      await row(2).getByRole('button', { name: 'Add value to row 2' }).click();
      await row(2).getByLabel('Row 2 source value 1').fill('Actieve Klant');
      await row(2).getByLabel('Row 2 target value 1').fill('actief');
      await editor.getByRole('button', { name: 'Add row' }).click();
      await row(3).getByLabel('Source field').fill('billing.phone');
      await row(3).getByLabel('Cannot be mapped').check();
      await row(3).getByLabel('Note (optional)').fill('geen telefoonveld');

      await editor.getByRole('button', { name: 'Preview' }).click();
      const result = page.getByTestId('preview-result').first();
      await result.waitFor();
      const output = JSON.parse((await result.getByLabel('Output 1').textContent()) ?? 'null');
      expect(output).toEqual({ klant: { email: 'anna@example.nl', status: 'actief' } });
      expect(await result.getByLabel('Input 1').textContent()).toContain('Actieve Klant');
      const unmapped = (await page.getByTestId('unmapped').textContent()) ?? '';
      expect(unmapped).toContain('currency');
      expect(unmapped).not.toContain('billing.email');
      expect(unmapped).not.toContain('billing.phone');
      expect(await page.getByTestId('not-mappable').textContent()).toContain('billing.phone');
      // Nothing was saved by the preview.
      expect((await k.api('GET', `/api/v1/app/${appId}/endpoint/${endpointId}/transformation`)).body.kind).toBeNull();

      await editor.getByRole('button', { name: 'Save transformation' }).click();
      await page.getByText('Transformation saved.').waitFor();
      const saved = (await k.api('GET', `/api/v1/app/${appId}/endpoint/${endpointId}/transformation`)).body;
      expect(saved).toMatchObject({ kind: 'mapping', enabled: true });
      expect(saved.mapping.fields).toEqual([
        { source: 'billing.email', target: 'klant.email' },
        { source: 'klantstatus', target: 'klant.status', values: { 'Actieve Klant': 'actief' } },
        { source: 'billing.phone', target: null, note: 'geen telefoonveld' },
      ]);
      // The saved table is shown as a table again.
      expect(await row(2).getByLabel('Row 2 target value 1').inputValue()).toBe('actief');

      // Change the URL: a new version with a diff.
      await page.getByRole('button', { name: 'Edit', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'Edit endpoint' });
      await dialog.getByLabel('Endpoint URL').fill(`${rcv.url}/v2`);
      await dialog.getByRole('button', { name: 'Save endpoint' }).click();
      await page.getByRole('heading', { name: `${rcv.url}/v2` }).waitFor();

      const versions = page.getByTestId('versions');
      await page.getByTestId('version-3').waitFor();
      expect(await versions.locator(':scope > li').count()).toBe(3);
      expect(await page.getByTestId('version-3').textContent()).toContain('Current');
      await page.getByTestId('version-3').getByText('Changes from version 2').click();
      const diff = page.getByTestId('diff-3');
      expect(await diff.textContent()).toContain(`${rcv.url}/v1`);
      expect(await diff.textContent()).toContain(`${rcv.url}/v2`);
      await page.getByTestId('version-2').getByText('Changes from version 1').click();
      expect(await page.getByTestId('diff-2').textContent()).toContain('klantstatus → klant.status');

      await page.getByRole('button', { name: 'Roll back to version 2' }).click();
      const confirm = page.getByRole('dialog', { name: 'Roll back to version 2' });
      expect(await confirm.textContent()).toContain(`${rcv.url}/v1`);
      await confirm.getByRole('button', { name: 'Roll back', exact: true }).click();
      await page.getByRole('heading', { name: `${rcv.url}/v1` }).waitFor();
      await page.getByTestId('version-4').waitFor();
      expect(await page.getByTestId('version-4').textContent()).toMatch(/Current.*rollback to 2/);
      const ep = (await k.api('GET', `/api/v1/app/${appId}/endpoint/${endpointId}`)).body;
      expect(ep).toMatchObject({ url: `${rcv.url}/v1`, version: 4 });

      expect(seen.dialogs).toEqual([]);
      expect(seen.violations).toEqual([]);
      expect(seen.foreignRequests).toEqual([]);
    });

    it('an operator sets, replaces and removes the auth of an endpoint without ever seeing the credentials again', async () => {
      const page = await newPage();
      const seen = watch(page, k.url);
      await signIn(page);
      await page.goto(`${k.url}/apps/${appId}/endpoints/${endpointId}`);
      const summary = page.getByTestId('auth-summary');
      await expect.poll(() => summary.textContent()).toContain('None');
      await page.getByRole('button', { name: 'Set auth' }).click();
      await page.getByLabel('Kind', { exact: true }).selectOption('api-key');
      await page.getByLabel('Header name').fill('X-Api-Key');
      await page.getByLabel('API key', { exact: true }).fill('sk_live_hidden_123');
      await page.getByRole('button', { name: 'Save auth' }).click();
      await expect.poll(() => summary.textContent()).toContain('API key in header x-api-key');
      expect(await page.content()).not.toContain('sk_live_hidden_123');

      await page.getByRole('button', { name: 'Replace auth' }).click();
      await page.getByLabel('Kind', { exact: true }).selectOption('basic');
      await page.getByLabel('User name').fill('koppel');
      await page.getByLabel('Password').fill('hunter2-hidden');
      await page.getByRole('button', { name: 'Save auth' }).click();
      await expect.poll(() => summary.textContent()).toContain('Basic auth as koppel');
      expect(await page.content()).not.toContain('hunter2-hidden');

      await page.getByRole('button', { name: 'Remove auth' }).click();
      await page.getByRole('dialog', { name: 'Remove auth' }).getByRole('button', { name: 'Remove auth' }).click();
      await expect.poll(() => summary.textContent()).toContain('None');
      // Each change was a version.
      const versions = (await k.api('GET', `/api/v1/app/${appId}/endpoint/${endpointId}/version`)).body.data;
      expect(versions.slice(0, 3).map((v: any) => v.reason)).toEqual(['auth', 'auth', 'auth']);
      expect(seen.dialogs).toEqual([]);
      expect(seen.violations).toEqual([]);
    });

    it('a customer with a read-only portal link on a phone sees the transformation and versions but cannot change them', async () => {
      const link = await k.api('POST', `/api/v1/auth/app-portal-access/${appId}`, { readOnly: true });
      const page = await newPage({ phone: true });
      const seen = watch(page, k.url);
      await page.goto(link.body.url);
      await page.getByText('Boekhouding').first().waitFor();
      await page.goto(`${k.url}/portal/endpoints/${endpointId}`);
      await page.getByRole('heading', { name: `${rcv.url}/v1` }).waitFor();
      await page.getByRole('table', { name: 'Mapping table' }).waitFor();
      expect(await page.getByRole('table', { name: 'Mapping table' }).textContent()).toContain('Cannot be mapped');
      await page.getByTestId('versions').waitFor();
      expect(await page.getByRole('button', { name: /Roll back/ }).count()).toBe(0);
      expect(await page.getByRole('button', { name: /Save transformation|Preview|Set auth|Replace auth/ }).count()).toBe(0);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);

      await page.getByRole('link', { name: 'Sources' }).click();
      await page.getByRole('heading', { name: 'Sources' }).waitFor();
      expect(await page.getByRole('button', { name: 'New source' }).count()).toBe(0);
      await page.getByText('WooCommerce <b>shop</b>').waitFor();
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      expect(seen.dialogs).toEqual([]);
      expect(seen.violations).toEqual([]);
    });

    it('a customer with a portal link on a phone previews their transformation and rolls back a version', async () => {
      const link = await k.api('POST', `/api/v1/auth/app-portal-access/${appId}`, {});
      const page = await newPage({ phone: true });
      const seen = watch(page, k.url);
      await page.goto(link.body.url);
      await page.getByText('Boekhouding').first().waitFor();
      await page.goto(`${k.url}/portal/endpoints/${endpointId}`);
      const editor = page.getByRole('form', { name: 'Transformation editor' });
      await editor.getByRole('group', { name: 'Row 3', exact: true }).waitFor();
      await editor.getByRole('button', { name: 'Preview' }).click();
      const output = page.getByTestId('preview-result').first().getByLabel('Output 1');
      await output.waitFor();
      expect(JSON.parse((await output.textContent()) ?? 'null')).toEqual({ klant: { email: 'anna@example.nl', status: 'actief' } });
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);

      const before = (await k.api('GET', `/api/v1/app/${appId}/endpoint/${endpointId}`)).body.version;
      await page.getByRole('button', { name: 'Roll back to version 1' }).click();
      await page.getByRole('dialog', { name: 'Roll back to version 1' }).getByRole('button', { name: 'Roll back', exact: true }).click();
      await page.getByText('Rolled back to version 1.').waitFor();
      // Version 1 had no transformation: the editor starts empty again.
      await expect.poll(() => editor.getByRole('group', { name: 'Row 3', exact: true }).count()).toBe(0);
      const after = (await k.api('GET', `/api/v1/app/${appId}/endpoint/${endpointId}`)).body;
      expect(after.version).toBe(before + 1);
      expect((await k.api('GET', `/api/v1/app/${appId}/endpoint/${endpointId}/transformation`)).body.kind).toBeNull();
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      expect(seen.dialogs).toEqual([]);
      expect(seen.violations).toEqual([]);
    });
  });
}
