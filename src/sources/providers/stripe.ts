/**
 * Stripe: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, HMAC-SHA256 over
 * `<t>.<raw body>` keyed with the whole `whsec_…` string as bytes (Stripe does not base64-decode
 * it). Several v1 entries appear while a secret is being rolled; any one may match.
 */
import { digestMatches, hmac, jsonBody, mismatch, missing, staleReason, str, decodeSignature, type IncomingRequest, type Verification } from './common.js';

export function verifyStripe(req: IncomingRequest, secret: string, toleranceSeconds: number): Verification {
  const header = req.headers['stripe-signature'];
  if (!header) return missing('Stripe-Signature');
  let t: string | null = null;
  const v1: string[] = [];
  for (const item of header.split(',')) {
    const eq = item.indexOf('=');
    if (eq < 0) continue;
    const k = item.slice(0, eq).trim();
    const v = item.slice(eq + 1).trim();
    if (k === 't') t = v;
    else if (k === 'v1') v1.push(v);
  }
  if (t === null || v1.length === 0) return { ok: false, reason: 'the Stripe-Signature header has no t= timestamp or no v1= signature' };
  const expected = hmac('sha256', secret, `${t}.`, req.rawBody);
  if (!v1.some((s) => digestMatches(expected, decodeSignature(s, 'hex')))) return mismatch('Stripe-Signature');
  const stale = staleReason(t, req.now, toleranceSeconds, 'Stripe-Signature');
  if (stale) return { ok: false, reason: stale };
  const body = jsonBody(req.rawBody);
  return { ok: true, deliveryId: str(body?.id), eventType: str(body?.type) };
}
