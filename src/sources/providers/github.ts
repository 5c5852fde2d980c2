/**
 * GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. The SHA-1 header GitHub
 * also sends is ignored on purpose. `X-GitHub-Delivery` is the same on a redelivery, so it is the
 * de-duplication key; the hook's `ping` on creation is answered and not forwarded.
 */
import { decodeSignature, digestMatches, hmac, jsonBody, mismatch, missing, str, type IncomingRequest, type Verification } from './common.js';

export function verifyGithub(req: IncomingRequest, secret: string): Verification {
  const header = req.headers['x-hub-signature-256'];
  if (!header) return missing('X-Hub-Signature-256');
  if (!header.startsWith('sha256=')) return { ok: false, reason: 'X-Hub-Signature-256 must start with "sha256="' };
  if (!digestMatches(hmac('sha256', secret, req.rawBody), decodeSignature(header.slice(7), 'hex'))) return mismatch('X-Hub-Signature-256');
  const event = str(req.headers['x-github-event']);
  const deliveryId = str(req.headers['x-github-delivery']);
  if (event === 'ping') return { ok: true, deliveryId, eventType: 'ping', ignore: 'GitHub ping (sent when the webhook is created)' };
  // "pull_request" + action "opened" → "pull_request.opened", so endpoint filters such as
  // pull_request.* or exact actions work.
  let action: string | null = null;
  if (event && (req.headers['content-type'] ?? '').includes('json')) action = str(jsonBody(req.rawBody)?.action);
  return { ok: true, deliveryId, eventType: event && action ? `${event}.${action}` : event };
}
