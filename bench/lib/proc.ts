/**
 * Child processes of the benchmark: started with a name, logged to a file, and stopped by their
 * pid (SIGTERM, then SIGKILL after a bounded wait). Whatever is still running when the
 * benchmark exits, however it exits, is killed by pid too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
export const RESULTS_DIR = path.join(ROOT, 'bench', 'results');
export const LOG_DIR = path.join(RESULTS_DIR, 'logs');

export interface Child {
  name: string;
  pid: number;
  proc: ChildProcess;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited: Promise<number | string | null>;
  isAlive(): boolean;
}

const running = new Map<number, Child>();

/** Node arguments that run a TypeScript file of the benchmark through tsx. */
export function tsxArgs(file: string): string[] {
  return ['--import', import.meta.resolve('tsx'), file];
}

export function startProcess(
  name: string,
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; ipc?: boolean; cwd?: string } = {},
): Child {
  fs.mkdirSync(LOG_DIR, { recursive: true });
  const logFile = path.join(LOG_DIR, `${name}.log`);
  const out = fs.openSync(logFile, 'a');
  const proc = spawn(command, args, {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? process.env,
    stdio: opts.ipc ? ['ignore', out, out, 'ipc'] : ['ignore', out, out],
  });
  fs.closeSync(out);
  if (proc.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  const pid = proc.pid;
  let alive = true;
  const exited = new Promise<number | string | null>((resolve) => {
    proc.once('exit', (code, signal) => {
      alive = false;
      running.delete(pid);
      resolve(code ?? signal);
    });
    proc.once('error', () => {
      alive = false;
      running.delete(pid);
      resolve('error');
    });
  });
  const child: Child = { name, pid, proc, exited, isAlive: () => alive };
  running.set(pid, child);
  return child;
}

/** Stops one process by its pid: SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stopProcess(child: Child, graceMs = 20_000): Promise<void> {
  if (!child.isAlive()) return;
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timedOut = await Promise.race([child.exited.then(() => false), sleep(graceMs).then(() => true)]);
  if (timedOut && child.isAlive()) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await Promise.race([child.exited, sleep(5_000)]);
  }
}

/** Kills (by pid) every child that is still running; synchronous so it can run on exit. */
export function killAllChildrenSync() {
  for (const c of running.values()) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  running.clear();
}

let cleanupHooks: (() => Promise<void>)[] = [];
/** Registers async cleanup (e.g. dropping a database) that runs on Ctrl-C too. */
export function onCleanup(fn: () => Promise<void>): () => void {
  cleanupHooks.push(fn);
  return () => {
    cleanupHooks = cleanupHooks.filter((f) => f !== fn);
  };
}

export async function runCleanups() {
  const hooks = cleanupHooks.splice(0).reverse();
  for (const h of hooks) await Promise.race([h().catch(() => {}), sleep(15_000)]);
}

let installed = false;
export function installExitHandlers() {
  if (installed) return;
  installed = true;
  process.on('exit', killAllChildrenSync);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping every process the benchmark started…\n`);
      const children = [...running.values()];
      void Promise.all(children.map((c) => stopProcess(c, 5_000)))
        .then(() => runCleanups())
        .finally(() => process.exit(130));
    });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `fn` until it returns true; false if `timeoutMs` passed first. */
export async function waitUntil(fn: () => Promise<boolean> | boolean, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < 1_000_000; i++) {
    try {
      if (await fn()) return true;
    } catch {
      /* not yet */
    }
    if (Date.now() >= end) return false;
    await sleep(stepMs);
  }
  return false;
}

/** VmHWM (peak resident set) and VmRSS of a process in MiB, from /proc. */
export function memoryOf(pid: number): { peakMiB: number; rssMiB: number } | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    const rss = /VmRSS:\s+(\d+) kB/.exec(status);
    if (!hwm || !rss) return null;
    return { peakMiB: Number(hwm[1]) / 1024, rssMiB: Number(rss[1]) / 1024 };
  } catch {
    return null;
  }
}

const CLOCK_TICKS = 100;
/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSecondsOf(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after the command name: state is index 0, utime 11, stime 12.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** Total CPU seconds of the whole machine (all cores, not idle) from /proc/stat. */
export function machineBusySeconds(): number | null {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.reduce((a, b) => a + b, 0);
    return (total - idle) / CLOCK_TICKS;
  } catch {
    return null;
  }
}
