/**
 * `tsx bench/store-probe.ts [--messages=N] [--pg=postgres://…] [--runs=N]`: the store's own cost
 * per message on the delivery hot path, without HTTP, workers or other processes: message ingest
 * in bulk batches, claims of 50, and batches of successful outcomes with their attempt rows, the
 * way the burst scenario drives them. Prints CPU µs per message for each phase (this process's
 * CPU from process.cpuUsage, so a PostgreSQL server's own work is not in it) and wall time.
 *
 * The benchmark's scenarios are the comparable figures; this probe is for trying a store change
 * quickly and with little noise (one process, nothing else competing for the cores).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newId } from '../src/lib/ids.js';
import { openPostgresStore } from '../src/store/postgres.js';
import type { Settlement, Store } from '../src/store/port.js';
import { Status, type AttemptRow, type DeliveryRow, type MessageRow } from '../src/store/schema.js';
import { openSqliteStore } from '../src/store/sqlite.js';

const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=').slice(1).join('=') ?? fallback;
const total = Number(arg('messages', '30000'));
const runs = Number(arg('runs', '3'));
const pgUrl = arg('pg', '');
const INGEST_BATCH = 500;
const CLAIM_BATCH = 50;
const SETTLE_BATCH = 36;

const payload = JSON.stringify({ type: 'invoice.paid', data: { id: 'in_1', customer: 'cus_1', lines: Array.from({ length: 8 }, (_, i) => ({ id: `li_${i}`, amount: 1000 + i, description: 'x'.repeat(60) })) } });

async function openProbeStore(run: number): Promise<{ store: Store; cleanup: () => Promise<void> }> {
  if (pgUrl) {
    const { default: pg } = await import('pg');
    const schema = `probe_${process.pid}_${run}`;
    const admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    await admin.query(`create schema ${schema}`);
    const store = openPostgresStore(pgUrl, { schema });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await admin.query(`drop schema ${schema} cascade`);
        await admin.end();
      },
    };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'koppel-probe-'));
  const store = openSqliteStore(path.join(dir, 'koppel.db'));
  return {
    store,
    cleanup: async () => {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** CPU time of the whole machine in µs (Linux /proc/stat); on an otherwise idle machine, what
 * this process does not account for is the database server's work for it. */
function machineMicros(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq] = line;
  return ((user + nice + system + irq + softirq) * 1_000_000) / 100;
}

async function probe(run: number) {
  const { store, cleanup } = await openProbeStore(run);
  try {
    await store.migrate();
    const now = Date.now();
    const envId = newId('env');
    const appId = newId('app');
    const endpointId = newId('ep');
    await store.createEnvironment({ id: envId, name: 'probe', created_at: now });
    await store.createApplication({ id: appId, environment_id: envId, uid: null, name: 'probe', throttle_rate: null, metadata: '{}', created_at: now, updated_at: now });
    await store.createEndpoint({
      id: endpointId, environment_id: envId, app_id: appId, uid: null, url: 'http://127.0.0.1:1/hook', description: '', event_types: null, channels: null, metadata: '{}',
      throttle_rate: null, disabled: 0, headers: '{}', secrets: '[]', failing_since: null, created_at: now, updated_at: now, auth: null, transformation: null, version: 1,
    });

    const phases = { ingest: { cpu: 0, wall: 0, server: 0 }, claim: { cpu: 0, wall: 0, server: 0 }, settle: { cpu: 0, wall: 0, server: 0 } };
    const timed = async <T>(phase: keyof typeof phases, fn: () => Promise<T>): Promise<T> => {
      const m = machineMicros();
      const c = cpuMicros();
      const w = performance.now();
      const r = await fn();
      const own = cpuMicros() - c;
      phases[phase].cpu += own;
      phases[phase].wall += performance.now() - w;
      phases[phase].server += Math.max(0, machineMicros() - m - own);
      return r;
    };

    for (let made = 0; made < total; made += INGEST_BATCH) {
      const batch = Array.from({ length: Math.min(INGEST_BATCH, total - made) }, () => {
        const t = Date.now();
        const message: MessageRow = { id: newId('msg', t), environment_id: envId, app_id: appId, event_type: 'invoice.paid', event_id: null, channels: null, tags: null, payload, created_at: t, expires_at: t + 30 * 86_400_000 };
        const delivery: DeliveryRow = {
          id: newId('dlv', t), message_id: message.id, endpoint_id: endpointId, app_id: appId, environment_id: envId, status: Status.pending, due_at: t,
          attempts: 0, trigger_type: 0, lease_owner: null, last_attempt_at: null, created_at: t, updated_at: t,
        };
        return { message, deliveries: [delivery] };
      });
      await timed('ingest', () => store.insertMessages(batch));
    }

    const owner = `probe:${process.pid}`;
    let settled = 0;
    let pending: Settlement[] = [];
    const flush = async () => {
      const part = pending;
      pending = [];
      await timed('settle', () => store.settle(part, { now: Date.now(), disableAfterMs: 5 * 86_400_000 }));
      settled += part.length;
    };
    for (;;) {
      const t = Date.now();
      const claimed = await timed('claim', () => store.claimDue(owner, t + 1000, t + 60_000, CLAIM_BATCH, []));
      if (claimed.length === 0) break;
      for (const c of claimed) {
        const at = Date.now();
        const attempt: AttemptRow = {
          id: newId('atmpt', at), delivery_id: c.delivery.id, message_id: c.delivery.message_id, endpoint_id: endpointId, app_id: appId, environment_id: envId,
          url: 'http://127.0.0.1:1/hook', status: Status.success, response_status_code: 200, response: '', response_truncated: 0, duration_ms: 1, error_class: null, error: null,
          request_headers: JSON.stringify({ 'content-type': 'application/json', 'webhook-id': c.delivery.message_id, 'webhook-timestamp': String(Math.floor(at / 1000)), 'webhook-signature': `v1,${'A'.repeat(44)}` }),
          trigger_type: 0, created_at: at,
        };
        pending.push({ deliveryId: c.delivery.id, leaseOwner: owner, attempt, status: Status.success, dueAt: null, attempts: 1, endpointId, health: 'success', disableNow: false });
        if (pending.length >= SETTLE_BATCH) await flush();
      }
    }
    if (pending.length) await flush();
    if (settled !== total) throw new Error(`settled ${settled} of ${total} messages`);
    return phases;
  } finally {
    await cleanup();
  }
}

const results = [];
for (let run = 1; run <= runs; run++) results.push(await probe(run));
const fmt = (n: number) => n.toFixed(1).padStart(7);
console.log(`${pgUrl ? 'PostgreSQL' : 'SQLite'} store, ${total.toLocaleString('en')} messages, batches: ingest ${INGEST_BATCH}, claim ${CLAIM_BATCH}, settle ${SETTLE_BATCH}`);
console.log('µs per message: cpu = this process, server = rest of the machine meanwhile (the database server, on an idle machine)');
console.log('run   ingest cpu/server/wall   claim cpu/server/wall  settle cpu/server/wall   total cpu  +server');
results.forEach((p, i) => {
  const per = (x: number) => x / total;
  const cols = (x: { cpu: number; server: number; wall: number }) => `${fmt(per(x.cpu))}${fmt(per(x.server))}${fmt(per(x.wall * 1000))}`;
  const cpu = p.ingest.cpu + p.claim.cpu + p.settle.cpu;
  const server = p.ingest.server + p.claim.server + p.settle.server;
  console.log(`${String(i + 1).padEnd(4)} ${cols(p.ingest)}  ${cols(p.claim)}  ${cols(p.settle)}  ${fmt(per(cpu))}  ${fmt(per(server))}`);
});
