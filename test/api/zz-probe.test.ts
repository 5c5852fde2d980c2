import { it } from 'vitest';
import { startTestKoppel, ADMIN_KEY } from '../helpers.js';
it('probe', async () => {
  const k = await startTestKoppel({ KOPPEL_BODY_LIMIT: '2048' });
  for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'text/plain; charset=utf-8']) {
    const r = await fetch(k.url + '/api/v1/app', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': ct }, body: '{"name":"x"}' });
    console.log(ct, r.status, await r.text());
  }
  const r = await fetch(k.url + '/api/v1/app', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` }, body: '{"name":"x"}' });
  console.log('none', r.status, await r.text());
  await k.close();
});
