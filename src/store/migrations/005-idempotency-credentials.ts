/**
 * Idempotency records no longer keep an answer that carries a credential (src/http/idempotency.ts,
 * IdempotencyPolicy), but an earlier Koppel stored them whole: a new API key (`kpl_…`, otherwise
 * kept only as a hash), an environment's first key, a portal token (`kpp_…`). Their bodies are
 * blanked here rather than left until the keys expire. Such a record still answers a repeat as
 * its route's policy says (409 for a key, a fresh portal token), which needs only its status.
 * Message answers (create, bulk, send-example, all with an `eventType`) are left alone even if a
 * payload happens to contain such text: a replay must return them whole.
 */
import type { Kysely } from 'kysely';
import { sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`update idempotency_keys set response = ''
             where (response like ${'%"kpl\\_%'} escape '\\' or response like ${'%"kpp\\_%'} escape '\\')
               and response not like ${'%"eventType"%'}`.execute(db);
}
