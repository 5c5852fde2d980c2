/**
 * Baseline: the do-it-yourself sender. The application enqueues one BullMQ job per (message,
 * endpoint) into a local Redis (queue.add, or queue.addBulk for a batch); one worker process
 * (bullmq-worker.ts) signs and posts. Redis is the one already answering on 127.0.0.1:6379, or
 * one the benchmark starts (`redis-server --save '' --appendonly no`) and stops by pid.
 */
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { ROOT, freePort, startProcess, stopProcess, tsxArgs, waitUntil, type Child } from '../lib/proc.js';
import type { Deployment, EndpointTarget, StartOptions, SystemDef } from './types.js';

const PREFIX = 'kbench';
let redis: { host: string; port: number; child: Child | null } | null = null;

async function pingRedis(host: string, port: number): Promise<boolean> {
  const client = new Redis({ host, port, lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

async function ensureRedis(): Promise<{ host: string; port: number }> {
  if (redis) return redis;
  const host = process.env.BENCH_REDIS_HOST ?? '127.0.0.1';
  const port = Number(process.env.BENCH_REDIS_PORT ?? 6379);
  if (await pingRedis(host, port)) {
    redis = { host, port, child: null };
    return redis;
  }
  const own = await freePort();
  const child = startProcess('redis', 'redis-server', ['--port', String(own), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  const up = await waitUntil(() => pingRedis('127.0.0.1', own), 15_000, 100);
  if (!up) {
    await stopProcess(child, 2_000);
    throw new Error('no Redis answers on 127.0.0.1:6379 and `redis-server` could not be started (is it installed?)');
  }
  process.stderr.write(`  (started redis-server on 127.0.0.1:${own}, pid ${child.pid})\n`);
  redis = { host: '127.0.0.1', port: own, child };
  return redis;
}

export const bullmqBaseline: SystemDef = {
  id: 'bullmq',
  label: 'BullMQ + Redis + undici (DIY)',
  async start(opts: StartOptions): Promise<Deployment> {
    const r = await ensureRedis();
    const queueName = `q-${opts.tag}`;
    const worker = startProcess(`${opts.tag}-bullmq-worker`, process.execPath, tsxArgs(path.join(ROOT, 'bench', 'systems', 'bullmq-worker.ts')), {
      ipc: true,
      env: {
        ...process.env,
        BENCH_QUEUE: queueName,
        BENCH_PREFIX: PREFIX,
        BENCH_REDIS_HOST: r.host,
        BENCH_REDIS_PORT: String(r.port),
        BENCH_CONCURRENCY: String(opts.bullmqConcurrency),
      },
    });
    const replies: ((m: { type: string }) => void)[] = [];
    let ready!: () => void;
    const readyP = new Promise<void>((res) => (ready = res));
    worker.proc.on('message', (m: { type: string }) => (m.type === 'ready' ? ready() : replies.shift()?.(m)));
    const ok = await Promise.race([readyP.then(() => true), worker.exited.then(() => false), new Promise<boolean>((res) => setTimeout(() => res(false), 30_000))]);
    if (!ok) {
      await stopProcess(worker, 2_000);
      throw new Error(`the BullMQ worker did not start; see bench/results/logs/${opts.tag}-bullmq-worker.log`);
    }
    const queue = new Queue(queueName, {
      connection: { host: r.host, port: r.port, maxRetriesPerRequest: null },
      prefix: PREFIX,
      defaultJobOptions: { attempts: 5, backoff: { type: 'exponential', delay: 1_000 }, removeOnComplete: true, removeOnFail: 1000 },
    });
    await queue.waitUntilReady();
    let endpointCount = 0;
    let next = 0;
    const jobsFor = (body: string) => {
      const id = `msg_${opts.tag}_${next++}`;
      const jobs = [];
      for (let e = 0; e < endpointCount; e++) jobs.push({ name: 'deliver', data: { e, id, body } });
      return jobs;
    };
    let stopped = false;
    return {
      maxBatch: 1000,
      async addEndpoints(targets: EndpointTarget[]) {
        const answered = new Promise<void>((res, rej) => {
          const t = setTimeout(() => rej(new Error('the BullMQ worker did not take the endpoints')), 10_000);
          replies.push(() => (clearTimeout(t), res()));
        });
        worker.proc.send({ type: 'endpoints', endpoints: targets });
        await answered;
        endpointCount = targets.length;
      },
      async createOne(body: string) {
        const jobs = jobsFor(body);
        if (jobs.length === 1) await queue.add(jobs[0].name, jobs[0].data);
        else await queue.addBulk(jobs);
      },
      async createMany(bodies: string[]) {
        await queue.addBulk(bodies.flatMap(jobsFor));
      },
      processes: () => [{ role: 'worker', pid: worker.pid }],
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopProcess(worker, 20_000);
        await queue.obliterate({ force: true }).catch((e) => process.stderr.write(`obliterate ${queueName}: ${(e as Error).message}\n`));
        await queue.close();
      },
    };
  },
  async shutdown() {
    if (redis?.child) await stopProcess(redis.child, 5_000);
    redis = null;
  },
};
