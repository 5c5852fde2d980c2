/**
 * POST /in/{source_id}: where providers send their webhooks. The body is read as raw bytes
 * (a content parser scoped to this route, with the configured body limit) and verified before
 * anything parses it. A request that fails verification is answered 401 and logged with the
 * reason, never forwarded. A verified one is stored as a source event, de-duplicated, and turned
 * into a message with its deliveries in the same transaction; only then does the provider get its
 * 2xx, so an acknowledged webhook is never lost.
 */
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Context } from '../context.js';
import { endpointMatches } from '../endpoints/filter.js';
import { nestingDepth } from '../http/app.js';
import { ApiError } from '../http/errors.js';
import { HttpErrorOut } from '../http/common.js';
import { newId } from '../lib/ids.js';
import { Status, type DeliveryRow, type MessageRow, type SourceEventRow, type SourceRow } from '../store/schema.js';
import { throwIfBusy } from '../transformations/busy.js';
import { limitsOf, sharedSandbox } from '../transformations/sandbox.js';
import { verifyRequest, type ProviderName, type Verification } from './providers/index.js';
import { parseSourceConfig, type SourceConfig } from './source-config.js';
import { IngestOut } from './schemas.js';

/** Headers never kept in the log: they may carry the sender's own credentials. */
const UNLOGGED = new Set(['authorization', 'proxy-authorization', 'cookie']);
const MAX_DEPTH = 512;

function flatHeaders(req: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v[0] : String(v);
  }
  return out;
}

function loggedHeaders(h: Record<string, string>): string {
  const out: Record<string, string> = {};
  let size = 0;
  for (const [k, v] of Object.entries(h)) {
    if (UNLOGGED.has(k)) continue;
    const value = v.length > 2048 ? `${v.slice(0, 2048)}…` : v;
    size += k.length + value.length;
    if (size > 32_768) break;
    out[k] = value;
  }
  return JSON.stringify(out);
}

/** Event type names allow letters, digits, "-", "_" and "."; anything else becomes ".". */
export function cleanEventType(raw: string | null | undefined): string | null {
  if (!raw) return null;
  const t = raw.replace(/[^a-zA-Z0-9\-_.]+/g, '.').replace(/\.{2,}/g, '.').replace(/^\.+|\.+$/g, '').slice(0, 256);
  return t || null;
}

/**
 * The message payload: a JSON object as sent; other JSON wrapped as {data}; form bodies as their
 * fields (a lone `payload` field holding JSON, as GitHub and Slack send it, as that JSON); anything
 * else as {body, contentType}. Always an object, because messages are objects.
 */
export function payloadOf(raw: Buffer, contentType: string): Record<string, unknown> {
  const text = raw.toString('utf8');
  const parse = (t: string): unknown => {
    if (nestingDepth(t) > MAX_DEPTH) return undefined;
    try {
      return JSON.parse(t);
    } catch {
      return undefined;
    }
  };
  const asObject = (v: unknown) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : { data: v });
  if (/x-www-form-urlencoded/i.test(contentType)) {
    const fields = Object.fromEntries(new URLSearchParams(text));
    const keys = Object.keys(fields);
    if (keys.length === 1 && keys[0] === 'payload') {
      const inner = parse(fields.payload);
      if (inner !== undefined) return asObject(inner);
    }
    return fields;
  }
  if (text.trim() !== '') {
    const v = parse(text);
    if (v !== undefined) return asObject(v);
  }
  return { body: text, contentType: contentType || null };
}

const sha256 = (data: string | Buffer) => crypto.createHash('sha256').update(data).digest('hex');

/**
 * Per source and process: a burst of REJECTED_BURST rejected requests is logged, then one per
 * REJECTED_EVERY_MS; the next logged row says how many were left out meanwhile.
 */
const REJECTED_BURST = 20;
const REJECTED_EVERY_MS = 1000;

export class RejectedLogLimit {
  private readonly state = new Map<string, { tokens: number; at: number; skipped: number }>();

  take(sourceId: string, now: number): { log: boolean; skipped: number } {
    let s = this.state.get(sourceId);
    if (!s) {
      if (this.state.size >= 10_000) this.state.clear();
      s = { tokens: REJECTED_BURST, at: now, skipped: 0 };
      this.state.set(sourceId, s);
    }
    s.tokens = Math.min(REJECTED_BURST, s.tokens + (now - s.at) / REJECTED_EVERY_MS);
    s.at = now;
    if (s.tokens < 1) {
      s.skipped++;
      return { log: false, skipped: 0 };
    }
    s.tokens -= 1;
    const skipped = s.skipped;
    s.skipped = 0;
    return { log: true, skipped };
  }
}

export class Ingest {
  /** Opened secrets by sealed value: AES-GCM per webhook is cheap, but not free under a burst. */
  private readonly secrets = new Map<string, string>();

  private readonly rejectedLog = new RejectedLogLimit();

  constructor(private readonly ctx: Context) {}

  private openSecret(sealed: string): string {
    let s = this.secrets.get(sealed);
    if (s === undefined) {
      s = this.ctx.box.decrypt(sealed);
      if (this.secrets.size > 1000) this.secrets.clear();
      this.secrets.set(sealed, s);
    }
    return s;
  }

  private async expression(code: string, input: unknown): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
    const r = await sharedSandbox(this.ctx.config.transformThreads).run('jsonata', code, input, limitsOf(this.ctx.config));
    // Busy is not the expression's answer: falling back to the default event type or the body
    // hash would misroute or fail to de-duplicate the event. Nothing is stored yet, so a 503
    // makes the provider send it again later.
    throwIfBusy(r);
    return r.ok ? { ok: true, value: r.output } : { ok: false, error: r.error };
  }

  async handle(source: SourceRow, rawBody: Buffer, headers: Record<string, string>, now: number) {
    const ctx = this.ctx;
    const config: SourceConfig = parseSourceConfig(source);
    const base: SourceEventRow = {
      id: newId('sevt', now), source_id: source.id, app_id: source.app_id, environment_id: source.environment_id, status: 'accepted', reason: null,
      event_type: null, dedupe_key: null, message_id: null, headers: loggedHeaders(headers), payload: null, body_bytes: rawBody.length, created_at: now,
    };
    let v: Verification;
    try {
      v = verifyRequest(source.provider as ProviderName, { rawBody, headers, now }, this.openSecret(source.secret), { toleranceSeconds: config.toleranceSeconds, hmac: config.hmac });
    } catch (e) {
      // Only an unreadable stored secret gets here (e.g. the master key changed).
      ctx.log.error({ err: e, sourceId: source.id }, 'source secret could not be opened');
      v = { ok: false, reason: 'the source secret cannot be decrypted with the configured master key; set the secret again' };
    }
    if (!v.ok) {
      // Anyone who knows a source's URL can send it garbage: log what a person needs to see a
      // misconfiguration, not every request of a flood (each row holds up to 32 KiB of headers).
      const logged = this.rejectedLog.take(source.id, now);
      if (logged.log) {
        const reason = logged.skipped ? `${v.reason} (${logged.skipped} more rejected requests were not logged)` : v.reason;
        await ctx.store.insertSourceEvent({ ...base, status: 'rejected', reason });
      }
      throw new ApiError('signature_invalid', `Signature verification failed: ${v.reason}.`);
    }
    // NUL cannot be stored in a PostgreSQL text column and never occurs in JSON; the logged copy
    // of such a (non-JSON) body shows it as U+FFFD, so the provider still gets its answer.
    const text = rawBody.toString('utf8').replace(/\u0000/g, '\uFFFD');
    if (v.ignore) {
      await ctx.store.insertSourceEvent({ ...base, status: 'ignored', reason: v.ignore, event_type: cleanEventType(v.eventType), payload: text });
      return { status: 200, body: v.reply ?? { id: base.id, status: 'ignored', reason: v.ignore } };
    }

    const payload = payloadOf(rawBody, headers['content-type'] ?? '');
    const notes: string[] = [];
    let eventType = cleanEventType(v.eventType);
    if (config.eventTypeExpression) {
      const r = await this.expression(config.eventTypeExpression, { headers, body: payload, provider: source.provider });
      const named = r.ok && (typeof r.value === 'string' || typeof r.value === 'number') ? cleanEventType(String(r.value)) : null;
      if (named) eventType = named;
      else notes.push(`eventTypeExpression gave no event type${r.ok ? '' : ` (${r.error})`}; used the ${eventType ? "provider's" : 'default'}`);
    }
    eventType ??= config.defaultEventType ?? 'webhook';

    let dedupeKey: string | null = null;
    if (config.dedupe.by === 'provider') dedupeKey = v.deliveryId ? `delivery:${v.deliveryId}` : `body:${sha256(rawBody)}`;
    else if (config.dedupe.by === 'body') dedupeKey = `body:${sha256(rawBody)}`;
    else if (config.dedupe.by === 'expression' && config.dedupe.expression) {
      const r = await this.expression(config.dedupe.expression, { headers, body: payload });
      if (r.ok && r.value !== null && r.value !== undefined) dedupeKey = `key:${typeof r.value === 'string' ? r.value : JSON.stringify(r.value)}`;
      else {
        dedupeKey = `body:${sha256(rawBody)}`;
        notes.push(`dedupe expression gave no key${r.ok ? '' : ` (${r.error})`}; used the body's hash`);
      }
    }
    if (dedupeKey && dedupeKey.length > 512) dedupeKey = `sha256:${sha256(dedupeKey)}`;

    const message: MessageRow = {
      id: newId('msg', now), environment_id: source.environment_id, app_id: source.app_id, event_type: eventType, event_id: null,
      channels: config.channels ? JSON.stringify(config.channels) : null, tags: null, payload: JSON.stringify(payload), created_at: now, expires_at: now + ctx.config.retentionMs,
    };
    const endpoints = await ctx.store.listEnabledEndpoints([source.app_id]);
    const deliveries: DeliveryRow[] = endpoints
      .filter((ep) => endpointMatches(ep, eventType!, config.channels))
      .map((ep) => ({
        id: newId('dlv', now), message_id: message.id, endpoint_id: ep.id, app_id: message.app_id, environment_id: message.environment_id, status: Status.pending,
        due_at: now, attempts: 0, trigger_type: 0, lease_owner: null, last_attempt_at: null, created_at: now, updated_at: now,
      }));
    const event: SourceEventRow = { ...base, event_type: eventType, dedupe_key: dedupeKey, message_id: message.id, payload: text, reason: notes.length ? notes.join('; ') : null };
    const r = await ctx.store.recordSourceEvent({
      event,
      dedupe: dedupeKey ? { keyHash: sha256(dedupeKey), expiresAt: now + config.dedupe.windowSeconds * 1000 } : null,
      message: { message, deliveries },
    });
    if (r.status === 'duplicate') return { status: 200, body: { id: event.id, status: 'duplicate', duplicateOf: r.duplicateOf } };
    if (deliveries.length) ctx.wake();
    ctx.metrics.messagesCreated.inc(1);
    return { status: 200, body: { id: event.id, status: 'accepted', messageId: message.id } };
  }
}

export async function ingressRoutes(app: FastifyInstance, ctx: Context) {
  const ingest = new Ingest(ctx);
  await app.register(async (scope) => {
    // Only this route reads bodies as raw bytes, of any media type: signatures cover the bytes.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: ctx.config.bodyLimitBytes }, (_req, body, done) => done(null, body));
    scope.post('/in/:source_id', {
      bodyLimit: ctx.config.bodyLimitBytes,
      schema: {
        tags: ['Source'],
        operationId: 'v1.source.ingest',
        summary: "Receive a provider's webhook (public: verified by the provider's signature, not an API key)",
        description: 'Send the webhook exactly as the provider does; the body is verified byte for byte. Answers 200 once the event is stored.',
        security: [],
        params: Type.Object({ source_id: Type.String({ pattern: '^src_[0-9A-Z]{26}$', description: 'The source id from its ingestUrl.' }) }),
        response: { 200: Type.Unknown({ description: 'IngestOut, or the handshake answer the provider expects (Slack: {challenge}).' }), 400: HttpErrorOut, 401: HttpErrorOut, 403: HttpErrorOut, 404: HttpErrorOut, 413: HttpErrorOut, 503: HttpErrorOut },
      },
    }, async (req: FastifyRequest<{ Params: { source_id: string } }>, reply: FastifyReply) => {
      const source = await ctx.store.getSourceById(req.params.source_id);
      if (!source) throw new ApiError('not_found', `Source "${req.params.source_id}" not found; check the URL the provider posts to.`);
      if (source.disabled) throw new ApiError('source_disabled');
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const r = await ingest.handle(source, raw, flatHeaders(req), Date.now());
      return reply.code(r.status).type('application/json; charset=utf-8').serializer(JSON.stringify).send(r.body);
    });
  });
  app.addSchema(IngestOut);
}
