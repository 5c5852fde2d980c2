/**
 * Starting Koppel the way the README says, as a real process (`node --import tsx src/main.ts`)
 * with no settings but a data directory and a port: it must generate an admin key, print it, keep
 * it in a 0600 file and accept it again after a restart. Also: a configured admin key, a bad
 * setting, and the --role flag.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';
import { freePort } from './crash/child.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Bound on any one wait: a start under a loaded machine, an exit, a request. */
const WAIT_MS = 30_000;

interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited: () => boolean;
}

const children: Child[] = [];
const dirs: string[] = [];

/**
 * Starts src/main.ts with exactly `env` as its KOPPEL_ settings: those of the test run (vitest
 * sets KOPPEL_LOG_LEVEL, CI sets KOPPEL_TEST_*) are left out, so this is a start with nothing set.
 */
function startChild(env: Record<string, string>, args: string[] = []): Child {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KOPPEL_')) base[k] = v;
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    proc.once('exit', (code, signal) => {
      done = true;
      res({ code, signal });
    });
  });
  const child = { proc, stdout: () => out, stderr: () => err, exited, hasExited: () => done };
  children.push(child);
  return child;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a value, the child exits, or WAIT_MS pass. */
async function waitFor<T>(child: Child, what: string, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (child.hasExited()) throw new Error(`Koppel exited while waiting for ${what}:\n${child.stderr()}\n${child.stdout()}`);
    if (Date.now() > deadline) throw new Error(`no ${what} within ${WAIT_MS} ms:\n${child.stderr()}\n${child.stdout()}`);
    await sleep(50);
  }
}

/** Waits (bounded) for the child to exit by itself. */
async function exitOf(child: Child): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const r = await Promise.race([child.exited, sleep(WAIT_MS).then(() => null)]);
  if (!r) throw new Error(`Koppel did not exit within ${WAIT_MS} ms:\n${child.stderr()}`);
  return r;
}

/** SIGTERM, then the exit code of the drained shutdown. */
async function stop(child: Child) {
  child.proc.kill('SIGTERM');
  return exitOf(child);
}

async function get(url: string, key?: string): Promise<number> {
  const res = await fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {}, signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer();
  return res.status;
}

/** Waits for the line of the start banner that says where the API is, and returns its URL. */
const apiUrlOf = (child: Child) => waitFor(child, 'the start banner', () => /^ {2}API: +(http:\/\/\S+)\/api\/v1$/m.exec(child.stderr())?.[1]);

afterAll(async () => {
  for (const c of children) {
    if (!c.hasExited() && c.proc.pid !== undefined) process.kill(c.proc.pid, 'SIGKILL');
    await Promise.race([c.exited, sleep(5000)]);
  }
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('starting with no configuration', () => {
  it('generates an admin key, prints it, keeps it in a 0600 file and accepts it again after a restart', { timeout: 120_000 }, async () => {
    const root = tempDir('koppel-start-');
    dirs.push(root);
    // Not created yet: the first start makes it.
    const dataDir = path.join(root, 'data');
    const port = await freePort();

    const first = startChild({ KOPPEL_DATA_DIR: dataDir, KOPPEL_PORT: String(port) });
    const url = await apiUrlOf(first);
    // The default public URL: localhost on the configured port.
    expect(url).toBe(`http://localhost:${port}`);
    const banner = first.stderr();
    expect(banner).toContain('Koppel is running (all)');
    const key = /^ {2}Admin key: (kpl_[A-Za-z0-9_-]{43}) {2}\(kept in (.+)\/admin\.key\)$/m.exec(banner);
    expect(key, banner).not.toBeNull();
    expect(key![2]).toBe(dataDir);
    const adminKey = key![1];

    const file = path.join(dataDir, 'admin.key');
    expect(fs.readFileSync(file, 'utf8')).toBe(`${adminKey}\n`);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);

    const api = `http://127.0.0.1:${port}/api/v1/app`;
    expect(await get(api, adminKey)).toBe(200);
    expect(await get(api)).toBe(401);
    expect(await get(api, 'kpl_not-the-key-not-the-key-not-the-key-xxxxxx')).toBe(401);
    expect(await stop(first)).toEqual({ code: 0, signal: null });

    // Same data directory, another port: the same key, read back rather than replaced.
    const port2 = await freePort();
    const second = startChild({ KOPPEL_DATA_DIR: dataDir, KOPPEL_PORT: String(port2) });
    await apiUrlOf(second);
    expect(second.stderr()).toContain(`Admin key: ${adminKey}  (kept in ${dataDir}/admin.key)`);
    expect(fs.readFileSync(file, 'utf8')).toBe(`${adminKey}\n`);
    expect(await get(`http://127.0.0.1:${port2}/api/v1/app`, adminKey)).toBe(200);
    expect(await stop(second)).toEqual({ code: 0, signal: null });

    // KOPPEL_ADMIN_API_KEY instead: that key is accepted, the banner does not print it, and the
    // generated key in the data directory is not accepted beside it.
    const configured = 'configured-admin-key-0123456789';
    const port3 = await freePort();
    const third = startChild({ KOPPEL_DATA_DIR: dataDir, KOPPEL_PORT: String(port3), KOPPEL_ADMIN_API_KEY: configured });
    await apiUrlOf(third);
    expect(third.stderr()).toContain('Admin key: the value of KOPPEL_ADMIN_API_KEY');
    expect(third.stderr()).not.toContain(configured);
    expect(await get(`http://127.0.0.1:${port3}/api/v1/app`, configured)).toBe(200);
    expect(await get(`http://127.0.0.1:${port3}/api/v1/app`, adminKey)).toBe(401);
    expect(await stop(third)).toEqual({ code: 0, signal: null });
  });

  it('starts an API and a worker process together on one fresh data directory with one admin key and one master key', { timeout: 120_000 }, async () => {
    const dataDir = tempDir('koppel-start-together-');
    dirs.push(dataDir);
    const [apiPort, workerPort] = [await freePort(), await freePort()];
    const api = startChild({ KOPPEL_DATA_DIR: dataDir, KOPPEL_PORT: String(apiPort) }, ['--role', 'api']);
    const worker = startChild({ KOPPEL_DATA_DIR: dataDir, KOPPEL_PORT: String(workerPort) }, ['--role', 'worker']);
    const url = await apiUrlOf(api);
    await waitFor(worker, 'the worker banner', () => (/Koppel is running \(worker\)/.test(worker.stderr()) ? true : undefined));
    // Each key file is whole, and no temp file of the process that lost the race is left.
    expect(fs.readdirSync(dataDir).filter((f) => f.endsWith('.key')).sort()).toEqual(['admin.key', 'secret.key']);
    expect(fs.readdirSync(dataDir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const adminKey = fs.readFileSync(path.join(dataDir, 'admin.key'), 'utf8').trim();
    expect(api.stderr()).toContain(`Admin key: ${adminKey}`);
    expect(await get(`${url}/api/v1/app`, adminKey)).toBe(200);
    expect(await stop(api)).toEqual({ code: 0, signal: null });
    expect(await stop(worker)).toEqual({ code: 0, signal: null });
  });

  it('refuses an admin.key file that holds no key, naming the file and the way out', { timeout: 60_000 }, async () => {
    const dataDir = tempDir('koppel-start-empty-key-');
    dirs.push(dataDir);
    fs.writeFileSync(path.join(dataDir, 'admin.key'), '\n', { mode: 0o600 });
    const child = startChild({ KOPPEL_DATA_DIR: dataDir, KOPPEL_PORT: String(await freePort()) });
    const exit = await exitOf(child);
    expect(exit.code).not.toBe(0);
    expect(child.stderr()).toContain(`${path.join(dataDir, 'admin.key')} does not hold an admin API key`);
    expect(child.stderr()).toContain('Delete it to have a new key generated');
    // Left for the operator to look at, not replaced.
    expect(fs.readFileSync(path.join(dataDir, 'admin.key'), 'utf8')).toBe('\n');
  });

  it('refuses a bad setting before starting, naming the variable on stderr', { timeout: 60_000 }, async () => {
    const dataDir = tempDir('koppel-start-bad-');
    dirs.push(dataDir);
    const port = await freePort();
    const bad = startChild({ KOPPEL_DATA_DIR: dataDir, KOPPEL_PORT: String(port), KOPPEL_ALLOWED_NETWORKS: '300.0.0.0/8' });
    const exit = await exitOf(bad);
    expect(exit.code, bad.stderr()).toBe(2);
    expect(bad.stderr()).toContain('Koppel cannot start; fix the configuration:');
    expect(bad.stderr()).toContain('KOPPEL_ALLOWED_NETWORKS: "300.0.0.0/8" is not a CIDR block');
    // Refused before anything was written or listened on.
    expect(fs.readdirSync(dataDir)).toEqual([]);
  });
});

describe('the --role flag', () => {
  it('--role worker serves health and metrics but no API', { timeout: 60_000 }, async () => {
    const dataDir = tempDir('koppel-start-worker-');
    dirs.push(dataDir);
    const port = await freePort();
    const worker = startChild({ KOPPEL_DATA_DIR: dataDir, KOPPEL_PORT: String(port) }, ['--role', 'worker']);
    await waitFor(worker, 'the worker banner', () => (/Koppel is running \(worker\)/.test(worker.stderr()) ? true : undefined));
    expect(worker.stderr()).toMatch(new RegExp(`Metrics: +http://\\S+:${port}/metrics \\(this process delivers; it serves no API\\)`));
    expect(worker.stderr()).not.toContain('Admin key');
    const base = `http://127.0.0.1:${port}`;
    expect(await get(`${base}/api/v1/health`)).toBe(204);
    expect(await get(`${base}/metrics`)).toBe(200);
    // No such route here (an API process answers 401 to a request without a key).
    expect(await get(`${base}/api/v1/app`)).toBe(404);
    expect(await stop(worker)).toEqual({ code: 0, signal: null });
  });

  it('--role bogus exits with a message naming the allowed roles', { timeout: 60_000 }, async () => {
    const dataDir = tempDir('koppel-start-role-');
    dirs.push(dataDir);
    const bogus = startChild({ KOPPEL_DATA_DIR: dataDir, KOPPEL_PORT: String(await freePort()) }, ['--role', 'bogus']);
    const exit = await exitOf(bogus);
    expect(exit.code).toBe(2);
    expect(bogus.stderr()).toContain('--role must be api, worker or all (got "bogus").');
  });
});
