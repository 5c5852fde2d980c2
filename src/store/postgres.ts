/**
 * PostgreSQL: many API and worker processes over one database. Claims use FOR UPDATE SKIP LOCKED
 * so concurrent workers never take the same row; migrations run under an advisory lock so
 * processes starting together do not race; new work is announced with NOTIFY so idle workers in
 * other processes wake at once instead of at their next poll.
 */
import pg from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import type { Database } from './schema.js';
import { SqlStore } from './sql-store.js';

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
const CHANNEL = 'koppel_due';

export interface PostgresOptions {
  /** Pool size per process. */
  max?: number;
  /** Schema to use (search_path); tests give each run its own. */
  schema?: string;
}

export function openPostgresStore(url: string, opts: PostgresOptions = {}): SqlStore {
  const options = opts.schema ? `-c search_path=${opts.schema}` : undefined;
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, options });
  // An idle client that loses its connection must not crash the process; the next query reports it.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const listeners = new Set<pg.Client>();
  return new SqlStore(db, {
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
    isUnavailable: isPostgresUnavailable,
    // 22021: "invalid byte sequence for encoding UTF8: 0x00"; 22P05: untranslatable character.
    isInvalidText: (e) => ['22021', '22P05'].includes(String((e as { code?: string })?.code ?? '')),
    isUniqueViolation: (e) => (e as { code?: string })?.code === '23505',
    claimLockClause: 'for update skip locked',
    relaxedTransaction: (database, fn) =>
      database.transaction().execute(async (tx) => {
        await sql`set local synchronous_commit = off`.execute(tx);
        return fn(tx);
      }),
    // PostgreSQL's commit waits for the WAL flush on its own server process; nothing blocks here.
    durableTransaction: (database, fn) => database.transaction().execute(fn),
    notify: async (database, payload) => {
      await sql`select pg_notify(${CHANNEL}, ${payload})`.execute(database);
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
          await c.query(`listen ${CHANNEL}`);
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
    },
  });
}
