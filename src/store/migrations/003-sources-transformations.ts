/**
 * The receiving and connecting side: sources (provider webhooks in), their event log and
 * de-duplication keys, and per-endpoint auth, transformation and versions (the change history
 * that rollback restores from).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sources')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment_id', 'text', (c) => c.notNull())
    .addColumn('app_id', 'text', (c) => c.notNull())
    .addColumn('uid', 'text')
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    // Provider options, event type and de-duplication settings as JSON text.
    .addColumn('config', 'text', (c) => c.notNull())
    // The verification secret, sealed with the SecretBox like endpoint secrets.
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('disabled', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('sources_app_uid').unique().on('sources').columns(['app_id', 'uid']).execute();
  await db.schema.createIndex('sources_app_id').on('sources').columns(['app_id', 'id']).execute();

  await db.schema
    .createTable('source_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('app_id', 'text', (c) => c.notNull())
    .addColumn('environment_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('event_type', 'text')
    .addColumn('dedupe_key', 'text')
    .addColumn('message_id', 'text')
    .addColumn('headers', 'text', (c) => c.notNull())
    .addColumn('payload', 'text')
    .addColumn('body_bytes', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('source_events_source_id').on('source_events').columns(['source_id', 'id']).execute();
  await db.schema.createIndex('source_events_created').on('source_events').column('created_at').execute();

  // One row per de-duplication key still inside its window; the primary key makes "first one
  // wins" hold across processes without a lock.
  await db.schema
    .createTable('source_dedupe')
    .addColumn('source_id', 'text', (c) => c.notNull())
    .addColumn('key_hash', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('source_dedupe_pk', ['source_id', 'key_hash'])
    .execute();
  await db.schema.createIndex('source_dedupe_expires').on('source_dedupe').column('expires_at').execute();

  // Sealed auth for the target API, the transformation (JSON), and the current version number.
  await db.schema.alterTable('endpoints').addColumn('auth', 'text').execute();
  await db.schema.alterTable('endpoints').addColumn('transformation', 'text').execute();
  await db.schema.alterTable('endpoints').addColumn('version', 'integer', (c) => c.notNull().defaultTo(1)).execute();

  await db.schema
    .createTable('endpoint_versions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('endpoint_id', 'text', (c) => c.notNull())
    .addColumn('app_id', 'text', (c) => c.notNull())
    .addColumn('environment_id', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('snapshot', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('endpoint_versions_endpoint_version').unique().on('endpoint_versions').columns(['endpoint_id', 'version']).execute();
  await db.schema.createIndex('endpoint_versions_endpoint_id').on('endpoint_versions').columns(['endpoint_id', 'id']).execute();
}
