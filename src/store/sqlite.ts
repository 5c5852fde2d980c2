/**
 * The embedded default: one SQLite file in the data directory, WAL journal, synchronous=FULL so a
 * commit that answered 2xx survives power loss, not just a process crash.
 */
import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { Database } from './schema.js';
import { SqlStore } from './sql-store.js';

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
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: conn }) });
  return new SqlStore(db, {
    name: 'sqlite',
    // One process owns an SQLite file; the file lock is the migration lock.
    withMigrationLock: (database, fn) => fn(database),
    isUniqueViolation: (e) => (e as { code?: string })?.code === 'SQLITE_CONSTRAINT_UNIQUE' || (e as { code?: string })?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY',
    claimLockClause: '',
    close: async () => {
      if (conn.open) conn.close();
    },
  });
}
