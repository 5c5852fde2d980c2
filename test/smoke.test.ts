import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { startReceiver, startTestKoppel, type Receiver, type TestKoppel } from './helpers.js';

describe('message to receiver', () => {
  let k: TestKoppel;
  let rcv: Receiver;
  beforeAll(async () => {
    k = await startTestKoppel();
    rcv = await startReceiver();
  });
  afterAll(async () => {
    await k.close();
    await rcv.close();
  });

  it('delivers a created message, signed so a Standard Webhooks verifier accepts it', async () => {
    const app = await k.api('POST', '/api/v1/app', { name: 'Acme' });
    expect(app.status).toBe(201);
    const ep = await k.api('POST', `/api/v1/app/${app.body.id}/endpoint`, { url: `${rcv.url}/hook` });
    expect(ep.status).toBe(201);
    const secret = await k.api('GET', `/api/v1/app/${app.body.id}/endpoint/${ep.body.id}/secret`);
    const msg = await k.api('POST', `/api/v1/app/${app.body.id}/msg`, { eventType: 'order.created', payload: { id: 7 } });
    expect(msg.status).toBe(202);
    const [req] = await rcv.waitFor(1);
    expect(req.headers['webhook-id']).toBe(msg.body.id);
    const verified = new Webhook(secret.body.key).verify(req.body, req.headers as Record<string, string>);
    expect(verified).toEqual({ id: 7 });
  });
});
