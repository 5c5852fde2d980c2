/**
 * PostgreSQL: many API and worker processes over one database. Claims use FOR UPDATE SKIP LOCKED
 * so concurrent workers never take the same row; migrations run under an advisory lock so
 * processes starting together do not race; new work is announced with NOTIFY so idle workers in
 * other processes wake at once instead of at their next poll.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { Kysely, PostgresDialect, sql, type RawBuilder } from 'kysely';
import { StaleRoutingError, type ClaimedDelivery, type DisabledEndpoint, type InsertMessageResult, type NewMessage, type Routing, type RoutingGuard, type SettleOptions, type Settlement } from './port.js';
import { Status, type Database, type DeliveryRow, type EndpointRow, type MessageRow } from './schema.js';
import { SqlStore, normalizeDelivery, type DialectHooks } from './sql-store.js';

// int8 (bigint) columns hold millisecond timestamps, far inside Number's safe range.
pg.types.setTypeParser(20, (v) => Number(v));

/** Socket errors that mean the server could not be reached or dropped the connection. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);

/**
 * Class 08 (connection exception), 53300 (too many connections), 57P01-57P03 (shutdown, cannot
 * connect now), socket errors, and the pool's own connect timeout / lost-connection errors.
 */
export function isPostgresUnavailable(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  const code = typeof err?.code === 'string' ? err.code : '';
  if (code.startsWith('08') || code === '53300' || code === '57P01' || code === '57P02' || code === '57P03') return true;
  if (SOCKET_CODES.has(code)) return true;
  const message = typeof err?.message === 'string' ? err.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(message);
}

const MIGRATION_LOCK = 7_462_021;
/**
 * The NOTIFY channel that announces due work. Channels are per database, not per schema, so
 * deployments that share a database in schemas of their own (the test suite does) each get
 * their own, or every insert would wake the workers of all of them. The schema is the `schema`
 * option's, else the first of a search_path set in the URL (`?options=-c search_path=…`).
 */
function dueChannel(schema: string | undefined): string {
  return schema ? `koppel_due_${schema}`.slice(0, 63) : 'koppel_due';
}

export interface PostgresOptions {
  /** Pool size per process. */
  max?: number;
  /** Schema to use (search_path); tests give each run its own. */
  schema?: string;
  /**
   * Text (payloads, response bodies) above which a batch is written in chunked statements within
   * a transaction instead of as one JSON value (default 32 MiB; tests lower it).
   */
  oneStatementMaxChars?: number;
}

/**
 * The URL without its `options` parameter, that parameter, and the schema its search_path names
 * first. node-postgres lets a URL's `options` replace the `options` given beside it, so the
 * session settings below would be lost (or the URL's) unless they are joined by hand.
 */
function splitUrlOptions(url: string): { url: string; options: string | undefined; schema: string | undefined } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { url, options: undefined, schema: undefined };
  }
  const options = parsed.searchParams.get('options') ?? undefined;
  if (options === undefined) return { url, options, schema: undefined };
  parsed.searchParams.delete('options');
  const first = /(?:^|\s)-c\s*search_path\s*=\s*([^\s,]+)/.exec(options)?.[1]?.replace(/^"|"$/g, '');
  return { url: parsed.toString(), options, schema: first };
}

export function openPostgresStore(url: string, opts: PostgresOptions = {}): PostgresStore {
  const fromUrl = splitUrlOptions(url);
  const options = opts.schema ? `-c search_path=${opts.schema}` : undefined;
  const newPool = (max: number, extra = '') => {
    const pool = new pg.Pool({ connectionString: fromUrl.url, max, options: [fromUrl.options, options, extra].filter(Boolean).join(' ') || undefined });
    // An idle client that loses its connection must not crash the process; the next query reports it.
    pool.on('error', () => {});
    return { pool, db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }) };
  };
  const durable = newPool(opts.max ?? 10);
  const db = durable.db;
  // The worker's claims and outcome writes commit without waiting for the WAL flush (see
  // DialectHooks.relaxedTransaction). Their sessions have synchronous_commit=off from the start,
  // so one statement is one round trip, not BEGIN, SET LOCAL, statement and COMMIT. They also
  // run the hot path's prepared statements (PostgresStore.prepared), whose plans are made once
  // per session and kept: every one of them reads by an index, and enable_seqscan=off keeps a
  // plan made while a table was still small from scanning it whole once it has grown.
  const relaxedPool = newPool(Math.max(2, Math.ceil((opts.max ?? 10) / 2)), '-c synchronous_commit=off -c enable_seqscan=off');
  const relaxed = relaxedPool.db;
  const listeners = new Set<pg.Client>();
  const channel = dueChannel(opts.schema ?? fromUrl.schema);
  return new PostgresStore(db, relaxed, { durable: durable.pool, relaxed: relaxedPool.pool }, opts.oneStatementMaxChars ?? 32 * 1024 * 1024, channel, {
    name: 'postgres',
    withMigrationLock: async (database, fn) =>
      database.connection().execute(async (conn) => {
        await sql`select pg_advisory_lock(${MIGRATION_LOCK})`.execute(conn);
        try {
          return await fn(conn);
        } finally {
          await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`.execute(conn);
        }
      }),
    migrationLockIsTransaction: false,
    isUnavailable: isPostgresUnavailable,
    // 22021: "invalid byte sequence for encoding UTF8: 0x00"; 22P05: untranslatable character.
    isInvalidText: (e) => ['22021', '22P05'].includes(String((e as { code?: string })?.code ?? '')),
    isUniqueViolation: (e) => (e as { code?: string })?.code === '23505',
    claimLockClause: 'for update skip locked',
    relaxedTransaction: (_database, fn) => relaxed.transaction().execute(fn),
    // PostgreSQL's commit waits for the WAL flush on its own server process; nothing blocks here.
    durableTransaction: (database, fn) => database.transaction().execute(fn),
    notify: async (database, payload) => {
      await sql`select pg_notify(${channel}, ${payload})`.execute(database);
    },
    listen: async (fn) => {
      let stopped = false;
      let client: pg.Client | null = null;
      // LISTEN needs a connection of its own for as long as we listen. If it drops, reconnect;
      // meanwhile the workers' fallback poll keeps deliveries moving.
      const connect = async (): Promise<void> => {
        if (stopped) return;
        const c = new pg.Client({ connectionString: url, options });
        c.on('notification', (n) => fn(n.payload ?? ''));
        c.on('error', () => {});
        c.on('end', () => {
          listeners.delete(c);
          if (!stopped) setTimeout(() => void connect().catch(() => {}), 1000).unref();
        });
        try {
          await c.connect();
          await c.query(`listen "${channel.replace(/"/g, '""')}"`);
          client = c;
          listeners.add(c);
        } catch {
          await c.end().catch(() => {});
        }
      };
      await connect();
      return async () => {
        stopped = true;
        if (client) await client.end().catch(() => {});
      };
    },
    close: async () => {
      for (const c of listeners) await c.end().catch(() => {});
      await relaxed.destroy();
    },
  });
}

/**
 * `insert into <table> (<columns>) select <columns> from json_populate_recordset(...)`: any number
 * of rows as one JSON parameter, typed by the table's own row type. One statement and one
 * parameter instead of chunked multi-row VALUES lists (PostgreSQL allows 65,535 parameters), and
 * no query building per row.
 */
function insertJsonRows(table: 'messages' | 'deliveries' | 'attempts', rows: object[]) {
  const columns = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) columns.add(k);
  const list = sql.join([...columns].map((c) => sql.ref(c)));
  return sql`insert into ${sql.table(table)} (${list}) select ${list} from json_populate_recordset(null::${sql.table(table)}, ${JSON.stringify(rows)}::json)`;
}

/**
 * A name for a hot statement's text, so that each connection parses and plans it once (a named
 * prepared statement) instead of on every call. At a steady 1,000 messages/s, with batches of a
 * few rows, planning alone was a quarter of the PostgreSQL server's CPU (perf). Only the
 * delivery hot path uses names, and its texts come in a handful of fixed shapes: a connection
 * keeps every statement it prepared until it closes. (Behind PgBouncer in transaction mode this
 * needs PgBouncer 1.21 or later with max_prepared_statements set; see docs/scaling.md.)
 */
const statementNames = new Map<string, string>();
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `koppel_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
    if (statementNames.size >= 256) statementNames.clear();
    statementNames.set(text, name);
  }
  return name;
}

/** Characters of text in these values (payloads, response bodies); the rest of a row is small. */
function textOf(values: (string | null | undefined)[]): number {
  let n = 0;
  for (const v of values) n += v?.length ?? 0;
  return n;
}

/**
 * How long an API process routes new messages by its copy of an application's endpoints before
 * reading them again, and for how many applications it keeps one. The copy is never trusted: the
 * insert checks it (routingVersions), so these bound only memory and how long an unused copy stays.
 */
const ROUTING_TTL_MS = 10_000;
const ROUTING_MAX_APPS = 10_000;

/**
 * A version of each application's enabled endpoints: a hash of their ids and row versions (`xmin`,
 * the transaction that wrote the row, new with every insert and update). Any change that can
 * alter routing (an endpoint created, deleted, enabled, disabled or updated) changes it; an
 * application without enabled endpoints has no row. The routing read and the insert's check use
 * this same expression, so they agree on what "unchanged" means.
 */
function routingVersions(appIds: string[]) {
  return sql`select app_id, md5(string_agg(id || ':' || xmin::text, ',' order by id)) as version
               from endpoints where app_id = any(${appIds}::text[]) and disabled = 0 group by app_id`;
}

interface RoutedApp {
  endpoints: EndpointRow[];
  version: string | null;
  until: number;
}

/** A delivery row written unleased, for whichever worker claims it (not leased at insert). */
const awaitsClaim = (d: DeliveryRow) => d.lease_owner === null;

/**
 * The PostgreSQL store: the shared query code, with the delivery hot path written as single
 * statements. Every statement is a round trip through loopback TCP, and profiles of the worker
 * and API processes spent 35-52 % of their time in those socket writes; data-modifying CTEs let
 * PostgreSQL do in one statement (and one implicit transaction) what took four to six.
 */
export class PostgresStore extends SqlStore {
  constructor(
    db: Kysely<Database>,
    /** Sessions with synchronous_commit=off, for claims and outcome writes. */
    private readonly relaxed: Kysely<Database>,
    /** The connection pools under `db` and `relaxed`, for the hot path's prepared statements. */
    private readonly pools: { durable: pg.Pool; relaxed: pg.Pool },
    /**
     * A batch carrying more text than this is written by the shared, chunked code instead: one
     * JSON value of every payload could outgrow what V8 allows in a string (about 512 MiB) or
     * PostgreSQL in a value (1 GB).
     */
    private readonly oneStatementMaxChars: number,
    /** The NOTIFY channel for due work (see dueChannel). */
    private readonly channel: string,
    hooks: DialectHooks,
  ) {
    super(db, hooks);
  }

  /**
   * Bumped when a prepared statement's result type changed under it (a migration run by a newer
   * process added a column to a table a `returning *` reads): new names, prepared afresh.
   */
  private statementGeneration = 0;

  /** Runs a hot-path statement as a named prepared statement (see statementName). */
  private async prepared<R>(pool: pg.Pool, query: RawBuilder<R>): Promise<R[]> {
    const q = query.compile(this.db);
    const run = () => pool.query({ name: `${statementName(q.sql)}_${this.statementGeneration}`, text: q.sql, values: q.parameters as unknown[] });
    try {
      return (await run()).rows as R[];
    } catch (e) {
      // 0A000 "cached plan must not change result type"; the statement did not run.
      if ((e as { code?: string })?.code !== '0A000') throw e;
      this.statementGeneration++;
      return (await run()).rows as R[];
    }
  }

  /** The earliest due time, as a prepared statement: the worker asks after every claim. */
  override async nextDueAt(after?: number): Promise<number | null> {
    const rows = await this.prepared(
      this.pools.relaxed,
      after === undefined
        ? sql<{ next: number | null }>`select min(due_at) as next from deliveries where due_at is not null`
        : sql<{ next: number | null }>`select min(due_at) as next from deliveries where due_at is not null and due_at > ${after}`,
    );
    return rows[0]?.next == null ? null : Number(rows[0].next);
  }

  /** As a prepared statement, on the relaxed sessions (a read; their plans keep to indexes). */
  override listEnabledEndpoints(appIds: string[]): Promise<EndpointRow[]> {
    return this.prepared(this.pools.relaxed, sql<EndpointRow>`select * from endpoints where app_id = any(${[...new Set(appIds)]}::text[]) and disabled = 0`);
  }

  /** This process's copies of applications' enabled endpoints, oldest first (see routeMessages). */
  private readonly routed = new Map<string, RoutedApp>();

  /**
   * Routes from this process's copy of each application's enabled endpoints, read again after
   * ROUTING_TTL_MS, with a guard that makes insertMessages check the copy in its own statement.
   * A group-commit batch then takes one round trip instead of two: at a steady 1,000 messages/s
   * the routing read, though 15 µs of server time, took 2 ms at the median and 11-17 ms at p99 of
   * the ingest path on a busy machine, the time to get a turn of the server's process and back.
   */
  override async routeMessages(appIds: string[], opts: { fresh?: boolean } = {}): Promise<Routing> {
    const ids = [...new Set(appIds)];
    if (ids.length === 0) return { endpoints: [] };
    const now = Date.now();
    const read = opts.fresh ? ids : ids.filter((id) => !((this.routed.get(id)?.until ?? 0) > now));
    const fetched = new Map<string, RoutedApp>();
    if (read.length) {
      for (const id of read) fetched.set(id, { endpoints: [], version: null, until: now + ROUTING_TTL_MS });
      const rows = await this.prepared(this.pools.relaxed, sql<EndpointRow & { routing_version: string }>`
        select v.version as routing_version, e.* from endpoints e join (${routingVersions(read)}) v on v.app_id = e.app_id
         where e.app_id = any(${read}::text[]) and e.disabled = 0`);
      for (const { routing_version, ...ep } of rows) {
        const app = fetched.get(ep.app_id)!;
        app.endpoints.push(ep);
        app.version = routing_version;
      }
      for (const [id, app] of fetched) {
        this.routed.delete(id);
        this.routed.set(id, app);
      }
      for (const id of this.routed.keys()) {
        if (this.routed.size <= ROUTING_MAX_APPS) break;
        this.routed.delete(id);
      }
    }
    const endpoints: EndpointRow[] = [];
    const versions: { app_id: string; version: string }[] = [];
    for (const id of ids) {
      const app = fetched.get(id) ?? this.routed.get(id)!;
      for (const ep of app.endpoints) endpoints.push(ep);
      if (app.version !== null) versions.push({ app_id: id, version: app.version });
    }
    return { endpoints, guard: { appIds: ids, versions } };
  }

  /** True when every application's version (see routingVersions) is still the guard's. */
  private routingUnchanged(guard: RoutingGuard) {
    return sql<boolean>`not exists (
      select 1 from (${routingVersions([...guard.appIds])}) a
        full join json_to_recordset(${JSON.stringify(guard.versions)}::json) as x(app_id text, version text) on x.app_id = a.app_id
       where a.version is distinct from x.version)`;
  }

  /** A stale copy is read again by the next routeMessages, fresh or not. */
  private routingWasStale(guard: RoutingGuard): never {
    for (const id of guard.appIds) this.routed.delete(id);
    throw new StaleRoutingError();
  }

  protected override relaxedStatement<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    return fn(this.relaxed);
  }

  /** A single statement commits on its own, and PostgreSQL's commit waits for the WAL flush. */
  protected override durableStatement<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    return fn(this.db);
  }

  /**
   * Messages, their deliveries and the NOTIFY that wakes other processes' workers (for the rows
   * not leased at insert by this process's worker), in one
   * statement: deliveries go in only for messages that did (a repeated eventId is skipped by
   * ON CONFLICT, its deliveries with it), and the notification is sent when the statement commits.
   */
  override async insertMessages(batch: NewMessage[], guard?: RoutingGuard): Promise<InsertMessageResult[]> {
    if (batch.length === 0) return [];
    if (textOf(batch.flatMap((b) => [b.message.payload, b.idempotency?.response])) > this.oneStatementMaxChars) {
      // Checked just before the chunked transaction, as a routing read just before it would be.
      if (guard) {
        const [check] = await this.prepared(this.pools.durable, sql<{ ok: boolean }>`select ${this.routingUnchanged(guard)} as ok`);
        if (!check.ok) this.routingWasStale(guard);
      }
      const results = await super.insertMessages(batch);
      const endpointIds = new Set(batch.flatMap((b, i) => (results[i].ok ? b.deliveries.filter(awaitsClaim).map((d) => d.endpoint_id) : [])));
      // Committed already: a lost signal only leaves the work to the workers' poll.
      if (endpointIds.size) await this.notifyDue(endpointIds).catch(() => {});
      return results;
    }
    const deliveries = batch.flatMap((b) => b.deliveries);
    const unclaimed = deliveries.filter(awaitsClaim);
    const endpointIds = [...new Set(unclaimed.map((d) => d.endpoint_id))].join(',');
    // With a guard, nothing goes in (and nobody is woken) unless the routing was still current.
    const routed = guard ? sql`(select ok from g)` : sql`true`;
    const check = guard ? sql`g as (select ${this.routingUnchanged(guard)} as ok),` : sql``;
    const gate = guard ? sql`where (select ok from g)` : sql``;
    const notify = unclaimed.length ? sql`, case when ${routed} then pg_notify(${this.channel}, ${endpointIds.length < 7000 ? endpointIds : ''}) end` : sql``;
    const deliveryInsert = deliveries.length
      ? sql`, d as (${insertJsonRows('deliveries', deliveries)} where message_id in (select id from m))`
      : sql``;
    const completions = batch.flatMap((b) => (b.idempotency ? [{ ...b.idempotency, messageId: b.message.id }] : []));
    const idempotency = completions.length
      ? sql`, i as (
          update idempotency_keys k set status_code = v."statusCode", response = v.response, expires_at = least(k.expires_at, v."expiresAt")
            from json_to_recordset(${JSON.stringify(completions)}::json)
                 as v("environmentId" text, key text, "statusCode" integer, response text, "expiresAt" bigint, "messageId" text)
           where k.environment_id = v."environmentId" and k.key = v.key and v."messageId" in (select id from m))`
      : sql``;
    // On a durable session (the 202 waits for this commit); its plan has no table to scan.
    const rows = await this.prepared(this.pools.durable, sql<{ ids: string[]; routed: boolean }>`
      with ${check}
      m as (${insertJsonRows('messages', batch.map((b) => b.message))} ${gate} on conflict do nothing returning id)
      ${deliveryInsert}
      ${idempotency}
      select array(select id from m) as ids, ${routed} as routed ${notify}`);
    if (guard && !rows[0].routed) this.routingWasStale(guard);
    const inserted = new Set(rows[0].ids);
    const results: InsertMessageResult[] = [];
    for (const item of batch) {
      if (inserted.has(item.message.id)) {
        results.push({ ok: true });
        continue;
      }
      results.push(await this.refusedAsDuplicate(this.db, item.message));
    }
    return results;
  }

  /**
   * The claim, with the due rows it takes locked first and collected into an array, then updated
   * by primary key. Written as `id in (select … limit n)` the planner saw a semi-join of unknown
   * size and, while the table was small or its statistics were not yet gathered (a new
   * deployment, the first minutes after a burst), scanned all of deliveries for every claim;
   * measured with auto_explain during a steady 1,000 messages/s, a quarter of the slow claims.
   */
  protected override claimStatement(owner: string, now: number, leaseUntil: number, limit: number, excludeEndpointIds: string[]) {
    const exclude = excludeEndpointIds.length ? sql`and endpoint_id <> all(${excludeEndpointIds}::text[])` : sql``;
    return sql<DeliveryRow>`
      update deliveries
         set status = ${Status.sending}, due_at = ${leaseUntil}, lease_owner = ${owner}, updated_at = ${now}
       where id = any(array(
         select id from deliveries
          where due_at is not null and due_at <= ${now} ${exclude}
          order by due_at
          limit ${limit} for update skip locked))
      returning *`;
  }

  /**
   * The claim and the reads of its messages and endpoints, as one statement. Each message and
   * endpoint comes once, as JSON on the first of its deliveries' rows (a fan-out claim would
   * otherwise repeat a payload per endpoint), and one value per row, never one aggregate of the
   * whole batch (50 payloads of many megabytes would make a string longer than V8 allows).
   */
  override async claimDue(owner: string, now: number, leaseUntil: number, limit: number, excludeEndpointIds: string[]): Promise<ClaimedDelivery[]> {
    const rows = await this.prepared(this.pools.relaxed, sql<DeliveryRow & { _message: MessageRow | null; _endpoint: EndpointRow | null }>`
      with c as (${this.claimStatement(owner, now, leaseUntil, limit, excludeEndpointIds)})
      select c.*,
             case when row_number() over (partition by c.message_id order by c.id) = 1
                  then (select row_to_json(m) from messages m where m.id = c.message_id) end as _message,
             case when row_number() over (partition by c.endpoint_id order by c.id) = 1
                  then (select row_to_json(e) from endpoints e where e.id = c.endpoint_id) end as _endpoint
        from c
       order by c.id`);
    const msgById = new Map<string, MessageRow>();
    const epById = new Map<string, EndpointRow>();
    const deliveries = rows.map(({ _message, _endpoint, ...d }) => {
      if (_message) msgById.set(_message.id, _message);
      if (_endpoint) epById.set(_endpoint.id, _endpoint);
      return normalizeDelivery(d);
    });
    return deliveries.map((d) => ({ delivery: d, message: msgById.get(d.message_id) ?? null, endpoint: epById.get(d.endpoint_id) ?? null }));
  }

  /**
   * A batch of successes (the common case) is one statement: attempt rows, delivery states fenced
   * by lease owner, and the end of those endpoints' failure streaks. A batch with a failure or a
   * 410 reads and writes endpoint health per endpoint, in one transaction.
   */
  override async settle(batch: Settlement[], opts: SettleOptions): Promise<DisabledEndpoint[]> {
    if (batch.length === 0) return [];
    if (batch.some((s) => s.health === 'failure' || s.disableNow)) return super.settle(batch, opts);
    if (textOf(batch.map((s) => s.attempt?.response)) > this.oneStatementMaxChars) return super.settle(batch, opts);
    const attempts = batch.flatMap((s) => (s.attempt ? [s.attempt] : []));
    const states = batch.map((s) => ({ id: s.deliveryId, owner: s.leaseOwner, status: s.status, due_at: s.dueAt, attempts: s.attempts, last_attempt_at: s.attempt?.created_at ?? null }));
    const healthy = [...new Set(batch.filter((s) => s.health === 'success').map((s) => s.endpointId))];
    // The ids again as an array: the planner counts its elements (it takes any set-returning
    // function for 100 rows), so it looks the rows up by primary key instead of scanning a
    // deliveries table it believes small, as it did for a new deployment's first 10,000 rows.
    const ids = states.map((s) => s.id);
    const attemptInsert = attempts.length ? sql`a as (${insertJsonRows('attempts', attempts)}),` : sql``;
    await this.prepared(this.pools.relaxed, sql`
      with ${attemptInsert}
      v as (select * from json_to_recordset(${JSON.stringify(states)}::json)
              as v(id text, owner text, status integer, due_at bigint, attempts integer, last_attempt_at bigint)),
      u as (
        update deliveries
           set status = v.status, due_at = v.due_at, attempts = v.attempts, lease_owner = null,
               last_attempt_at = coalesce(v.last_attempt_at, deliveries.last_attempt_at), updated_at = ${opts.now}
          from v
         where deliveries.id = any(${ids}::text[]) and deliveries.id = v.id and deliveries.lease_owner = v.owner)
      update endpoints set failing_since = null
       where id = any(${healthy}::text[]) and failing_since is not null`);
    return [];
  }
}
