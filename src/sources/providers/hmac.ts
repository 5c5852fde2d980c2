/**
 * Generic HMAC for providers without a preset: the signature header, algorithm and encoding are
 * configured, with an optional prefix (`sha256=`), an optional timestamp header (checked against a
 * tolerance) and a signed-content template in which `{body}` stands for the raw body bytes,
 * `{timestamp}` for the timestamp header and `{id}` for the id header.
 */
import { decodeSignature, digestMatches, hmac, jsonBody, mismatch, missing, staleReason, str, type Algorithm, type Encoding, type IncomingRequest, type Verification } from './common.js';

export interface HmacOptions {
  header: string;
  algorithm: Algorithm;
  encoding: Encoding;
  prefix?: string | null;
  timestampHeader?: string | null;
  idHeader?: string | null;
  signedContent?: string | null;
}

/** The template used when none is configured. */
export const defaultTemplate = (o: HmacOptions) => (o.timestampHeader ? '{timestamp}.{body}' : '{body}');

export function verifyHmac(req: IncomingRequest, secret: string, o: HmacOptions, toleranceSeconds: number): Verification {
  const raw = req.headers[o.header.toLowerCase()];
  if (!raw) return missing(o.header);
  let value = raw.trim();
  if (o.prefix) {
    if (!value.startsWith(o.prefix)) return { ok: false, reason: `${o.header} must start with "${o.prefix}"` };
    value = value.slice(o.prefix.length);
  }
  let timestamp = '';
  if (o.timestampHeader) {
    const ts = req.headers[o.timestampHeader.toLowerCase()];
    if (!ts) return missing(o.timestampHeader);
    timestamp = ts.trim();
  }
  const id = o.idHeader ? (req.headers[o.idHeader.toLowerCase()] ?? '') : '';
  // Split the template around {body} so the body goes in as the exact bytes received.
  const parts: (string | Buffer)[] = [];
  (o.signedContent || defaultTemplate(o)).split('{body}').forEach((piece, i) => {
    if (i > 0) parts.push(req.rawBody);
    parts.push(piece.replaceAll('{timestamp}', timestamp).replaceAll('{id}', id));
  });
  if (!digestMatches(hmac(o.algorithm, secret, ...parts), decodeSignature(value, o.encoding))) return mismatch(o.header);
  if (o.timestampHeader) {
    const stale = staleReason(timestamp, req.now, toleranceSeconds, o.timestampHeader);
    if (stale) return { ok: false, reason: stale };
  }
  return { ok: true, deliveryId: o.idHeader ? str(id) : null, eventType: str(jsonBody(req.rawBody)?.type) };
}
