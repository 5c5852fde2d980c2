/**
 * Standard Webhooks (and Svix, which sends the same headers with an `svix-` prefix): HMAC-SHA256
 * (`v1,`) or Ed25519 (`v1a,`) over `<id>.<timestamp>.<body>` with a `whsec_`/`whpk_` key, several
 * space-separated signatures during a rotation; 5 minutes' tolerance. Uses the same verifier as
 * Koppel's own outgoing signatures, so both sides agree on what a secret means.
 */
import { verify } from '../../delivery/signature.js';
import { jsonBody, mismatch, missing, staleReason, str, type IncomingRequest, type Verification } from './common.js';

export function verifyStandardWebhooks(req: IncomingRequest, secret: string, toleranceSeconds: number): Verification {
  const h = req.headers;
  const prefix = h['webhook-signature'] !== undefined ? 'webhook' : h['svix-signature'] !== undefined ? 'svix' : null;
  if (!prefix) return missing('webhook-signature');
  const id = h[`${prefix}-id`];
  const ts = h[`${prefix}-timestamp`];
  const signature = h[`${prefix}-signature`];
  if (!id) return missing(`${prefix}-id`);
  if (!ts) return missing(`${prefix}-timestamp`);
  if (!/^\d{1,12}$/.test(ts)) return { ok: false, reason: `${prefix}-timestamp is not a Unix timestamp in seconds` };
  let valid = false;
  try {
    valid = verify(secret, id, Number(ts), req.rawBody, signature);
  } catch {
    return { ok: false, reason: 'the source secret is not a usable whsec_/whpk_ key; set the secret the sender shows' };
  }
  if (!valid) return mismatch(`${prefix}-signature`);
  const stale = staleReason(ts, req.now, toleranceSeconds, `${prefix}-timestamp`);
  if (stale) return { ok: false, reason: stale };
  return { ok: true, deliveryId: id, eventType: str(jsonBody(req.rawBody)?.type) };
}
