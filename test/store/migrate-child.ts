/**
 * Opens the SQLite store at argv[2], migrates it and gets (or creates) the default environment, as
 * a starting Koppel does, for the test of several processes starting on one fresh file at once.
 * Waits for the start time in argv[3] first so the processes (which take different times to load)
 * reach migrate() together. Prints "migrated; default environment <id>" and exits 0, or the error
 * and exits 1.
 */
import { newEnvironmentRows } from '../../src/environments/routes.js';
import { openSqliteStore } from '../../src/store/sqlite.js';

const [file, startAt] = process.argv.slice(2);
await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())));
const store = openSqliteStore(file);
try {
  await store.migrate();
  const env = await store.firstEnvironmentOrCreate(() => newEnvironmentRows('default'));
  console.log(`migrated; default environment ${env.id}`);
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  await store.close();
}
