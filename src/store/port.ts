/**
 * The storage port: everything Koppel keeps, as operations. `SqlStore` implements it over Kysely
 * for SQLite (embedded default) and PostgreSQL; the contract suite in `store.contract.ts` runs
 * against any implementation. Services never write SQL themselves.
 */
import type {
  ApiKeyRow,
  ApplicationRow,
  AttemptRow,
  DeliveryRow,
  EndpointRow,
  EnvironmentRow,
  EventTypeRow,
  MessageRow,
  OperationalEventRow,
  EndpointVersionRow,
  SourceEventRow,
  SourceRow,
} from './schema.js';

export type Order = 'asc' | 'desc';

/** Keyset page request: `after` is the last id of the previous page in the chosen order. */
export interface PageRequest {
  limit: number;
  /** Continue after this key (exclusive) in `order`. */
  after: string | null;
  order: Order;
}

export interface Page<T> {
  items: T[];
  /** True when nothing follows the returned items. */
  done: boolean;
}

export interface MessageFilter {
  eventTypes?: string[];
  channel?: string;
  /**
   * Only messages created strictly before / after these times (ms). Message ids encode their
   * creation time (newId('msg', created_at)), and implementations may filter on the id.
   */
  before?: number;
  after?: number;
}

export interface AttemptFilter extends MessageFilter {
  status?: number;
  statusCodeClass?: number;
  endpointId?: string;
}

/** A message to insert with the deliveries its matching endpoints need. */
export interface NewMessage {
  message: MessageRow;
  deliveries: DeliveryRow[];
  /**
   * The response to record for the request's idempotency key if the message goes in, in the
   * same transaction (one commit and one disk sync fewer per request than recording it after).
   */
  idempotency?: IdempotencyCompletion;
}

export interface IdempotencyCompletion {
  environmentId: string;
  key: string;
  statusCode: number;
  response: string;
  /**
   * The key is forgotten no later than this (ms): the message's expires_at, since the recorded
   * response holds its payload, which must not outlive the payload's own retention.
   */
  expiresAt: number;
}

export type InsertMessageResult = { ok: true } | { ok: false; reason: 'duplicate_event_id'; existingId: string };

/**
 * The enabled endpoints new messages of some applications are routed to. A store may answer from
 * a copy it keeps (PostgreSQL does, to save a round trip per group commit); its `guard` then names
 * what that copy was, and insertMessages given the guard writes nothing unless the applications'
 * enabled endpoints are still exactly those (StaleRoutingError), so a message never misses an
 * endpoint created, enabled or changed before it was written.
 */
export interface Routing {
  endpoints: EndpointRow[];
  guard?: RoutingGuard;
}

/** Opaque to callers: made by routeMessages, checked by insertMessages of the same store. */
export interface RoutingGuard {
  readonly appIds: readonly string[];
  readonly versions: readonly { app_id: string; version: string }[];
}

/** insertMessages' guard found the endpoints changed since routeMessages: route again (fresh). */
export class StaleRoutingError extends Error {
  constructor() {
    super('the endpoints these messages were routed to changed before they were written');
  }
}

/** A delivery claimed by a worker, with what it needs to send it. */
export interface ClaimedDelivery {
  delivery: DeliveryRow;
  message: MessageRow | null;
  endpoint: EndpointRow | null;
}

/** The outcome of one delivery attempt to write back in a batch. */
export interface Settlement {
  deliveryId: string;
  leaseOwner: string;
  /** The attempt row to record, or null when nothing was sent (e.g. endpoint gone or disabled). */
  attempt: AttemptRow | null;
  status: number;
  dueAt: number | null;
  attempts: number;
  endpointId: string;
  /** Endpoint health effect: success clears the failure streak, failure starts it. */
  health: 'success' | 'failure' | 'none';
  /** Disable the endpoint now (HTTP 410 Gone) rather than after the failure window. */
  disableNow: boolean;
}

export interface SettleOptions {
  now: number;
  disableAfterMs: number;
}

/** An endpoint this settle call disabled, so the caller can log and notify. */
export interface DisabledEndpoint {
  endpointId: string;
  appId: string;
  environmentId: string;
  failingSince: number | null;
  reason: 'gone' | 'failing';
}

export type IdempotencyBegin =
  | { state: 'new' }
  | { state: 'pending' }
  | { state: 'mismatch' }
  | { state: 'done'; statusCode: number; response: string };

export interface EndpointStatsCounts {
  success: number;
  pending: number;
  fail: number;
  sending: number;
}

export interface QueueDepth {
  /**
   * Deliveries any worker may claim now: pending ones whose time has come, and leased ones whose
   * lease has run out (their worker is gone or stuck; the claim takes them like pending rows).
   */
  due: number;
  /** Pending deliveries waiting for a later retry or deliverAt time. */
  scheduled: number;
  /** Deliveries leased to a worker whose lease still runs. */
  inFlight: number;
}

/** Rows changed by one retention pass, per table. */
export interface PurgeCounts {
  /** Message rows removed, with their deliveries and attempts (counted below). */
  messages: number;
  /** Payloads removed from messages that stay (their own retention ended before the global one). */
  payloads: number;
  deliveries: number;
  attempts: number;
  idempotencyKeys: number;
  operationalEvents: number;
  sourceEvents: number;
  /** Source de-duplication keys past their window. */
  dedupeKeys: number;
  /** Rate-limit buckets untouched for a minute (full again, so nothing is lost). */
  rateBuckets: number;
}

/** Outcome of saving a versioned endpoint change. */
export type SaveVersionResult = 'ok' | 'uid_taken' | 'stale';

/** A verified source request to record, with its de-duplication key and the message it becomes. */
export interface NewSourceEvent {
  event: SourceEventRow;
  /** SHA-256 of the de-duplication key and when it stops counting; null to skip the check. */
  dedupe: { keyHash: string; expiresAt: number } | null;
  /** The message and deliveries to insert when the event is not a duplicate; null to store only. */
  message: NewMessage | null;
}

export type SourceEventResult = { status: 'accepted' } | { status: 'duplicate'; duplicateOf: string };

export interface Store {
  readonly dialect: 'sqlite' | 'postgres';
  /** Whether an error from this store means "unavailable right now, retry" (answered with 503). */
  isUnavailable(err: unknown): boolean;
  /** Whether an error from this store means a text value could not be stored (answered with 400). */
  isInvalidText(err: unknown): boolean;
  migrate(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;

  // environments and API keys
  createEnvironment(row: EnvironmentRow): Promise<void>;
  /**
   * The first environment (the default one the admin key acts on), created with its first key
   * from `create()` when there is none yet. Holds the migration lock while it looks, so processes
   * starting together on a fresh database agree on one default environment.
   */
  firstEnvironmentOrCreate(create: () => { environment: EnvironmentRow; apiKey: ApiKeyRow }): Promise<EnvironmentRow>;
  getEnvironment(id: string): Promise<EnvironmentRow | undefined>;
  listEnvironments(page: PageRequest): Promise<Page<EnvironmentRow>>;
  createApiKey(row: ApiKeyRow): Promise<void>;
  findApiKeyByHash(hash: string): Promise<ApiKeyRow | undefined>;
  getApiKey(id: string): Promise<ApiKeyRow | undefined>;
  listApiKeys(environmentId: string | null, page: PageRequest): Promise<Page<ApiKeyRow>>;
  revokeApiKey(id: string, now: number): Promise<boolean>;

  // applications
  /** Inserts; returns false when the uid is taken in the environment. */
  createApplication(row: ApplicationRow): Promise<boolean>;
  getApplication(environmentId: string, idOrUid: string): Promise<ApplicationRow | undefined>;
  listApplications(environmentId: string, page: PageRequest): Promise<Page<ApplicationRow>>;
  /** Replaces; returns false when the new uid is taken. */
  updateApplication(row: ApplicationRow): Promise<boolean>;
  /** Deletes the application with its endpoints, messages, deliveries and attempts. */
  deleteApplication(environmentId: string, id: string): Promise<void>;

  // event types
  createEventType(row: EventTypeRow): Promise<boolean>;
  getEventType(environmentId: string, name: string): Promise<EventTypeRow | undefined>;
  listEventTypes(environmentId: string, page: PageRequest, includeArchived: boolean): Promise<Page<EventTypeRow>>;
  updateEventType(row: EventTypeRow): Promise<void>;
  deleteEventType(environmentId: string, name: string): Promise<void>;

  // endpoints
  /** Inserts (with its first version row, in the same transaction, when given); false when the uid is taken. */
  createEndpoint(row: EndpointRow, version?: EndpointVersionRow): Promise<boolean>;
  getEndpoint(appId: string, idOrUid: string): Promise<EndpointRow | undefined>;
  getEndpointsByIds(ids: string[]): Promise<EndpointRow[]>;
  listEndpoints(appId: string, page: PageRequest): Promise<Page<EndpointRow>>;
  /** Every enabled endpoint of these applications. */
  listEnabledEndpoints(appIds: string[]): Promise<EndpointRow[]>;
  /**
   * The enabled endpoints to route new messages of these applications to (see Routing); `fresh`
   * reads them from the database whatever the store keeps.
   */
  routeMessages(appIds: string[], opts?: { fresh?: boolean }): Promise<Routing>;
  /**
   * Sets only `fields` on the endpoint, and only while its stored values equal `expect` (a fence
   * for read-modify-write changes such as a secret rotation): 'stale' when they do not (or the
   * endpoint is gone), 'uid_taken' when a new uid is in use. Writing only what a request changed
   * keeps concurrent changes to other fields (headers, secrets, versioned settings) intact.
   */
  updateEndpoint(appId: string, id: string, fields: Partial<EndpointRow>, expect?: Partial<EndpointRow>): Promise<SaveVersionResult>;
  deleteEndpoint(appId: string, id: string): Promise<void>;
  /**
   * Sets `fields` (which include `version`, one up) and records that version, in one transaction.
   * 'stale' when the stored version is no longer `fields.version - 1` (another change came
   * first), 'uid_taken' when the new uid is taken.
   */
  saveEndpointVersion(appId: string, id: string, fields: Partial<EndpointRow> & { version: number }, version: EndpointVersionRow): Promise<SaveVersionResult>;
  /** Versions of an endpoint, paged by version id (which sorts like the version number). */
  listEndpointVersions(endpointId: string, page: PageRequest): Promise<Page<EndpointVersionRow>>;
  getEndpointVersion(endpointId: string, version: number): Promise<EndpointVersionRow | undefined>;

  // sources (inbound provider webhooks)
  /** Inserts; false when the uid is taken in the application. */
  createSource(row: SourceRow): Promise<boolean>;
  getSource(appId: string, idOrUid: string): Promise<SourceRow | undefined>;
  /** By id alone: the public ingress URL names only the source. */
  getSourceById(id: string): Promise<SourceRow | undefined>;
  listSources(appId: string, page: PageRequest): Promise<Page<SourceRow>>;
  updateSource(row: SourceRow): Promise<boolean>;
  /** Deletes the source with its event log and de-duplication keys. */
  deleteSource(appId: string, id: string): Promise<void>;
  /**
   * Records one verified request: claims its de-duplication key (expired keys are replaced), and
   * if the key was free inserts the event with its message and deliveries, all in one transaction;
   * otherwise stores the event as a duplicate of the key's holder and inserts no message.
   */
  recordSourceEvent(item: NewSourceEvent): Promise<SourceEventResult>;
  /** Stores a request that is not forwarded (rejected or ignored). */
  insertSourceEvent(row: SourceEventRow): Promise<void>;
  listSourceEvents(sourceId: string, filter: { status?: string }, page: PageRequest): Promise<Page<SourceEventRow>>;
  getSourceEvent(sourceId: string, id: string): Promise<SourceEventRow | undefined>;

  // messages
  /**
   * Inserts messages and their deliveries in one transaction (group commit), and signals other
   * processes' workers that those deliveries are due (as notifyDue would; on PostgreSQL the
   * NOTIFY is part of the transaction, so it goes out exactly when the rows are visible).
   * With the guard of a Routing, rejects with StaleRoutingError (and writes nothing) when those
   * applications' enabled endpoints changed since.
   */
  insertMessages(batch: NewMessage[], guard?: RoutingGuard): Promise<InsertMessageResult[]>;
  getMessage(appId: string, idOrEventId: string): Promise<MessageRow | undefined>;
  getMessagesByIds(ids: string[]): Promise<MessageRow[]>;
  listMessages(appId: string, filter: MessageFilter, page: PageRequest): Promise<Page<MessageRow>>;
  expungeMessagePayload(appId: string, id: string): Promise<void>;

  // deliveries
  /** Leases up to `limit` due deliveries, earliest due first, leaving out `excludeEndpointIds`. */
  claimDue(owner: string, now: number, leaseUntil: number, limit: number, excludeEndpointIds: string[]): Promise<ClaimedDelivery[]>;
  /** Writes attempt rows, delivery states and endpoint health for a batch, in one transaction. */
  settle(batch: Settlement[], opts: SettleOptions): Promise<DisabledEndpoint[]>;
  /**
   * Earliest due_at of any delivery (only those due later than `after` when given), or null: lets
   * an idle worker sleep exactly until then. A worker whose last claim found everything due now
   * taken or left out passes that claim's time, so rows it cannot take yet do not wake it again.
   */
  nextDueAt(after?: number): Promise<number | null>;
  /** Gives up leases held by `owner` (graceful shutdown) so others may claim them at once. */
  releaseLeases(owner: string, now: number): Promise<void>;
  getDelivery(messageId: string, endpointId: string): Promise<DeliveryRow | undefined>;
  /** Creates or resets a delivery so it is attempted now (manual resend). */
  scheduleResend(row: DeliveryRow, now: number): Promise<void>;
  /** Reschedules failed deliveries of an endpoint created in [since, until); returns how many. */
  recoverFailed(endpointId: string, since: number, until: number, now: number): Promise<number>;
  endpointStats(endpointId: string, since: number | null, until: number | null): Promise<EndpointStatsCounts>;
  /** Deliveries of one message, keyed by endpoint id, paged by endpoint id. */
  listDeliveriesOfMessage(messageId: string, page: PageRequest): Promise<Page<DeliveryRow>>;
  /** Deliveries to one endpoint with their messages, paged by message id (newest first). */
  listDeliveriesOfEndpoint(endpointId: string, filter: AttemptFilter, page: PageRequest): Promise<Page<{ delivery: DeliveryRow; message: MessageRow }>>;

  // attempts
  listAttempts(scope: { endpointId?: string; messageId?: string }, filter: AttemptFilter, page: PageRequest): Promise<Page<AttemptRow>>;
  getAttempt(messageId: string, attemptId: string): Promise<AttemptRow | undefined>;
  expungeAttemptResponse(messageId: string, attemptId: string): Promise<void>;

  // idempotency
  beginIdempotent(environmentId: string, key: string, requestHash: string, now: number, ttlMs: number): Promise<IdempotencyBegin>;
  /**
   * Records the response of the key's request; with `expiresAt`, the key is also forgotten no
   * later than then (a response holding message payloads must not outlive them).
   */
  completeIdempotent(environmentId: string, key: string, statusCode: number, response: string, expiresAt?: number): Promise<void>;
  abandonIdempotent(environmentId: string, key: string): Promise<void>;

  /**
   * Tells every worker process that deliveries are due, for these endpoints when given
   * (PostgreSQL NOTIFY; a no-op in one process).
   */
  notifyDue(endpointIds?: Iterable<string>): Promise<void>;
  /**
   * Calls `fn` when another process signals due deliveries, with their endpoints when the signal
   * named them; returns an unsubscribe function.
   */
  onDue(fn: (endpointIds?: string[]) => void): Promise<() => Promise<void>>;
  queueDepth(now: number): Promise<QueueDepth>;
  /**
   * Takes one token from an endpoint's bucket (capacity and refill: `ratePerSecond`), shared by
   * every process. Returns 0 when a token was taken, else the milliseconds until one will be there.
   */
  takeRateToken(endpointId: string, ratePerSecond: number, now: number): Promise<number>;

  // retention
  /**
   * One bounded pass of the retention job, at most `batch` rows per query. `now` ends what has its
   * own expiry, `olderThan` (now minus the retention period) what was created before it:
   * - a message's payload goes once its expires_at (payloadRetentionPeriod, or the retention
   *   period) is before `now`; the message row, with its deliveries and attempts, once it was
   *   created before `olderThan` and its payload is gone (expired, or expunged by hand). Neither
   *   happens while one of its deliveries is still pending or leased: a retry needs the payload.
   * - attempts (with response bodies), operational events and source events go once created
   *   before `olderThan`; idempotency keys and source de-duplication keys once expired; rate
   *   buckets once untouched for a minute.
   * Message ids encode created_at (newId('msg', created_at)), attempt ids the end of the exchange
   * (at most the request timeout after created_at), and implementations may select by id. Small
   * batches keep every lock short.
   */
  purgeExpired(now: number, olderThan: number, batch: number): Promise<PurgeCounts>;

  // operational events
  recordOperationalEvent(row: OperationalEventRow): Promise<void>;
  listOperationalEvents(environmentId: string, page: PageRequest): Promise<Page<OperationalEventRow>>;

  // dashboard health
  /**
   * Attempts of these endpoints made in [since, until), counted per endpoint and per time bucket
   * of `bucketMs` (bucket = floor((created_at - since) / bucketMs)); buckets without attempts are
   * left out.
   */
  attemptBuckets(endpointIds: string[], since: number, until: number, bucketMs: number): Promise<AttemptBucket[]>;
}

/** One row of attemptBuckets. */
export interface AttemptBucket {
  endpointId: string;
  bucket: number;
  attempts: number;
  successes: number;
  /** Sum of attempt durations in ms (for the mean latency). */
  durationMs: number;
  /** Time of the latest attempt in the bucket (ms). */
  lastAt: number;
}
