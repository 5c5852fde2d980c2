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

export function openSqliteStore(file: string): SqlStore {
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
    relaxedTransaction: (database, fn) =>
      // Hold the one connection so no API write runs while synchronous is relaxed.
      database.connection().execute(async (conn) => {
        await sql`pragma synchronous = NORMAL`.execute(conn);
        try {
          return await conn.transaction().execute(fn);
        } finally {
          await sql`pragma synchronous = FULL`.execute(conn);
        }
      }),
    close: async () => {
      if (conn.open) conn.close();
    },
  });
}
