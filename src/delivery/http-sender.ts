/**
 * Outbound HTTP client for webhook deliveries.
 *
 * Everything about the exchange is decided by the receiver, which is untrusted:
 * it may be slow, hostile, huge, or aimed at our own network. So this client
 * - resolves and checks every address itself and connects only to a checked
 *   address (no DNS-rebinding window between check and connect),
 * - bounds the whole exchange by one deadline and the body by a byte cap,
 * - never follows redirects and never decompresses,
 * - reports every outcome as a value instead of throwing.
 */
import { lookup } from 'node:dns/promises';
import { isIP, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Agent, buildConnector, type Dispatcher } from 'undici';

import { blockedReason, parseNetworks, type AllowList } from './address-policy.js';

export type ErrorClass =
  | 'timeout'
  | 'connection_refused'
  | 'connection_reset'
  | 'dns'
  | 'tls'
  | 'blocked'
  | 'invalid_url'
  | 'http_status'
  | 'network'
  /** The endpoint's transformation failed, so nothing was sent (set by the worker). */
  | 'transformation';

export interface SendRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface SendResult {
  /** True only for a 2xx response received within the deadline without a transport error. */
  ok: boolean;
  status: number | null;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** UTF-8 decoded (lossy) from at most maxResponseBytes received bytes. */
  body: string;
  truncated: boolean;
  durationMs: number;
  errorClass: ErrorClass | null;
  error: string | null;
  retryAfterMs: number | null;
}

export interface SenderOptions {
  /** CIDRs exempt from the SSRF policy, e.g. ["10.1.0.0/16"]. */
  allowedNetworks: string[];
  /** Budget for the whole exchange: DNS, connect, TLS, headers and the entire body. */
  deadlineMs: number;
  maxResponseBytes: number;
  /**
   * At most this much time is given back to an exchange whose deadline timer fired late because
   * this process stalled (see send()); 0 gives none. It must fit in the lease beyond the deadline.
   */
  stallGraceMs?: number;
  userAgent?: string;
}

/** Raised from the connector so a policy refusal is distinguishable from network failures. */
export class BlockedAddressError extends Error {
  readonly code = 'ERR_KOPPEL_BLOCKED_ADDRESS';
  constructor(readonly reason: string) {
    super(`blocked: ${reason}`);
    this.name = 'BlockedAddressError';
  }
}

const DEFAULT_USER_AGENT = 'Koppel-Webhooks/1.0';

// Headers the caller must not set: framing and connection management belong to
// the HTTP client, `host` must name the URL's host, and accept-encoding would
// invite compressed bodies we deliberately never decode.
const FORBIDDEN_REQUEST_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'expect',
  'te',
  'trailer',
  'proxy-connection',
  'proxy-authorization',
  'accept-encoding',
]);

type ConnectOptions = buildConnector.Options;
type ConnectCallback = buildConnector.Callback;

/** Addresses tried per connection, so a hostname with many records cannot stall us. */
const MAX_ADDRESSES_TRIED = 4;

// Errors after which the next resolved address is worth trying (e.g. an AAAA
// record on a host without IPv6 connectivity). Anything else is the answer.
const NEXT_ADDRESS_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'EAFNOSUPPORT']);

function stripTrailingDot(host: string): string {
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/**
 * The addresses a hostname stands for. `localhost` names are answered here
 * (RFC 6761 says they are always loopback) rather than trusting the resolver,
 * which might not know `localhost.` or might map `*.localhost` elsewhere.
 */
async function resolve(hostname: string): Promise<string[]> {
  if (isIP(hostname)) return [hostname];
  const name = stripTrailingDot(hostname).toLowerCase();
  if (name === 'localhost' || name.endsWith('.localhost')) return ['127.0.0.1', '::1'];
  const records = await lookup(hostname, { all: true });
  return records.map((r) => r.address);
}

/**
 * An undici connector that enforces the address policy at the only point that
 * matters: the address the socket actually connects to.
 */
function guardedConnector(allow: AllowList, connectTimeoutMs: number): buildConnector.connector {
  const connectTo = buildConnector({ timeout: connectTimeoutMs });

  const attempt = (opts: ConnectOptions, ip: string): Promise<Socket> =>
    new Promise((resolveSocket, reject) => {
      connectTo({ ...opts, hostname: ip }, (err, socket) => (err ? reject(err) : resolveSocket(socket!)));
    });

  return (opts: ConnectOptions, callback: ConnectCallback): void => {
    const run = async (): Promise<Socket> => {
      const addresses = await resolve(opts.hostname);
      if (addresses.length === 0) throw Object.assign(new Error(`no addresses for ${opts.hostname}`), { code: 'ENOTFOUND' });
      // One bad record refuses the host: an attacker controlling DNS could
      // otherwise mix a public and an internal address and let us pick.
      for (const ip of addresses) {
        const reason = blockedReason(ip, allow);
        if (reason !== null) throw new BlockedAddressError(reason);
      }

      const host = stripTrailingDot(opts.hostname);
      // SNI and certificate validation use the name from the URL, not the IP
      // we dial; IP literals get no SNI (it is not allowed to carry an IP).
      const servername = opts.servername || (isIP(host) ? undefined : host);

      let lastError: unknown;
      for (const ip of addresses.slice(0, MAX_ADDRESSES_TRIED)) {
        let socket: Socket;
        try {
          socket = await attempt({ ...opts, servername }, ip);
        } catch (err) {
          lastError = err;
          if (NEXT_ADDRESS_CODES.has((err as { code?: string }).code ?? '')) continue;
          throw err;
        }
        // Belt and braces: the peer we ended up talking to must pass too.
        const remote = socket.remoteAddress;
        const reason = remote === undefined ? null : blockedReason(remote, allow);
        if (remote === undefined || reason !== null) {
          socket.destroy();
          if (reason !== null) throw new BlockedAddressError(reason);
          throw Object.assign(new Error('socket closed before its peer address was known'), { code: 'ECONNRESET' });
        }
        return socket;
      }
      throw lastError;
    };
    run().then(
      (socket) => callback(null, socket),
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)), null),
    );
  };
}

class DeadlineExceeded extends Error {
  constructor(deadlineMs: number, phase: string) {
    super(`deadline of ${deadlineMs} ms exceeded ${phase}`);
    this.name = 'DeadlineExceeded';
  }
}

function errorCodes(err: unknown): string[] {
  // undici and Node sometimes wrap the interesting error in `cause`; bounded walk.
  const codes: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; depth < 5 && cur instanceof Error; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
    cur = cur.cause;
  }
  return codes;
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'EPROTO',
  'HOSTNAME_MISMATCH',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

function classifyCode(code: string): ErrorClass | null {
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection_refused';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'ECONNABORTED':
      return 'connection_reset';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'EAI_NODATA':
    case 'ENODATA':
    case 'ESERVFAIL':
      return 'dns';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'timeout';
  }
  if (
    TLS_CODES.has(code) ||
    code.startsWith('ERR_TLS_') ||
    code.startsWith('ERR_SSL_') ||
    code.startsWith('CERT_') ||
    code.startsWith('UNABLE_TO_')
  ) {
    return 'tls';
  }
  return null;
}

function classify(err: unknown): { errorClass: ErrorClass; error: string } {
  if (err instanceof BlockedAddressError) return { errorClass: 'blocked', error: err.message };
  if (err instanceof DeadlineExceeded) return { errorClass: 'timeout', error: err.message };
  const message = err instanceof Error ? err.message || err.name : String(err);
  for (const code of errorCodes(err)) {
    const errorClass = classifyCode(code);
    if (errorClass !== null) return { errorClass, error: message };
  }
  return { errorClass: 'network', error: message };
}

/** Delta-seconds or an HTTP-date; anything else is ignored. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) {
    const ms = Number(text) * 1000;
    return Number.isSafeInteger(ms) ? ms : null;
  }
  // Date.parse accepts almost anything ("1", "2024"); every HTTP-date form
  // (IMF-fixdate, RFC 850, asctime) starts with a day name.
  if (!/^(mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s/i.test(text)) return null;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  // for…in rather than Object.entries: no array per header on every response.
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** The response body as text; most webhook responses are empty or arrive in one chunk. */
function bodyText(chunks: Buffer[]): string {
  if (chunks.length === 0) return '';
  if (chunks.length === 1) return chunks[0].toString('utf8');
  return Buffer.concat(chunks).toString('utf8');
}

/** What is known about an exchange so far; a deadline reports whatever arrived. */
interface Progress {
  phase: string;
  status: number | null;
  headers: Record<string, string>;
  chunks: Buffer[];
  truncated: boolean;
}

export class HttpSender {
  /** Ready at once (SenderThreads has to start its threads first). */
  readonly ready = Promise.resolve();
  private readonly agent: Agent;
  private readonly allow: AllowList;
  private readonly deadlineMs: number;
  private readonly stallGraceMs: number;
  private readonly maxResponseBytes: number;
  private readonly userAgent: string;
  private readonly targets = new Map<string, { origin: string; path: string } | { error: string }>();

  constructor(opts: SenderOptions) {
    this.allow = parseNetworks(opts.allowedNetworks);
    this.deadlineMs = opts.deadlineMs;
    this.stallGraceMs = opts.stallGraceMs ?? 0;
    this.maxResponseBytes = opts.maxResponseBytes;
    this.userAgent = opts.userAgent ?? DEFAULT_USER_AGENT;
    this.agent = new Agent({
      // No cap per origin: many endpoints can share one (a customer's gateway, an iPaaS), and a
      // cap here would queue a healthy endpoint's requests behind a slow neighbour's. Requests in
      // flight are bounded by the worker, per endpoint and per process.
      connections: null,
      pipelining: 1,
      // Our own deadline is what ends an exchange; these only keep undici from
      // holding a socket longer than that if it outlives the abort somehow.
      headersTimeout: opts.deadlineMs,
      bodyTimeout: opts.deadlineMs,
      connect: guardedConnector(this.allow, opts.deadlineMs),
    });
  }

  async send(req: SendRequest): Promise<SendResult> {
    const started = performance.now();
    const elapsed = (): number => Math.round(performance.now() - started);

    const url = this.target(req.url);
    if ('error' in url) return failure('invalid_url', url.error, elapsed());

    const progress: Progress = {
      phase: 'before the response headers arrived',
      status: null,
      headers: {},
      chunks: [],
      truncated: false,
    };
    // undici's dispatch API rather than request(): no response stream, async iterator, abort
    // signal or race of promises per delivery, only callbacks, which was a tenth of the worker's
    // CPU at a few thousand deliveries per second.
    return new Promise<SendResult>((resolve) => {
      let settled = false;
      let controller: Dispatcher.DispatchController | null = null;
      let deadlineError: DeadlineExceeded | null = null;
      let size = 0;
      const finish = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(this.result(progress, err, elapsed()));
      };
      // Our own timer rather than undici's timeouts: it also bounds DNS and connect (before
      // undici has a request to abort), and a body dribbled byte by byte.
      const expire = () => {
        if (settled) return;
        deadlineError = new DeadlineExceeded(this.deadlineMs, progress.phase);
        finish(deadlineError);
        // Tears down the socket; if the exchange has not started yet it is aborted when it does.
        controller?.abort(deadlineError);
      };
      // The deadline is time this process could watch the exchange. When this process stalls (a
      // large bulk request, a GC pause, a starved CPU), the timer fires late, before the loop has
      // read the answer that came in meanwhile or even written a request that waited: failing it
      // then would retry a delivery the receiver may well have handled, and deliver it twice. So
      // a late timer gives the exchange the time it was late back, once, up to stallGraceMs; and
      // the verdict waits for the loop's next read of sockets (setImmediate runs after it).
      const graceMs = this.stallGraceMs;
      const onTimer = (extended: boolean) => {
        const lateMs = performance.now() - started - this.deadlineMs;
        if (!extended && graceMs > 0 && lateMs >= 1) timer = setTimeout(() => onTimer(true), Math.min(lateMs, graceMs));
        else setImmediate(expire);
      };
      let timer = setTimeout(() => onTimer(false), this.deadlineMs);
      const maxBytes = this.maxResponseBytes;
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(c) {
          controller = c;
          if (deadlineError) c.abort(deadlineError);
        },
        onResponseStart(_c, statusCode, headers) {
          progress.status = statusCode;
          progress.headers = flattenHeaders(headers);
          progress.phase = 'while reading the body';
        },
        onResponseData(c, chunk) {
          if (settled) return;
          const room = maxBytes - size;
          if (chunk.length > room) {
            if (room > 0) progress.chunks.push(chunk.subarray(0, room));
            progress.truncated = true;
            finish(null);
            // The rest of the body (and the connection carrying it) is dropped, so an endless
            // body costs nothing.
            c.abort(new Error('response body over the size cap; connection dropped'));
            return;
          }
          progress.chunks.push(chunk);
          size += chunk.length;
        },
        onResponseEnd() {
          finish(null);
        },
        onResponseError(_c, err) {
          finish(err);
        },
      };
      try {
        this.agent.dispatch(
          { origin: url.origin, path: url.path, method: 'POST', headers: this.requestHeaders(req.headers), body: req.body },
          handler,
        );
      } catch (err) {
        finish(err);
      }
    });
  }

  /**
   * Origin and path of an endpoint URL, parsed once per URL (an endpoint sends to the same URL
   * every time; a URL object per delivery was garbage for nothing).
   */
  private target(raw: string): { origin: string; path: string } | { error: string } {
    let t = this.targets.get(raw);
    if (!t) {
      try {
        const url = new URL(raw);
        t = url.protocol !== 'http:' && url.protocol !== 'https:' ? { error: `unsupported URL scheme ${url.protocol}` } : { origin: url.origin, path: `${url.pathname}${url.search}` };
      } catch {
        t = { error: `invalid URL: ${JSON.stringify(raw)}` };
      }
      if (this.targets.size >= 10_000) this.targets.delete(this.targets.keys().next().value!);
      this.targets.set(raw, t);
    }
    return t;
  }

  private requestHeaders(given: Record<string, string>): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const name in given) {
      const lower = name.toLowerCase();
      if (!FORBIDDEN_REQUEST_HEADERS.has(lower)) headers[lower] = given[name];
    }
    headers['content-type'] ??= 'application/json';
    headers['user-agent'] ??= this.userAgent;
    return headers;
  }

  private result(progress: Progress, err: unknown, durationMs: number): SendResult {
    const { status, headers, truncated } = progress;
    const body = bodyText(progress.chunks);
    const retryAfterMs = parseRetryAfter(headers['retry-after']);
    if (err !== null) {
      const { errorClass, error } = classify(err);
      return { ok: false, status, headers, body, truncated, durationMs, errorClass, error, retryAfterMs };
    }
    if (status !== null && status >= 200 && status < 300) return { ok: true, status, headers, body, truncated, durationMs, errorClass: null, error: null, retryAfterMs };
    const location = status !== null && status >= 300 && status < 400 ? headers['location'] : undefined;
    const error = location === undefined ? `HTTP ${status}` : `HTTP ${status} (redirect to ${location} not followed)`;
    return { ok: false, status, headers, body, truncated, durationMs, errorClass: 'http_status', error, retryAfterMs };
  }

  /** Waits for in-flight exchanges (each bounded by the deadline) and closes idle sockets. */
  async close(): Promise<void> {
    await this.agent.close();
  }
}

function failure(errorClass: ErrorClass, error: string, durationMs: number): SendResult {
  return {
    ok: false,
    status: null,
    headers: {},
    body: '',
    truncated: false,
    durationMs,
    errorClass,
    error,
    retryAfterMs: null,
  };
}
