/**
 * Indexes for the retention job's queries (SqlStore.purgeExpired), so that each of its passes
 * reads only the rows it removes instead of scanning whole tables. Attempts need none: they are
 * purged by a range of their time-ordered ids on the primary key, which adds no index to
 * maintain on the busiest table.
 */
import type { Kysely } from 'kysely';
import { sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // Payloads still held, by when they expire. Partial: a payload removed leaves the index, so the
  // rows a pass looks at are exactly the ones whose payload is due to go.
  await db.schema
    .createIndex('messages_payload_expires')
    .on('messages')
    .column('expires_at')
    .where(sql.ref('payload'), 'is not', null)
    .execute();
  // Messages whose payload is gone, by id (= creation time): the rows a pass removes once they
  // are past the retention period. Empty until payloads are removed, so inserts never touch it.
  await db.schema
    .createIndex('messages_payload_gone_id')
    .on('messages')
    .column('id')
    .where(sql.ref('payload'), 'is', null)
    .execute();
  await db.schema.createIndex('idempotency_keys_expires').on('idempotency_keys').column('expires_at').execute();
  await db.schema.createIndex('operational_events_created').on('operational_events').column('created_at').execute();
}
