/**
 * Secrets are stored sealed (AES-256-GCM under the master key), never in clear: an endpoint's
 * signing secrets (given, generated and rotated), the credentials Koppel sends to an endpoint,
 * and a source's provider secret. Every table is searched for the clear text and, on SQLite, so
 * are the database and WAL files (freed pages and superseded rows included). Deliveries show
 * that the sealed values are the ones in use. Runs on SQLite and PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { startReceiver, startTestKoppel, type Receiver, type TestKoppel } from '../helpers.js';
import { createApp, createEndpoint, sendMessage, waitForPath, whereStored } from '../api/support.js';

let k: TestKoppel;
let rcv: Receiver;
let appId: string;

beforeAll(async () => {
  k = await startTestKoppel();
  rcv = await startReceiver();
  appId = (await createApp(k, { name: 'Secrets at rest' })).id;
});
afterAll(async () => {
  await rcv.close();
  await k.close();
});

const hmacSecret = () => 'whsec_' + randomBytes(32).toString('base64');
/** The key part of a whsec_ secret, which a leak could hold without the prefix. */
const keyPart = (secret: string) => secret.slice('whsec_'.length);

/** The endpoint's stored `secrets` column: sealed values that open to the given secrets, in order. */
async function expectSealed(endpointId: string, secrets: string[]) {
  const row = (await k.koppel.ctx.store.getEndpoint(appId, endpointId))!;
  expect(row.secrets).not.toContain('whsec_');
  const stored = JSON.parse(row.secrets) as { sealed: string }[];
  expect(stored.map((s) => k.koppel.ctx.box.decrypt(s.sealed))).toEqual(secrets);
}

describe('secrets at rest', () => {
  it("an endpoint's signing secrets, given, generated or rotated, are stored only sealed, and sign deliveries", async () => {
    const given = hmacSecret();
    const ep = await createEndpoint(k, appId, { url: `${rcv.url}/sealed`, secret: given });
    const generatedEp = await createEndpoint(k, appId, { url: `${rcv.url}/sealed-generated`, eventTypes: ['none.here'] });
    const generated = (await k.api('GET', `/api/v1/app/${appId}/endpoint/${generatedEp.id}/secret`)).body.key as string;
    expect(generated).toMatch(/^whsec_/);
    const rotatedTo = hmacSecret();
    expect((await k.api('POST', `/api/v1/app/${appId}/endpoint/${ep.id}/secret/rotate`, { key: rotatedTo })).status).toBe(204);

    await expectSealed(ep.id, [rotatedTo, given]);
    await expectSealed(generatedEp.id, [generated]);
    for (const secret of [given, generated, rotatedTo]) {
      expect(await whereStored(k, secret), secret).toEqual([]);
      expect(await whereStored(k, keyPart(secret)), secret).toEqual([]);
    }
    expect(await whereStored(k, 'whsec_')).toEqual([]);

    // What was sealed is what signs: the delivery verifies with both (rotation's grace period).
    await sendMessage(k, appId, { eventType: 'sealed.check', payload: { n: 1 } });
    const [req] = await waitForPath(rcv, '/sealed', 1);
    for (const secret of [given, rotatedTo]) expect(new Webhook(secret).verify(req.body, req.headers as Record<string, string>)).toEqual({ n: 1 });
  });

  it('the credentials sent to an endpoint are stored only sealed, and are sent', async () => {
    const token = `tok_${randomBytes(24).toString('hex')}`;
    const ep = await createEndpoint(k, appId, { url: `${rcv.url}/sealed-auth`, eventTypes: ['sealed.auth'] });
    expect((await k.api('PUT', `/api/v1/app/${appId}/endpoint/${ep.id}/auth`, { type: 'bearer', token })).status).toBe(200);
    expect(await whereStored(k, token)).toEqual([]);

    await sendMessage(k, appId, { eventType: 'sealed.auth', payload: { n: 2 } });
    const [req] = await waitForPath(rcv, '/sealed-auth', 1);
    expect(req.headers.authorization).toBe(`Bearer ${token}`);
  });

  it("a source's provider secret is stored only sealed", async () => {
    const secret = `gh_${randomBytes(24).toString('hex')}`;
    const r = await k.api('POST', `/api/v1/app/${appId}/source`, { name: 'GitHub', provider: 'github', secret });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(JSON.stringify(r.body)).not.toContain(secret);
    expect(await whereStored(k, secret)).toEqual([]);
  });
});
