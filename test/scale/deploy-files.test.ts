/**
 * The deployment files run what they say: the Procfile, the systemd units (with
 * deploy/koppel.env.example) and docker-compose.yml each declare API and worker processes; this
 * test reads each file, starts the processes it declares (two of each) with the environment and
 * command-line it gives them, over one PostgreSQL schema, and checks that every process starts in
 * its role, that a message posted to each API process is delivered, and that SIGTERM stops every
 * process with exit code 0 within the stop timeout the file allows.
 *
 * What is translated, and why: `node dist/main.js` runs as `node --import tsx src/main.ts` (the
 * same entry point, without a build); ports, data directories and the database URL are this
 * test's own (the files name a real host's); loopback deliveries are allowed. What cannot run
 * here: the Docker image build and the compose healthcheck (no Docker engine, no registry).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterAll, expect, it } from 'vitest';
import { describeOnPostgres, ADMIN_KEY, createTestSchema, startReceiver, tempDir } from '../helpers.js';
import { freePort, startKoppelChild, type KoppelChild } from '../crash/child.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

/** One process as a deployment file declares it. */
interface Declared {
  name: string;
  role: 'api' | 'worker';
  /** Arguments after the entry point (`dist/main.js`). */
  args: string[];
  env: Record<string, string>;
  /** Seconds the file gives the process to stop after SIGTERM. */
  stopTimeoutS: number;
}

/** `node dist/main.js <args>`: the entry point every file must use, and the arguments after it. */
function entryArgs(argv: string[]): string[] {
  const i = argv.findIndex((a) => /(^|\/)node$/.test(a));
  expect(i, `a node command in ${argv.join(' ')}`).toBeGreaterThanOrEqual(0);
  expect(argv[i + 1]).toBe('dist/main.js');
  return argv.slice(i + 2);
}

/** The role a process runs: `--role` on its command line, else KOPPEL_ROLE, else all. */
function roleOf(args: string[], env: Record<string, string>): string {
  const i = args.indexOf('--role');
  return i >= 0 ? args[i + 1] : (env.KOPPEL_ROLE ?? 'all');
}

/** Procfile: `name: VAR=value … node dist/main.js …`; honcho, foreman and overmind set $PORT. */
function procfile(port: (name: string) => string): Declared[] {
  return read('Procfile')
    .split('\n')
    .filter((l) => /^\w+:/.test(l))
    .map((line) => {
      const [name, command] = [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()];
      const words = command.split(/\s+/);
      const env: Record<string, string> = {};
      while (/^[A-Z_]+=/.test(words[0])) {
        const w = words.shift()!;
        // The shell's ${PORT:-default}, with PORT set as the process manager sets it.
        env[w.slice(0, w.indexOf('='))] = w.slice(w.indexOf('=') + 1).replace(/\$\{PORT:-\d+\}/, port(name));
      }
      const args = entryArgs(words);
      return { name, role: roleOf(args, env) as Declared['role'], args, env, stopTimeoutS: 30 };
    });
}

/** systemd template units `koppel-<role>@<port>.service` with their EnvironmentFile. */
function systemdUnits(envFile: Record<string, string>, port: (name: string) => string): Declared[] {
  return ['api', 'worker'].map((kind) => {
    const name = `koppel-${kind}@.service`;
    const instance = port(name);
    const lines = read(`deploy/systemd/${name}`).split('\n');
    const values = (key: string) => lines.filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1).replaceAll('%i', instance));
    expect(values('EnvironmentFile')).toEqual(['/etc/koppel/koppel.env']);
    const env: Record<string, string> = { ...envFile };
    for (const v of values('Environment')) env[v.slice(0, v.indexOf('='))] = v.slice(v.indexOf('=') + 1);
    const args = entryArgs(values('ExecStart')[0].split(/\s+/));
    return { name, role: roleOf(args, env) as Declared['role'], args, env, stopTimeoutS: Number(values('TimeoutStopSec')[0]) };
  });
}

/** docker-compose.yml's Koppel services, `${VAR:?…}` taken from the .env file the docs describe. */
function composeServices(dotEnv: Record<string, string>): (Declared & { replicas: number })[] {
  const doc = parseYaml(read('docker-compose.yml')) as { services: Record<string, any> };
  return Object.entries(doc.services)
    .filter(([, s]) => s.build)
    .map(([name, s]) => {
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.environment as Record<string, string>)) {
        env[k] = String(v).replace(/\$\{(\w+)(:\?[^}]*)?\}/g, (_, key: string) => {
          expect(dotEnv[key], `${key} in .env`).toBeDefined();
          return dotEnv[key];
        });
      }
      const args = entryArgs(s.command as string[]);
      const grace = /^(\d+)s$/.exec(String(s.stop_grace_period));
      expect(grace, `stop_grace_period of ${name}`).not.toBeNull();
      return { name, role: roleOf(args, env) as Declared['role'], args, env, stopTimeoutS: Number(grace![1]), replicas: s.deploy?.replicas ?? 1 };
    });
}

/** KEY=value lines, comments and blank lines skipped. */
function envFileOf(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2];
  }
  return out;
}

describeOnPostgres('deployment files', () => {
  const children: KoppelChild[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    await Promise.all(children.map((c) => c.kill()));
    for (const f of cleanups) await f();
  });

  /** Starts the declared processes over one fresh schema and checks what the header says. */
  async function runDeployment(declared: Declared[]) {
    expect(declared.map((d) => d.role).sort()).toEqual(['api', 'api', 'worker', 'worker']);
    const t = await createTestSchema();
    cleanups.push(t.drop);
    const dbUrl = `${t.url}${t.url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${t.schema}`)}`;
    const procs = await Promise.all(
      declared.map(async (d) => {
        const port = Number(d.env.KOPPEL_PORT ?? (await freePort()));
        const env = { ...d.env, KOPPEL_DATABASE_URL: dbUrl, KOPPEL_DATA_DIR: tempDir(), KOPPEL_PORT: String(port) };
        const child = await startKoppelChild({ dataDir: env.KOPPEL_DATA_DIR, port, env, args: d.args, readyTimeoutMs: 40_000 });
        children.push(child);
        return { d, child };
      }),
    );
    const apis = procs.filter((p) => p.d.role === 'api');
    // Each process runs its role: only API processes serve the API.
    for (const p of procs) expect((await p.child.api('GET', '/api/v1/app')).status, p.d.name).toBe(p.d.role === 'api' ? 200 : 404);

    // The API processes started together on a fresh database and agree on one default environment
    // (the one the admin key acts on), or an application made through one would be missing in another.
    const environments = await Promise.all(apis.map(async (p) => (await p.child.api('GET', '/api/v1/environment')).body.data.map((e: { id: string }) => e.id)));
    expect(environments[0]).toHaveLength(1);
    for (const listed of environments) expect(listed).toEqual(environments[0]);

    const r = await startReceiver();
    cleanups.push(r.close);
    const received = () => new Set(r.requests.map((q) => String(q.headers['webhook-id'])));
    const app = await apis[0].child.api('POST', '/api/v1/app', { name: 'deployment' });
    expect(app.status).toBe(201);
    expect((await apis[0].child.api('POST', `/api/v1/app/${app.body.id}/endpoint`, { url: r.url })).status).toBe(201);
    const sent: string[] = [];
    for (const a of apis) {
      for (let i = 0; i < 5; i++) {
        const m = await a.child.api('POST', `/api/v1/app/${app.body.id}/msg`, { eventType: 'deploy.check', payload: { i } });
        expect(m.status).toBe(202);
        sent.push(m.body.id);
      }
    }
    const deadline = Date.now() + 20_000;
    while (sent.some((id) => !received().has(id)) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    expect(sent.filter((id) => !received().has(id))).toEqual([]);

    // SIGTERM drains and exits 0 within the time the file gives before its SIGKILL.
    await Promise.all(
      procs.map(async ({ d, child }) => {
        child.proc.kill('SIGTERM');
        const exit = await Promise.race([child.exited, new Promise<null>((res) => setTimeout(() => res(null), d.stopTimeoutS * 1000))]);
        expect(exit, `${d.name} after SIGTERM:\n${child.output().slice(-2000)}`).toEqual({ code: 0, signal: null });
      }),
    );
  }

  const secrets = () => ({ KOPPEL_SECRET_KEY: crypto.randomBytes(32).toString('base64'), KOPPEL_ADMIN_API_KEY: ADMIN_KEY });
  // Only what the tests need beyond the files: deliveries to this loopback receiver.
  const testOnly = { KOPPEL_ALLOWED_NETWORKS: '127.0.0.0/8' };

  it('Procfile: two api and two worker processes as a process manager starts them', async () => {
    const env = { ...secrets(), ...testOnly };
    // honcho -c api=2,worker=2 runs each line twice and gives every process its own $PORT.
    const declared: Declared[] = [];
    for (let i = 0; i < 2; i++) {
      const ports: Record<string, string> = { api: String(await freePort()), worker: String(await freePort()) };
      const lines = procfile((name) => ports[name]);
      expect(lines.map((d) => d.name)).toEqual(['api', 'worker']);
      for (const d of lines) {
        expect(d.env.KOPPEL_PORT).toBe(ports[d.name]);
        declared.push({ ...d, name: `${d.name}.${i}`, env: { ...env, ...d.env } });
      }
    }
    await runDeployment(declared);
  }, 120_000);

  it('systemd units: two instances of each template with deploy/koppel.env.example filled in', async () => {
    const example = envFileOf(read('deploy/koppel.env.example'));
    // The example names every value the units need; the empty ones are the operator's to fill.
    expect(Object.keys(example)).toEqual(expect.arrayContaining(['KOPPEL_DATABASE_URL', 'KOPPEL_SECRET_KEY', 'KOPPEL_ADMIN_API_KEY', 'KOPPEL_DATA_DIR']));
    const envFile = { ...example, ...secrets(), ...testOnly };
    const instances: Declared[] = [];
    for (let i = 0; i < 2; i++) {
      const ports: Record<string, string> = {};
      for (const unit of ['koppel-api@.service', 'koppel-worker@.service']) ports[unit] = String(await freePort());
      instances.push(...systemdUnits(envFile, (unit) => ports[unit]).map((d) => ({ ...d, name: d.name.replace('@', `@${ports[d.name]}`) })));
    }
    await runDeployment(instances);
  }, 120_000);

  it('docker-compose.yml: its api and worker services at their replica counts', async () => {
    const services = composeServices(secrets());
    expect(services.map((s) => [s.name, s.replicas])).toEqual([['api', 2], ['worker', 2]]);
    // The published container port is the one the API listens on (Koppel's default, the image's EXPOSE).
    const doc = parseYaml(read('docker-compose.yml')) as { services: { api: { ports: string[] } } };
    expect(doc.services.api.ports[0]).toMatch(/:8071$/);
    expect(read('Dockerfile')).toMatch(/^EXPOSE 8071$/m);
    const declared = services.flatMap((s) => Array.from({ length: s.replicas }, (_, i) => ({ ...s, name: `${s.name}.${i}`, env: { ...s.env, ...testOnly } })));
    await runDeployment(declared);
  }, 120_000);
});
