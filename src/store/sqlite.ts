/**
 * The embedded default: one SQLite file in the data directory, WAL journal, synchronous=FULL so a
 * commit that answered 2xx survives power loss, not just a process crash.
 */
import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import type { ClaimedDelivery, DisabledEndpoint, InsertMessageResult, NewMessage, SettleOptions, Settlement } from './port.js';
import type { Database, DeliveryRow, EndpointRow, MessageRow } from './schema.js';
import { SqlStore, type DialectHooks } from './sql-store.js';

/**
 * Kysely prepares every statement anew; preparing was a tenth of the worker's CPU time at a few
 * thousand deliveries per second. The same SQL text always compiles to the same statement, so a
 * bounded cache keyed by the text is safe. (Statements with IN lists of varying length are
 * different texts and simply take more entries.)
 */
function withStatementCache(conn: SQLite.Database): SQLite.Database {
  const cache = new Map<string, SQLite.Statement>();
  const prepare = conn.prepare.bind(conn);
  return new Proxy(conn, {
    get(target, prop, receiver) {
      if (prop !== 'prepare') {
        const value = Reflect.get(target, prop, receiver);
        // Native methods must run on the real object, not the proxy.
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return (text: string) => {
        let stmt = cache.get(text);
        if (!stmt) {
          stmt = prepare(text);
          if (cache.size >= 500) cache.delete(cache.keys().next().value!);
          cache.set(text, stmt);
        }
        return stmt;
      };
    },
  });
}

/**
 * fdatasync of the WAL file on the libuv thread pool, for commits made with synchronous=NORMAL
 * (which write their WAL frames but do not sync them). A synced WAL holds every transaction
 * committed before the sync started, exactly what synchronous=FULL gives each commit, but the
 * event loop keeps running while the disk works: on this machine a FULL commit stopped it for
 * about 1.5 ms, a sixth of the process's time at 1,000 messages/s. Callers that arrive while a
 * sync runs share the next one (that one may have started before their commit).
 */
class WalSync {
  private handle: Promise<fs.promises.FileHandle> | null = null;
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;

  constructor(private readonly walFile: string) {}

  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.syncOnce().finally(() => {
        this.running = null;
      });
      return this.running;
    }
    this.next ??= this.running
      .catch(() => {})
      .then(() => {
        this.next = null;
        return this.sync();
      });
    return this.next;
  }

  private async syncOnce(): Promise<void> {
    // The WAL file keeps its inode while the database is open (SQLite rewinds it after a
    // checkpoint rather than replacing it), and fdatasync on any descriptor of a file flushes
    // all of the file's written data.
    this.handle ??= fs.promises.open(this.walFile, 'r+');
    try {
      await (await this.handle).datasync();
    } catch (e) {
      // The caller's batch fails (its messages are not acknowledged); the next sync reopens.
      await this.close();
      throw e;
    }
  }

  async close() {
    const h = this.handle;
    this.handle = null;
    await h?.then((fh) => fh.close()).catch(() => {});
  }
}

export function openSqliteStore(file: string): SqliteStore {
  const wal = file === ':memory:' ? null : new WalSync(`${file}-wal`);
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const conn = new SQLite(file);
  conn.pragma('journal_mode = WAL');
  conn.pragma('synchronous = FULL');
  conn.pragma('busy_timeout = 5000');
  conn.pragma('foreign_keys = OFF');
  // SQLite's LIKE ignores ASCII case by default; PostgreSQL's does not. The channel filter uses
  // LIKE for an exact, case-sensitive match (as routing does), so make SQLite agree.
  conn.pragma('case_sensitive_like = ON');
  // One statement cache for Kysely's queries and SqliteStore's own.
  const cached = withStatementCache(conn);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: cached }) });
  const relaxedTransaction = <T>(database: Kysely<Database>, fn: (tx: Kysely<Database>) => Promise<T>): Promise<T> =>
    // Hold the one connection so no API write runs while synchronous is relaxed.
    database.connection().execute(async (conn) => {
      await sql`pragma synchronous = NORMAL`.execute(conn);
      try {
        return await conn.transaction().execute(fn);
      } finally {
        await sql`pragma synchronous = FULL`.execute(conn);
      }
    });
  return new SqliteStore(db, cached, wal, {
    name: 'sqlite',
    // Several processes may start on one file at once (split roles on one machine): the first
    // to take SQLite's write lock (BEGIN IMMEDIATE; the others wait in busy_timeout) reads which
    // migrations are applied and applies the rest before any other process can look.
    withMigrationLock: (database, fn) =>
      database.connection().execute(async (conn) => {
        await sql`begin immediate`.execute(conn);
        try {
          const result = await fn(conn);
          await sql`commit`.execute(conn);
          return result;
        } catch (e) {
          await sql`rollback`.execute(conn).catch(() => {});
          throw e;
        }
      }),
    migrationLockIsTransaction: true,
    // SQLITE_BUSY/LOCKED outlast busy_timeout only when another process holds the write lock.
    isUnavailable: (e) => /^SQLITE_(BUSY|LOCKED)/.test(String((e as { code?: string })?.code ?? '')),
    // SQLite stores any text, NUL included.
    isInvalidText: () => false,
    isUniqueViolation: (e) => (e as { code?: string })?.code === 'SQLITE_CONSTRAINT_UNIQUE' || (e as { code?: string })?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY',
    claimLockClause: '',
    relaxedTransaction,
    durableTransaction: async (database, fn) => {
      const result = await relaxedTransaction(database, fn);
      // An in-memory database has nothing to make durable.
      if (wal) await wal.sync();
      return result;
    },
    close: async () => {
      await wal?.close();
      if (conn.open) conn.close();
    },
  });
}

/**
 * The SQLite store: the shared query code, with the delivery hot path (message ingest, claims,
 * outcome writes) run as prepared better-sqlite3 statements in one synchronous transaction each.
 * Through Kysely every statement was a query tree built, compiled and awaited, and every row of a
 * multi-row insert a node of that tree: a fifth of the burst's CPU went to Kysely and the promises
 * around it, and much of the garbage. A synchronous transaction also cannot interleave with
 * anything else on the one connection, so it needs no more than Kysely's connection lock.
 */
export class SqliteStore extends SqlStore {
  private readonly inserts = new Map<string, SQLite.Statement>();
  private readonly inTransaction: <T>(fn: () => T) => T;

  constructor(
    db: Kysely<Database>,
    /** The connection Kysely uses (through its statement cache), for the statements below. */
    private readonly conn: SQLite.Database,
    /** Syncs the WAL for durable writes; null for an in-memory database. */
    private readonly wal: WalSync | null,
    hooks: DialectHooks,
  ) {
    super(db, hooks);
    const run = conn.transaction((fn: () => unknown) => fn());
    this.inTransaction = run as <T>(fn: () => T) => T;
  }

  /** A prepared statement from the connection's cache (withStatementCache). */
  private statement(text: string): SQLite.Statement {
    return this.conn.prepare(text);
  }

  /**
   * `insert into <table> (<every column>) values (@<column>, …)`, prepared once per table from the
   * table's own column list and bound by name to the row object itself (no per-row query text or
   * value array). A row type missing a column fails loudly ("Missing named parameter").
   */
  private insertRow(table: 'messages' | 'deliveries' | 'attempts', row: object, tail = ''): SQLite.RunResult {
    const key = `${table} ${tail}`;
    let stmt = this.inserts.get(key);
    if (!stmt) {
      const columns = (this.conn.prepare(`pragma table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
      stmt = this.conn.prepare(`insert into ${table} (${columns.join(', ')}) values (${columns.map((c) => '@' + c).join(', ')}) ${tail}`);
      this.inserts.set(key, stmt);
    }
    return stmt.run(row);
  }

  /**
   * Runs `fn` as one transaction that commits without waiting for the disk (see
   * DialectHooks.relaxedTransaction), holding Kysely's lock on the connection so no Kysely
   * transaction is open around it.
   */
  private relaxed<T>(fn: () => T): Promise<T> {
    return this.db.connection().execute(async () => {
      this.statement('pragma synchronous = NORMAL').run();
      try {
        return this.inTransaction(fn);
      } finally {
        this.statement('pragma synchronous = FULL').run();
      }
    });
  }

  override async insertMessages(batch: NewMessage[]): Promise<InsertMessageResult[]> {
    if (batch.length === 0) return [];
    const results = await this.relaxed(() =>
      batch.map((item): InsertMessageResult => {
        // ON CONFLICT DO NOTHING: a repeated eventId is skipped, with its deliveries.
        if (this.insertRow('messages', item.message, 'on conflict do nothing').changes === 0) {
          const existing = this.statement('select id from messages where app_id = ? and event_id = ?').get(item.message.app_id, item.message.event_id) as { id: string } | undefined;
          return { ok: false, reason: 'duplicate_event_id', existingId: existing?.id ?? '' };
        }
        for (const d of item.deliveries) this.insertRow('deliveries', d);
        const idem = item.idempotency;
        if (idem) this.statement('update idempotency_keys set status_code = ?, response = ?, expires_at = min(expires_at, ?) where environment_id = ? and key = ?').run(idem.statusCode, idem.response, idem.expiresAt, idem.environmentId, idem.key);
        return { ok: true };
      }),
    );
    // Acknowledged only once the WAL holding them is on disk.
    if (this.wal) await this.wal.sync();
    return results;
  }

  /**
   * The shared claim statement, then the claimed rows' messages and endpoints, in one
   * transaction: one commit per claim, and the reads see exactly what was claimed.
   */
  override async claimDue(owner: string, now: number, leaseUntil: number, limit: number, excludeEndpointIds: string[]): Promise<ClaimedDelivery[]> {
    const claim = this.claimStatement(owner, now, leaseUntil, limit, excludeEndpointIds).compile(this.db);
    return this.relaxed(() => {
      // better-sqlite3 returns integers as numbers already: no normalizeDelivery copy needed.
      const deliveries = this.statement(claim.sql).all(claim.parameters) as DeliveryRow[];
      if (deliveries.length === 0) return [];
      const msgById = new Map<string, MessageRow>();
      const epById = new Map<string, EndpointRow>();
      const messageIds = JSON.stringify([...new Set(deliveries.map((d) => d.message_id))]);
      for (const m of this.statement('select * from messages where id in (select value from json_each(?))').all(messageIds) as MessageRow[]) msgById.set(m.id, m);
      const endpointIds = JSON.stringify([...new Set(deliveries.map((d) => d.endpoint_id))]);
      for (const e of this.statement('select * from endpoints where id in (select value from json_each(?))').all(endpointIds) as EndpointRow[]) epById.set(e.id, e);
      deliveries.sort((a, b) => (a.id < b.id ? -1 : 1));
      return deliveries.map((d) => ({ delivery: d, message: msgById.get(d.message_id) ?? null, endpoint: epById.get(d.endpoint_id) ?? null }));
    });
  }

  /**
   * A batch without failures (the common case) in one transaction of prepared statements: the
   * attempt rows, each delivery's new state fenced by lease owner, and the end of those endpoints'
   * failure streaks. A batch with a failure or a 410 takes the shared code, which reads and
   * writes endpoint health.
   */
  override async settle(batch: Settlement[], opts: SettleOptions): Promise<DisabledEndpoint[]> {
    if (batch.length === 0) return [];
    if (batch.some((s) => s.health === 'failure' || s.disableNow)) return super.settle(batch, opts);
    await this.relaxed(() => {
      const update = this.statement(
        `update deliveries
            set status = ?, due_at = ?, attempts = ?, lease_owner = null, last_attempt_at = coalesce(?, last_attempt_at), updated_at = ?
          where id = ? and lease_owner = ?`,
      );
      const healthy = new Set<string>();
      for (const s of batch) {
        if (s.attempt) this.insertRow('attempts', s.attempt);
        update.run(s.status, s.dueAt, s.attempts, s.attempt?.created_at ?? null, opts.now, s.deliveryId, s.leaseOwner);
        if (s.health === 'success') healthy.add(s.endpointId);
      }
      const clear = this.statement('update endpoints set failing_since = null where id = ? and failing_since is not null');
      for (const id of healthy) clear.run(id);
    });
    return [];
  }

  /** The earliest due time (after `after`), from the partial index; run after every claim loop. */
  override async nextDueAt(after?: number): Promise<number | null> {
    const r = await this.db.connection().execute(async () =>
      after === undefined
        ? (this.statement('select min(due_at) as next from deliveries where due_at is not null').get() as { next: number | null })
        : (this.statement('select min(due_at) as next from deliveries where due_at is not null and due_at > ?').get(after) as { next: number | null }),
    );
    return r.next == null ? null : Number(r.next);
  }
}
