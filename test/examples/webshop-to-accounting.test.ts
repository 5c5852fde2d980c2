/** Runs examples/webshop-to-accounting against a test Koppel, so the walkthrough cannot rot. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADMIN_KEY, startTestKoppel, type TestKoppel } from '../helpers.js';
import { main } from '../../examples/webshop-to-accounting/run.js';

let k: TestKoppel;
beforeAll(async () => {
  // Like production: one retry soon after the first attempt, the next only minutes later.
  k = await startTestKoppel({ KOPPEL_RETRY_SCHEDULE: '0,1,300' });
});
afterAll(() => k.close());

it('walks through the seed-001 scenario and delivers both invoices', async () => {
  const lines: string[] = [];
  const { invoices } = await main({ koppelUrl: k.url, apiKey: ADMIN_KEY, log: (l) => lines.push(l) });
  expect(invoices).toEqual([
    expect.objectContaining({ factuurnummer: '727', klant: expect.objectContaining({ naam: 'Jan Jansen', status: 'Actieve Klant' }), totaal: 60.5, status: 'open' }),
    expect.objectContaining({ factuurnummer: '728' }),
  ]);
  const text = lines.join('\n');
  expect(text).toContain('activation ping → 200 ignored');
  expect(text).toContain('→ 200 duplicate');
  expect(text).toContain('A forged order → 401');
  expect(text).toContain('vat_number ontbreekt');
}, 60_000);
