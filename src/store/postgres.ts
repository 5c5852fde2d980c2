/**
 * PostgreSQL: many API and worker processes over one database. Claims use FOR UPDATE SKIP LOCKED
 * so concurrent workers never take the same row; migrations run under an advisory lock so
 * processes starting together do not race.
 */
import pg from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import type { Database } from './schema.js';
import { SqlStore } from './sql-store.js';

// int8 (bigint) columns hold millisecond timestamps, far inside Number's safe range.
pg.types.setTypeParser(20, (v) => Number(v));

const MIGRATION_LOCK = 7_462_021;

export function openPostgresStore(url: string, opts: { max?: number; schema?: string } = {}): SqlStore {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    options: opts.schema ? `-c search_path=${opts.schema}` : undefined,
  });
  // An idle client that loses its connection must not crash the process.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return new SqlStore(db, {
    name: 'postgres',
    withMigrationLock: async (database, fn) =>
      database.connection().execute(async (conn) => {
        await sql`select pg_advisory_lock(${MIGRATION_LOCK})`.execute(conn);
        try {
          return await fn();
        } finally {
          await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`.execute(conn);
        }
      }),
    isUniqueViolation: (e) => (e as { code?: string })?.code === '23505',
    claimLockClause: 'for update skip locked',
    close: async () => {},
  });
}
