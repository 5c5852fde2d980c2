/**
 * The UI's only way to the server: the same REST API every client uses.
 *
 * The dashboard authenticates with the HttpOnly session cookie (the browser adds it; this code
 * never sees it) and sends the session's CSRF token with every write. The portal sends its access
 * token as a bearer token. An admin's chosen environment goes in the Koppel-Environment header.
 */

export type Credentials = { kind: 'cookie'; csrf: string | null } | { kind: 'bearer'; token: string };

let credentials: Credentials = { kind: 'cookie', csrf: null };
let environment: string | null = null;
let onUnauthorized: (() => void) | null = null;

export function setCredentials(c: Credentials) {
  credentials = c;
}
export function setEnvironment(env: string | null) {
  environment = env;
}
export function getEnvironment() {
  return environment;
}
/** Called when the server answers 401 (session ended, key revoked, link expired). */
export function setUnauthorizedHandler(fn: (() => void) | null) {
  onUnauthorized = fn;
}

/** An error answer of the API, with its detail flattened to one readable string. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, detail: string) {
    super(detail);
  }
}

function describe(detail: unknown): string {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).filter((p) => p !== 'body').join('.')}: ${d.msg ?? 'invalid'}`)
      .join('; ');
  }
  return 'The request failed.';
}

export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (credentials.kind === 'bearer') headers.authorization = `Bearer ${credentials.token}`;
  else if (method !== 'GET' && credentials.csrf) headers['x-koppel-csrf'] = credentials.csrf;
  if (environment && credentials.kind === 'cookie') headers['koppel-environment'] = environment;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'network', 'Koppel could not be reached; check your connection and try again.');
  }
  const text = await res.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    if (res.status === 401 && onUnauthorized) onUnauthorized();
    throw new ApiError(res.status, data?.code ?? 'error', data ? describe(data.detail) : `HTTP ${res.status}`);
  }
  return data as T;
}

export const enc = encodeURIComponent;

// ── API shapes used by the UI ────────────────────────────────────────────────────────────

export interface ListOut<T> {
  data: T[];
  done: boolean;
  iterator: string | null;
  prevIterator: string | null;
}
export interface Branding {
  name: string;
  logoUrl: string | null;
  accentColor: string;
}
export interface SessionOut {
  kind: 'admin' | 'environment' | 'application';
  via: 'key' | 'session' | 'portal';
  environmentId: string;
  applicationId: string | null;
  readOnly: boolean;
  expiresAt: string | null;
  csrfToken: string | null;
  branding: Branding | null;
}
export interface Environment {
  id: string;
  name: string;
  createdAt: string;
}
export interface Application {
  id: string;
  uid: string | null;
  name: string;
  createdAt: string;
  metadata: Record<string, string>;
}
export interface EventType {
  name: string;
  description: string;
  archived: boolean;
  deprecated: boolean;
  schemas: Record<string, any> | null;
  groupName: string | null;
  createdAt: string;
  updatedAt: string;
}
export interface Endpoint {
  id: string;
  uid: string | null;
  url: string;
  description: string;
  filterTypes: string[] | null;
  channels: string[] | null;
  rateLimit: number | null;
  disabled: boolean;
  version?: number;
  createdAt: string;
  updatedAt: string;
}
export interface EndpointHealth {
  endpointId: string;
  state: 'healthy' | 'failing' | 'disabled';
  failingSince: string | null;
  attempts: number;
  successes: number;
  failures: number;
  successRate: number | null;
  meanLatencyMs: number | null;
  lastAttemptAt: string | null;
  lastError: { attemptId: string; msgId: string; timestamp: string; responseStatusCode: number; errorClass: string | null; errorDetail: string | null } | null;
}
export interface HealthOut {
  since: string;
  until: string;
  bucketSeconds: number;
  endpoints: EndpointHealth[];
  timeline: { start: string; attempts: number; successes: number; failures: number }[];
}
export interface Message {
  id: string;
  eventType: string;
  eventId: string | null;
  channels: string[] | null;
  payload: Record<string, unknown>;
  timestamp: string;
}
export interface EndpointMessage extends Message {
  status: number;
  statusText: string;
  nextAttempt: string | null;
}
export interface Attempt {
  id: string;
  msgId: string;
  endpointId: string;
  url: string;
  response: string;
  responseStatusCode: number;
  responseDurationMs: number;
  responseTruncated: boolean;
  status: number;
  statusText: string;
  triggerType: number;
  timestamp: string;
  errorClass: string | null;
  errorDetail: string | null;
  requestHeaders: Record<string, string>;
}
export interface MessageDestination extends Endpoint {
  status: number;
  statusText: string;
  nextAttempt: string | null;
}

// ── Sources, endpoint auth, transformations and versions (Koppel extensions) ─────────────

export const PROVIDERS = ['stripe', 'github', 'shopify', 'woocommerce', 'slack', 'standard-webhooks', 'hmac'] as const;
export type Provider = (typeof PROVIDERS)[number];
export interface HmacSettings {
  header: string;
  algorithm: 'sha1' | 'sha256' | 'sha512';
  encoding: 'hex' | 'base64';
  prefix?: string | null;
  timestampHeader?: string | null;
  idHeader?: string | null;
  signedContent?: string | null;
}
export interface Dedupe {
  by: 'provider' | 'body' | 'expression' | 'none';
  expression: string | null;
  windowSeconds: number;
}
export interface Source {
  id: string;
  uid: string | null;
  name: string;
  description: string;
  provider: Provider;
  ingestUrl: string;
  hmac: HmacSettings | null;
  toleranceSeconds: number;
  eventTypeExpression: string | null;
  defaultEventType: string | null;
  dedupe: Dedupe;
  channels: string[] | null;
  disabled: boolean;
  metadata: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}
export type SourceEventStatus = 'accepted' | 'duplicate' | 'rejected' | 'ignored';
export interface SourceEvent {
  id: string;
  status: SourceEventStatus;
  reason: string | null;
  eventType: string | null;
  dedupeKey: string | null;
  messageId: string | null;
  headers: Record<string, string>;
  payload: string | null;
  bodyBytes: number;
  timestamp: string;
}

export interface EndpointAuth {
  type: 'none' | 'api-key' | 'bearer' | 'basic';
  header: string | null;
  username: string | null;
}

export interface MappingField {
  target: string | null;
  source?: string;
  expression?: string;
  value?: unknown;
  values?: Record<string, unknown>;
  default?: unknown;
  note?: string;
}
export interface MappingTable {
  fields: MappingField[];
}
export type TransformationKind = 'javascript' | 'jsonata' | 'mapping';
export interface Transformation {
  code: string | null;
  enabled: boolean;
  kind: TransformationKind | null;
  expression: string | null;
  mapping: MappingTable | null;
  targetSchema: Record<string, unknown> | null;
  updatedAt: string | null;
}
export interface PreviewResult {
  messageId: string | null;
  eventType: string;
  ok: boolean;
  input: unknown;
  output: unknown;
  error: string | null;
  errorKind: string | null;
  durationMs: number;
  missingRequiredFields: string[];
  schemaErrors: string[];
}
export interface PreviewOut {
  kind: string;
  compiled: string | null;
  results: PreviewResult[];
  unmappedSourceFields: string[];
  notMappableFields: string[];
  missingRequiredFields: string[];
}
export interface EndpointVersion {
  version: number;
  reason: string;
  current: boolean;
  createdAt: string;
  url: string;
  eventTypes: string[] | null;
  channels: string[] | null;
  auth: EndpointAuth;
  transformation: { kind: string; enabled: boolean; code: string | null; expression: string | null; mapping: MappingTable | null } | null;
  changes: { field: string; from: unknown; to: unknown }[];
}
