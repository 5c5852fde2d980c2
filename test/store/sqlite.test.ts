/** The store contract against SQLite: a fresh database file in its own temp directory per test. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { Store } from '../../src/store/port.js';
import { storeContract } from './store.contract.js';

const dirs = new Map<Store, string>();

storeContract(
  'sqlite',
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'koppel-store-'));
    const store = openSqliteStore(path.join(dir, 'koppel.db'));
    dirs.set(store, dir);
    await store.migrate();
    return store;
  },
  async (store) => {
    await store.close();
    const dir = dirs.get(store);
    dirs.delete(store);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  },
);
