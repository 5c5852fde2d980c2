/**
 * The baseline's worker process: what a TypeScript team writes instead of a webhooks platform.
 * A BullMQ worker takes delivery jobs from Redis, signs each with HMAC-SHA256 (Standard Webhooks)
 * and posts it with undici; a non-2xx or a timeout fails the job and BullMQ retries it with
 * exponential backoff. Completed jobs are removed: there is no attempt log.
 *
 * Endpoints (url, secret) arrive over IPC before any job, as they would from the team's own
 * database, cached in memory.
 */
import { Worker, type Job } from 'bullmq';
import { Agent, request } from 'undici';
import { secretKey, signedHeaders } from '../lib/webhook.js';

interface DeliveryJob {
  /** Endpoint index. */
  e: number;
  /** Message id (webhook-id). */
  id: string;
  body: string;
}

const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_MS ?? 15_000);
const endpoints: { url: string; key: Buffer }[] = [];
const agent = new Agent({ headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS, connectTimeout: 10_000, keepAliveTimeout: 30_000 });

async function deliver(job: Job<DeliveryJob>): Promise<void> {
  const { e, id, body } = job.data;
  const ep = endpoints[e];
  if (!ep) throw new Error(`unknown endpoint ${e}`);
  const res = await request(ep.url, { method: 'POST', headers: signedHeaders(ep.key, id, body), body, dispatcher: agent });
  await res.body.dump();
  if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`endpoint answered ${res.statusCode}`);
}

const worker = new Worker<DeliveryJob>(process.env.BENCH_QUEUE!, deliver, {
  connection: { host: process.env.BENCH_REDIS_HOST ?? '127.0.0.1', port: Number(process.env.BENCH_REDIS_PORT ?? 6379), maxRetriesPerRequest: null },
  prefix: process.env.BENCH_PREFIX ?? 'kbench',
  concurrency: Number(process.env.BENCH_CONCURRENCY ?? 1000),
  removeOnComplete: { count: 0 },
  removeOnFail: { count: 1000 },
});
worker.on('error', (e) => process.stderr.write(`worker error: ${e.message}\n`));

process.on('message', (raw) => {
  const m = raw as { type: 'endpoints'; endpoints: { url: string; secret: string }[] };
  if (m.type === 'endpoints') {
    endpoints.length = 0;
    for (const ep of m.endpoints) endpoints.push({ url: ep.url, key: secretKey(ep.secret) });
    process.send?.({ type: 'ok' });
  }
});

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  const force = setTimeout(() => process.exit(1), TIMEOUT_MS + 2_000);
  void worker
    .close()
    .then(() => agent.close())
    .finally(() => {
      clearTimeout(force);
      process.exit(0);
    });
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
void worker.waitUntilReady().then(() => process.send?.({ type: 'ready' }));
