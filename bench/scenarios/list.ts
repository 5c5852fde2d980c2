/**
 * (f) Koppel only: API list and filter latency with many stored messages.
 *
 * Seeds a Koppel SQLite database directly (Koppel's own openSqliteStore + insertMessages, in
 * batches, no deliveries), then starts Koppel on it and times, one request at a time:
 *   GET /api/v1/app/{app}/msg?limit=50                     (newest page)
 *   … &event_types=<one of 10 types>                       (10 % of messages match)
 *   … &channel=<one of 100 channels>                        (1 % match)
 *   … &before=<a random time within the stored range>
 * each `requests` times after a short warm-up, in `runs` fresh Koppel processes on the same file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newId } from '../../src/lib/ids.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { NewMessage } from '../../src/store/port.js';
import type { MessageRow } from '../../src/store/schema.js';
import { cpuSecondsOf, memoryOf, onCleanup, stopProcess } from '../lib/proc.js';
import { nowMs } from '../lib/webhook.js';
import { ADMIN_KEY, APP_UID, KoppelApi, startKoppelProcess } from '../systems/koppel.js';
import type { StartOptions } from '../systems/types.js';

export const LIST_QUERIES = ['newest', 'event_types', 'channel', 'before'] as const;
export type ListQuery = (typeof LIST_QUERIES)[number];

export interface ListRun {
  run: number;
  queries: Record<ListQuery, { p50: number; p99: number; max: number; count: number; errors: number; firstError: string | null }>;
  peakMiB: number | null;
  cpuSeconds: number | null;
}

export interface ListResult {
  messages: number;
  seedSeconds: number;
  dbMiB: number;
  runs: ListRun[];
  error: string | null;
}

const EVENT_TYPES = 10;
const CHANNELS = 100;
const SPAN_MS = 7 * 86_400_000;

/** A small deterministic PRNG (mulberry32) so every run asks the same questions. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function seed(dataDir: string, n: number, log: (s: string) => void): Promise<{ first: number; last: number }> {
  const store = openSqliteStore(path.join(dataDir, 'koppel.db'));
  try {
    await store.migrate();
    const env = (await store.listEnvironments({ limit: 1, after: null, order: 'asc' })).items[0];
    if (!env) throw new Error('the seeded database has no environment (Koppel did not initialise it)');
    const app = await store.getApplication(env.id, APP_UID);
    if (!app) throw new Error(`application ${APP_UID} is missing in the seeded database`);
    const now = Date.now();
    const first = now - SPAN_MS;
    const step = SPAN_MS / n;
    const pad = 'p'.repeat(160);
    const BATCH = 5000;
    let lastReport = nowMs();
    for (let i = 0; i < n; ) {
      const batch: NewMessage[] = [];
      for (const end = Math.min(n, i + BATCH); i < end; i++) {
        const created = Math.floor(first + i * step);
        const type = `bench.type${i % EVENT_TYPES}`;
        const message: MessageRow = {
          id: newId('msg', created), environment_id: env.id, app_id: app.id, event_type: type, event_id: null,
          channels: JSON.stringify([`ch-${i % CHANNELS}`]), tags: null,
          payload: `{"seq":${i},"type":"${type}","pad":"${pad}"}`, created_at: created, expires_at: now + 30 * 86_400_000,
        };
        batch.push({ message, deliveries: [] });
      }
      await store.insertMessages(batch);
      if (nowMs() - lastReport > 10_000) {
        lastReport = nowMs();
        log(`    seeded ${i.toLocaleString('en-US')} of ${n.toLocaleString('en-US')} messages`);
      }
    }
    return { first, last: first + (n - 1) * step };
  } finally {
    await store.close();
  }
}

function pct(sorted: number[], p: number) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] : NaN;
}

export async function runListScenario(opts: { messages: number; requests: number; runs: number; tag: string; start: Omit<StartOptions, 'tag'>; log: (s: string) => void }): Promise<ListResult> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'koppel-bench-list-'));
  const removeDir = async () => fs.rmSync(dataDir, { recursive: true, force: true });
  const unregister = onCleanup(removeDir);
  const result: ListResult = { messages: opts.messages, seedSeconds: 0, dbMiB: 0, runs: [], error: null };
  const settings = { KOPPEL_DATA_DIR: dataDir, KOPPEL_ADMIN_API_KEY: ADMIN_KEY, KOPPEL_ALLOWED_NETWORKS: '127.0.0.0/8', KOPPEL_LOG_LEVEL: 'warn', ...opts.start.koppelEnv };
  try {
    // Let Koppel create its database (migrations, environment), then the application.
    const init = await startKoppelProcess(`${opts.tag}-f-init`, 'all', settings);
    const api0 = new KoppelApi(init.url, 4);
    await api0.json('POST', '/api/v1/app', { name: 'Benchmark', uid: APP_UID });
    await api0.close();
    await stopProcess(init.child);

    const t0 = nowMs();
    const range = await seed(dataDir, opts.messages, opts.log);
    result.seedSeconds = (nowMs() - t0) / 1000;
    result.dbMiB = fs.readdirSync(dataDir).filter((f) => f.startsWith('koppel.db')).reduce((a, f) => a + fs.statSync(path.join(dataDir, f)).size, 0) / 1048576;
    opts.log(`    seeded ${opts.messages.toLocaleString('en-US')} messages in ${result.seedSeconds.toFixed(1)} s (${result.dbMiB.toFixed(0)} MiB)`);

    for (let run = 1; run <= opts.runs; run++) {
      const k = await startKoppelProcess(`${opts.tag}-f-run${run}`, 'all', settings, opts.start.koppelNodeArgs);
      const api = new KoppelApi(k.url, 1);
      const cpu0 = cpuSecondsOf(k.child.pid) ?? 0;
      const rand = prng(42);
      const paths: Record<ListQuery, () => string> = {
        newest: () => `/api/v1/app/${APP_UID}/msg?limit=50`,
        event_types: () => `/api/v1/app/${APP_UID}/msg?limit=50&event_types=bench.type${Math.floor(rand() * EVENT_TYPES)}`,
        channel: () => `/api/v1/app/${APP_UID}/msg?limit=50&channel=ch-${Math.floor(rand() * CHANNELS)}`,
        before: () => `/api/v1/app/${APP_UID}/msg?limit=50&before=${encodeURIComponent(new Date(range.first + rand() * (range.last - range.first)).toISOString())}`,
      };
      const lr = { run, queries: {} as ListRun['queries'], peakMiB: null as number | null, cpuSeconds: null as number | null };
      try {
        for (const q of LIST_QUERIES) {
          const times: number[] = [];
          let errors = 0;
          let firstError: string | null = null;
          const deadline = nowMs() + 120_000;
          for (let i = 0; i < opts.requests + 5 && nowMs() < deadline; i++) {
            const p = paths[q]();
            const s = nowMs();
            const r = await api.call('GET', p);
            const ms = nowMs() - s;
            if (r.status !== 200) {
              errors++;
              firstError ??= `${r.status}: ${r.text.slice(0, 200)}`;
            } else if (i >= 5) {
              times.push(ms); // the first 5 are warm-up
            }
          }
          times.sort((a, b) => a - b);
          lr.queries[q] = { p50: pct(times, 50), p99: pct(times, 99), max: times[times.length - 1] ?? NaN, count: times.length, errors, firstError };
          opts.log(`    run ${run} ${q.padEnd(12)} p50 ${lr.queries[q].p50.toFixed(1)} ms  p99 ${lr.queries[q].p99.toFixed(1)} ms${errors ? `  ${errors} errors: ${firstError}` : ''}`);
        }
        lr.peakMiB = memoryOf(k.child.pid)?.peakMiB ?? null;
        const c = cpuSecondsOf(k.child.pid);
        lr.cpuSeconds = c === null ? null : c - cpu0;
      } finally {
        await api.close();
        await stopProcess(k.child);
      }
      result.runs.push(lr);
    }
  } catch (e) {
    result.error = (e as Error).message;
  } finally {
    unregister();
    await removeDir();
  }
  return result;
}
