/**
 * Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>` keyed with the app's client
 * secret. The topic (`orders/create`) becomes the event type `orders.create`.
 */
import { decodeSignature, digestMatches, hmac, mismatch, missing, str, type IncomingRequest, type Verification } from './common.js';

export function verifyShopify(req: IncomingRequest, secret: string): Verification {
  const header = req.headers['x-shopify-hmac-sha256'];
  if (!header) return missing('X-Shopify-Hmac-Sha256');
  if (!digestMatches(hmac('sha256', secret, req.rawBody), decodeSignature(header, 'base64'))) return mismatch('X-Shopify-Hmac-Sha256');
  return {
    ok: true,
    deliveryId: str(req.headers['x-shopify-webhook-id']) ?? str(req.headers['x-shopify-event-id']),
    eventType: str(req.headers['x-shopify-topic']),
  };
}
