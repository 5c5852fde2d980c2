/** The store contract against SQLite: a fresh database file in its own temp directory per test. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { describe, expect, it, vi } from 'vitest';
import { newId } from '../../src/lib/ids.js';
import { MIGRATIONS } from '../../src/store/migrations/index.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { Status } from '../../src/store/schema.js';
import type { Store } from '../../src/store/port.js';
import { storeContract } from './store.contract.js';

const dirs = new Map<Store, string>();

storeContract(
  'sqlite',
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'koppel-store-'));
    const store = openSqliteStore(path.join(dir, 'koppel.db'));
    dirs.set(store, dir);
    await store.migrate();
    return store;
  },
  async (store) => {
    await store.close();
    const dir = dirs.get(store);
    dirs.delete(store);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  },
);

describe('sqlite: migrations', () => {
  it('migrates once and creates one default environment when several processes start on one fresh file at the same moment', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'koppel-migrate-'));
    const file = path.join(dir, 'koppel.db');
    try {
      // Loading tsx and the store takes a second or more; all four start migrating at this time.
      const startAt = Date.now() + 4000;
      const runs = Array.from({ length: 4 }, () =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'migrate-child.ts'), file, String(startAt)], { stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          child.stdout.on('data', (b) => (out += b));
          child.stderr.on('data', (b) => (out += b));
          const kill = setTimeout(() => child.kill('SIGKILL'), 25_000);
          child.on('exit', (code) => {
            clearTimeout(kill);
            resolve({ code, out });
          });
        }),
      );
      const results = await Promise.all(runs);
      for (const r of results) expect(r, r.out).toMatchObject({ code: 0 });
      const db = new SQLite(file, { readonly: true });
      try {
        const applied = (db.prepare('select name from koppel_migrations order by name').all() as { name: string }[]).map((r) => r.name);
        expect(applied).toEqual(MIGRATIONS.map((m) => m.name));
        // One default environment, and every process took that one as its own.
        const envs = (db.prepare('select id from environments').all() as { id: string }[]).map((r) => r.id);
        expect(envs).toHaveLength(1);
        for (const r of results) expect(r.out).toContain(`migrated; default environment ${envs[0]}`);
      } finally {
        db.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);
});

describe('sqlite: message ingest durability', () => {
  // Ingest commits without a sync on the event loop and then fdatasyncs the WAL on the thread
  // pool; a message may be acknowledged only once that sync is done.
  /** A fresh store whose WAL syncs wait until the test releases them (`held`). */
  async function storeWithHeldSyncs() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'koppel-wal-'));
    const store = openSqliteStore(path.join(dir, 'koppel.db'));
    await store.migrate();
    const probe = await fs.promises.open(path.join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const held: (() => void)[] = [];
    const walSyncs: string[] = [];
    const spy = vi.spyOn(proto, 'datasync').mockImplementation(function (this: { fd: number }) {
      walSyncs.push(fs.readlinkSync(`/proc/self/fd/${this.fd}`));
      return new Promise<void>((resolve) => held.push(resolve));
    });
    const cleanup = async () => {
      spy.mockRestore();
      held.forEach((f) => f());
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    };
    return { dir, store, held, walSyncs, spy, cleanup };
  }

  it('resolves an insert only after a WAL sync that started after its commit', async () => {
    const { dir, store, held, walSyncs, spy, cleanup } = await storeWithHeldSyncs();
    try {
      const row = (n: number) => {
        const m = { id: newId('msg'), environment_id: 'env_1', app_id: 'app_1', event_type: 'a', event_id: null, channels: null, tags: null, payload: `{"n":${n}}`, created_at: Date.now(), expires_at: Date.now() + 86_400_000 };
        const d = { id: newId('dlv'), message_id: m.id, endpoint_id: 'ep_1', app_id: 'app_1', environment_id: 'env_1', status: Status.pending, due_at: Date.now(), attempts: 0, trigger_type: 0, lease_owner: null, last_attempt_at: null, created_at: m.created_at, updated_at: m.created_at };
        return { message: m, deliveries: [d] };
      };
      let done1 = false;
      const first = store.insertMessages([row(1)]).then((r) => ((done1 = true), r));
      await vi.waitFor(() => expect(held).toHaveLength(1));
      expect(walSyncs[0]).toBe(path.join(dir, 'koppel.db-wal'));
      // Committed (readable) but not acknowledged while the sync runs; the event loop is free.
      expect((await store.queueDepth(Date.now() + 1000)).due).toBe(1);
      expect(done1).toBe(false);

      // A second insert during that sync needs a sync of its own after it.
      let done2 = false;
      const second = store.insertMessages([row(2)]).then((r) => ((done2 = true), r));
      await new Promise((r) => setTimeout(r, 50));
      held.shift()!();
      expect(await first).toEqual([{ ok: true }]);
      await vi.waitFor(() => expect(held).toHaveLength(1));
      expect(done2).toBe(false);
      held.shift()!();
      expect(await second).toEqual([{ ok: true }]);
      expect(walSyncs).toHaveLength(2);

      // A sync that fails fails its batch (nothing is acknowledged); the next one reopens the file.
      spy.mockImplementationOnce(() => Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })));
      await expect(store.insertMessages([row(3)])).rejects.toThrow(/EIO/);
      spy.mockImplementationOnce(() => Promise.resolve());
      expect(await store.insertMessages([row(4)])).toEqual([{ ok: true }]);
    } finally {
      await cleanup();
    }
  });

  it('records an idempotency key without a sync, and its response only after one', async () => {
    const { store, held, cleanup } = await storeWithHeldSyncs();
    try {
      // The key itself is made durable by the message insert that follows it (an earlier commit).
      expect(await store.beginIdempotent('env_1', 'k', 'h', Date.now(), 60_000)).toEqual({ state: 'new' });
      expect(held).toHaveLength(0);
      let completed = false;
      const complete = store.completeIdempotent('env_1', 'k', 202, '{"id":"msg_1"}').then(() => (completed = true));
      await vi.waitFor(() => expect(held).toHaveLength(1));
      await new Promise((r) => setTimeout(r, 20));
      expect(completed).toBe(false);
      held.shift()!();
      await complete;
      expect(await store.beginIdempotent('env_1', 'k', 'h', Date.now(), 60_000)).toEqual({ state: 'done', statusCode: 202, response: '{"id":"msg_1"}' });
    } finally {
      await cleanup();
    }
  });
});
