/**
 * The storage port over Kysely: one query code base for SQLite and PostgreSQL. Only the claim
 * query and the dialect's transaction behaviour differ; those are the `Dialect` hooks below.
 */
import { Kysely, sql, type ExpressionBuilder, type SelectQueryBuilder } from 'kysely';
import { idAtTime } from '../lib/ids.js';
import { MIGRATIONS } from './migrations/index.js';
import type {
  AttemptBucket,
  AttemptFilter,
  ClaimedDelivery,
  DisabledEndpoint,
  EndpointStatsCounts,
  IdempotencyBegin,
  InsertMessageResult,
  MessageFilter,
  NewMessage,
  NewSourceEvent,
  Page,
  PageRequest,
  PurgeCounts,
  Routing,
  RoutingGuard,
  SaveVersionResult,
  SourceEventResult,
  SettleOptions,
  Settlement,
  Store,
} from './port.js';
import {
  Status,
  type ApiKeyRow,
  type ApplicationRow,
  type AttemptRow,
  type Database,
  type DeliveryRow,
  type EndpointRow,
  type EnvironmentRow,
  type EventTypeRow,
  type MessageRow,
  type OperationalEventRow,
  type EndpointVersionRow,
  type SourceEventRow,
  type SourceRow,
} from './schema.js';

export interface DialectHooks {
  name: 'sqlite' | 'postgres';
  /**
   * Runs `fn` holding a lock that serialises migrations across processes; `fn` gets the database
   * handle to migrate with (on PostgreSQL, the very connection that holds the lock, so migrating
   * never waits for a second pooled connection).
   */
  withMigrationLock<T>(db: Kysely<Database>, fn: (db: Kysely<Database>) => Promise<T>): Promise<T>;
  /**
   * True when withMigrationLock's lock is itself a transaction around `fn` (SQLite's write lock):
   * the migrations then run inside it rather than in transactions of their own.
   */
  migrationLockIsTransaction: boolean;
  /**
   * Runs `fn` in a transaction whose commit need not survive a power failure (SQLite
   * synchronous=NORMAL, PostgreSQL synchronous_commit=off). Used only for the worker's claims and
   * outcome writes: losing the last of those to a power cut means a lease is taken again or an
   * attempt is repeated (at-least-once holds), never a lost message, while skipping the fsync per
   * commit is the difference between a few hundred and several thousand deliveries per second.
   * Message ingest and every API write keep full durability.
   */
  relaxedTransaction<T>(db: Kysely<Database>, fn: (tx: Kysely<Database>) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` in a transaction that is durable (survives a power cut) when the returned promise
   * resolves, like a plain transaction, but may wait for that durability without blocking the
   * event loop (SQLite: commit without sync, then fdatasync the WAL on the libuv thread pool).
   * Used for message ingest, whose callers answer 202 only after it resolves.
   */
  durableTransaction<T>(db: Kysely<Database>, fn: (tx: Kysely<Database>) => Promise<T>): Promise<T>;
  /** Signals other processes that deliveries are due (NOTIFY); absent for a single process. */
  notify?(db: Kysely<Database>, payload: string): Promise<void>;
  /** Subscribes to those signals (LISTEN); absent for a single process. */
  listen?(fn: (payload: string) => void): Promise<() => Promise<void>>;
  /** Whether a unique-constraint violation error came from the driver. */
  isUniqueViolation(err: unknown): boolean;
  /**
   * Whether an error means the database cannot serve right now (connection refused or lost, too
   * many connections, server shutting down, SQLite busy past its timeout): the request may be
   * retried as it is, so the API answers 503 instead of 500.
   */
  isUnavailable(err: unknown): boolean;
  /** Whether the database refused a text value it cannot store (PostgreSQL: a NUL character). */
  isInvalidText(err: unknown): boolean;
  /** SQL fragment appended to the claim sub-select (FOR UPDATE SKIP LOCKED on PostgreSQL). */
  claimLockClause: string;
  close(): Promise<void>;
}

/** Splits arrays for IN lists; SQLite allows at most 32,766 bound parameters per statement. */
export function chunks<T>(items: T[], size = 500): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

async function paginate<T>(
  qb: SelectQueryBuilder<any, any, T>,
  key: string,
  page: PageRequest,
): Promise<Page<T>> {
  let q = qb;
  if (page.after !== null) q = q.where(key as any, page.order === 'asc' ? '>' : '<', page.after);
  const rows = (await q
    .orderBy(key as any, page.order)
    .limit(page.limit + 1)
    .execute()) as T[];
  const done = rows.length <= page.limit;
  return { items: done ? rows : rows.slice(0, page.limit), done };
}

export class SqlStore implements Store {
  readonly dialect: 'sqlite' | 'postgres';

  constructor(
    readonly db: Kysely<Database>,
    protected readonly hooks: DialectHooks,
  ) {
    this.dialect = hooks.name;
  }

  isUnavailable(err: unknown): boolean {
    return this.hooks.isUnavailable(err);
  }

  isInvalidText(err: unknown): boolean {
    return this.hooks.isInvalidText(err);
  }

  async migrate(): Promise<void> {
    await this.hooks.withMigrationLock(this.db, async (db) => {
      await db.schema
        .createTable('koppel_migrations')
        .ifNotExists()
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('applied_at', 'bigint', (c) => c.notNull())
        .execute();
      const applied = (await db.selectFrom('koppel_migrations').select('name').orderBy('name').execute()).map((r) => r.name);
      const known = MIGRATIONS.map((m) => m.name);
      for (let i = 0; i < applied.length; i++) {
        if (applied[i] !== known[i]) {
          throw new Error(
            `The database has migration "${applied[i]}" where this build expects "${known[i] ?? '(none)'}": it was written by a different Koppel version. Use the matching version or a fresh database.`,
          );
        }
      }
      for (const m of MIGRATIONS.slice(applied.length)) {
        const apply = async (tx: Kysely<Database>) => {
          await m.up(tx);
          await tx.insertInto('koppel_migrations').values({ name: m.name, applied_at: Date.now() }).execute();
        };
        if (this.hooks.migrationLockIsTransaction) await apply(db);
        else await db.transaction().execute(apply);
      }
    });
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
    await this.hooks.close();
  }

  private async insertUnique(run: () => Promise<unknown>): Promise<boolean> {
    try {
      await run();
      return true;
    } catch (e) {
      if (this.hooks.isUniqueViolation(e)) return false;
      throw e;
    }
  }

  // ── environments and API keys ────────────────────────────────────────────────────────────

  async createEnvironment(row: EnvironmentRow) {
    await this.db.insertInto('environments').values(row).execute();
  }
  firstEnvironmentOrCreate(create: () => { environment: EnvironmentRow; apiKey: ApiKeyRow }) {
    return this.hooks.withMigrationLock(this.db, async (db) => {
      const first = await db.selectFrom('environments').selectAll().orderBy('id').limit(1).executeTakeFirst();
      if (first) return first;
      const { environment, apiKey } = create();
      const write = async (tx: Kysely<Database>) => {
        await tx.insertInto('environments').values(environment).execute();
        await tx.insertInto('api_keys').values(apiKey).execute();
      };
      if (this.hooks.migrationLockIsTransaction) await write(db);
      else await db.transaction().execute(write);
      return environment;
    });
  }
  getEnvironment(id: string) {
    return this.db.selectFrom('environments').selectAll().where('id', '=', id).executeTakeFirst();
  }
  listEnvironments(page: PageRequest) {
    return paginate(this.db.selectFrom('environments').selectAll(), 'id', page);
  }
  async createApiKey(row: ApiKeyRow) {
    await this.db.insertInto('api_keys').values(row).execute();
  }
  findApiKeyByHash(hash: string) {
    return this.db.selectFrom('api_keys').selectAll().where('key_hash', '=', hash).executeTakeFirst();
  }
  getApiKey(id: string) {
    return this.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
  }
  listApiKeys(environmentId: string | null, page: PageRequest) {
    let q = this.db.selectFrom('api_keys').selectAll().where('revoked_at', 'is', null);
    if (environmentId !== null) q = q.where('environment_id', '=', environmentId);
    return paginate(q, 'id', page);
  }
  async revokeApiKey(id: string, now: number) {
    const r = await this.db.updateTable('api_keys').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  // ── applications ─────────────────────────────────────────────────────────────────────────

  createApplication(row: ApplicationRow) {
    return this.insertUnique(() => this.db.insertInto('applications').values(row).execute());
  }
  getApplication(environmentId: string, idOrUid: string) {
    return this.db
      .selectFrom('applications')
      .selectAll()
      .where('environment_id', '=', environmentId)
      .where((eb) => eb.or([eb('id', '=', idOrUid), eb('uid', '=', idOrUid)]))
      .orderBy('id')
      .executeTakeFirst();
  }
  listApplications(environmentId: string, page: PageRequest) {
    return paginate(this.db.selectFrom('applications').selectAll().where('environment_id', '=', environmentId), 'id', page);
  }
  updateApplication(row: ApplicationRow) {
    return this.insertUnique(() =>
      this.db.updateTable('applications').set(row).where('id', '=', row.id).where('environment_id', '=', row.environment_id).execute(),
    );
  }
  async deleteApplication(environmentId: string, id: string) {
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('attempts').where('app_id', '=', id).execute();
      await tx.deleteFrom('deliveries').where('app_id', '=', id).execute();
      await tx.deleteFrom('messages').where('app_id', '=', id).execute();
      await tx.deleteFrom('endpoints').where('app_id', '=', id).execute();
      await tx.deleteFrom('endpoint_versions').where('app_id', '=', id).execute();
      const sources = (await tx.selectFrom('sources').select('id').where('app_id', '=', id).execute()).map((r) => r.id);
      for (const part of chunks(sources)) await tx.deleteFrom('source_dedupe').where('source_id', 'in', part).execute();
      await tx.deleteFrom('source_events').where('app_id', '=', id).execute();
      await tx.deleteFrom('sources').where('app_id', '=', id).execute();
      await tx.deleteFrom('applications').where('id', '=', id).where('environment_id', '=', environmentId).execute();
    });
  }

  // ── event types ──────────────────────────────────────────────────────────────────────────

  createEventType(row: EventTypeRow) {
    return this.insertUnique(() => this.db.insertInto('event_types').values(row).execute());
  }
  getEventType(environmentId: string, name: string) {
    return this.db.selectFrom('event_types').selectAll().where('environment_id', '=', environmentId).where('name', '=', name).executeTakeFirst();
  }
  listEventTypes(environmentId: string, page: PageRequest, includeArchived: boolean) {
    let q = this.db.selectFrom('event_types').selectAll().where('environment_id', '=', environmentId);
    if (!includeArchived) q = q.where('archived', '=', 0);
    return paginate(q, 'name', page);
  }
  async updateEventType(row: EventTypeRow) {
    await this.db.updateTable('event_types').set(row).where('environment_id', '=', row.environment_id).where('name', '=', row.name).execute();
  }
  async deleteEventType(environmentId: string, name: string) {
    await this.db.deleteFrom('event_types').where('environment_id', '=', environmentId).where('name', '=', name).execute();
  }

  // ── endpoints ────────────────────────────────────────────────────────────────────────────

  createEndpoint(row: EndpointRow, version?: EndpointVersionRow) {
    if (!version) return this.insertUnique(() => this.db.insertInto('endpoints').values(row).execute());
    return this.insertUnique(() =>
      this.db.transaction().execute(async (tx) => {
        await tx.insertInto('endpoints').values(row).execute();
        await tx.insertInto('endpoint_versions').values(version).execute();
      }),
    );
  }
  getEndpoint(appId: string, idOrUid: string) {
    return this.db
      .selectFrom('endpoints')
      .selectAll()
      .where('app_id', '=', appId)
      .where((eb) => eb.or([eb('id', '=', idOrUid), eb('uid', '=', idOrUid)]))
      .orderBy('id')
      .executeTakeFirst();
  }
  async getEndpointsByIds(ids: string[]) {
    const out: EndpointRow[] = [];
    for (const part of chunks([...new Set(ids)])) {
      out.push(...(await this.db.selectFrom('endpoints').selectAll().where('id', 'in', part).execute()));
    }
    return out;
  }
  listEndpoints(appId: string, page: PageRequest) {
    return paginate(this.db.selectFrom('endpoints').selectAll().where('app_id', '=', appId), 'id', page);
  }
  async listEnabledEndpoints(appIds: string[]) {
    const out: EndpointRow[] = [];
    for (const part of chunks([...new Set(appIds)])) {
      out.push(...(await this.db.selectFrom('endpoints').selectAll().where('app_id', 'in', part).where('disabled', '=', 0).execute()));
    }
    return out;
  }
  /** Read every time: without a round trip to another process the read is as cheap as a check. */
  async routeMessages(appIds: string[], _opts?: { fresh?: boolean }): Promise<Routing> {
    return { endpoints: appIds.length ? await this.listEnabledEndpoints(appIds) : [] };
  }
  async updateEndpoint(appId: string, id: string, fields: Partial<EndpointRow>, expect: Partial<EndpointRow> = {}): Promise<SaveVersionResult> {
    let q = this.db.updateTable('endpoints').set(fields).where('id', '=', id).where('app_id', '=', appId);
    for (const [column, value] of Object.entries(expect) as [keyof EndpointRow, unknown][]) {
      q = value === null ? q.where(column, 'is', null) : q.where(column, '=', value as never);
    }
    try {
      const r = await q.executeTakeFirst();
      return Number(r.numUpdatedRows) === 0 ? 'stale' : 'ok';
    } catch (e) {
      if (this.hooks.isUniqueViolation(e)) return 'uid_taken';
      throw e;
    }
  }
  async deleteEndpoint(appId: string, id: string) {
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('attempts').where('endpoint_id', '=', id).execute();
      await tx.deleteFrom('deliveries').where('endpoint_id', '=', id).execute();
      await tx.deleteFrom('endpoints').where('id', '=', id).where('app_id', '=', appId).execute();
      await tx.deleteFrom('endpoint_rates').where('endpoint_id', '=', id).execute();
      await tx.deleteFrom('endpoint_versions').where('endpoint_id', '=', id).execute();
    });
  }
  async saveEndpointVersion(appId: string, id: string, fields: Partial<EndpointRow> & { version: number }, version: EndpointVersionRow): Promise<SaveVersionResult> {
    try {
      return await this.db.transaction().execute(async (tx) => {
        // Fenced on the previous version so two concurrent changes cannot both claim the next
        // number: the second finds nothing to update and is told to reload.
        const r = await tx
          .updateTable('endpoints')
          .set(fields)
          .where('id', '=', id)
          .where('app_id', '=', appId)
          .where('version', '=', fields.version - 1)
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) === 0) return 'stale' as const;
        await tx.insertInto('endpoint_versions').values(version).execute();
        return 'ok' as const;
      });
    } catch (e) {
      if (this.hooks.isUniqueViolation(e)) {
        const current = await this.db.selectFrom('endpoints').select('version').where('id', '=', id).executeTakeFirst();
        return current && Number(current.version) !== fields.version - 1 ? 'stale' : 'uid_taken';
      }
      throw e;
    }
  }
  async listEndpointVersions(endpointId: string, page: PageRequest) {
    const p = await paginate(this.db.selectFrom('endpoint_versions').selectAll().where('endpoint_id', '=', endpointId), 'id', page);
    return { ...p, items: p.items.map(normalizeVersion) };
  }
  async getEndpointVersion(endpointId: string, version: number) {
    const r = await this.db.selectFrom('endpoint_versions').selectAll().where('endpoint_id', '=', endpointId).where('version', '=', version).executeTakeFirst();
    return r && normalizeVersion(r);
  }

  // ── sources ──────────────────────────────────────────────────────────────────────────────

  createSource(row: SourceRow) {
    return this.insertUnique(() => this.db.insertInto('sources').values(row).execute());
  }
  async getSource(appId: string, idOrUid: string) {
    const r = await this.db
      .selectFrom('sources')
      .selectAll()
      .where('app_id', '=', appId)
      .where((eb) => eb.or([eb('id', '=', idOrUid), eb('uid', '=', idOrUid)]))
      .orderBy('id')
      .executeTakeFirst();
    return r && normalizeSource(r);
  }
  async getSourceById(id: string) {
    const r = await this.db.selectFrom('sources').selectAll().where('id', '=', id).executeTakeFirst();
    return r && normalizeSource(r);
  }
  async listSources(appId: string, page: PageRequest) {
    const p = await paginate(this.db.selectFrom('sources').selectAll().where('app_id', '=', appId), 'id', page);
    return { ...p, items: p.items.map(normalizeSource) };
  }
  updateSource(row: SourceRow) {
    return this.insertUnique(() => this.db.updateTable('sources').set(row).where('id', '=', row.id).where('app_id', '=', row.app_id).execute());
  }
  async deleteSource(appId: string, id: string) {
    await this.db.transaction().execute(async (tx) => {
      const r = await tx.deleteFrom('sources').where('id', '=', id).where('app_id', '=', appId).executeTakeFirst();
      if (Number(r.numDeletedRows) === 0) return;
      await tx.deleteFrom('source_events').where('source_id', '=', id).execute();
      await tx.deleteFrom('source_dedupe').where('source_id', '=', id).execute();
    });
  }
  async recordSourceEvent(item: NewSourceEvent): Promise<SourceEventResult> {
    const { event, dedupe, message } = item;
    return this.hooks.durableTransaction(this.db, async (tx) => {
      if (dedupe) {
        // An expired key is forgotten first so this event can take its place.
        await tx.deleteFrom('source_dedupe').where('source_id', '=', event.source_id).where('key_hash', '=', dedupe.keyHash).where('expires_at', '<=', event.created_at).execute();
        const claimed = await tx
          .insertInto('source_dedupe')
          .values({ source_id: event.source_id, key_hash: dedupe.keyHash, event_id: event.id, expires_at: dedupe.expiresAt })
          .onConflict((oc) => oc.doNothing())
          .returning('event_id')
          .executeTakeFirst();
        if (!claimed) {
          const holder = await tx.selectFrom('source_dedupe').select('event_id').where('source_id', '=', event.source_id).where('key_hash', '=', dedupe.keyHash).executeTakeFirst();
          const duplicateOf = holder?.event_id ?? '';
          await tx.insertInto('source_events').values({ ...event, status: 'duplicate', reason: `duplicate of ${duplicateOf}`, message_id: null }).execute();
          return { status: 'duplicate' as const, duplicateOf };
        }
      }
      await tx.insertInto('source_events').values(event).execute();
      if (message) {
        await tx.insertInto('messages').values(message.message).execute();
        for (const part of chunks(message.deliveries, 200)) await tx.insertInto('deliveries').values(part).execute();
      }
      return { status: 'accepted' as const };
    });
  }
  async insertSourceEvent(row: SourceEventRow) {
    await this.db.insertInto('source_events').values(row).execute();
  }
  async listSourceEvents(sourceId: string, filter: { status?: string }, page: PageRequest) {
    let q = this.db.selectFrom('source_events').selectAll().where('source_id', '=', sourceId);
    if (filter.status) q = q.where('status', '=', filter.status as SourceEventRow['status']);
    const p = await paginate(q, 'id', page);
    return { ...p, items: p.items.map(normalizeSourceEvent) };
  }
  async getSourceEvent(sourceId: string, id: string) {
    const r = await this.db.selectFrom('source_events').selectAll().where('source_id', '=', sourceId).where('id', '=', id).executeTakeFirst();
    return r && normalizeSourceEvent(r);
  }

  // ── messages ─────────────────────────────────────────────────────────────────────────────

  /** No guard: routeMessages above gives none (a subclass that does checks it before this). */
  async insertMessages(batch: NewMessage[], _guard?: RoutingGuard): Promise<InsertMessageResult[]> {
    return this.hooks.durableTransaction(this.db, async (tx) => {
      // Multi-row inserts; ON CONFLICT DO NOTHING skips a repeated eventId without aborting the
      // transaction (PostgreSQL would otherwise), and RETURNING tells which rows went in.
      const inserted = new Set<string>();
      for (const part of chunks(batch, 300)) {
        const rows = await tx
          .insertInto('messages')
          .values(part.map((b) => b.message))
          .onConflict((oc) => oc.doNothing())
          .returning('id')
          .execute();
        for (const r of rows) inserted.add(r.id);
      }
      const results: InsertMessageResult[] = [];
      const deliveries: DeliveryRow[] = [];
      for (const item of batch) {
        if (inserted.has(item.message.id)) {
          results.push({ ok: true });
          deliveries.push(...item.deliveries);
          continue;
        }
        results.push(await this.refusedAsDuplicate(tx, item.message));
      }
      for (const part of chunks(deliveries, 200)) {
        await tx.insertInto('deliveries').values(part).execute();
      }
      for (const item of batch) {
        const idem = item.idempotency;
        if (!idem || !inserted.has(item.message.id)) continue;
        await tx
          .updateTable('idempotency_keys')
          .set({ status_code: idem.statusCode, response: idem.response, expires_at: noLaterThan(idem.expiresAt) })
          .where('environment_id', '=', idem.environmentId)
          .where('key', '=', idem.key)
          .execute();
      }
      return results;
    });
  }
  /** The result for a message that did not go in: its eventId was taken, by this message. */
  protected async refusedAsDuplicate(db: Kysely<Database>, m: MessageRow): Promise<InsertMessageResult> {
    const existing = await db.selectFrom('messages').select('id').where('app_id', '=', m.app_id).where('event_id', '=', m.event_id).executeTakeFirst();
    return { ok: false, reason: 'duplicate_event_id', existingId: existing?.id ?? '' };
  }
  getMessage(appId: string, idOrEventId: string) {
    return this.db
      .selectFrom('messages')
      .selectAll()
      .where('app_id', '=', appId)
      .where((eb) => eb.or([eb('id', '=', idOrEventId), eb('event_id', '=', idOrEventId)]))
      .orderBy('id')
      .executeTakeFirst();
  }
  async getMessagesByIds(ids: string[]) {
    const out: MessageRow[] = [];
    for (const part of chunks([...new Set(ids)])) {
      out.push(...(await this.db.selectFrom('messages').selectAll().where('id', 'in', part).execute()));
    }
    return out;
  }
  listMessages(appId: string, filter: MessageFilter, page: PageRequest) {
    let q = this.db.selectFrom('messages').selectAll().where('app_id', '=', appId);
    q = applyMessageFilter(q, filter, 'id', 'event_type', 'channels');
    return paginate(q, 'id', page);
  }
  async expungeMessagePayload(appId: string, id: string) {
    await this.db.updateTable('messages').set({ payload: null }).where('app_id', '=', appId).where('id', '=', id).execute();
  }

  // ── deliveries ───────────────────────────────────────────────────────────────────────────

  /** The claim itself: leases up to `limit` due rows, earliest first, and returns them. */
  protected claimStatement(owner: string, now: number, leaseUntil: number, limit: number, excludeEndpointIds: string[]) {
    const exclude = excludeEndpointIds.length
      ? sql`and endpoint_id not in (${sql.join(excludeEndpointIds.map((id) => sql`${id}`))})`
      : sql``;
    return sql<DeliveryRow>`
      update deliveries
         set status = ${Status.sending}, due_at = ${leaseUntil}, lease_owner = ${owner}, updated_at = ${now}
       where id in (
         select id from deliveries
          where due_at is not null and due_at <= ${now} ${exclude}
          order by due_at
          limit ${limit} ${sql.raw(this.hooks.claimLockClause)})
      returning *`;
  }

  async claimDue(owner: string, now: number, leaseUntil: number, limit: number, excludeEndpointIds: string[]): Promise<ClaimedDelivery[]> {
    const claimQuery = this.claimStatement(owner, now, leaseUntil, limit, excludeEndpointIds);
    const claimed = await this.hooks.relaxedTransaction(this.db, (tx) => claimQuery.execute(tx));
    const deliveries = claimed.rows.map(normalizeDelivery);
    if (deliveries.length === 0) return [];
    const [messages, endpoints] = await Promise.all([
      this.getMessagesByIds(deliveries.map((d) => d.message_id)),
      this.getEndpointsByIds(deliveries.map((d) => d.endpoint_id)),
    ]);
    const msgById = new Map(messages.map((m) => [m.id, m]));
    const epById = new Map(endpoints.map((e) => [e.id, e]));
    deliveries.sort((a, b) => (a.id < b.id ? -1 : 1));
    return deliveries.map((d) => ({ delivery: d, message: msgById.get(d.message_id) ?? null, endpoint: epById.get(d.endpoint_id) ?? null }));
  }

  async settle(batch: Settlement[], opts: SettleOptions): Promise<DisabledEndpoint[]> {
    if (batch.length === 0) return [];
    return this.hooks.relaxedTransaction(this.db, async (tx) => {
      const attempts = batch.map((s) => s.attempt).filter((a): a is AttemptRow => a !== null);
      for (const part of chunks(attempts, 100)) await tx.insertInto('attempts').values(part).execute();
      // One UPDATE for the whole batch, fenced by lease owner: if a lease expired and another
      // worker took the row, its state is theirs to write; our attempt row above still records
      // what we did. (Per-row UPDATEs were a fifth of the worker's database time.)
      for (const part of chunks(batch, 200)) {
        const rows = part.map(
          (s) =>
            sql`(${s.deliveryId}, ${s.leaseOwner}, cast(${s.status} as integer), cast(${s.dueAt} as bigint), cast(${s.attempts} as integer), cast(${s.attempt ? s.attempt.created_at : null} as bigint))`,
        );
        await sql`
          with v(id, owner, status, due_at, attempts, last_attempt_at) as (values ${sql.join(rows)})
          update deliveries
             set status = v.status, due_at = v.due_at, attempts = v.attempts, lease_owner = null,
                 last_attempt_at = coalesce(v.last_attempt_at, deliveries.last_attempt_at), updated_at = ${opts.now}
            from v
           where deliveries.id = v.id and deliveries.lease_owner = v.owner`.execute(tx);
      }
      return this.applyHealth(tx, batch, opts);
    });
  }

  /** Endpoint failure streaks: one update per endpoint in the batch, disabling where due. */
  protected async applyHealth(tx: Kysely<Database>, batch: Settlement[], opts: SettleOptions): Promise<DisabledEndpoint[]> {
    const perEndpoint = new Map<string, { success: boolean; failure: boolean; gone: boolean }>();
    for (const s of batch) {
      if (s.health === 'none' && !s.disableNow) continue;
      const e = perEndpoint.get(s.endpointId) ?? { success: false, failure: false, gone: false };
      // The last outcome in the batch wins for the streak; a 410 anywhere disables.
      if (s.health === 'success') Object.assign(e, { success: true, failure: false });
      if (s.health === 'failure') Object.assign(e, { success: false, failure: true });
      if (s.disableNow) e.gone = true;
      perEndpoint.set(s.endpointId, e);
    }
    const disabled: DisabledEndpoint[] = [];
    for (const [endpointId, e] of perEndpoint) {
      if (e.success && !e.gone) {
        await tx.updateTable('endpoints').set({ failing_since: null }).where('id', '=', endpointId).where('failing_since', 'is not', null).execute();
        continue;
      }
      const ep = await tx.selectFrom('endpoints').select(['id', 'app_id', 'environment_id', 'failing_since', 'disabled']).where('id', '=', endpointId).executeTakeFirst();
      if (!ep || ep.disabled) continue;
      const failingSince = ep.failing_since === null ? opts.now : Number(ep.failing_since);
      const expired = opts.now - failingSince >= opts.disableAfterMs;
      if (e.gone || expired) {
        await tx.updateTable('endpoints').set({ disabled: 1, failing_since: failingSince, updated_at: opts.now }).where('id', '=', endpointId).execute();
        disabled.push({ endpointId, appId: ep.app_id, environmentId: ep.environment_id, failingSince, reason: e.gone ? 'gone' : 'failing' });
      } else if (ep.failing_since === null) {
        await tx.updateTable('endpoints').set({ failing_since: failingSince }).where('id', '=', endpointId).execute();
      }
    }
    return disabled;
  }

  async nextDueAt(after?: number) {
    let q = this.db.selectFrom('deliveries').select((eb) => eb.fn.min('due_at').as('next')).where('due_at', 'is not', null);
    if (after !== undefined) q = q.where('due_at', '>', after);
    const r = await q.executeTakeFirst();
    return r?.next == null ? null : Number(r.next);
  }
  async releaseLeases(owner: string, now: number) {
    await this.db.updateTable('deliveries').set({ status: Status.pending, due_at: now, lease_owner: null, updated_at: now }).where('lease_owner', '=', owner).where('status', '=', Status.sending).execute();
  }
  async getDelivery(messageId: string, endpointId: string) {
    const r = await this.db.selectFrom('deliveries').selectAll().where('message_id', '=', messageId).where('endpoint_id', '=', endpointId).executeTakeFirst();
    return r && normalizeDelivery(r);
  }
  async scheduleResend(row: DeliveryRow, now: number) {
    await this.db
      .insertInto('deliveries')
      .values(row)
      .onConflict((oc) =>
        oc.columns(['message_id', 'endpoint_id']).doUpdateSet({
          status: Status.pending,
          due_at: now,
          attempts: 0,
          trigger_type: row.trigger_type,
          lease_owner: null,
          updated_at: now,
        }),
      )
      .execute();
  }
  async recoverFailed(endpointId: string, since: number, until: number, now: number) {
    const r = await this.db
      .updateTable('deliveries')
      .set({ status: Status.pending, due_at: now, attempts: 0, trigger_type: 1, updated_at: now })
      .where('endpoint_id', '=', endpointId)
      .where('status', '=', Status.fail)
      .where('created_at', '>=', since)
      .where('created_at', '<', until)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }
  async endpointStats(endpointId: string, since: number | null, until: number | null): Promise<EndpointStatsCounts> {
    let q = this.db
      .selectFrom('deliveries')
      .select(['status', (eb) => eb.fn.countAll().as('n')])
      .where('endpoint_id', '=', endpointId)
      .groupBy('status');
    if (since !== null) q = q.where('created_at', '>=', since);
    if (until !== null) q = q.where('created_at', '<', until);
    const rows = await q.execute();
    const out = { success: 0, pending: 0, fail: 0, sending: 0 };
    for (const r of rows) {
      const n = Number(r.n);
      if (r.status === Status.success) out.success = n;
      else if (r.status === Status.pending) out.pending = n;
      else if (r.status === Status.fail) out.fail = n;
      else if (r.status === Status.sending) out.sending = n;
    }
    return out;
  }
  async listDeliveriesOfMessage(messageId: string, page: PageRequest) {
    const p = await paginate(this.db.selectFrom('deliveries').selectAll().where('message_id', '=', messageId), 'endpoint_id', page);
    return { ...p, items: p.items.map(normalizeDelivery) };
  }
  async listDeliveriesOfEndpoint(endpointId: string, filter: AttemptFilter, page: PageRequest) {
    let q = this.db
      .selectFrom('deliveries as d')
      .innerJoin('messages as m', 'm.id', 'd.message_id')
      .selectAll('m')
      .select([
        'd.id as d_id', 'd.endpoint_id as d_endpoint_id', 'd.status as d_status', 'd.due_at as d_due_at', 'd.attempts as d_attempts',
        'd.trigger_type as d_trigger_type', 'd.lease_owner as d_lease_owner', 'd.last_attempt_at as d_last_attempt_at',
        'd.created_at as d_created_at', 'd.updated_at as d_updated_at',
      ])
      .where('d.endpoint_id', '=', endpointId);
    if (filter.status !== undefined) q = q.where('d.status', '=', filter.status);
    q = applyMessageFilter(q, filter, 'm.id', 'm.event_type', 'm.channels');
    const p = await paginate(q, 'd.message_id', page);
    return {
      done: p.done,
      items: p.items.map((r: any) => ({
        message: pickMessage(r),
        delivery: normalizeDelivery({
          id: r.d_id, message_id: r.id, endpoint_id: r.d_endpoint_id, app_id: r.app_id, environment_id: r.environment_id,
          status: r.d_status, due_at: r.d_due_at, attempts: r.d_attempts, trigger_type: r.d_trigger_type, lease_owner: r.d_lease_owner,
          last_attempt_at: r.d_last_attempt_at, created_at: r.d_created_at, updated_at: r.d_updated_at,
        }),
      })),
    };
  }

  // ── attempts ─────────────────────────────────────────────────────────────────────────────

  async listAttempts(scope: { endpointId?: string; messageId?: string }, filter: AttemptFilter, page: PageRequest) {
    let q = this.db.selectFrom('attempts as a').selectAll('a');
    if (scope.endpointId) q = q.where('a.endpoint_id', '=', scope.endpointId);
    if (scope.messageId) q = q.where('a.message_id', '=', scope.messageId);
    if (filter.endpointId) q = q.where('a.endpoint_id', '=', filter.endpointId);
    if (filter.status !== undefined) q = q.where('a.status', '=', filter.status);
    if (filter.statusCodeClass !== undefined) {
      const c = filter.statusCodeClass;
      q = c === 0 ? q.where('a.response_status_code', '=', 0) : q.where('a.response_status_code', '>=', c).where('a.response_status_code', '<', c + 100);
    }
    if (filter.before !== undefined) q = q.where('a.created_at', '<', filter.before);
    if (filter.after !== undefined) q = q.where('a.created_at', '>', filter.after);
    if (filter.eventTypes?.length || filter.channel) {
      q = q.innerJoin('messages as m', 'm.id', 'a.message_id');
      q = applyMessageFilter(q, { eventTypes: filter.eventTypes, channel: filter.channel }, 'm.id', 'm.event_type', 'm.channels');
    }
    return paginate(q, 'a.id', page) as Promise<Page<AttemptRow>>;
  }
  getAttempt(messageId: string, attemptId: string) {
    return this.db.selectFrom('attempts').selectAll().where('message_id', '=', messageId).where('id', '=', attemptId).executeTakeFirst();
  }
  async expungeAttemptResponse(messageId: string, attemptId: string) {
    await this.db.updateTable('attempts').set({ response: '', response_truncated: 0 }).where('message_id', '=', messageId).where('id', '=', attemptId).execute();
  }

  // ── idempotency ──────────────────────────────────────────────────────────────────────────

  /**
   * Runs one statement that need not survive a power cut by itself (see relaxedTransaction).
   * PostgreSQL runs it on its relaxed sessions as one round trip.
   */
  protected relaxedStatement<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.hooks.relaxedTransaction(this.db, fn);
  }

  /** Runs one statement that is durable when the promise resolves (see durableTransaction). */
  protected durableStatement<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.hooks.durableTransaction(this.db, fn);
  }

  async beginIdempotent(environmentId: string, key: string, requestHash: string, now: number, ttlMs: number): Promise<IdempotencyBegin> {
    // A new key, or an expired one taken over, in one statement. It need not wait for the disk:
    // it only has to survive what the message it guards survives, and that message's durable
    // commit comes later and makes every earlier commit durable with it (the SQLite WAL and the
    // PostgreSQL WAL are written in order). The Svix clients send a key with every POST, so this
    // is on the hot path of message creation.
    const fresh = { request_hash: requestHash, status_code: null, response: null, created_at: now, expires_at: now + ttlMs };
    const taken = await this.relaxedStatement((db) =>
      db
        .insertInto('idempotency_keys')
        .values({ environment_id: environmentId, key, ...fresh })
        .onConflict((oc) => oc.columns(['environment_id', 'key']).doUpdateSet(fresh).where('idempotency_keys.expires_at', '<=', now))
        .returning('key')
        .executeTakeFirst(),
    );
    if (taken) return { state: 'new' };
    const row = await this.db.selectFrom('idempotency_keys').selectAll().where('environment_id', '=', environmentId).where('key', '=', key).executeTakeFirst();
    // Abandoned (deleted) between the two statements: try to take it again.
    if (!row) return this.beginIdempotent(environmentId, key, requestHash, now, ttlMs);
    if (row.request_hash !== requestHash) return { state: 'mismatch' };
    if (row.status_code === null) return { state: 'pending' };
    return { state: 'done', statusCode: row.status_code, response: row.response ?? '' };
  }
  async completeIdempotent(environmentId: string, key: string, statusCode: number, response: string, expiresAt?: number) {
    // Durable before the response goes out, so a retry after a crash replays it.
    await this.durableStatement((db) =>
      db
        .updateTable('idempotency_keys')
        .set({ status_code: statusCode, response, ...(expiresAt === undefined ? {} : { expires_at: noLaterThan(expiresAt) }) })
        .where('environment_id', '=', environmentId)
        .where('key', '=', key)
        .execute(),
    );
  }
  async abandonIdempotent(environmentId: string, key: string) {
    await this.relaxedStatement((db) =>
      db.deleteFrom('idempotency_keys').where('environment_id', '=', environmentId).where('key', '=', key).where('status_code', 'is', null).execute(),
    );
  }

  // ── signals and queue depth ──────────────────────────────────────────────────────────────

  async notifyDue(endpointIds?: Iterable<string>) {
    if (!this.hooks.notify) return;
    // Endpoint ids let a worker whose endpoints are all busy skip the claim. A NOTIFY payload is
    // limited to 8000 bytes; a longer list is sent as no list (a signal for everything).
    const payload = endpointIds ? [...endpointIds].join(',') : '';
    await this.hooks.notify(this.db, payload.length < 7000 ? payload : '');
  }
  async onDue(fn: (endpointIds?: string[]) => void) {
    if (this.hooks.listen) return this.hooks.listen((payload) => fn(payload ? payload.split(',') : undefined));
    return async () => {};
  }
  async queueDepth(now: number) {
    // Every row with a due_at is pending (due_at: the next attempt) or sending (due_at: the lease
    // expiry). A lease that has run out is work any worker may claim (claimDue takes every row
    // with due_at <= now), so it counts as due, not in flight.
    const r = await this.db
      .selectFrom('deliveries')
      .select((eb) => [
        eb.fn.sum<number>(eb.case().when('due_at', '<=', now).then(1).else(0).end()).as('due'),
        eb.fn.sum<number>(eb.case().when(eb.and([eb('status', '=', Status.pending), eb('due_at', '>', now)])).then(1).else(0).end()).as('scheduled'),
        eb.fn.sum<number>(eb.case().when(eb.and([eb('status', '=', Status.sending), eb('due_at', '>', now)])).then(1).else(0).end()).as('inFlight'),
      ])
      .where('due_at', 'is not', null)
      .executeTakeFirst();
    return { due: Number(r?.due ?? 0), scheduled: Number(r?.scheduled ?? 0), inFlight: Number(r?.inFlight ?? 0) };
  }

  async takeRateToken(endpointId: string, rate: number, now: number) {
    await this.db.insertInto('endpoint_rates').values({ endpoint_id: endpointId, tokens: rate, updated_at: now }).onConflict((oc) => oc.doNothing()).execute();
    // Refill for the time elapsed (capped at the capacity), then take one if there is one; a
    // single UPDATE, so concurrent takers in several processes serialise on the row.
    const refilled = sql<number>`(case when tokens + (${now} - updated_at) * ${rate} / 1000.0 > ${rate} then ${rate} else tokens + (${now} - updated_at) * ${rate} / 1000.0 end)`;
    const taken = await this.db
      .updateTable('endpoint_rates')
      .set({ tokens: sql<number>`${refilled} - 1`, updated_at: sql<number>`case when ${now} > updated_at then ${now} else updated_at end` })
      .where('endpoint_id', '=', endpointId)
      .where(refilled, '>=', 1)
      .returning('tokens')
      .executeTakeFirst();
    if (taken) return 0;
    const row = await this.db.selectFrom('endpoint_rates').select(['tokens', 'updated_at']).where('endpoint_id', '=', endpointId).executeTakeFirst();
    const tokensNow = row ? Math.min(rate, Number(row.tokens) + ((now - Number(row.updated_at)) * rate) / 1000) : 0;
    return Math.max(1, Math.ceil(((1 - tokensNow) * 1000) / rate));
  }

  // ── retention ────────────────────────────────────────────────────────────────────────────

  /**
   * Each select below reads the index range named beside it, which holds the rows it removes and
   * (for messages) those held back by a pending delivery, so a pass costs what it removes, not
   * the size of the tables; each write finds its rows by primary key or, for a message's
   * deliveries and attempts, by their message_id indexes. Checked with EXPLAIN QUERY PLAN on
   * SQLite and EXPLAIN on PostgreSQL over 100,000 rows per table; the one scan is endpoint_rates,
   * below. Writes whose rows may have changed since the select re-check its condition.
   */
  async purgeExpired(now: number, olderThan: number, batch: number): Promise<PurgeCounts> {
    const counts: PurgeCounts = { messages: 0, payloads: 0, deliveries: 0, attempts: 0, idempotencyKeys: 0, operationalEvents: 0, sourceEvents: 0, dedupeKeys: 0, rateBuckets: 0 };
    // Attempts first, so that the messages removed below have few attempts left to take along.
    // Their ids sort by time: a range of the primary key, with no created_at index to maintain
    // on the table every delivery writes to.
    const oldAttempts = await this.db.selectFrom('attempts').select('id').where('id', '<', idAtTime('atmpt', olderThan)).orderBy('id').limit(batch).execute();
    if (oldAttempts.length) {
      counts.attempts += Number((await this.db.deleteFrom('attempts').where('id', 'in', oldAttempts.map((r) => r.id)).executeTakeFirst()).numDeletedRows);
    }

    // A message's payload goes at its own expires_at (payloadRetentionPeriod), the message row
    // with its deliveries and attempts once it is past the retention period as well. Index
    // messages_payload_expires holds only rows that still have a payload; messages whose
    // deliveries are still pending stay in its range until they settle (a retry needs the payload).
    const oldestKept = idAtTime('msg', olderThan);
    const expiring = (
      await this.db
        .selectFrom('messages as m')
        .select('m.id')
        .where('m.payload', 'is not', null)
        .where('m.expires_at', '<', now)
        .where(settled('m.id'))
        .orderBy('m.expires_at')
        .limit(batch)
        .execute()
    ).map((r) => r.id);
    // Index messages_payload_gone_id: rows whose payload went (here or by hand), by creation time.
    const gone = (
      await this.db
        .selectFrom('messages as m')
        .select('m.id')
        .where('m.payload', 'is', null)
        .where('m.id', '<', oldestKept)
        .where(settled('m.id'))
        .orderBy('m.id')
        .limit(batch)
        .execute()
    ).map((r) => r.id);
    const remove = [...gone, ...expiring.filter((id) => id < oldestKept)];
    const strip = expiring.filter((id) => id >= oldestKept);
    if (remove.length || strip.length) {
      await this.db.transaction().execute(async (tx) => {
        if (remove.length) {
          const removed = (await tx.deleteFrom('messages').where('id', 'in', remove).where(settled('messages.id')).returning('id').execute()).map((r) => r.id);
          if (removed.length) {
            counts.messages += removed.length;
            counts.attempts += Number((await tx.deleteFrom('attempts').where('message_id', 'in', removed).executeTakeFirst()).numDeletedRows);
            counts.deliveries += Number((await tx.deleteFrom('deliveries').where('message_id', 'in', removed).executeTakeFirst()).numDeletedRows);
          }
        }
        if (strip.length) {
          const r = await tx.updateTable('messages').set({ payload: null }).where('id', 'in', strip).where('payload', 'is not', null).where(settled('messages.id')).executeTakeFirst();
          counts.payloads += Number(r.numUpdatedRows);
        }
      });
    }

    // Index idempotency_keys_expires. A key taken over since it was selected has a new expiry.
    const oldKeys = await this.db.selectFrom('idempotency_keys').select(['environment_id', 'key']).where('expires_at', '<', now).orderBy('expires_at').limit(batch).execute();
    for (const part of chunks(oldKeys, 200)) {
      counts.idempotencyKeys += Number(
        (
          await this.db
            .deleteFrom('idempotency_keys')
            .where((eb) => eb.or(part.map((k) => eb.and([eb('environment_id', '=', k.environment_id), eb('key', '=', k.key)]))))
            .where('expires_at', '<', now)
            .executeTakeFirst()
        ).numDeletedRows,
      );
    }
    // Index operational_events_created.
    const oldEvents = await this.db.selectFrom('operational_events').select('id').where('created_at', '<', olderThan).orderBy('created_at').limit(batch).execute();
    if (oldEvents.length) {
      counts.operationalEvents += Number((await this.db.deleteFrom('operational_events').where('id', 'in', oldEvents.map((r) => r.id)).executeTakeFirst()).numDeletedRows);
    }
    // Source events keep the raw provider payloads. Their messages' payloads expire when the
    // retention period after the same instant ends, so the raw body goes no later than the
    // message payload made from it. Index source_events_created.
    const oldSourceEvents = await this.db.selectFrom('source_events').select('id').where('created_at', '<', olderThan).orderBy('created_at').limit(batch).execute();
    if (oldSourceEvents.length) {
      counts.sourceEvents += Number((await this.db.deleteFrom('source_events').where('id', 'in', oldSourceEvents.map((r) => r.id)).executeTakeFirst()).numDeletedRows);
    }
    // Index source_dedupe_expires. A key replaced since it was selected has a new expiry.
    const oldDedupe = await this.db.selectFrom('source_dedupe').select(['source_id', 'key_hash']).where('expires_at', '<=', now).orderBy('expires_at').limit(batch).execute();
    for (const part of chunks(oldDedupe, 200)) {
      counts.dedupeKeys += Number(
        (
          await this.db
            .deleteFrom('source_dedupe')
            .where((eb) => eb.or(part.map((k) => eb.and([eb('source_id', '=', k.source_id), eb('key_hash', '=', k.key_hash)]))))
            .where('expires_at', '<=', now)
            .executeTakeFirst()
        ).numDeletedRows,
      );
    }
    // A bucket untouched for a minute is full again; dropping it changes nothing. No index: the
    // table holds one row per rate-limited endpoint sending in the last minute or so (this purge
    // drops the rest), and an index on updated_at would be rewritten by every token taken. The
    // delete re-checks the age, so a bucket used meanwhile keeps its tokens.
    const idle = now - 60_000;
    const oldBuckets = await this.db.selectFrom('endpoint_rates').select('endpoint_id').where('updated_at', '<', idle).limit(batch).execute();
    if (oldBuckets.length) {
      counts.rateBuckets += Number(
        (await this.db.deleteFrom('endpoint_rates').where('endpoint_id', 'in', oldBuckets.map((r) => r.endpoint_id)).where('updated_at', '<', idle).executeTakeFirst()).numDeletedRows,
      );
    }
    return counts;
  }

  // ── operational events ───────────────────────────────────────────────────────────────────

  async recordOperationalEvent(row: OperationalEventRow) {
    await this.db.insertInto('operational_events').values(row).execute();
  }
  listOperationalEvents(environmentId: string, page: PageRequest) {
    return paginate(this.db.selectFrom('operational_events').selectAll().where('environment_id', '=', environmentId), 'id', page);
  }

  // ── dashboard health ─────────────────────────────────────────────────────────────────────

  async attemptBuckets(endpointIds: string[], since: number, until: number, bucketMs: number): Promise<AttemptBucket[]> {
    if (endpointIds.length === 0) return [];
    // The time window is applied to the attempt id (it encodes created_at), a range on the
    // (endpoint_id, id) index; the cast keeps the bucket an integer on both databases.
    const bucket = sql<number>`cast((created_at - ${since}) / ${bucketMs} as integer)`;
    const rows = await this.db
      .selectFrom('attempts')
      .select([
        'endpoint_id',
        bucket.as('bucket'),
        (eb) => eb.fn.countAll().as('attempts'),
        sql<number>`sum(case when status = ${Status.success} then 1 else 0 end)`.as('successes'),
        sql<number>`sum(duration_ms)`.as('duration_ms'),
        sql<number>`max(created_at)`.as('last_at'),
      ])
      .where('endpoint_id', 'in', endpointIds)
      .where('id', '>=', idAtTime('atmpt', since))
      .where('id', '<', idAtTime('atmpt', until))
      // By the output name: PostgreSQL would not see two parameterised copies of the expression as equal.
      .groupBy(['endpoint_id', sql`bucket`])
      .execute();
    return rows.map((r) => ({
      endpointId: r.endpoint_id, bucket: Number(r.bucket), attempts: Number(r.attempts), successes: Number(r.successes),
      durationMs: Number(r.duration_ms), lastAt: Number(r.last_at),
    }));
  }
}

/**
 * On a query over messages (`messageId`: its id column, `m.id` or, in an UPDATE or DELETE, which
 * SQLite does not let alias, `messages.id`): none of the message's deliveries is pending or leased
 * (due_at is set exactly while one is). SQLite looks it up per message on
 * deliveries_message_endpoint; PostgreSQL does that or hashes the rows of deliveries_due,
 * whichever its statistics make cheaper: either reads at most the queue, never settled rows.
 */
function settled(messageId: 'm.id' | 'messages.id') {
  return ({ not, exists, selectFrom }: ExpressionBuilder<any, any>) =>
    not(exists(selectFrom('deliveries as d').select('d.id').whereRef('d.message_id', '=', messageId).where('d.due_at', 'is not', null)));
}

/** An idempotency key's expires_at, moved earlier to `at` if it is later (the SQL of min(expires_at, at)). */
function noLaterThan(at: number) {
  return sql<number>`case when expires_at > ${at} then ${at} else expires_at end`;
}

/**
 * Adds event type, channel and time filters on a message-bearing query. Times are applied to the
 * message id, which encodes its creation millisecond (src/lib/ids.ts): "created before T" is
 * "id below the smallest id of T", a range on the (app_id, id) index instead of a walk over every
 * message of the application (measured with 1,000,000 messages: p99 522 ms on created_at).
 */
function applyMessageFilter<Q extends SelectQueryBuilder<any, any, any>>(q: Q, f: MessageFilter, idCol: string, typeCol: string, channelsCol: string): Q {
  let out: any = q;
  if (f.eventTypes && f.eventTypes.length) out = out.where(typeCol, 'in', f.eventTypes);
  // Channels are stored as a JSON array of strings with a restricted alphabet, so a quoted
  // substring match is exact: "a.b" cannot match inside "xa.b".
  if (f.channel) {
    const pattern = `%${JSON.stringify(f.channel).replace(/[%_\\]/g, (c) => '\\' + c)}%`;
    out = out.where(sql`${sql.ref(channelsCol)} like ${pattern} escape '\\'`);
  }
  if (f.before !== undefined) out = out.where(idCol, '<', idAtTime('msg', f.before));
  if (f.after !== undefined) out = out.where(idCol, '>=', idAtTime('msg', f.after + 1));
  return out as Q;
}

function pickMessage(r: any): MessageRow {
  return {
    id: r.id, environment_id: r.environment_id, app_id: r.app_id, event_type: r.event_type, event_id: r.event_id,
    channels: r.channels, tags: r.tags, payload: r.payload, created_at: Number(r.created_at), expires_at: Number(r.expires_at),
  };
}

function normalizeVersion(r: EndpointVersionRow): EndpointVersionRow {
  return { ...r, version: Number(r.version), created_at: Number(r.created_at) };
}

function normalizeSource(r: SourceRow): SourceRow {
  return { ...r, disabled: Number(r.disabled), created_at: Number(r.created_at), updated_at: Number(r.updated_at) };
}

function normalizeSourceEvent(r: SourceEventRow): SourceEventRow {
  return { ...r, body_bytes: Number(r.body_bytes), created_at: Number(r.created_at) };
}

/** PostgreSQL returns bigint as string unless told otherwise; keep numbers numbers. */
export function normalizeDelivery(r: DeliveryRow): DeliveryRow {
  return {
    ...r,
    due_at: r.due_at === null ? null : Number(r.due_at),
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
    last_attempt_at: r.last_attempt_at === null ? null : Number(r.last_attempt_at),
  };
}

