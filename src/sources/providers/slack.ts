/**
 * Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<body>">` with
 * `X-Slack-Request-Timestamp`, keyed with the app's signing secret; 5 minutes' tolerance. The
 * Events API's `url_verification` handshake is answered with its challenge and not forwarded.
 */
import { decodeSignature, digestMatches, hmac, jsonBody, mismatch, missing, staleReason, str, type IncomingRequest, type Verification } from './common.js';

export function verifySlack(req: IncomingRequest, secret: string, toleranceSeconds: number): Verification {
  const header = req.headers['x-slack-signature'];
  const ts = req.headers['x-slack-request-timestamp'];
  if (!header) return missing('X-Slack-Signature');
  if (!ts) return missing('X-Slack-Request-Timestamp');
  if (!header.startsWith('v0=')) return { ok: false, reason: 'X-Slack-Signature must start with "v0="' };
  if (!digestMatches(hmac('sha256', secret, `v0:${ts}:`, req.rawBody), decodeSignature(header.slice(3), 'hex'))) return mismatch('X-Slack-Signature');
  const stale = staleReason(ts, req.now, toleranceSeconds, 'X-Slack-Request-Timestamp');
  if (stale) return { ok: false, reason: stale };
  const body = jsonBody(req.rawBody);
  if (body && body.type === 'url_verification') {
    return { ok: true, deliveryId: null, eventType: 'url_verification', ignore: 'Slack URL verification handshake', reply: { challenge: String(body.challenge ?? '') } };
  }
  if (body) return { ok: true, deliveryId: str(body.event_id), eventType: str(body.event?.type) ?? str(body.type) };
  // Slash commands and interactivity arrive form-encoded.
  const form = new URLSearchParams(req.rawBody.toString('utf8'));
  const interactive = form.get('payload');
  if (interactive) return { ok: true, deliveryId: null, eventType: str(jsonBody(Buffer.from(interactive))?.type) };
  return { ok: true, deliveryId: null, eventType: form.get('command') ? 'slash_command' : null };
}
