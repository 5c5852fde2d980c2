/**
 * Browser helpers for the end-to-end tests: Debian's Chromium driven by playwright-core
 * (`npx playwright install` cannot download browsers here). playwright's launch() gives every
 * browser a new, empty profile directory of its own.
 */
import fs from 'node:fs';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const haveChromium = fs.existsSync(CHROMIUM);

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * Watches a page for what must never happen: JavaScript dialogs (alert/confirm/prompt), requests
 * to hosts other than Koppel, and Content-Security-Policy or Trusted Types violations (which would
 * mean the UI itself needs something the policy forbids, or something tried to inject code).
 */
export function watch(page: Page, koppelOrigin: string) {
  const dialogs: string[] = [];
  const foreignRequests: string[] = [];
  const violations: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(koppelOrigin) && !u.startsWith('data:')) foreignRequests.push(u);
  });
  page.on('console', (m: ConsoleMessage) => {
    const t = m.text();
    if (/Content Security Policy|Trusted Type/i.test(t)) violations.push(t);
  });
  return { dialogs, foreignRequests, violations };
}
