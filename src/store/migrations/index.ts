/**
 * Migrations are numbered, forward-only and embedded in the build (imported here, not read from
 * disk). The runner applies each pending one in a transaction (on PostgreSQL one each; on SQLite
 * all of them in the one that holds the write lock while it migrates), records its name, and
 * refuses to start when the database holds a migration this build does not know (a newer Koppel
 * ran against it) or when applied names are out of order.
 */
import type { Kysely } from 'kysely';
import * as m001 from './001-initial.js';
import * as m002 from './002-endpoint-rates.js';
import * as m003 from './003-sources-transformations.js';
import * as m004 from './004-retention-indexes.js';
import * as m005 from './005-idempotency-credentials.js';

export interface Migration {
  name: string;
  up: (db: Kysely<any>) => Promise<void>;
}

export const MIGRATIONS: Migration[] = [
  { name: '001-initial', up: m001.up },
  { name: '002-endpoint-rates', up: m002.up },
  { name: '003-sources-transformations', up: m003.up },
  { name: '004-retention-indexes', up: m004.up },
  { name: '005-idempotency-credentials', up: m005.up },
];
