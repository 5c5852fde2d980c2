/**
 * The `idempotency-key` header on POST requests (the Svix client sends `auto_<uuid>` on every
 * POST and reuses it on retries). The key is scoped to the environment. The first request with
 * a key runs; a repeat with the same method, path and body within the TTL gets the first
 * response back (with `idempotent-replayed: true`); a repeat with a different request is a 422;
 * a repeat that arrives while the first still runs waits for it. State lives in the database, so
 * it holds across processes. A 5xx outcome is forgotten so the client's retry can run again.
 *
 * Routes whose success response carries a credential opt out of the replay with the route config
 * `idempotency` (see IdempotencyPolicy): a stored copy would be a raw API key or token sitting in
 * the database for the key's lifetime, handed to anyone who repeats the request.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Store } from '../store/port.js';
import { ApiError, ERRORS } from './errors.js';

/**
 * How a route's success response may be kept under an idempotency key; without one it is stored
 * and replayed.
 * - `credential-once`: the response holds a credential that is shown once (a new API key). The key
 *   is recorded with the status only, never the body, so a repeat creates nothing more and gets a
 *   409 whose detail ends with `recovery` (how to find or replace what the first request made).
 *   Error responses carry no credential and are replayed as usual.
 * - `not-recorded`: the response holds a credential minted per call that is harmless to mint twice
 *   (a portal token). The key is not recorded at all: a retry runs again and gets a fresh one.
 */
export type IdempotencyPolicy = { kind: 'credential-once'; recovery: string } | { kind: 'not-recorded' };

declare module 'fastify' {
  interface FastifyRequest {
    /** `recorded`: the handler stored the response with its own write (see MessageWriter). */
    idempotency?: { environmentId: string; key: string; recorded?: boolean; credentialOnce?: boolean };
  }
  interface FastifyContextConfig {
    idempotency?: IdempotencyPolicy;
  }
}

const isSuccess = (status: number) => status >= 200 && status < 300;

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The latest time (ms) this request's response may be kept for a replay: set (with
     * replayNoLaterThan) by routes whose response holds message payloads, which must not outlive
     * the payloads' own retention. Without it the key lasts its TTL.
     */
    idempotencyReplayUntil?: number;
  }
}

/** Lets the idempotency key of this request, if any, keep its response no later than `at` (ms). */
export function replayNoLaterThan(req: FastifyRequest, at: number) {
  req.idempotencyReplayUntil = Math.min(req.idempotencyReplayUntil ?? Infinity, at);
}

const WAIT_STEP_MS = 25;
const WAIT_MAX_MS = 15_000;

export function registerIdempotency(app: FastifyInstance, store: Store, ttlMs: number) {
  app.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
    if (req.method !== 'POST') return;
    const raw = req.headers['idempotency-key'];
    if (raw === undefined || !req.principal) return;
    const key = Array.isArray(raw) ? raw[0] : raw;
    if (key.length === 0 || key.length > 256) {
      throw new ApiError('bad_request', 'The idempotency-key header must be 1 to 256 characters.');
    }
    const policy = req.routeOptions.config.idempotency;
    if (policy?.kind === 'not-recorded') return;
    const scopedKey = `${req.principal.applicationId ?? '*'}:${key}`;
    const hash = createHash('sha256')
      .update(req.method)
      .update('\0')
      .update(req.url)
      .update('\0')
      .update(req.body === undefined ? '' : JSON.stringify(req.body))
      .digest('hex');
    const envId = req.principal.environmentId;
    const started = Date.now();
    for (;;) {
      const r = await store.beginIdempotent(envId, scopedKey, hash, Date.now(), ttlMs);
      if (r.state === 'new') {
        req.idempotency = { environmentId: envId, key: scopedKey, credentialOnce: policy?.kind === 'credential-once' };
        return;
      }
      if (r.state === 'mismatch') throw new ApiError('idempotency_key_reused');
      if (r.state === 'done') {
        // Only the status was kept (see onSend); nothing to replay, and a second credential is
        // not what a retry asked for.
        if (policy?.kind === 'credential-once' && isSuccess(r.statusCode)) {
          throw new ApiError('idempotency_not_replayable', `${ERRORS.idempotency_not_replayable.detail} ${policy.recovery}`);
        }
        reply.code(r.statusCode).header('idempotent-replayed', 'true').header('content-type', 'application/json; charset=utf-8');
        return reply.send(r.response === '' ? undefined : r.response);
      }
      if (Date.now() - started > WAIT_MAX_MS) throw new ApiError('idempotency_conflict');
      await new Promise((res) => setTimeout(res, WAIT_STEP_MS));
    }
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const idem = req.idempotency;
    if (!idem) return payload;
    req.idempotency = undefined;
    if (idem.recorded) return payload;
    if (reply.statusCode >= 500) {
      await store.abandonIdempotent(idem.environmentId, idem.key);
    } else {
      const body = idem.credentialOnce && isSuccess(reply.statusCode) ? '' : typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : payload == null ? '' : String(payload);
      await store.completeIdempotent(idem.environmentId, idem.key, reply.statusCode, body, req.idempotencyReplayUntil);
    }
    return payload;
  });

  // A request that died before sending (client gone) must not leave its key locked forever.
  app.addHook('onResponse', async (req) => {
    const idem = req.idempotency;
    if (idem) await store.abandonIdempotent(idem.environmentId, idem.key);
  });
}
