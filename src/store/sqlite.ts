/**
 * The embedded default: one SQLite file in the data directory, WAL journal, synchronous=FULL so a
 * commit that answered 2xx survives power loss, not just a process crash.
 */
import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import type { Database } from './schema.js';
import { SqlStore } from './sql-store.js';

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

export function openSqliteStore(file: string): SqlStore {
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
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(conn) }) });
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
  return new SqlStore(db, {
    name: 'sqlite',
    // One process owns an SQLite file; the file lock is the migration lock.
    withMigrationLock: (database, fn) => fn(database),
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
