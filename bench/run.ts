/**
 * `npm run bench [-- options]`: the Koppel benchmark. Runs every selected system through every
 * selected scenario, `runs` times (interleaved: run 1 of every system, then run 2, …), prints the
 * table (median with min–max, and ratios), writes bench/results/<id>.json, latest.json, latest.md
 * and latest.png, and with --docs also docs/benchmarks.png and the results block of
 * docs/benchmarks.md. Exits 1 if any run lost a message or failed otherwise.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { drawChart } from './chart.js';
import { RESULTS_DIR, ROOT, installExitHandlers, onCleanup, runCleanups } from './lib/proc.js';
import { nowMs } from './lib/webhook.js';
import { memoryRows, renderList, renderMemory, renderSummary, summarize, fmtNum, SYSTEM_SHORT } from './lib/report.js';
import { burstScenario } from './scenarios/burst.js';
import { fanoutScenario } from './scenarios/fanout.js';
import { runListScenario, type ListResult } from './scenarios/list.js';
import { runDeliveryScenario, type DeliveryScenario, type RunContext, type ScenarioResult } from './scenarios/runner.js';
import { slowScenario } from './scenarios/slow.js';
import { steadyScenario } from './scenarios/steady.js';
import { timeoutScenario } from './scenarios/timeout.js';
import { bullmqBaseline } from './systems/bullmq.js';
import { ceiling } from './systems/ceiling.js';
import { koppelPostgres, koppelSqlite, snapshotBuild } from './systems/koppel.js';
import { SYSTEM_IDS, type SystemDef, type SystemId } from './systems/types.js';

const USAGE = `npm run bench -- [options]

  --quick                 one run, scenarios a and b, smaller counts (under 3 minutes)
  --only=LIST             systems: ceiling,bullmq,koppel-sqlite,koppel-pg (aliases: sqlite, pg, koppel)
  --scenarios=LIST        a,b,c,d,e,f (default: all; --quick: a,b)
  --runs=N                runs of every scenario (default 3; --quick 1)
  --koppel-env=K=V        extra Koppel setting for every Koppel process (repeatable)
  --cpu-prof              write V8 CPU profiles of the Koppel processes to bench/results/prof/
  --koppel-node-arg=FLAG  extra Node.js/V8 flag for every Koppel process (repeatable), e.g.
                          --koppel-node-arg=--heap-growing-percent=100
  --bullmq-concurrency=N  jobs in flight in the baseline worker (default 1000)
  --list-messages=N       messages stored for scenario f (default 1,000,000; --quick 100,000)
  --budget=SECONDS        time budget of the run; waits are cut short and what does not fit
                          is skipped (default 150; without --quick 3000)
  --report=FILE           print and write the report of a saved run (bench/results/<id>.json)
                          again, without measuring (with --docs: into the docs)
  --docs                  also write docs/benchmarks.png and the results block in docs/benchmarks.md
`;

interface Args {
  quick: boolean;
  systems: SystemId[];
  scenarios: string[];
  runs: number;
  koppelEnv: Record<string, string>;
  cpuProf: boolean;
  koppelNodeArgs: string[];
  bullmqConcurrency: number;
  listMessages: number;
  budgetS: number;
  docs: boolean;
  /** Re-render this saved run instead of measuring. */
  report: string | null;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string) => argv.filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));
  const has = (name: string) => argv.includes(`--${name}`);
  if (has('help') || has('h')) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const known = ['quick', 'only', 'scenarios', 'runs', 'koppel-env', 'koppel-node-arg', 'cpu-prof', 'bullmq-concurrency', 'list-messages', 'budget', 'docs', 'report'];
  for (const a of argv) {
    const name = a.replace(/^--/, '').split('=')[0];
    if (!a.startsWith('--') || !known.includes(name)) {
      process.stderr.write(`unknown option ${a}\n\n${USAGE}`);
      process.exit(2);
    }
  }
  const quick = has('quick');
  const alias: Record<string, SystemId[]> = { sqlite: ['koppel-sqlite'], pg: ['koppel-pg'], postgres: ['koppel-pg'], koppel: ['koppel-sqlite', 'koppel-pg'], baseline: ['bullmq'] };
  const only = get('only').flatMap((v) => v.split(',')).filter(Boolean);
  const systems = only.length ? [...new Set(only.flatMap((s) => alias[s] ?? [s as SystemId]))] : SYSTEM_IDS;
  for (const s of systems) if (!SYSTEM_IDS.includes(s)) throw new Error(`unknown system "${s}"; use ${SYSTEM_IDS.join(', ')}`);
  const scen = get('scenarios').flatMap((v) => v.split(',')).filter(Boolean);
  const scenarios = scen.length ? scen : quick ? ['a', 'b'] : ['a', 'b', 'c', 'd', 'e', 'f'];
  for (const s of scenarios) if (!'abcdef'.includes(s) || s.length !== 1) throw new Error(`unknown scenario "${s}"; use a,b,c,d,e,f`);
  const koppelEnv: Record<string, string> = {};
  for (const kv of get('koppel-env')) {
    const i = kv.indexOf('=');
    if (i < 1 || !kv.startsWith('KOPPEL_')) throw new Error(`--koppel-env wants KOPPEL_NAME=value, got "${kv}"`);
    koppelEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const num = (name: string, def: number, min: number, max: number) => {
    const v = get(name).pop();
    if (v === undefined) return def;
    const n = Number(v.replace(/_/g, ''));
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}`);
    return n;
  };
  return {
    quick,
    systems: SYSTEM_IDS.filter((s) => systems.includes(s)),
    scenarios: [...new Set(scenarios)].sort(),
    runs: num('runs', quick ? 1 : 3, 1, 10),
    koppelEnv,
    cpuProf: has('cpu-prof'),
    koppelNodeArgs: get('koppel-node-arg'),
    bullmqConcurrency: num('bullmq-concurrency', 1000, 1, 100_000),
    listMessages: num('list-messages', quick ? 100_000 : 1_000_000, 1_000, 5_000_000),
    budgetS: num('budget', quick ? 150 : 3000, 10, 24 * 3600),
    docs: has('docs'),
    report: get('report').pop() ?? null,
  };
}

/** The delivery scenarios with their sizes: the issue's numbers, or smaller ones for --quick. */
function deliveryScenarios(args: Args): DeliveryScenario[] {
  const q = args.quick;
  const all: { key: string; make: () => DeliveryScenario }[] = [
    { key: 'a', make: () => burstScenario('bulk', q ? 5_000 : 50_000) },
    { key: 'a', make: () => burstScenario('single', q ? 5_000 : 50_000) },
    { key: 'b', make: () => steadyScenario(1000, q ? 10 : 30) },
    { key: 'c', make: () => fanoutScenario(q ? 100 : 500, 100) },
    { key: 'd', make: () => timeoutScenario(false, 10, 100, q ? 8 : 15) },
    { key: 'd', make: () => timeoutScenario(true, 10, 100, q ? 8 : 15) },
    { key: 'e', make: () => slowScenario(100, 200, 50, q ? 5 : 10) },
  ];
  return all.filter((s) => args.scenarios.includes(s.key)).map((s) => s.make());
}

const SYSTEMS: Record<SystemId, SystemDef> = { ceiling, bullmq: bullmqBaseline, 'koppel-sqlite': koppelSqlite, 'koppel-pg': koppelPostgres };

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    os: `${os.type()} ${os.release()}`,
  };
}

function skipped(system: SystemId, scenario: string, run: number, error: string): ScenarioResult {
  return {
    system, scenario, run, ok: false, error, load: null, groups: [], expected: 0, delivered: 0, lost: 0, duplicates: 0, badSignatures: 0,
    throughput: null, latency: null, processes: [], machineBusySeconds: null, loadBefore: os.loadavg()[0], wallSeconds: 0,
  };
}

function describeResult(r: ScenarioResult): string {
  const parts: string[] = [];
  if (r.throughput !== null) parts.push(`${fmtNum(r.throughput, 'del/s')} del/s`);
  if (r.latency) parts.push(`p50 ${fmtNum(r.latency.p50, 'ms')} / p99 ${fmtNum(r.latency.p99, 'ms')} / max ${fmtNum(r.latency.max, 'ms')} ms`);
  if (r.load && r.load.createRate) parts.push(`created ${fmtNum(r.load.createRate, 'del/s')}/s`);
  if (r.load?.lagP99Ms && r.load.lagP99Ms > 50) parts.push(`sends late by up to ${fmtNum(r.load.lagMaxMs ?? 0, 'ms')} ms`);
  if (r.duplicates) parts.push(`${r.duplicates} duplicates`);
  const mem = r.processes.filter((p) => p.peakMiB !== null).map((p) => `${p.role} ${Math.round(p.peakMiB!)} MiB`);
  if (mem.length) parts.push(`peak RSS ${mem.join(', ')}`);
  return `${parts.join(', ')}  ${r.ok ? 'ok' : `FAILED: ${r.error}`} (${r.wallSeconds.toFixed(0)} s)`;
}

function hasFullResults(): boolean {
  const file = path.join(ROOT, 'docs', 'benchmarks.md');
  if (!fs.existsSync(file)) return false;
  const doc = fs.readFileSync(file, 'utf8');
  const i = doc.indexOf('<!-- bench:full:begin -->');
  const j = doc.indexOf('<!-- bench:full:end -->');
  return i >= 0 && j > i && doc.slice(i, j).includes('|');
}

function writeDocsBlock(block: string, quick: boolean) {
  const file = path.join(ROOT, 'docs', 'benchmarks.md');
  const which = quick ? 'quick' : 'full';
  const begin = `<!-- bench:${which}:begin -->`;
  const end = `<!-- bench:${which}:end -->`;
  const doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  const next = i >= 0 && j > i ? doc.slice(0, i + begin.length) + '\n' + block + '\n' + doc.slice(j) : `${doc.trimEnd()}\n\n${begin}\n${block}\n${end}\n`;
  fs.writeFileSync(file, next);
}

async function main() {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (args.report) {
    // Re-render a saved run (tables, chart, docs) without measuring again.
    const rec = JSON.parse(fs.readFileSync(args.report, 'utf8')) as RunRecord;
    await report(rec, args.docs, (s) => process.stdout.write(s + '\n'));
    return;
  }
  installExitHandlers();
  const started = new Date();
  const runId = started.toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-').slice(2);
  const log = (s: string) => process.stdout.write(s + '\n');
  const profDir = path.join(RESULTS_DIR, 'prof', runId);
  if (args.cpuProf) fs.mkdirSync(profDir, { recursive: true });
  const deadline = nowMs() + args.budgetS * 1000;
  const ctxBase: Omit<RunContext, 'run'> = {
    runId,
    deadline,
    log,
    start: {
      koppelEnv: args.koppelEnv,
      koppelNodeArgs: [...args.koppelNodeArgs, ...(args.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])],
      bullmqConcurrency: args.bullmqConcurrency,
    },
  };
  const m = machine();
  const scenarios = deliveryScenarios(args);
  // The code under test: the commit, and whether src/ had uncommitted changes when it was built.
  const gitInfo = { commit: git(['rev-parse', 'HEAD']), dirty: (git(['status', '--porcelain', '--', 'src']) ?? '') !== '' };
  if (args.systems.some((s) => s.startsWith('koppel'))) {
    const removeBuild = snapshotBuild(path.join(RESULTS_DIR, 'build', runId));
    onCleanup(async () => removeBuild());
  }
  log(`Koppel benchmark ${runId}: ${args.quick ? 'quick, ' : ''}${args.runs} run(s); systems ${args.systems.join(', ')}; scenarios ${args.scenarios.join(',')}`);
  log(`machine: ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB, Node ${m.node}${Object.keys(args.koppelEnv).length ? `; Koppel settings ${JSON.stringify(args.koppelEnv)}` : ''}`);
  for (const sc of scenarios) log(`  ${sc.id.padEnd(8)} ${sc.title}`);
  const busyNote = (load: number) => `the machine's load average is ${load.toFixed(1)} on ${m.cores} cores: something else is running, and the numbers will be lower and noisier`;
  if (os.loadavg()[0] > m.cores / 2) log(`WARNING: ${busyNote(os.loadavg()[0])}`);

  const results: ScenarioResult[] = [];
  for (let run = 1; run <= args.runs; run++) {
    for (const sc of scenarios) {
      for (const id of args.systems) {
        process.stdout.write(`[run ${run}/${args.runs}] ${sc.id.padEnd(8)} ${id.padEnd(13)} `);
        if (nowMs() > deadline - 5_000) {
          results.push(skipped(id, sc.id, run, `skipped: the time budget of ${args.budgetS} s is used up`));
          log('skipped: time budget used up');
          continue;
        }
        const r = await runDeliveryScenario(SYSTEMS[id], sc, { ...ctxBase, run });
        results.push(r);
        log(describeResult(r));
      }
    }
  }

  let list: ListResult | null = null;
  if (args.scenarios.includes('f')) {
    if (nowMs() > deadline - 60_000) {
      log('[f] skipped: the time budget is used up');
    } else if (args.systems.includes('koppel-sqlite')) {
      log(`[f] Koppel SQLite: list latency with ${args.listMessages.toLocaleString('en-US')} stored messages, ${args.runs} run(s)`);
      list = await runListScenario({ messages: args.listMessages, requests: args.quick ? 100 : 200, runs: args.runs, tag: `${runId}-f`, start: ctxBase.start, log });
      if (list.error) log(`[f] FAILED: ${list.error}`);
    } else {
      log('[f] skipped: it measures Koppel SQLite, which is not selected');
    }
  }
  for (const s of Object.values(SYSTEMS)) await s.shutdown?.();
  await runCleanups();

  const cmdArgs = process.argv.slice(2).filter((a) => a !== '--docs');
  const record: RunRecord = {
    id: runId,
    started: started.toISOString(),
    finished: new Date().toISOString(),
    command: `npm run bench${cmdArgs.length ? ' -- ' + cmdArgs.join(' ') : ''}`,
    args,
    machine: m,
    git: gitInfo,
    scenarios: scenarios.map((s) => ({ id: s.id, title: s.title })),
    results,
    list,
  };
  await report(record, args.docs, log);
  log(`took ${((Date.parse(record.finished) - started.getTime()) / 1000).toFixed(0)} s`);
  if (results.some((r) => !r.ok) || list?.error) process.exitCode = 1;
}

/** Everything a run measured; written as bench/results/<id>.json (with the summary added). */
interface RunRecord {
  id: string;
  started: string;
  finished: string;
  command: string;
  args: Args;
  machine: ReturnType<typeof machine>;
  git: { commit: string | null; dirty: boolean };
  scenarios: { id: string; title: string }[];
  results: ScenarioResult[];
  list: ListResult | null;
}

/** Prints the tables and writes JSON, Markdown and the chart (and with docs, the docs). */
async function report(rec: RunRecord, docs: boolean, log: (s: string) => void) {
  const { args, machine: m, results, list } = rec;
  const rows = summarize(results, args.systems);
  const mem = memoryRows(results);
  const failures = results.filter((r) => !r.ok);
  const subtitle = `${rec.started.slice(0, 16).replace('T', ' ')} UTC · ${m.cores} cores, ${m.memoryGiB} GiB · Node ${m.node} · ${args.quick ? 'quick mode, ' : ''}${args.runs === 1 ? '1 run' : `median of ${args.runs} runs`} · git ${rec.git.commit?.slice(0, 7) ?? '?'}${rec.git.dirty ? ' + uncommitted changes in src/' : ''}`;
  const legend = rec.scenarios.map((sc) => `- ${sc.id}: ${sc.title}`).join('\n');
  const loads = results.map((r) => r.loadBefore).filter((v) => typeof v === 'number');
  const loadLine = loads.length ? `Load average before the scenarios: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} on ${m.cores} cores (the benchmark's own processes count towards it).` : '';
  const failureText = failures.map((r) => `- run ${r.run} ${r.scenario} ${SYSTEM_SHORT[r.system]}: ${r.error}`).join('\n');
  const text = [
    rows.length ? renderSummary(rows, args.systems, false) : '',
    mem.length ? '\n' + renderMemory(mem, false) : '',
    list ? '\n' + renderList(list, false) : '',
    '\n' + legend,
    loadLine ? '\n' + loadLine : '',
    failures.length ? `\nFAILED RUNS:\n${failureText}` : '',
  ].join('\n');
  log('\n' + subtitle + '\n\n' + text);

  const md = [
    `Command: \`${rec.command}\` · ${subtitle}`,
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, ${m.os}; everything (load generator, receiver, systems, PostgreSQL, Redis) on this one machine.`,
    rows.length ? '\n' + renderSummary(rows, args.systems, true) : '',
    rows.length ? '\nCells: median of the runs (min–max). Ratios: Koppel ÷ other system, of the medians (deliveries/s: higher is better; ms: lower is better).\n' : '',
    legend,
    loadLine ? '\n' + loadLine : '',
    mem.length ? '\nPeak RSS (VmHWM) of each process, the largest over the scenarios of a run:\n\n' + renderMemory(mem, true) : '',
    list ? '\nf. List and filter latency, Koppel SQLite, one request at a time:\n\n' + renderList(list, true) : '',
    failures.length ? `\n**Failed runs:**\n\n${failureText}` : '',
  ].join('\n');

  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const json = JSON.stringify({ ...rec, summary: rows, memory: mem }, null, 2);
  fs.writeFileSync(path.join(RESULTS_DIR, `${rec.id}.json`), json);
  fs.writeFileSync(path.join(RESULTS_DIR, 'latest.json'), json);
  fs.writeFileSync(path.join(RESULTS_DIR, 'latest.md'), md + '\n');
  const png = path.join(RESULTS_DIR, 'latest.png');
  try {
    if (rows.some((r) => r.metric.startsWith('a-') || r.metric.startsWith('b.'))) {
      await drawChart(rows, args.systems, png, subtitle);
      // The docs chart shows the full run; a quick run draws it only while there is none.
      if (docs && (!args.quick || !hasFullResults())) fs.copyFileSync(png, path.join(ROOT, 'docs', 'benchmarks.png'));
    }
  } catch (e) {
    log(`chart not drawn: ${(e as Error).message}`);
  }
  if (docs) writeDocsBlock(md, args.quick);
  log(`\nwrote bench/results/${rec.id}.json, latest.json, latest.md, latest.png${docs ? ', docs/benchmarks.md and (for a full run) docs/benchmarks.png' : ''}`);
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  async (e) => {
    process.stderr.write(`benchmark failed: ${(e as Error).stack ?? e}\n`);
    await runCleanups();
    process.exit(1);
  },
);
