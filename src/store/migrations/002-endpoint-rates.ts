/**
 * Token buckets for endpoint rate limits (throttleRate), kept in the database so that every
 * worker process draws from the same bucket.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('endpoint_rates')
    .addColumn('endpoint_id', 'text', (c) => c.primaryKey())
    .addColumn('tokens', 'double precision', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
}
