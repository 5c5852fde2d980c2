/** Opens the store the configuration asks for. */
import path from 'node:path';
import type { Config } from '../config.js';
import type { Store } from './port.js';
import { openSqliteStore } from './sqlite.js';

export async function openStore(config: Pick<Config, 'databaseUrl' | 'dataDir'>): Promise<Store> {
  if (config.databaseUrl) {
    const { openPostgresStore } = await import('./postgres.js');
    return openPostgresStore(config.databaseUrl);
  }
  return openSqliteStore(path.join(config.dataDir, 'koppel.db'));
}
