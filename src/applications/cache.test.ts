import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ApplicationRow } from '../store/schema.js';
import { ApplicationCache } from './cache.js';

const row = (id: string, uid: string | null = null): ApplicationRow => ({
  id, environment_id: 'env_1', uid, name: id, throttle_rate: null, metadata: '{}', created_at: 0, updated_at: 0,
});

function fakeStore(rows: ApplicationRow[]) {
  const calls: string[] = [];
  return {
    calls,
    rows,
    getApplication: async (env: string, idOrUid: string) => {
      calls.push(idOrUid);
      return rows.find((r) => r.environment_id === env && (r.id === idOrUid || r.uid === idOrUid));
    },
  };
}

describe('ApplicationCache', () => {
  afterEach(() => vi.useRealTimers());

  it('answers repeated lookups from memory for a second, then asks the store again', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const store = fakeStore([row('app_1', 'billing')]);
    const cache = new ApplicationCache(store);
    expect((await cache.get('env_1', 'billing'))?.id).toBe('app_1');
    expect((await cache.get('env_1', 'billing'))?.id).toBe('app_1');
    expect(store.calls).toEqual(['billing']);
    // Another process deleted it: seen once the entry is older than the TTL.
    store.rows.length = 0;
    vi.setSystemTime(1_000_999);
    expect((await cache.get('env_1', 'billing'))?.id).toBe('app_1');
    vi.setSystemTime(1_001_000);
    expect(await cache.get('env_1', 'billing')).toBeUndefined();
    expect(store.calls).toEqual(['billing', 'billing']);
  });

  it('does not remember a missing application, so one created elsewhere is found at once', async () => {
    const store = fakeStore([]);
    const cache = new ApplicationCache(store);
    expect(await cache.get('env_1', 'app_2')).toBeUndefined();
    store.rows.push(row('app_2'));
    expect((await cache.get('env_1', 'app_2'))?.id).toBe('app_2');
  });

  it('keeps environments apart and forgets everything on clear', async () => {
    const store = fakeStore([row('app_1', 'same')]);
    const cache = new ApplicationCache(store);
    expect(await cache.get('env_2', 'same')).toBeUndefined();
    expect((await cache.get('env_1', 'same'))?.id).toBe('app_1');
    store.rows[0] = row('app_9', 'same');
    cache.clear();
    expect((await cache.get('env_1', 'same'))?.id).toBe('app_9');
  });

  it('shares one store lookup among concurrent misses', async () => {
    const store = fakeStore([row('app_1', 'billing')]);
    const cache = new ApplicationCache(store);
    const found = await Promise.all(Array.from({ length: 50 }, () => cache.get('env_1', 'billing')));
    expect(found.every((r) => r?.id === 'app_1')).toBe(true);
    expect(store.calls).toEqual(['billing']);
  });

  it('does not keep what a lookup read before a clear', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const rows = [row('app_1', 'billing')];
    const calls: string[] = [];
    const store = {
      getApplication: async (_env: string, idOrUid: string) => {
        calls.push(idOrUid);
        const found = rows.find((r) => r.uid === idOrUid);
        if (calls.length === 1) await gate;
        return found;
      },
    };
    const cache = new ApplicationCache(store);
    const stale = cache.get('env_1', 'billing');
    // The application changes (through this process) while the first lookup is under way.
    rows[0] = { ...rows[0], name: 'renamed' };
    cache.clear();
    release();
    expect((await stale)?.name).toBe('app_1');
    expect((await cache.get('env_1', 'billing'))?.name).toBe('renamed');
    expect(calls).toEqual(['billing', 'billing']);
  });
});
