/**
 * Table shapes as the store sees them. Times are integer milliseconds since the epoch, JSON
 * columns are text, booleans are 0/1 integers: the same representation on SQLite and PostgreSQL,
 * so one query code base serves both.
 */

export interface EnvironmentRow {
  id: string;
  name: string;
  created_at: number;
}

export interface ApiKeyRow {
  id: string;
  environment_id: string | null;
  application_id: string | null;
  name: string;
  key_hash: string;
  key_prefix: string;
  created_at: number;
  revoked_at: number | null;
}

export interface ApplicationRow {
  id: string;
  environment_id: string;
  uid: string | null;
  name: string;
  throttle_rate: number | null;
  metadata: string;
  created_at: number;
  updated_at: number;
}

export interface EventTypeRow {
  environment_id: string;
  name: string;
  description: string;
  schemas: string | null;
  archived: number;
  deprecated: number;
  feature_flag: string | null;
  group_name: string | null;
  created_at: number;
  updated_at: number;
}

export interface EndpointRow {
  id: string;
  environment_id: string;
  app_id: string;
  uid: string | null;
  url: string;
  description: string;
  event_types: string | null;
  channels: string | null;
  metadata: string;
  throttle_rate: number | null;
  disabled: number;
  headers: string;
  /** JSON array of { sealed, expiresAt } — sealed secrets, the current one first. */
  secrets: string;
  failing_since: number | null;
  created_at: number;
  updated_at: number;
  /** Sealed JSON of the target API's credentials (src/endpoints/auth.ts), or null for none. */
  auth: string | null;
  /** JSON of the transformation applied before sending (src/transformations/), or null. */
  transformation: string | null;
  /** Current version number; every change to URL, filters, auth or transformation adds one. */
  version: number;
}

/** One entry of an endpoint's change history: what its versioned fields were at `version`. */
export interface EndpointVersionRow {
  id: string;
  endpoint_id: string;
  app_id: string;
  environment_id: string;
  version: number;
  /** What made this version: "created", "updated", "auth", "transformation", "rollback to 3". */
  reason: string;
  /** JSON of the versioned fields (src/endpoints/versions.ts); auth stays sealed. */
  snapshot: string;
  created_at: number;
}

/** A source: a URL that receives one provider's webhooks for an application. */
export interface SourceRow {
  id: string;
  environment_id: string;
  app_id: string;
  uid: string | null;
  name: string;
  description: string;
  provider: string;
  /** JSON of the provider options, event type and de-duplication settings. */
  config: string;
  /** Sealed verification secret. */
  secret: string;
  disabled: number;
  created_at: number;
  updated_at: number;
}

/** What happened to one request to a source: accepted, duplicate, rejected or ignored. */
export interface SourceEventRow {
  id: string;
  source_id: string;
  app_id: string;
  environment_id: string;
  status: 'accepted' | 'duplicate' | 'rejected' | 'ignored';
  /** Why it was rejected, ignored or a duplicate (of which event). */
  reason: string | null;
  event_type: string | null;
  dedupe_key: string | null;
  /** The message it became, when accepted. */
  message_id: string | null;
  headers: string;
  /** The raw body as received; null for rejected requests (unverified bytes are not kept). */
  payload: string | null;
  body_bytes: number;
  created_at: number;
}

export interface SourceDedupeRow {
  source_id: string;
  key_hash: string;
  event_id: string;
  expires_at: number;
}

export interface MessageRow {
  id: string;
  environment_id: string;
  app_id: string;
  event_type: string;
  event_id: string | null;
  channels: string | null;
  tags: string | null;
  /** The JSON payload exactly as it is delivered; null once expunged. */
  payload: string | null;
  created_at: number;
  expires_at: number;
}

/** MessageStatus of the Svix API: 0 success, 1 pending, 2 fail, 3 sending. */
export const Status = { success: 0, pending: 1, fail: 2, sending: 3 } as const;

export interface DeliveryRow {
  id: string;
  message_id: string;
  endpoint_id: string;
  app_id: string;
  environment_id: string;
  status: number;
  /**
   * When a worker should look at this row next: the next attempt time while pending, the lease
   * expiry while sending, null when settled. One indexed column serves claiming and the sweep
   * of expired leases.
   */
  due_at: number | null;
  attempts: number;
  trigger_type: number;
  lease_owner: string | null;
  last_attempt_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface AttemptRow {
  id: string;
  delivery_id: string;
  message_id: string;
  endpoint_id: string;
  app_id: string;
  environment_id: string;
  url: string;
  status: number;
  response_status_code: number;
  response: string;
  response_truncated: number;
  duration_ms: number;
  error_class: string | null;
  error: string | null;
  request_headers: string;
  trigger_type: number;
  created_at: number;
}

export interface IdempotencyRow {
  environment_id: string;
  key: string;
  request_hash: string;
  status_code: number | null;
  response: string | null;
  created_at: number;
  expires_at: number;
}

export interface OperationalEventRow {
  id: string;
  environment_id: string;
  event_type: string;
  payload: string;
  created_at: number;
}

export interface EndpointRateRow {
  endpoint_id: string;
  /** Tokens left in the bucket at updated_at (refilled at the endpoint's rate per second). */
  tokens: number;
  updated_at: number;
}

export interface MigrationRow {
  name: string;
  applied_at: number;
}

export interface Database {
  environments: EnvironmentRow;
  api_keys: ApiKeyRow;
  applications: ApplicationRow;
  event_types: EventTypeRow;
  endpoints: EndpointRow;
  messages: MessageRow;
  deliveries: DeliveryRow;
  attempts: AttemptRow;
  idempotency_keys: IdempotencyRow;
  operational_events: OperationalEventRow;
  endpoint_rates: EndpointRateRow;
  endpoint_versions: EndpointVersionRow;
  sources: SourceRow;
  source_events: SourceEventRow;
  source_dedupe: SourceDedupeRow;
  koppel_migrations: MigrationRow;
}
