/**
 * WooCommerce: `X-WC-Webhook-Signature: <base64 HMAC-SHA256 of the body>`. When a webhook is saved
 * WooCommerce first posts an unsigned form body `webhook_id=<n>` to check the URL answers; that
 * ping gets its 2xx and is logged, never forwarded (and never treated as a verified event).
 */
import { decodeSignature, digestMatches, hmac, mismatch, missing, str, type IncomingRequest, type Verification } from './common.js';

const PING = /^webhook_id=\d{1,20}$/;

export function verifyWoocommerce(req: IncomingRequest, secret: string): Verification {
  const header = req.headers['x-wc-webhook-signature'];
  const isPing = req.rawBody.length < 64 && PING.test(req.rawBody.toString('latin1').trim());
  if (!header) {
    if (isPing) return { ok: true, deliveryId: null, eventType: null, ignore: 'WooCommerce activation ping (unsigned webhook_id=…)' };
    return missing('X-WC-Webhook-Signature');
  }
  if (!digestMatches(hmac('sha256', secret, req.rawBody), decodeSignature(header, 'base64'))) return mismatch('X-WC-Webhook-Signature');
  if (isPing) return { ok: true, deliveryId: null, eventType: null, ignore: 'WooCommerce activation ping' };
  const resource = str(req.headers['x-wc-webhook-resource']);
  const event = str(req.headers['x-wc-webhook-event']);
  return {
    ok: true,
    deliveryId: str(req.headers['x-wc-webhook-delivery-id']),
    eventType: str(req.headers['x-wc-webhook-topic']) ?? (resource && event ? `${resource}.${event}` : null),
  };
}
