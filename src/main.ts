#!/usr/bin/env node
/**
 * Entry point: `node dist/main.js [--role api|worker|all]`. Loads the configuration, starts the
 * parts of Koppel the role asks for, and drains cleanly on SIGTERM/SIGINT.
 */
import { applyHeapGrowth } from './lib/heap-growth.js';
import { ConfigError, loadConfig, type Role } from './config.js';
import { startKoppel } from './server.js';

function roleFromArgs(argv: string[]): Role | undefined {
  const i = argv.findIndex((a) => a === '--role' || a.startsWith('--role='));
  if (i < 0) return undefined;
  const v = argv[i].includes('=') ? argv[i].split('=')[1] : argv[i + 1];
  if (v !== 'api' && v !== 'worker' && v !== 'all') {
    console.error(`--role must be api, worker or all (got "${v ?? ''}").`);
    process.exit(2);
  }
  return v;
}

async function main() {
  applyHeapGrowth();
  let config;
  try {
    const role = roleFromArgs(process.argv.slice(2));
    config = loadConfig(process.env, role ? { role } : {});
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`Koppel cannot start; fix the configuration:\n${e.message}`);
      process.exit(2);
    }
    throw e;
  }
  const koppel = await startKoppel(config);
  const log = koppel.ctx.log;
  const store = config.databaseUrl ? 'PostgreSQL' : `SQLite in ${config.dataDir}`;
  if (koppel.url) {
    const api = config.role !== 'worker';
    const lines = [
      '',
      `  Koppel is running (${config.role}) on ${store}`,
      api ? `  API:       ${config.publicUrl}/api/v1` : `  Metrics:   ${koppel.url}/metrics (this process delivers; it serves no API)`,
      api ? `  API docs:  ${config.publicUrl}/docs` : '',
      api ? `  Dashboard: ${config.publicUrl}/  (sign in with the admin key)` : '',
      api && config.adminApiKey ? '  Admin key: the value of KOPPEL_ADMIN_API_KEY' : '',
      api && koppel.generatedAdminKey ? `  Admin key: ${koppel.generatedAdminKey}  (kept in ${config.dataDir}/admin.key)` : '',
      '',
    ].filter((l, i, a) => l !== '' || i === 0 || i === a.length - 1);
    process.stderr.write(lines.join('\n') + '\n');
  }
  log.info({ role: config.role, url: koppel.url, store: koppel.ctx.store.dialect }, 'koppel started');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining: finishing requests and attempts in flight');
    koppel.close().then(
      () => {
        log.info('stopped cleanly');
        process.exit(0);
      },
      (e) => {
        log.error({ err: e }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
