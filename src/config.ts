/**
 * The one typed configuration of Koppel. Every setting is an environment variable under the
 * `KOPPEL_` prefix; each has a default, a parser and a description here, and `docs/configuration.md`
 * is checked against this table by a test. A bad value stops the start with a message that names
 * the variable and the fix.
 */
import net from 'node:net';
import path from 'node:path';
import { isMasterKey } from './crypto/secret-box.js';
import { parseNetworks } from './delivery/address-policy.js';
import { DELIVERY_MIN_WAIT_MS, HARD_KILL_GRACE_MS, leaseFloorMs } from './transformations/sandbox.js';

export type Role = 'api' | 'worker' | 'all';

export interface Config {
  port: number;
  host: string;
  publicUrl: string | null;
  dataDir: string;
  databaseUrl: string | null;
  adminApiKey: string | null;
  secretKey: string | null;
  role: Role;
  retrySchedule: number[];
  requestTimeoutMs: number;
  maxResponseBytes: number;
  allowedNetworks: string[];
  endpointConcurrency: number;
  workerConcurrency: number;
  deliveryThreads: number;
  claimBatchSize: number;
  leaseMs: number;
  pollIntervalMs: number;
  disableAfterFailingMs: number;
  retryAfterMaxMs: number;
  bodyLimitBytes: number;
  idempotencyTtlMs: number;
  retentionMs: number;
  retentionIntervalMs: number;
  logLevel: string;
  production: boolean;
  transformTimeoutMs: number;
  transformMemoryBytes: number;
  transformThreads: number;
  sessionTtlMs: number;
  portalTokenTtlMs: number;
  portalFrameAncestors: string[];
  portalName: string;
  portalLogoUrl: string | null;
  portalAccentColor: string;
}

export class ConfigError extends Error {}

interface Setting<T> {
  key: string;
  default: string;
  description: string;
  parse: (raw: string, key: string) => T;
}

function int(min: number, max: number) {
  return (raw: string, key: string): number => {
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${key}="${raw}" is not a whole number; set it to an integer between ${min} and ${max}.`);
    const n = Number(raw.trim());
    if (n < min || n > max) throw new ConfigError(`${key}=${n} is out of range; set it between ${min} and ${max}.`);
    return n;
  };
}

function seconds(minS: number, maxS: number) {
  return (raw: string, key: string): number => {
    const s = Number(raw.trim());
    if (raw.trim() === '' || !Number.isFinite(s) || s < minS || s > maxS) {
      throw new ConfigError(`${key}="${raw}" must be a number of seconds between ${minS} and ${maxS}.`);
    }
    return Math.round(s * 1000);
  };
}

function days(minD: number, maxD: number) {
  return (raw: string, key: string): number => {
    const d = Number(raw.trim());
    if (raw.trim() === '' || !Number.isFinite(d) || d < minD || d > maxD) {
      throw new ConfigError(`${key}="${raw}" must be a number of days between ${minD} and ${maxD}.`);
    }
    return Math.round(d * 86_400_000);
  };
}

const optionalStr = (raw: string) => (raw.trim() === '' ? null : raw.trim());

function bool(raw: string, key: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new ConfigError(`${key}="${raw}" is not a boolean; use true or false.`);
}

/** The master key; the value is never echoed, since it is a secret. */
function secretKey(raw: string, key: string): string | null {
  const v = optionalStr(raw);
  if (v !== null && !isMasterKey(v)) throw new ConfigError(`${key} is not base64 of 32 bytes; generate one with: openssl rand -base64 32 (or leave it empty to use the key generated into the data directory, unless KOPPEL_PRODUCTION is on).`);
  return v;
}

/** Parses `KOPPEL_RETRY_SCHEDULE`: delays in seconds between attempts, comma-separated. */
export function parseRetrySchedule(raw: string, key = 'KOPPEL_RETRY_SCHEDULE'): number[] {
  const parts = raw.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.length > 50 || parts.some((p) => p === '')) {
    throw new ConfigError(`${key}="${raw}" must be 1 to 50 comma-separated numbers of seconds, e.g. "0,5,300".`);
  }
  return parts.map((p) => {
    const s = Number(p);
    if (!Number.isFinite(s) || s < 0 || s > 7 * 86400) {
      throw new ConfigError(`${key}: "${p}" is not a delay in seconds between 0 and 604800.`);
    }
    return Math.round(s * 1000);
  });
}

function cidrList(raw: string, key: string): string[] {
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const fix = 'write each block as address/prefix, like 127.0.0.0/8 or ::1/128';
  for (const item of items) {
    const m = /^([^/]+)\/(\d{1,3})$/.exec(item);
    // A bare address is refused although the address policy would read it as one host: written
    // as 10.0.0.0 it more likely means a network whose prefix was forgotten.
    if (!m) throw new ConfigError(`${key}: "${item}" is not a CIDR block; ${fix} (one host is /32 or /128).`);
    // Standard notation only: the policy's parser also reads shorthand such as 10/8 (0.0.0.10/8)
    // or 010.0.0.0/8 (octal, 8.0.0.0/8), which would allow a different network than meant.
    const family = net.isIP(m[1]);
    if (family === 0) throw new ConfigError(`${key}: "${item}" is not a CIDR block: "${m[1]}" is not an IPv4 or IPv6 address; ${fix}.`);
    try {
      // The parser the delivery worker uses, so that what passes here cannot fail it later.
      parseNetworks([item]);
    } catch {
      throw new ConfigError(`${key}: "${item}" is not a CIDR block: the prefix length of an ${family === 4 ? 'IPv4 address is at most 32' : 'IPv6 address is at most 128'}; ${fix}.`);
    }
  }
  return items;
}

function role(raw: string, key: string): Role {
  const v = raw.trim();
  if (v === 'api' || v === 'worker' || v === 'all') return v;
  throw new ConfigError(`${key}="${raw}" is not a role; use api, worker or all.`);
}

/** Where this server is reached: an http(s) URL, or empty for the default. */
function publicUrl(raw: string, key: string): string | null {
  const v = raw.trim();
  if (v === '') return null;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(`${key}="${raw}" is not a URL; write it like https://webhooks.example.com, or leave it empty for http://localhost:<port>.`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ConfigError(`${key}="${raw}" must be an http:// or https:// URL (it is ${u.protocol}); write it like https://webhooks.example.com.`);
  }
  return v.replace(/\/$/, '');
}

/** A PostgreSQL connection URL, or empty for SQLite. The value is never echoed: it may hold a password. */
function databaseUrl(raw: string, key: string): string | null {
  const v = raw.trim();
  if (v === '') return null;
  const example = 'postgres://user:password@host:5432/database, or leave it empty for the embedded SQLite';
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(`${key} is not a URL; write it like ${example}.`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new ConfigError(`${key} must be a postgres:// or postgresql:// URL (it is ${u.protocol}); write it like ${example}.`);
  }
  return v.replace(/\/$/, '');
}

/** The address to listen on: an IPv4 or IPv6 address or a host name (resolved when listening). */
function host(raw: string, key: string): string {
  const v = raw.trim();
  const fix = 'use an IP address such as 0.0.0.0 (all IPv4 interfaces), :: (all interfaces) or 127.0.0.1, or a host name such as localhost';
  if (/^\[.*\]$/.test(v) && net.isIP(v.slice(1, -1)) === 6) throw new ConfigError(`${key}="${raw}": write the IPv6 address without brackets (${v.slice(1, -1)}).`);
  if (net.isIP(v) !== 0) return v;
  // RFC 1123 labels, plus "_" as in container service names. A name whose last label is all
  // digits (300.1.2.3, 10.1) is a mistyped IPv4 address, not a host name.
  const labels = v.replace(/\.$/, '').split('.');
  const isName = v.length <= 253 && labels.every((l) => /^[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?$/.test(l)) && !/^\d+$/.test(labels[labels.length - 1]);
  if (!isName) throw new ConfigError(`${key}="${raw}" is not an IP address or host name; ${fix}.`);
  return v;
}

/** Origins allowed to frame the customer portal: scheme://host[:port], `*.` wildcards for subdomains. */
function originList(raw: string, key: string): string[] {
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    // Strict, because each item is copied into the Content-Security-Policy header: no paths,
    // spaces, quotes or semicolons that could change the policy.
    if (!/^https?:\/\/(\*\.)?[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*(:\d{1,5})?$/.test(item)) {
      throw new ConfigError(`${key}: "${item}" is not an origin; write it like https://app.example.com or https://*.example.com (no path).`);
    }
  }
  return items;
}

/** A CSS colour for the portal's accent: exactly #rrggbb. */
export function parseAccentColor(raw: string, key: string): string {
  const v = raw.trim();
  if (!/^#[0-9a-fA-F]{6}$/.test(v)) throw new ConfigError(`${key}="${raw}" is not a colour; write it as #rrggbb, e.g. #4f46e5.`);
  return v.toLowerCase();
}

/**
 * A logo URL: https only (the portal's Content-Security-Policy allows images from https: and
 * nothing else outside Koppel), no credentials, at most 2048 characters. Returns the problem or null.
 */
export function checkLogoUrl(raw: string): string | null {
  const v = raw.trim();
  if (v.length > 2048) return 'is longer than 2048 characters';
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return 'is not a valid URL';
  }
  if (u.protocol !== 'https:') return 'must be an https:// URL';
  if (u.username || u.password) return 'must not contain credentials';
  return null;
}

/** Every setting with its default; the source of truth for docs/configuration.md. */
export const SETTINGS = {
  port: { key: 'KOPPEL_PORT', default: '8071', description: 'TCP port the HTTP server listens on.', parse: int(0, 65535) },
  host: { key: 'KOPPEL_HOST', default: '0.0.0.0', description: 'Address the HTTP server binds to: an IPv4 or IPv6 address (0.0.0.0 or :: for all interfaces) or a host name.', parse: host },
  publicUrl: { key: 'KOPPEL_PUBLIC_URL', default: '', description: 'Public base URL of this server, http:// or https:// (used in printed and generated links). Defaults to http://localhost:<port>.', parse: publicUrl },
  dataDir: { key: 'KOPPEL_DATA_DIR', default: './.koppel', description: 'Directory for the embedded SQLite database, the generated master key and the generated admin key.', parse: (r: string) => path.resolve(r) },
  databaseUrl: { key: 'KOPPEL_DATABASE_URL', default: '', description: 'postgres://… (or postgresql://…) to use PostgreSQL; empty uses embedded SQLite in the data directory.', parse: databaseUrl },
  adminApiKey: { key: 'KOPPEL_ADMIN_API_KEY', default: '', description: 'Admin API key to accept instead of generating one into the data directory, so scripts can start Koppel non-interactively. At least 16 characters.', parse: (r: string, k: string) => { const v = optionalStr(r); if (v !== null && v.length < 16) throw new ConfigError(`${k} is too short; use at least 16 random characters.`); return v; } },
  secretKey: { key: 'KOPPEL_SECRET_KEY', default: '', description: 'Master key (base64 of 32 bytes) that encrypts endpoint secrets at rest. The embedded default generates one into the data directory on first start.', parse: secretKey },
  role: { key: 'KOPPEL_ROLE', default: 'all', description: 'Which parts this process runs: api, worker or all.', parse: role },
  retrySchedule: { key: 'KOPPEL_RETRY_SCHEDULE', default: '0,5,300,1800,7200,18000,36000,36000', description: 'Delays in seconds before each attempt (the first is the initial attempt), comma-separated; ±20 % jitter is applied to non-zero delays.', parse: parseRetrySchedule },
  requestTimeoutMs: { key: 'KOPPEL_REQUEST_TIMEOUT', default: '15', description: 'Whole-exchange deadline for one delivery attempt in seconds (connect, headers and body).', parse: seconds(0.05, 300) },
  maxResponseBytes: { key: 'KOPPEL_MAX_RESPONSE_BYTES', default: '65536', description: 'Bytes of each receiver response body that are stored with the attempt; the rest is discarded and the attempt is marked truncated.', parse: int(0, 1048576) },
  allowedNetworks: { key: 'KOPPEL_ALLOWED_NETWORKS', default: '', description: 'Comma-separated CIDR blocks that deliveries may reach even though they are private, loopback or otherwise blocked (e.g. 127.0.0.0/8 for local testing).', parse: cidrList },
  endpointConcurrency: { key: 'KOPPEL_ENDPOINT_CONCURRENCY', default: '100', description: 'Maximum attempts in flight to one endpoint from one worker process; give a fragile receiver a rateLimit instead of lowering this for all.', parse: int(1, 10000) },
  workerConcurrency: { key: 'KOPPEL_WORKER_CONCURRENCY', default: '1000', description: 'Maximum attempts in flight in one worker process.', parse: int(1, 100000) },
  deliveryThreads: { key: 'KOPPEL_DELIVERY_THREADS', default: '0', description: 'Threads per worker process that carry out the HTTP exchanges of deliveries, beside the main thread that owns the database, the API and the retry bookkeeping; 0 runs them on the main thread. Worth trying on a machine with cores to spare (docs/benchmarks.md); requests to one origin always use the same thread.', parse: int(0, 64) },
  claimBatchSize: { key: 'KOPPEL_CLAIM_BATCH', default: '50', description: 'Deliveries claimed per database round trip.', parse: int(1, 1000) },
  leaseMs: { key: 'KOPPEL_LEASE', default: '60', description: `Seconds a claimed delivery stays leased to a worker before another may take it; must exceed the longest one attempt can take: KOPPEL_REQUEST_TIMEOUT + KOPPEL_TRANSFORM_TIMEOUT + ${(HARD_KILL_GRACE_MS + DELIVERY_MIN_WAIT_MS) / 1000} s (stopping an overrunning transformation, and its shortest wait for a thread).`, parse: seconds(1, 3600) },
  pollIntervalMs: { key: 'KOPPEL_POLL_INTERVAL', default: '1', description: 'Seconds between fallback polls for due deliveries when no wake-up signal arrives.', parse: seconds(0.01, 60) },
  disableAfterFailingMs: { key: 'KOPPEL_DISABLE_AFTER', default: '432000', description: 'Seconds of continuous failure after which an endpoint is disabled (default 5 days).', parse: seconds(1, 365 * 86400) },
  retryAfterMaxMs: { key: 'KOPPEL_RETRY_AFTER_MAX', default: '3600', description: 'Upper bound in seconds on a receiver\'s Retry-After that Koppel honours.', parse: seconds(0, 86400) },
  bodyLimitBytes: { key: 'KOPPEL_BODY_LIMIT', default: '1048576', description: 'Largest accepted API request body in bytes; larger bodies get 413.', parse: int(1024, 64 * 1048576) },
  idempotencyTtlMs: { key: 'KOPPEL_IDEMPOTENCY_TTL', default: '86400', description: 'Seconds an idempotency key is remembered; a response holding message payloads is forgotten when the first of them expires, if that is sooner.', parse: seconds(1, 7 * 86400) },
  retentionMs: { key: 'KOPPEL_RETENTION_DAYS', default: '30', description: 'Days messages, attempts (with response bodies), operational events and source events are kept; a message\'s payloadRetentionPeriod or payloadRetentionHours sets when its payload goes instead (the message stays without it until this period has passed too).', parse: days(0.0001, 3650) },
  retentionIntervalMs: { key: 'KOPPEL_RETENTION_INTERVAL', default: '300', description: 'Seconds between runs of the background job that purges what is past its retention, in small batches.', parse: seconds(0.05, 86400) },
  logLevel: { key: 'KOPPEL_LOG_LEVEL', default: 'info', description: 'Log level: fatal, error, warn, info, debug, trace or silent.', parse: (r: string, k: string) => { if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(r)) throw new ConfigError(`${k}="${r}" is not a log level; use one of fatal, error, warn, info, debug, trace, silent.`); return r; } },
  production: { key: 'KOPPEL_PRODUCTION', default: 'false', description: 'Production mode: refuse to start without KOPPEL_SECRET_KEY instead of generating one.', parse: bool },
  transformTimeoutMs: { key: 'KOPPEL_TRANSFORM_TIMEOUT', default: '1', description: 'Seconds one run of an endpoint transformation (JavaScript or JSONata) may take; a run over it fails that attempt.', parse: seconds(0.01, 30) },
  transformMemoryBytes: { key: 'KOPPEL_TRANSFORM_MEMORY', default: '33554432', description: 'Bytes of memory one JavaScript transformation run may use in its QuickJS sandbox.', parse: int(1048576, 1073741824) },
  transformThreads: { key: 'KOPPEL_TRANSFORM_THREADS', default: '2', description: 'Worker threads per process that run transformations (started on first use).', parse: int(1, 64) },
  sessionTtlMs: { key: 'KOPPEL_SESSION_TTL', default: '43200', description: 'Seconds a dashboard sign-in lasts (the session cookie); revoking the API key it was made with ends it sooner.', parse: seconds(60, 30 * 86400) },
  portalTokenTtlMs: { key: 'KOPPEL_PORTAL_TOKEN_TTL', default: '3600', description: 'Default lifetime in seconds of a customer portal link when the request gives no expiry.', parse: seconds(1, 7 * 86400) },
  portalFrameAncestors: { key: 'KOPPEL_PORTAL_FRAME_ANCESTORS', default: '', description: 'Comma-separated origins whose pages may embed the customer portal in an iframe (e.g. https://app.example.com); empty allows only Koppel itself. The operator dashboard can never be framed.', parse: originList },
  portalName: { key: 'KOPPEL_PORTAL_NAME', default: 'Webhooks', description: 'Default name shown at the top of the customer portal; a portal link can override it.', parse: (r: string, k: string) => { const v = r.trim(); if (v.length < 1 || v.length > 64 || /[\u0000-\u001f]/.test(v)) throw new ConfigError(`${k} must be 1 to 64 printable characters.`); return v; } },
  portalLogoUrl: { key: 'KOPPEL_PORTAL_LOGO_URL', default: '', description: 'Default logo shown in the customer portal (an https URL); a portal link can override it.', parse: (r: string, k: string) => { if (r.trim() === '') return null; const problem = checkLogoUrl(r); if (problem) throw new ConfigError(`${k} ${problem}.`); return r.trim(); } },
  portalAccentColor: { key: 'KOPPEL_PORTAL_ACCENT_COLOR', default: '#4f46e5', description: 'Default accent colour of the customer portal as #rrggbb; a portal link can override it.', parse: parseAccentColor },
} satisfies { [K in keyof Config]: Setting<Config[K]> };

/** Reads and validates the configuration; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const out: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const [name, s] of Object.entries(SETTINGS) as [keyof Config, Setting<unknown>][]) {
    const raw = env[s.key] ?? s.default;
    try {
      out[name] = s.parse(raw, s.key);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  const known = new Set(Object.values(SETTINGS).map((s) => s.key));
  for (const k of Object.keys(env)) {
    if (k.startsWith('KOPPEL_') && !k.startsWith('KOPPEL_TEST_') && !known.has(k)) errors.push(`${k} is not a Koppel setting; see docs/configuration.md for the list.`);
  }
  if (errors.length) throw new ConfigError(errors.join('\n'));
  const cfg = { ...(out as unknown as Config), ...overrides };
  // An attempt may first wait for a sandbox thread and run a transformation, then send: all of
  // it must fit in the lease, or another worker could take the delivery and send it again.
  const floor = leaseFloorMs(cfg);
  if (cfg.leaseMs <= floor) {
    const n = (ms: number) => Number((ms / 1000).toFixed(3));
    const s = (ms: number) => `${n(ms)}s`;
    throw new ConfigError(
      `KOPPEL_LEASE (${s(cfg.leaseMs)}) must be longer than the longest one delivery attempt can take with these settings, ${s(floor)}: ` +
        `KOPPEL_REQUEST_TIMEOUT (${s(cfg.requestTimeoutMs)}) + KOPPEL_TRANSFORM_TIMEOUT (${s(cfg.transformTimeoutMs)}) + ${s(HARD_KILL_GRACE_MS)} to stop an overrunning transformation + ${s(DELIVERY_MIN_WAIT_MS)} of waiting for a transformation thread. ` +
        `Set KOPPEL_LEASE above ${n(floor)}, or lower the timeouts; otherwise two workers could send the same attempt.`,
    );
  }
  if (!cfg.publicUrl) cfg.publicUrl = `http://localhost:${cfg.port}`;
  return cfg;
}
