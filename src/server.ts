/**
 * Assembles a Koppel process from its configuration: store, keys, HTTP API and/or delivery
 * worker by role. Used by main.ts and by tests that need a whole server.
 */
import path from 'node:path';
import { pino, type Logger } from 'pino';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import type { Context } from './context.js';
import { SecretBox, loadOrCreateMasterKey } from './crypto/secret-box.js';
import { createFileOnce, readIfExists } from './lib/key-file.js';
import { DeliveryWorker } from './delivery/worker.js';
import { newEnvironmentRows } from './environments/routes.js';
import { buildApp } from './http/app.js';
import { Authenticator, generateApiKey } from './http/auth.js';
import { ApplicationCache } from './applications/cache.js';
import { MessageWriter } from './messages/message-writer.js';
import { Metrics } from './metrics/metrics.js';
import { metricsRoutes } from './metrics/routes.js';
import { healthRoutes } from './health/routes.js';
import { RetentionJob } from './retention/retention-job.js';
import { openStore } from './store/index.js';
import type { Store } from './store/port.js';

export interface Koppel {
  config: Config;
  ctx: Context;
  app: FastifyInstance;
  worker: DeliveryWorker | null;
  /** Base URL this process listens on (a worker-only process serves health and metrics). */
  url: string | null;
  /** The generated admin key, when this start created or read one from the data directory. */
  generatedAdminKey: string | null;
  close(): Promise<void>;
}

/**
 * Reads or creates `<dataDir>/admin.key` (mode 0600). Processes starting together on one data
 * directory all take the key that was written first.
 */
function loadOrCreateAdminKey(dataDir: string): string {
  const file = path.join(dataDir, 'admin.key');
  if (readIfExists(file) === null) createFileOnce(file, generateApiKey() + '\n');
  const key = (readIfExists(file) ?? '').trim();
  // The same floor as KOPPEL_ADMIN_API_KEY: an emptied or truncated file must not become a key.
  if (key.length < 16) throw new Error(`${file} does not hold an admin API key (at least 16 characters). Delete it to have a new key generated at the next start, or set KOPPEL_ADMIN_API_KEY.`);
  return key;
}

/**
 * The environment the admin key acts on: the first one, created at the first start. Processes
 * starting together on a fresh database (two API processes of one deployment) must agree on it,
 * so the store looks and creates under its migration lock.
 */
async function defaultEnvironment(store: Store): Promise<string> {
  // Its first key is never shown (the admin key is this environment's credential); it is listed
  // like any environment's first key and can be revoked.
  return (await store.firstEnvironmentOrCreate(() => newEnvironmentRows('default'))).id;
}

export async function startKoppel(config: Config, opts: { logger?: Logger; listen?: boolean; store?: Store } = {}): Promise<Koppel> {
  const log = opts.logger ?? pino({ level: config.logLevel, base: { service: 'koppel' } });
  let masterKey = config.secretKey;
  if (!masterKey) {
    if (config.production) throw new Error('KOPPEL_SECRET_KEY is required in production mode; generate one with: openssl rand -base64 32');
    masterKey = loadOrCreateMasterKey(config.dataDir);
  }
  const box = SecretBox.fromMasterKey(masterKey);
  const store = opts.store ?? (await openStore(config));
  await store.migrate();
  const defaultEnvironmentId = await defaultEnvironment(store);

  const adminKeys: string[] = [];
  let generatedAdminKey: string | null = null;
  if (config.adminApiKey) {
    adminKeys.push(config.adminApiKey);
  } else {
    generatedAdminKey = loadOrCreateAdminKey(config.dataDir);
    adminKeys.push(generatedAdminKey);
  }

  let worker: DeliveryWorker | null = null;
  const metrics = new Metrics(store);
  // New work: wake this process's worker at once, and (on PostgreSQL) every other process's.
  const wake = (endpointIds?: Iterable<string>) => {
    worker?.wake(endpointIds);
    if (store.dialect === 'postgres') store.notifyDue(endpointIds).catch((e) => log.warn({ err: e }, 'NOTIFY failed; workers fall back to polling'));
  };
  const ctx: Context = {
    config,
    store,
    box,
    log,
    metrics,
    auth: new Authenticator(store, adminKeys, () => defaultEnvironmentId),
    apps: new ApplicationCache(store),
    messages: new MessageWriter(
      store,
      (accepted, endpointIds) => {
        metrics.messagesCreated.inc(accepted);
        // insertMessages has already signalled other processes (on PostgreSQL, in its statement).
        if (endpointIds.size) worker?.wake(endpointIds);
      },
      () => worker,
    ),
    wake,
    defaultEnvironmentId,
  };
  let app: FastifyInstance;
  let url: string | null = null;
  if (config.role !== 'worker') {
    app = await buildApp(ctx);
  } else {
    // A worker process serves only its health and metrics.
    app = Fastify({ logger: false });
    metricsRoutes(app, metrics);
    healthRoutes(app, ctx);
  }
  if (opts.listen !== false) {
    const address = await app.listen({ port: config.port, host: config.host });
    url = address.replace('[::]', 'localhost').replace('0.0.0.0', 'localhost');
    // On a random port (KOPPEL_PORT=0, as in tests) the default public URL names port 0; links
    // Koppel generates (portal access) must use the real one.
    if (config.port === 0 && config.publicUrl === 'http://localhost:0') config.publicUrl = url;
  }
  // Deliver only once the (CPU-heavy) HTTP setup is done: attempts started during it would wait
  // on a blocked event loop, time out or outlive their lease, and be sent twice.
  let unlisten: (() => Promise<void>) | null = null;
  let retention: RetentionJob | null = null;
  if (config.role !== 'api') {
    worker = new DeliveryWorker({ config, store, box, log, onAttempt: (a) => metrics.recordAttempt(a) });
    worker.start();
    unlisten = await store.onDue((endpointIds) => worker?.wake(endpointIds));
    retention = new RetentionJob(store, config.retentionMs, config.retentionIntervalMs, log);
    retention.start();
  }

  let closing: Promise<void> | null = null;
  return {
    config, ctx, app, worker, url, generatedAdminKey,
    close() {
      closing ??= (async () => {
        // Stop taking requests first (answered ones are committed), then drain deliveries.
        if (app) await app.close();
        if (unlisten) await unlisten();
        if (retention) await retention.stop();
        if (worker) await worker.stop();
        await store.close();
      })();
      return closing;
    },
  };
}
