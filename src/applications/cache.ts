/**
 * Application lookups for sending messages, remembered for a second. Message creation is the
 * request that arrives thousands of times per second, always naming the same few applications,
 * and on PostgreSQL its lookup was one of the two database round trips each request made.
 *
 * Only found applications are remembered (one created a moment ago in another process is found
 * at once). A change made through this process forgets everything at once; a change made
 * through another API process is seen within the TTL. The window only widens a race that exists
 * anyway: a message whose lookup ran just before its application was deleted is accepted too.
 */
import type { Store } from '../store/port.js';
import type { ApplicationRow } from '../store/schema.js';

const TTL_MS = 1_000;
const MAX_ENTRIES = 10_000;

export class ApplicationCache {
  private readonly entries = new Map<string, { row: ApplicationRow; at: number }>();
  /**
   * Lookups under way: when an entry expires, the hundred requests in flight for that
   * application share one query instead of each making its own.
   */
  private readonly pending = new Map<string, Promise<ApplicationRow | undefined>>();
  /** Bumped by clear(): a lookup that started before a change must not store what it read. */
  private generation = 0;

  constructor(private readonly store: Pick<Store, 'getApplication'>) {}

  get(environmentId: string, idOrUid: string): Promise<ApplicationRow | undefined> {
    const key = `${environmentId}\0${idOrUid}`;
    const now = Date.now();
    const hit = this.entries.get(key);
    if (hit && now - hit.at < TTL_MS) return Promise.resolve(hit.row);
    let lookup = this.pending.get(key);
    if (!lookup) {
      const generation = this.generation;
      lookup = this.store.getApplication(environmentId, idOrUid).then(
        (row) => {
          if (this.pending.get(key) === lookup) this.pending.delete(key);
          if (generation !== this.generation) return row;
          if (!row) {
            this.entries.delete(key);
            return undefined;
          }
          if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
          this.entries.set(key, { row, at: now });
          return row;
        },
        (e: unknown) => {
          if (this.pending.get(key) === lookup) this.pending.delete(key);
          throw e;
        },
      );
      this.pending.set(key, lookup);
    }
    return lookup;
  }

  /** After any application change through this process. */
  clear() {
    this.generation++;
    this.entries.clear();
    this.pending.clear();
  }
}
