/**
 * Runs one delivery scenario against one system, from scratch: a fresh receiver, a fresh
 * deployment (new database / queue), endpoints, load, a bounded wait for every delivery, then
 * the receiver's verdict, memory and CPU of the system's processes, and everything stopped.
 */
import os from 'node:os';
import { steady, type LoadResult } from '../lib/load.js';
import { cpuSecondsOf, machineBusySeconds, memoryOf, sleep } from '../lib/proc.js';
import { startReceiver, type Receiver } from '../lib/receiver-client.js';
import type { EndpointSpec, GroupSummary, LatencySummary } from '../lib/receiver-protocol.js';
import { newSecret, nowMs } from '../lib/webhook.js';
import type { Deployment, StartOptions, SystemDef, SystemId } from '../systems/types.js';

export interface EndpointGroup {
  group: string;
  count: number;
  delayMs?: number;
  hang?: boolean;
  /** Missing deliveries are losses (default true). */
  checkLoss?: boolean;
}

export interface DeliveryScenario {
  id: string;
  title: string;
  endpoints: EndpointGroup[];
  /** Messages created (seq 0..messages-1); each goes to every endpoint. */
  messages: number;
  /** The group whose latency and throughput are reported. */
  mainGroup: string;
  /**
   * Creates the messages; resolves once sending ended, `settled` once every create answered.
   * Must stop creating by `deadline` (ms, nowMs clock).
   */
  load(d: Deployment, deadline: number): Promise<{ settled: Promise<LoadResult> }>;
  /**
   * Before measuring: this many messages/s for this many seconds to the same endpoints, marked
   * as warm-up (connections, JIT, caches); the measurement starts once they are delivered.
   */
  warmup?: { rate: number; seconds: number };
  /** How long to wait for deliveries after sending ended. */
  waitMs: number;
  /** Then: stop the hanging endpoint and wait up to this much longer for stragglers. */
  drainMs?: number;
}

export interface ProcessSample {
  role: string;
  pid: number;
  peakMiB: number | null;
  cpuSeconds: number | null;
}

export interface ScenarioResult {
  system: SystemId;
  scenario: string;
  run: number;
  ok: boolean;
  error: string | null;
  load: LoadResult | null;
  groups: GroupSummary[];
  /** Deliveries expected in groups that count losses: accepted messages × endpoints. */
  expected: number;
  delivered: number;
  lost: number;
  duplicates: number;
  badSignatures: number;
  /** Main group: deliveries per second from first create to last receipt. */
  throughput: number | null;
  latency: LatencySummary | null;
  processes: ProcessSample[];
  /** CPU seconds the whole machine was busy during the scenario (every process, all cores). */
  machineBusySeconds: number | null;
  /** 1-minute load average of the machine just before the scenario (others' work shows here). */
  loadBefore: number;
  wallSeconds: number;
}

export interface RunContext {
  run: number;
  runId: string;
  /** Time budget of the whole benchmark (nowMs clock): waits are cut short to fit it. */
  deadline: number;
  start: Omit<StartOptions, 'tag'>;
  log: (line: string) => void;
}

export async function runDeliveryScenario(system: SystemDef, sc: DeliveryScenario, ctx: RunContext): Promise<ScenarioResult> {
  const tag = `${ctx.runId}-r${ctx.run}-${system.id}-${sc.id}`;
  const loadBefore = os.loadavg()[0];
  const t0 = nowMs();
  const busy0 = machineBusySeconds();
  const specs: EndpointSpec[] = sc.endpoints.flatMap((g) =>
    Array.from({ length: g.count }, () => ({ secret: newSecret(), group: g.group, delayMs: g.delayMs ?? 0, hang: g.hang ?? false, expected: sc.messages, checkLoss: g.checkLoss ?? true })),
  );
  const checked = specs.filter((s) => s.checkLoss).length;
  const base: ScenarioResult = {
    system: system.id, scenario: sc.id, run: ctx.run, ok: false, error: null, load: null, groups: [], expected: 0, delivered: 0, lost: 0,
    duplicates: 0, badSignatures: 0, throughput: null, latency: null, processes: [], machineBusySeconds: null, loadBefore, wallSeconds: 0,
  };
  let receiver: Receiver | null = null;
  let dep: Deployment | null = null;
  try {
    receiver = await startReceiver(`${tag}-receiver`, specs);
    dep = await system.start({ ...ctx.start, tag });
    const cpu0 = new Map(dep.processes().map((p) => [p.pid, cpuSecondsOf(p.pid) ?? 0]));
    await dep.addEndpoints(receiver.urls.map((url, i) => ({ url, secret: specs[i].secret })));

    const budget = (ms: number) => Math.min(ms, Math.max(5_000, ctx.deadline - nowMs()));
    if (sc.warmup) {
      const w = await steady(dep, sc.warmup.rate, sc.warmup.seconds * 1000, { maxInFlight: 2000, graceMs: 5_000, settleMs: 30_000, warmup: true });
      // Not w.settled: with an endpoint that never answers, a raw client's creates wait for it.
      const until = nowMs() + budget(60_000);
      for (let i = 0; i < 10_000 && nowMs() < until; i++) {
        if ((await receiver.status()).warmup >= w.sent * checked) break;
        await sleep(100);
      }
    }
    const { settled } = await sc.load(dep, nowMs() + budget(600_000));
    let load: LoadResult | null = null;
    void settled.then((r) => (load = r));
    const target = () => (load ? (load as LoadResult).created : sc.messages) * checked;
    const waitFor = async (until: number) => {
      for (let i = 0; i < 100_000 && nowMs() < until; i++) {
        const st = await receiver!.status();
        if (load && st.unique >= target()) return true;
        await sleep(200);
      }
      return false;
    };
    const complete = await waitFor(nowMs() + budget(sc.waitMs));
    if (sc.drainMs !== undefined) {
      await receiver.unhang();
      if (!complete) {
        ctx.log(`\n    not complete after ${Math.round(sc.waitMs / 1000)} s; the hanging endpoint now answers, waiting up to ${Math.round(sc.drainMs / 1000)} s more`);
        await waitFor(nowMs() + budget(sc.drainMs));
      }
    }
    base.load = await settled;
    base.groups = await receiver.collect();
    base.processes = dep.processes().map((p) => ({
      role: p.role,
      pid: p.pid,
      peakMiB: memoryOf(p.pid)?.peakMiB ?? null,
      cpuSeconds: (() => {
        const c = cpuSecondsOf(p.pid);
        return c === null ? null : c - (cpu0.get(p.pid) ?? 0);
      })(),
    }));
  } catch (e) {
    base.error = (e as Error).message;
  } finally {
    if (dep) await dep.stop().catch((e) => ctx.log(`    stopping ${system.id} failed: ${(e as Error).message}`));
    if (receiver) await receiver.stop();
  }
  const busy1 = machineBusySeconds();
  base.machineBusySeconds = busy0 !== null && busy1 !== null ? busy1 - busy0 : null;
  base.wallSeconds = (nowMs() - t0) / 1000;
  if (base.error) return base;

  const checkedGroups = base.groups.filter((g) => g.checkLoss);
  const load = base.load!;
  base.expected = load.created * checked;
  base.delivered = checkedGroups.reduce((a, g) => a + g.unique, 0);
  base.lost = Math.max(0, base.expected - base.delivered);
  base.duplicates = checkedGroups.reduce((a, g) => a + g.duplicates, 0);
  base.badSignatures = base.groups.reduce((a, g) => a + g.badSignatures, 0);
  const main = base.groups.find((g) => g.group === sc.mainGroup);
  if (main && main.unique > 0 && main.firstCreate !== null && main.lastReceipt !== null) {
    base.throughput = main.unique / Math.max(0.001, (main.lastReceipt - main.firstCreate) / 1000);
    base.latency = main.latency;
  }
  const problems: string[] = [];
  if (load.failed) problems.push(`${load.failed} creates failed (${load.firstError})`);
  if (load.skipped) problems.push(`${load.skipped} messages not created within the time limit`);
  if (base.lost) problems.push(`${base.lost} of ${base.expected} deliveries lost`);
  if (base.badSignatures) problems.push(`${base.badSignatures} bad signatures`);
  const unexpected = base.groups.reduce((a, g) => a + g.unexpected, 0);
  if (unexpected) problems.push(`${unexpected} unexpected requests`);
  base.ok = problems.length === 0;
  base.error = problems.length ? problems.join('; ') : null;
  return base;
}
