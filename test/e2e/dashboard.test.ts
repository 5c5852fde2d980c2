/**
 * End-to-end: the dashboard and the customer portal in a real Chromium against a real Koppel and
 * a receiver on loopback. The web UI is built by test/build-web.ts (vitest globalSetup).
 *
 * Without Chromium (/usr/bin/chromium) one test says so; it fails under CI=true, so a CI run that
 * lost its browser fails instead of passing without these tests (.ci/run installs Chromium).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint, pollApi, sendMessage } from '../api/support.js';
import { haveChromium, launchBrowser, watch } from './browser.js';
import { SecretBox } from '../../src/crypto/secret-box.js';
import { TokenSealer } from '../../src/sessions/tokens.js';

if (!haveChromium) {
  it('browser tests: Chromium is not installed at /usr/bin/chromium (apt-get install chromium)', () => {
    expect(process.env.CI, 'CI must run the browser tests; .ci/run installs Chromium').not.toBe('true');
  });
} else {
  // A browser test walks many steps; on a CI machine busy with other test files (crash tests'
  // child processes, PostgreSQL) one took 8 s here that takes 3 s alone. Each browser action
  // gives up after 20 s with the step it was waiting for, inside the test's own minute.
  describe('dashboard and portal in Chromium', { timeout: 60_000 }, () => {
    let k: TestKoppel;
    let rcv: Receiver;
    let browser: Browser;
    const contexts: BrowserContext[] = [];
    const newPage = async (opts: { phone?: boolean } = {}) => {
      const ctx = await browser.newContext(opts.phone ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true } : { viewport: { width: 1280, height: 900 } });
      ctx.setDefaultTimeout(20_000);
      contexts.push(ctx);
      return ctx.newPage();
    };

    beforeAll(async () => {
      [k, rcv, browser] = await Promise.all([startTestKoppel({ KOPPEL_PORTAL_NAME: 'Acme Hooks' }), startReceiver(), launchBrowser()]);
    });
    afterAll(async () => {
      for (const c of contexts) await c.close().catch(() => undefined);
      await browser?.close();
      await rcv?.close();
      await k?.close();
    });

    it('an operator signs in, creates an application, an event type and an endpoint, sends a test event and sees it succeed', async () => {
      const page = await newPage();
      const seen = watch(page, k.url);
      await page.goto(`${k.url}/`);
      // Keyboard only: the key field has focus, Enter submits.
      await page.getByLabel('API key').fill(ADMIN_KEY);
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Applications' }).waitFor();
      // The key is not kept anywhere scripts or URLs can reach.
      const stored = await page.evaluate(() => JSON.stringify({ l: { ...localStorage }, s: { ...sessionStorage }, c: document.cookie, u: location.href }));
      expect(stored).not.toContain(ADMIN_KEY);
      expect(stored).not.toContain('koppel_session');

      await page.getByRole('button', { name: 'New application' }).click();
      const dialog = page.getByRole('dialog', { name: 'New application' });
      await dialog.getByLabel('Name').fill('Globex B.V.');
      await dialog.getByLabel('UID (optional)').fill('globex');
      await dialog.getByRole('button', { name: 'Create application' }).click();
      await page.getByRole('heading', { name: 'Globex B.V.' }).waitFor();
      const appUrl = page.url();

      await page.getByRole('link', { name: 'Event types' }).click();
      await page.getByRole('button', { name: 'New event type' }).click();
      const et = page.getByRole('dialog', { name: 'New event type' });
      await et.getByLabel('Name', { exact: true }).fill('invoice.paid');
      await et.getByLabel('Description').fill('An invoice was paid in full.');
      await et.getByLabel('Group').fill('invoices');
      await et.getByLabel('JSON Schema of the payload').fill(JSON.stringify({ type: 'object', properties: { invoiceId: { type: 'string' }, amount: { type: 'number' } } }));
      await et.getByLabel(/^Examples/).fill(JSON.stringify([{ invoiceId: 'inv_1042', amount: 99.5 }]));
      await et.getByRole('button', { name: 'Create event type' }).click();
      await page.getByText('invoice.paid').first().waitFor();
      const created = await k.api('GET', '/api/v1/event-type/invoice.paid');
      expect(created.body).toMatchObject({ description: 'An invoice was paid in full.', groupName: 'invoices' });
      expect(created.body.schemas['1'].examples).toEqual([{ invoiceId: 'inv_1042', amount: 99.5 }]);

      await page.goto(appUrl);
      await page.getByRole('button', { name: 'Add endpoint' }).click();
      const ep = page.getByRole('dialog', { name: 'Add endpoint' });
      await ep.getByLabel('Endpoint URL').fill(`${rcv.url}/operator`);
      await ep.getByLabel('Description').fill('Globex ERP');
      await ep.getByRole('button', { name: 'Create endpoint' }).click();
      await page.getByRole('heading', { name: `${rcv.url}/operator` }).waitFor();

      await page.getByLabel('Event type').selectOption('invoice.paid');
      await page.getByRole('button', { name: 'Send test event' }).click();
      const result = page.getByTestId('test-result');
      await result.waitFor({ timeout: 15_000 });
      await expect.poll(() => result.textContent()).toContain('Succeeded');
      expect(await result.textContent()).toContain('HTTP 200');
      const got = rcv.requests.filter((r) => r.url === '/operator');
      expect(got).toHaveLength(1);
      expect(JSON.parse(got[0].body)).toEqual({ invoiceId: 'inv_1042', amount: 99.5 });

      // The application page shows the endpoint's health from that attempt.
      await page.goto(appUrl);
      const row = page.getByRole('row', { name: /Globex ERP/ });
      await expect.poll(() => row.textContent(), { timeout: 10_000 }).toMatch(/Healthy.*100 % of 1/);

      expect(seen.dialogs).toEqual([]);
      expect(seen.violations).toEqual([]);
      expect(seen.foreignRequests).toEqual([]);
    });

    it('a customer opens a portal link on a phone, sees only their application, adds an endpoint and rotates its secret', async () => {
      const mine = await createApp(k, { name: 'Customer A' });
      const other = await createApp(k, { name: 'Customer B' });
      await createEndpoint(k, other.id, { url: 'https://customer-b.example/hooks', description: 'B secret system' });
      const link = await k.api('POST', `/api/v1/auth/app-portal-access/${mine.id}`, { branding: { name: 'Acme Hooks', accentColor: '#0f766e' } });
      expect(link.status).toBe(200);

      const page = await newPage({ phone: true });
      const seen = watch(page, k.url);
      await page.goto(link.body.url);
      await page.getByTestId('portal-brand').waitFor();
      expect(await page.getByTestId('portal-brand').textContent()).toBe('Acme Hooks');
      await page.getByText('Customer A').first().waitFor();
      // The token left the address bar (it stays in this tab's memory and sessionStorage only).
      expect(page.url()).toBe(`${k.url}/portal`);
      expect(await page.getByText('Customer B').count()).toBe(0);
      expect(await page.getByText('B secret system').count()).toBe(0);
      // The accent colour is the brand's.
      expect(await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--accent').trim())).toBe('#0f766e');
      // Phone-sized: nothing wider than the screen.
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);

      await page.getByRole('button', { name: 'Add endpoint' }).click();
      const dialog = page.getByRole('dialog', { name: 'Add endpoint' });
      await dialog.getByLabel('Endpoint URL').fill(`${rcv.url}/customer`);
      await dialog.getByRole('button', { name: 'Create endpoint' }).click();
      await page.getByRole('heading', { name: `${rcv.url}/customer` }).waitFor();

      await page.getByRole('button', { name: 'Reveal' }).click();
      const secret = page.getByLabel('Signing secret', { exact: true });
      await expect.poll(() => secret.textContent()).toMatch(/^whsec_/);
      const before = await secret.textContent();
      await page.getByRole('button', { name: 'Rotate secret' }).click();
      await page.getByRole('dialog', { name: 'Rotate signing secret' }).getByRole('button', { name: 'Rotate now' }).click();
      await page.getByText('Secret rotated').waitFor();
      await expect.poll(() => secret.textContent()).not.toBe(before);
      expect(await secret.textContent()).toMatch(/^whsec_/);

      // The endpoint belongs to the customer's application, and only there.
      const eps = await k.api('GET', `/api/v1/app/${mine.id}/endpoint`);
      expect(eps.body.data.map((e: any) => e.url)).toEqual([`${rcv.url}/customer`]);
      const theirs = await k.api('GET', `/api/v1/app/${other.id}/endpoint`);
      expect(theirs.body.data).toHaveLength(1);

      // Reloading keeps the session for this tab.
      await page.reload();
      await page.getByTestId('portal-brand').waitFor();
      expect(seen.dialogs).toEqual([]);
      expect(seen.violations).toEqual([]);
    });

    it('shows markup from a receiver, headers, payloads and names as inert text: no dialog, no request', async () => {
      // A beacon: any request here means injected markup was rendered as HTML.
      const beaconHits: string[] = [];
      const beacon = http.createServer((req, res) => {
        beaconHits.push(req.url ?? '');
        res.end();
      });
      await new Promise<void>((r) => beacon.listen(0, '127.0.0.1', r));
      const b = `http://127.0.0.1:${(beacon.address() as AddressInfo).port}`;
      try {
        const evil = `<script>alert("body")</script><img src="${b}/img" onerror="alert('img')"><svg onload="alert('svg')">`;
        const evilRcv = await startReceiver();
        evilRcv.respond((_req, res) => {
          res.setHeader('x-evil', `<img src="${b}/hdr" onerror="alert('hdr')">`);
          res.setHeader('content-type', 'text/html');
          res.statusCode = 500;
          res.end(evil);
        });
        try {
          const a = await createApp(k, { name: `<img src="${b}/name" onerror="alert('name')">` });
          const ep = await createEndpoint(k, a.id, { url: `${evilRcv.url}/x`, description: `<script>alert('desc')</script>`, headers: { 'x-custom': `<img src=${b}/custom onerror=alert('custom')>` } });
          const msg = await sendMessage(k, a.id, { eventType: 'evil.event', payload: { html: `<img src="${b}/payload" onerror="alert('payload')">` } });
          await pollApi(k, `/api/v1/app/${a.id}/attempt/msg/${msg.id}`, (body) => body.data.length > 0);

          const page = await newPage();
          const seen = watch(page, k.url);
          await page.goto(`${k.url}/`);
          await page.getByLabel('API key').fill(ADMIN_KEY);
          await page.getByRole('button', { name: 'Sign in' }).click();
          await page.getByRole('heading', { name: 'Applications' }).waitFor();
          await page.getByText(`<img src="${b}/name" onerror="alert('name')">`).waitFor();

          await page.goto(`${k.url}/apps/${a.id}`);
          await page.getByText(`<script>alert('desc')</script>`).waitFor();
          await page.goto(`${k.url}/apps/${a.id}/endpoints/${ep.id}`);
          await page.getByText(`x-custom:`).waitFor();
          await page.goto(`${k.url}/apps/${a.id}/messages/${msg.id}`);
          await page.getByText(`"html": "<img src=\\"${b}/payload\\" onerror=\\"alert('payload')\\">"`).waitFor();
          const attempt = page.locator('details').first();
          await attempt.locator('summary').click();
          await attempt.getByText(evil).waitFor();
          await attempt.getByText(`<img src=${b}/custom onerror=alert('custom')>`).waitFor();

          // Give anything that might have been injected a moment to fire.
          await page.waitForTimeout(500);
          expect(seen.dialogs).toEqual([]);
          expect(seen.foreignRequests).toEqual([]);
          expect(beaconHits).toEqual([]);
          expect(await page.locator(`img[src^="${b}"], script:not([src]), svg[onload]`).count()).toBe(0);
          expect(seen.violations).toEqual([]);
        } finally {
          await evilRcv.close();
        }
      } finally {
        await new Promise<void>((r) => beacon.close(() => r()));
      }
    });

    it('refuses an expired portal link, a link sealed by another Koppel, and a portal without a link', async () => {
      const a = await createApp(k, { name: 'Expiring customer' });
      const madeAt = Date.now();
      const short = await k.api('POST', `/api/v1/auth/app-portal-access/${a.id}`, { expiry: 1 });
      expect(short.status).toBe(200);
      // What another Koppel would issue for this very application: well-formed and unexpired, but
      // sealed under another master key.
      const elsewhere = new TokenSealer(SecretBox.fromMasterKey(randomBytes(32).toString('base64')));
      const foreign = elsewhere.newPortalToken({
        env: k.koppel.ctx.defaultEnvironmentId, app: a.id, readOnly: false, exp: Date.now() + 3_600_000,
        branding: { name: 'Acme Hooks', logoUrl: null, accentColor: '#4f46e5' },
      });
      await new Promise((r) => setTimeout(r, Math.max(0, madeAt + 1100 - Date.now())));

      for (const url of [short.body.url, `${k.url}/portal#token=${foreign}`, `${k.url}/portal`]) {
        const page = await newPage();
        await page.goto(url);
        await page.getByRole('heading', { name: 'Access refused' }).waitFor();
        expect(await page.getByText('Expiring customer').count()).toBe(0);
        expect(await page.getByRole('button', { name: 'Add endpoint' }).count()).toBe(0);
        await page.context().close();
      }
    });

    it('lets an allowed site frame the portal but never the dashboard', async () => {
      const site = http.createServer((req, res) => {
        res.setHeader('content-type', 'text/html');
        res.end(`<!doctype html><iframe id="f" src="${decodeURIComponent((req.url ?? '/').slice(1))}" width="600" height="400"></iframe>`);
      });
      await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
      const siteOrigin = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
      const framed = await startTestKoppel({ KOPPEL_PORTAL_FRAME_ANCESTORS: siteOrigin });
      try {
        const a = await createApp(framed, { name: 'Framed customer' });
        const link = (await framed.api('POST', `/api/v1/auth/app-portal-access/${a.id}`, {})).body.url as string;
        const page = await newPage();
        await page.goto(`${siteOrigin}/${encodeURIComponent(link)}`);
        const frame = page.frameLocator('#f');
        await frame.getByText('Framed customer').first().waitFor();

        const page2 = await newPage();
        await page2.goto(`${siteOrigin}/${encodeURIComponent(`${framed.url}/`)}`);
        await page2.waitForTimeout(1000);
        const child = page2.frames().find((f) => f !== page2.mainFrame());
        // Blocked by frame-ancestors 'none': the frame never gets the dashboard's document.
        const text = child ? await child.evaluate(() => document.body?.innerText ?? '').catch(() => '') : '';
        expect(text).not.toContain('Sign in to Koppel');
      } finally {
        await framed.close();
        await new Promise<void>((r) => site.close(() => r()));
      }
    });
  });
}
