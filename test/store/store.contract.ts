/**
 * The storage contract: what every `Store` implementation must do, written once against the port
 * and run per dialect (`sqlite.test.ts`, `postgres.test.ts`). Each test gets a fresh, migrated
 * store from `open` and hands it to `dispose` (default: `close`) afterwards.
 *
 * Rows are compared whole with `toEqual`, so a driver that returns a bigint column as a string,
 * or a boolean where the schema says 0/1, fails here rather than somewhere in the API.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { idForTime, newId } from '../../src/lib/ids.js';
import { MessageWriter } from '../../src/messages/message-writer.js';
import { MIGRATIONS } from '../../src/store/migrations/index.js';
import { StaleRoutingError, type PageRequest, type Settlement, type Store } from '../../src/store/port.js';
import {
  Status,
  type ApiKeyRow,
  type ApplicationRow,
  type AttemptRow,
  type DeliveryRow,
  type EndpointRow,
  type EnvironmentRow,
  type EventTypeRow,
  type MessageRow,
  type OperationalEventRow,
  type EndpointVersionRow,
  type SourceEventRow,
  type SourceRow,
} from '../../src/store/schema.js';

/** A realistic epoch-millisecond base: well past 2^31, so 32-bit handling anywhere shows up. */
const T0 = 1_700_000_000_000;
const DAY = 86_400_000;

function page(limit = 100, after: string | null = null, order: 'asc' | 'desc' = 'asc'): PageRequest {
  return { limit, after, order };
}

function environment(over: Partial<EnvironmentRow> = {}): EnvironmentRow {
  return { id: newId('env'), name: 'Test environment', created_at: T0, ...over };
}

function apiKey(environmentId: string | null, over: Partial<ApiKeyRow> = {}): ApiKeyRow {
  const id = newId('key');
  return {
    id, environment_id: environmentId, application_id: null, name: 'key', key_hash: `hash-${id}`, key_prefix: 'kp_',
    created_at: T0, revoked_at: null, ...over,
  };
}

function application(environmentId: string, over: Partial<ApplicationRow> = {}): ApplicationRow {
  return {
    id: newId('app'), environment_id: environmentId, uid: null, name: 'App', throttle_rate: null, metadata: '{}',
    created_at: T0, updated_at: T0, ...over,
  };
}

function eventType(environmentId: string, name: string, over: Partial<EventTypeRow> = {}): EventTypeRow {
  return {
    environment_id: environmentId, name, description: `about ${name}`, schemas: null, archived: 0, deprecated: 0,
    feature_flag: null, group_name: null, created_at: T0, updated_at: T0, ...over,
  };
}

function endpoint(app: ApplicationRow, over: Partial<EndpointRow> = {}): EndpointRow {
  return {
    id: newId('ep'), environment_id: app.environment_id, app_id: app.id, uid: null, url: 'https://example.com/hook',
    description: '', event_types: null, channels: null, metadata: '{}', throttle_rate: null, disabled: 0, headers: '{}',
    secrets: '[]', failing_since: null, created_at: T0, updated_at: T0, auth: null, transformation: null, version: 1, ...over,
  };
}

function endpointVersion(ep: EndpointRow, version: number, over: Partial<EndpointVersionRow> = {}): EndpointVersionRow {
  return {
    id: newId('epv'), endpoint_id: ep.id, app_id: ep.app_id, environment_id: ep.environment_id, version, reason: 'updated',
    snapshot: JSON.stringify({ url: ep.url }), created_at: T0 + version, ...over,
  };
}

function source(app: ApplicationRow, over: Partial<SourceRow> = {}): SourceRow {
  return {
    id: newId('src'), environment_id: app.environment_id, app_id: app.id, uid: null, name: 'Shop', description: '', provider: 'github',
    config: '{}', secret: 'sealed', disabled: 0, created_at: T0, updated_at: T0, ...over,
  };
}

function sourceEvent(src: SourceRow, over: Partial<SourceEventRow> = {}): SourceEventRow {
  return {
    id: newId('sevt'), source_id: src.id, app_id: src.app_id, environment_id: src.environment_id, status: 'accepted', reason: null,
    event_type: 'push', dedupe_key: 'delivery-1', message_id: null, headers: '{}', payload: '{"a":1}', body_bytes: 7, created_at: T0, ...over,
  };
}

let messageSeq = 0;
/** A message id for time `ms`, increasing in the order made (like newId, but for a past time). */
const messageIdAt = (ms: number) => idForTime('msg', ms).slice(0, -16) + (messageSeq++).toString(32).toUpperCase().padStart(16, '0');

/** A message row; as Koppel makes them, its id encodes its creation time (the port relies on it). */
function message(app: ApplicationRow, over: Partial<MessageRow> = {}): MessageRow {
  const created = over.created_at ?? T0;
  return {
    id: messageIdAt(created), environment_id: app.environment_id, app_id: app.id, event_type: 'user.created', event_id: null,
    channels: null, tags: null, payload: '{"hello":"world"}', created_at: T0, expires_at: T0 + 30 * DAY, ...over,
  };
}

function delivery(msg: MessageRow, ep: EndpointRow, over: Partial<DeliveryRow> = {}): DeliveryRow {
  return {
    id: newId('dlv'), message_id: msg.id, endpoint_id: ep.id, app_id: msg.app_id, environment_id: msg.environment_id,
    status: Status.pending, due_at: T0, attempts: 0, trigger_type: 0, lease_owner: null, last_attempt_at: null,
    created_at: msg.created_at, updated_at: msg.created_at, ...over,
  };
}

function attempt(d: DeliveryRow, over: Partial<AttemptRow> = {}): AttemptRow {
  return {
    id: newId('atmpt'), delivery_id: d.id, message_id: d.message_id, endpoint_id: d.endpoint_id, app_id: d.app_id,
    environment_id: d.environment_id, url: 'https://example.com/hook', status: Status.success, response_status_code: 200,
    response: 'ok', response_truncated: 0, duration_ms: 12, error_class: null, error: null, request_headers: '{}',
    trigger_type: 0, created_at: T0, ...over,
  };
}

function settlement(d: DeliveryRow, owner: string, over: Partial<Settlement> = {}): Settlement {
  return {
    deliveryId: d.id, leaseOwner: owner, attempt: null, status: Status.success, dueAt: null, attempts: d.attempts + 1,
    endpointId: d.endpoint_id, health: 'none', disableNow: false, ...over,
  };
}

const ids = <T extends { id: string }>(rows: T[]) => rows.map((r) => r.id);

export function storeContract(name: string, open: () => Promise<Store>, dispose: (s: Store) => Promise<void> = (s) => s.close()): void {
  describe(name, () => {
    let store: Store;

    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await dispose(store);
    });

    /** An environment and an application in it, the scope most tests need. */
    async function seedApp(over: Partial<ApplicationRow> = {}) {
      const env = environment();
      await store.createEnvironment(env);
      const app = application(env.id, over);
      expect(await store.createApplication(app)).toBe(true);
      return { env, app };
    }

    async function seedEndpoint(app: ApplicationRow, over: Partial<EndpointRow> = {}) {
      const ep = endpoint(app, over);
      expect(await store.createEndpoint(ep)).toBe(true);
      return ep;
    }

    /** Inserts one message with deliveries to the given endpoints (each with `deliveryOver`). */
    async function seedMessage(app: ApplicationRow, eps: EndpointRow[], over: Partial<MessageRow> = {}, deliveryOver: Partial<DeliveryRow> = {}) {
      const msg = message(app, over);
      const deliveries = eps.map((ep) => delivery(msg, ep, deliveryOver));
      expect(await store.insertMessages([{ message: msg, deliveries }])).toEqual([{ ok: true }]);
      return { msg, deliveries };
    }

    /**
     * The due signals after a commit: on PostgreSQL exactly `expected` (waited for, then a
     * little longer so an extra one would show); SQLite, one process, sends none.
     */
    async function expectSignalsAfterCommit(signals: (string[] | undefined)[], expected: (string[] | undefined)[]) {
      if (store.dialect !== 'postgres') return expect(signals).toEqual([]);
      for (let i = 0; i < 100 && signals.length < expected.length; i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 100));
      expect(signals).toEqual(expected);
    }

    // ── migrations ─────────────────────────────────────────────────────────────────────────

    describe('migrate', () => {
      it('is idempotent and keeps data', async () => {
        const env = environment();
        await store.createEnvironment(env);
        await store.migrate();
        await store.migrate();
        await store.ping();
        expect(await store.getEnvironment(env.id)).toEqual(env);
      });

      it('reports its dialect', () => {
        expect(['sqlite', 'postgres']).toContain(store.dialect);
        // Suites named after a dialect must really be running against it.
        if (name === 'sqlite' || name === 'postgres') expect(store.dialect).toBe(name);
      });
    });

    // ── environments and API keys ──────────────────────────────────────────────────────────

    describe('environments and API keys', () => {
      it('creates, gets and pages environments', async () => {
        const envs = [environment({ name: 'a' }), environment({ name: 'b' }), environment({ name: 'c' })];
        for (const e of envs) await store.createEnvironment(e);
        expect(await store.getEnvironment(envs[1].id)).toEqual(envs[1]);
        expect(await store.getEnvironment(newId('env'))).toBeUndefined();
        const first = await store.listEnvironments(page(2));
        expect(first).toEqual({ items: envs.slice(0, 2), done: false });
        const rest = await store.listEnvironments(page(2, envs[1].id));
        expect(rest).toEqual({ items: [envs[2]], done: true });
        expect(ids((await store.listEnvironments(page(10, null, 'desc'))).items)).toEqual(ids(envs).reverse());
      });

      it('creates the first environment with its key once, then returns that one', async () => {
        const made: string[] = [];
        const create = (name: string) => () => {
          const environment = { id: newId('env'), name, created_at: Date.now() };
          made.push(environment.id);
          return { environment, apiKey: { id: newId('key'), environment_id: environment.id, application_id: null, name: `${name} key`, key_hash: newId('hash'), key_prefix: 'kpl_test', created_at: Date.now(), revoked_at: null } };
        };
        // Calls racing on one store (one process) agree as well as separate processes do.
        const [a, b] = await Promise.all([store.firstEnvironmentOrCreate(create('default')), store.firstEnvironmentOrCreate(create('default'))]);
        expect(made).toHaveLength(1);
        expect(a).toEqual(b);
        expect(a.id).toBe(made[0]);
        expect((await store.listApiKeys(a.id, page(10))).items.map((k) => k.name)).toEqual(['default key']);
        // Once one exists, create() is not called, and a later environment does not replace it.
        await store.createEnvironment(environment({ name: 'later' }));
        expect(await store.firstEnvironmentOrCreate(create('other'))).toEqual(a);
        expect(made).toHaveLength(1);
      });

      it('creates API keys, finds them by hash and id, lists and revokes', async () => {
        const envA = environment();
        const envB = environment();
        await store.createEnvironment(envA);
        await store.createEnvironment(envB);
        const a1 = apiKey(envA.id);
        const a2 = apiKey(envA.id, { application_id: newId('app'), name: 'app scoped' });
        const b1 = apiKey(envB.id);
        const admin = apiKey(null, { name: 'admin' });
        for (const k of [a1, a2, b1, admin]) await store.createApiKey(k);

        expect(await store.findApiKeyByHash(a2.key_hash)).toEqual(a2);
        expect(await store.findApiKeyByHash('no-such-hash')).toBeUndefined();
        expect(await store.getApiKey(b1.id)).toEqual(b1);
        expect(await store.getApiKey(newId('key'))).toBeUndefined();

        expect(await store.listApiKeys(envA.id, page())).toEqual({ items: [a1, a2], done: true });
        expect(ids((await store.listApiKeys(null, page())).items)).toEqual(ids([a1, a2, b1, admin]));
        const p1 = await store.listApiKeys(null, page(3, null, 'desc'));
        expect(ids(p1.items)).toEqual(ids([admin, b1, a2]));
        expect(p1.done).toBe(false);

        expect(await store.revokeApiKey(a1.id, T0 + 5)).toBe(true);
        expect(await store.revokeApiKey(a1.id, T0 + 6)).toBe(false);
        expect(await store.revokeApiKey(newId('key'), T0 + 6)).toBe(false);
        // Still found by hash (the caller checks revoked_at) but no longer listed.
        expect(await store.findApiKeyByHash(a1.key_hash)).toEqual({ ...a1, revoked_at: T0 + 5 });
        expect(await store.listApiKeys(envA.id, page())).toEqual({ items: [a2], done: true });
      });

      it('rejects a second key with the same hash', async () => {
        const k = apiKey(null);
        await store.createApiKey(k);
        await expect(store.createApiKey({ ...apiKey(null), key_hash: k.key_hash })).rejects.toThrow();
      });
    });

    // ── applications ───────────────────────────────────────────────────────────────────────

    describe('applications', () => {
      it('creates and gets by id and by uid, scoped to the environment', async () => {
        const { env, app } = await seedApp({ uid: 'my-app', name: 'Mine', throttle_rate: 10, metadata: '{"k":"v"}' });
        expect(await store.getApplication(env.id, app.id)).toEqual(app);
        expect(await store.getApplication(env.id, 'my-app')).toEqual(app);
        expect(await store.getApplication(env.id, 'other')).toBeUndefined();
        const other = environment();
        await store.createEnvironment(other);
        expect(await store.getApplication(other.id, app.id)).toBeUndefined();
        expect(await store.getApplication(other.id, 'my-app')).toBeUndefined();
      });

      it('enforces uid uniqueness per environment only', async () => {
        const { env, app } = await seedApp({ uid: 'dup' });
        expect(await store.createApplication(application(env.id, { uid: 'dup' }))).toBe(false);
        const other = environment();
        await store.createEnvironment(other);
        const elsewhere = application(other.id, { uid: 'dup' });
        expect(await store.createApplication(elsewhere)).toBe(true);
        expect(await store.getApplication(other.id, 'dup')).toEqual(elsewhere);
        expect(await store.getApplication(env.id, 'dup')).toEqual(app);
        // Any number of applications without a uid.
        expect(await store.createApplication(application(env.id))).toBe(true);
        expect(await store.createApplication(application(env.id))).toBe(true);
        // The store stays usable after a unique violation (PostgreSQL aborts only that statement).
        expect((await store.listApplications(env.id, page())).items).toHaveLength(3);
      });

      it('pages with keyset pagination in both orders', async () => {
        const env = environment();
        await store.createEnvironment(env);
        const apps: ApplicationRow[] = [];
        for (let i = 0; i < 5; i++) {
          const a = application(env.id, { name: `app ${i}` });
          await store.createApplication(a);
          apps.push(a);
        }
        // Another environment's applications never show up.
        const other = environment();
        await store.createEnvironment(other);
        await store.createApplication(application(other.id));

        const asc1 = await store.listApplications(env.id, page(2));
        expect(asc1).toEqual({ items: apps.slice(0, 2), done: false });
        const asc2 = await store.listApplications(env.id, page(2, apps[1].id));
        expect(asc2).toEqual({ items: apps.slice(2, 4), done: false });
        const asc3 = await store.listApplications(env.id, page(2, apps[3].id));
        expect(asc3).toEqual({ items: apps.slice(4), done: true });
        // Exactly a page's worth left: done, with nothing after it.
        expect(await store.listApplications(env.id, page(2, apps[2].id))).toEqual({ items: apps.slice(3, 5), done: true });
        expect(await store.listApplications(env.id, page(2, apps[4].id))).toEqual({ items: [], done: true });

        const rev = [...apps].reverse();
        const desc1 = await store.listApplications(env.id, page(2, null, 'desc'));
        expect(desc1).toEqual({ items: rev.slice(0, 2), done: false });
        const desc2 = await store.listApplications(env.id, page(2, rev[1].id, 'desc'));
        expect(desc2).toEqual({ items: rev.slice(2, 4), done: false });
        const desc3 = await store.listApplications(env.id, page(2, rev[3].id, 'desc'));
        expect(desc3).toEqual({ items: rev.slice(4), done: true });
      });

      it('updates, refusing a uid that is taken', async () => {
        const { env, app } = await seedApp({ uid: 'one' });
        const two = application(env.id, { uid: 'two' });
        await store.createApplication(two);
        const changed = { ...app, name: 'Renamed', uid: 'uno', throttle_rate: 5, metadata: '{"a":"b"}', updated_at: T0 + 1000 };
        expect(await store.updateApplication(changed)).toBe(true);
        expect(await store.getApplication(env.id, 'uno')).toEqual(changed);
        expect(await store.getApplication(env.id, 'one')).toBeUndefined();
        expect(await store.updateApplication({ ...changed, uid: 'two' })).toBe(false);
        expect(await store.getApplication(env.id, app.id)).toEqual(changed);
        expect(await store.getApplication(env.id, 'two')).toEqual(two);
      });

      it('deletes with endpoints, messages, deliveries and attempts, leaving other applications alone', async () => {
        const { env, app } = await seedApp();
        const keep = application(env.id);
        await store.createApplication(keep);
        const ep = await seedEndpoint(app);
        const keepEp = await seedEndpoint(keep);
        const { msg, deliveries: [d] } = await seedMessage(app, [ep]);
        const { msg: keepMsg, deliveries: [keepD] } = await seedMessage(keep, [keepEp]);
        const [claimed1, claimed2] = await store.claimDue('w', T0, T0 + 1000, 10, []);
        expect([claimed1, claimed2].every(Boolean)).toBe(true);
        const at = attempt(d);
        const keepAt = attempt(keepD);
        await store.settle(
          [settlement(d, 'w', { attempt: at }), settlement(keepD, 'w', { attempt: keepAt })],
          { now: T0 + 10, disableAfterMs: DAY },
        );

        await store.deleteApplication(env.id, app.id);

        expect(await store.getApplication(env.id, app.id)).toBeUndefined();
        expect(await store.getEndpoint(app.id, ep.id)).toBeUndefined();
        expect(await store.getEndpointsByIds([ep.id])).toEqual([]);
        expect(await store.getMessage(app.id, msg.id)).toBeUndefined();
        expect(await store.getMessagesByIds([msg.id])).toEqual([]);
        expect(await store.getDelivery(msg.id, ep.id)).toBeUndefined();
        expect(await store.getAttempt(msg.id, at.id)).toBeUndefined();
        expect((await store.listAttempts({ endpointId: ep.id }, {}, page())).items).toEqual([]);

        expect(await store.getApplication(env.id, keep.id)).toEqual(keep);
        expect(await store.getEndpoint(keep.id, keepEp.id)).toEqual(keepEp);
        expect(await store.getMessage(keep.id, keepMsg.id)).toEqual(keepMsg);
        expect(await store.getDelivery(keepMsg.id, keepEp.id)).toMatchObject({ id: keepD.id, status: Status.success });
        expect(await store.getAttempt(keepMsg.id, keepAt.id)).toEqual(keepAt);
      });

      it('does not delete an application of another environment', async () => {
        const { env, app } = await seedApp();
        const other = environment();
        await store.createEnvironment(other);
        await store.deleteApplication(other.id, app.id);
        expect(await store.getApplication(env.id, app.id)).toEqual(app);
      });
    });

    // ── event types ────────────────────────────────────────────────────────────────────────

    describe('event types', () => {
      it('creates, refuses duplicates per environment, gets, lists with and without archived', async () => {
        const env = environment();
        const other = environment();
        await store.createEnvironment(env);
        await store.createEnvironment(other);
        const a = eventType(env.id, 'invoice.paid', { schemas: '{"1":{}}', group_name: 'invoice', feature_flag: 'beta' });
        const b = eventType(env.id, 'user.created');
        const c = eventType(env.id, 'user.deleted', { archived: 1 });
        const d = eventType(env.id, 'user.updated', { deprecated: 1 });
        for (const t of [c, a, d, b]) expect(await store.createEventType(t)).toBe(true);
        expect(await store.createEventType(eventType(env.id, 'user.created'))).toBe(false);
        expect(await store.createEventType(eventType(other.id, 'user.created'))).toBe(true);

        expect(await store.getEventType(env.id, 'invoice.paid')).toEqual(a);
        expect(await store.getEventType(env.id, 'nope')).toBeUndefined();

        expect(await store.listEventTypes(env.id, page(), false)).toEqual({ items: [a, b, d], done: true });
        expect(await store.listEventTypes(env.id, page(), true)).toEqual({ items: [a, b, c, d], done: true });
        // Paged by name.
        expect(await store.listEventTypes(env.id, page(2, null, 'asc'), true)).toEqual({ items: [a, b], done: false });
        expect(await store.listEventTypes(env.id, page(2, 'user.created', 'asc'), true)).toEqual({ items: [c, d], done: true });
        expect(await store.listEventTypes(env.id, page(2, 'user.deleted', 'desc'), false)).toEqual({ items: [b, a], done: true });
        expect(await store.listEventTypes(env.id, page(1, null, 'desc'), false)).toEqual({ items: [d], done: false });
      });

      it('updates and deletes', async () => {
        const env = environment();
        await store.createEnvironment(env);
        const t = eventType(env.id, 'order.shipped');
        await store.createEventType(t);
        const changed = { ...t, description: 'new', archived: 1, schemas: '{"1":{"type":"object"}}', updated_at: T0 + 1 };
        await store.updateEventType(changed);
        expect(await store.getEventType(env.id, t.name)).toEqual(changed);
        expect((await store.listEventTypes(env.id, page(), false)).items).toEqual([]);
        await store.deleteEventType(env.id, t.name);
        expect(await store.getEventType(env.id, t.name)).toBeUndefined();
        expect((await store.listEventTypes(env.id, page(), true)).items).toEqual([]);
        // The name is free again.
        expect(await store.createEventType(t)).toBe(true);
      });
    });

    // ── endpoints ──────────────────────────────────────────────────────────────────────────

    describe('endpoints', () => {
      it('creates and gets by id and uid within the application', async () => {
        const { env, app } = await seedApp();
        const ep = await seedEndpoint(app, {
          uid: 'ep-uid', event_types: '["a.b"]', channels: '["x"]', headers: '{"X-A":"1"}', secrets: '[{"sealed":"s","expiresAt":null}]',
          throttle_rate: 3, metadata: '{"m":"1"}', description: 'desc',
        });
        expect(await store.getEndpoint(app.id, ep.id)).toEqual(ep);
        expect(await store.getEndpoint(app.id, 'ep-uid')).toEqual(ep);
        const other = application(env.id);
        await store.createApplication(other);
        expect(await store.getEndpoint(other.id, ep.id)).toBeUndefined();
        expect(await store.getEndpoint(other.id, 'ep-uid')).toBeUndefined();
      });

      it('enforces uid uniqueness per application only', async () => {
        const { env, app } = await seedApp();
        await seedEndpoint(app, { uid: 'same' });
        expect(await store.createEndpoint(endpoint(app, { uid: 'same' }))).toBe(false);
        const other = application(env.id);
        await store.createApplication(other);
        expect(await store.createEndpoint(endpoint(other, { uid: 'same' }))).toBe(true);
        expect(await store.createEndpoint(endpoint(app))).toBe(true);
        expect(await store.createEndpoint(endpoint(app))).toBe(true);
        expect((await store.listEndpoints(app.id, page())).items).toHaveLength(3);
      });

      it('gets many by id, lists pages and enabled endpoints of several applications', async () => {
        const { env, app } = await seedApp();
        const app2 = application(env.id);
        const app3 = application(env.id);
        await store.createApplication(app2);
        await store.createApplication(app3);
        const e1 = await seedEndpoint(app);
        const e2 = await seedEndpoint(app, { disabled: 1 });
        const e3 = await seedEndpoint(app);
        const e4 = await seedEndpoint(app2);
        const e5 = await seedEndpoint(app3);

        const byIds = await store.getEndpointsByIds([e4.id, e1.id, e1.id, newId('ep'), e2.id]);
        expect([...byIds].sort((x, y) => (x.id < y.id ? -1 : 1))).toEqual([e1, e2, e4]);
        expect(await store.getEndpointsByIds([])).toEqual([]);

        expect(await store.listEndpoints(app.id, page(2))).toEqual({ items: [e1, e2], done: false });
        expect(await store.listEndpoints(app.id, page(2, e2.id))).toEqual({ items: [e3], done: true });
        expect(await store.listEndpoints(app.id, page(2, null, 'desc'))).toEqual({ items: [e3, e2], done: false });

        const enabled = await store.listEnabledEndpoints([app.id, app2.id]);
        expect(ids(enabled).sort()).toEqual(ids([e1, e3, e4]).sort());
        expect(ids(enabled)).not.toContain(e5.id);
        expect(await store.listEnabledEndpoints([])).toEqual([]);
      });

      it('updates, refusing a taken uid, and deletes with deliveries and attempts', async () => {
        const { app } = await seedApp();
        const e1 = await seedEndpoint(app, { uid: 'one' });
        const e2 = await seedEndpoint(app, { uid: 'two' });
        const fields = { url: 'https://example.org/x', disabled: 1, failing_since: T0 + 7, uid: 'uno', updated_at: T0 + 9 };
        const changed = { ...e1, ...fields };
        expect(await store.updateEndpoint(app.id, e1.id, fields)).toBe('ok');
        expect(await store.getEndpoint(app.id, 'uno')).toEqual(changed);
        expect(await store.updateEndpoint(app.id, e1.id, { uid: 'two' })).toBe('uid_taken');
        expect(await store.getEndpoint(app.id, e1.id)).toEqual(changed);
        // Only the given fields are written, and only while the fence holds.
        expect(await store.updateEndpoint(app.id, e1.id, { headers: '{"x-a":"1"}' }, { secrets: 'not what is stored' })).toBe('stale');
        expect(await store.updateEndpoint(app.id, e1.id, { headers: '{"x-a":"1"}' }, { secrets: e1.secrets, failing_since: T0 + 7 })).toBe('ok');
        expect(await store.getEndpoint(app.id, e1.id)).toEqual({ ...changed, headers: '{"x-a":"1"}' });
        expect(await store.updateEndpoint(app.id, 'ep_missing', { headers: '{}' })).toBe('stale');

        const { msg, deliveries: [d1, d2] } = await seedMessage(app, [e1, e2]);
        await store.claimDue('w', T0, T0 + 100, 10, []);
        const a1 = attempt(d1);
        const a2 = attempt(d2);
        await store.settle([settlement(d1, 'w', { attempt: a1 }), settlement(d2, 'w', { attempt: a2 })], { now: T0 + 1, disableAfterMs: DAY });

        await store.deleteEndpoint(app.id, e1.id);
        expect(await store.getEndpoint(app.id, e1.id)).toBeUndefined();
        expect(await store.getDelivery(msg.id, e1.id)).toBeUndefined();
        expect(await store.getAttempt(msg.id, a1.id)).toBeUndefined();
        expect(await store.getEndpoint(app.id, e2.id)).toEqual(e2);
        expect(await store.getDelivery(msg.id, e2.id)).toMatchObject({ id: d2.id });
        expect(await store.getAttempt(msg.id, a2.id)).toEqual(a2);
        // The message itself stays.
        expect(await store.getMessage(app.id, msg.id)).toEqual(msg);
      });
    });

    // ── messages ───────────────────────────────────────────────────────────────────────────

    describe('messages', () => {
      it('routes each message by its application\'s endpoints as they are when it is written, whatever copy the store keeps', async () => {
        const { app } = await seedApp();
        const { app: other } = await seedApp();
        const e1 = await seedEndpoint(app);
        const writer = new MessageWriter(store, () => {});
        const routedTo = async (eventType = 'user.created') => {
          const m = message(app, { event_type: eventType });
          const r = await writer.write({ message: m, dueAt: T0 });
          expect(r.ok).toBe(true);
          const found: string[] = [];
          for (const ep of (await store.listEndpoints(app.id, page())).items) {
            if ((await store.listDeliveriesOfEndpoint(ep.id, {}, page())).items.some((i) => i.message.id === m.id)) found.push(ep.id);
          }
          expect(r.deliveries).toBe(found.length);
          return found.sort();
        };
        expect(await routedTo()).toEqual([e1.id]);
        // Each change below comes right after a message was routed, so a copy of the endpoints
        // taken for that message is out of date for the next.
        const e2 = await seedEndpoint(app);
        expect(await routedTo()).toEqual([e1.id, e2.id].sort());
        expect(await store.updateEndpoint(app.id, e1.id, { disabled: 1 })).toBe('ok');
        expect(await routedTo()).toEqual([e2.id]);
        expect(await store.updateEndpoint(app.id, e2.id, { event_types: '["invoice.paid"]' })).toBe('ok');
        expect(await routedTo()).toEqual([]);
        expect(await routedTo('invoice.paid')).toEqual([e2.id]);
        await store.deleteEndpoint(app.id, e2.id);
        expect(await store.updateEndpoint(app.id, e1.id, { disabled: 0 })).toBe('ok');
        expect(await routedTo('invoice.paid')).toEqual([e1.id]);
        // Another application's endpoints are not this one's.
        await seedEndpoint(other);
        expect(await routedTo()).toEqual([e1.id]);
      });

      it('writes nothing for a batch routed by endpoints that changed before it was written, when the routing has a guard', async () => {
        const { app } = await seedApp();
        const e1 = await seedEndpoint(app);
        const routing = await store.routeMessages([app.id]);
        expect(routing.endpoints.map((e) => e.id)).toEqual([e1.id]);
        const e2 = await seedEndpoint(app);
        const m = message(app);
        const write = store.insertMessages([{ message: m, deliveries: [delivery(m, e1)] }], routing.guard);
        if (routing.guard) {
          await expect(write).rejects.toBeInstanceOf(StaleRoutingError);
          expect(await store.getMessage(app.id, m.id)).toBeUndefined();
          expect((await store.listDeliveriesOfEndpoint(e1.id, {}, page())).items).toEqual([]);
        } else {
          // A store without a guard reads the endpoints every time: the routing above was current.
          expect(await write).toEqual([{ ok: true }]);
        }
        const fresh = await store.routeMessages([app.id], { fresh: true });
        expect(fresh.endpoints.map((e) => e.id).sort()).toEqual([e1.id, e2.id].sort());
        const again = await store.routeMessages([app.id]);
        expect(again.endpoints.map((e) => e.id).sort()).toEqual([e1.id, e2.id].sort());
        const m2 = message(app);
        expect(await store.insertMessages([{ message: m2, deliveries: [delivery(m2, e1), delivery(m2, e2)] }], again.guard)).toEqual([{ ok: true }]);
        expect((await store.listDeliveriesOfEndpoint(e2.id, {}, page())).items.map((i) => i.message.id)).toEqual([m2.id]);
        expect(await store.routeMessages([])).toEqual({ endpoints: [] });
      });

      it('inserts a batch of messages with their deliveries in one call', async () => {
        const { app } = await seedApp();
        const e1 = await seedEndpoint(app);
        const e2 = await seedEndpoint(app);
        const m1 = message(app, { event_id: 'evt-1', channels: '["a"]', tags: '["t"]' });
        const m2 = message(app);
        const m3 = message(app, { payload: '{"n":3}' });
        const d11 = delivery(m1, e1);
        const d12 = delivery(m1, e2, { due_at: T0 + 5 });
        const d21 = delivery(m2, e1);
        const res = await store.insertMessages([
          { message: m1, deliveries: [d11, d12] },
          { message: m2, deliveries: [d21] },
          { message: m3, deliveries: [] },
        ]);
        expect(res).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
        expect(await store.getMessage(app.id, m1.id)).toEqual(m1);
        expect(await store.getMessage(app.id, 'evt-1')).toEqual(m1);
        expect(await store.getMessage(app.id, 'evt-2')).toBeUndefined();
        expect(await store.getDelivery(m1.id, e1.id)).toEqual(d11);
        expect(await store.getDelivery(m1.id, e2.id)).toEqual(d12);
        expect(await store.getDelivery(m2.id, e1.id)).toEqual(d21);
        expect(await store.getDelivery(m2.id, e2.id)).toBeUndefined();
        expect(await store.getDelivery(m3.id, e1.id)).toBeUndefined();
        const many = await store.getMessagesByIds([m3.id, m1.id, m1.id, newId('msg')]);
        expect([...many].sort((x, y) => (x.id < y.id ? -1 : 1))).toEqual([m1, m3]);
        expect(await store.getMessagesByIds([])).toEqual([]);
        expect(await store.insertMessages([])).toEqual([]);
      });

      it('reports a duplicate event id per application and still inserts the rest of the batch', async () => {
        const { env, app } = await seedApp();
        const other = application(env.id);
        await store.createApplication(other);
        const ep = await seedEndpoint(app);
        const otherEp = await seedEndpoint(other);
        const { msg: first } = await seedMessage(app, [ep], { event_id: 'evt-dup' });

        const dup = message(app, { event_id: 'evt-dup' });
        const fresh = message(app, { event_id: 'evt-fresh' });
        const sameInOtherApp = message(other, { event_id: 'evt-dup' });
        const dupInBatch = message(app, { event_id: 'evt-fresh' });
        const noEventId = message(app);
        const res = await store.insertMessages([
          { message: dup, deliveries: [delivery(dup, ep)] },
          { message: fresh, deliveries: [delivery(fresh, ep)] },
          { message: sameInOtherApp, deliveries: [delivery(sameInOtherApp, otherEp)] },
          { message: dupInBatch, deliveries: [delivery(dupInBatch, ep)] },
          { message: noEventId, deliveries: [delivery(noEventId, ep)] },
        ]);
        expect(res).toEqual([
          { ok: false, reason: 'duplicate_event_id', existingId: first.id },
          { ok: true },
          { ok: true },
          { ok: false, reason: 'duplicate_event_id', existingId: fresh.id },
          { ok: true },
        ]);
        expect(await store.getMessage(app.id, dup.id)).toBeUndefined();
        expect(await store.getDelivery(dup.id, ep.id)).toBeUndefined();
        expect(await store.getMessage(app.id, dupInBatch.id)).toBeUndefined();
        expect(await store.getDelivery(dupInBatch.id, ep.id)).toBeUndefined();
        expect(await store.getMessage(app.id, 'evt-dup')).toEqual(first);
        expect(await store.getMessage(app.id, 'evt-fresh')).toEqual(fresh);
        expect(await store.getDelivery(fresh.id, ep.id)).toBeDefined();
        expect(await store.getMessage(other.id, 'evt-dup')).toEqual(sameInOtherApp);
        expect(await store.getDelivery(sameInOtherApp.id, otherEp.id)).toBeDefined();
        expect(await store.getMessage(app.id, noEventId.id)).toEqual(noEventId);
        // Exactly the accepted messages' deliveries exist.
        expect((await store.listDeliveriesOfEndpoint(ep.id, {}, page())).items).toHaveLength(3);
      });

      it('lets exactly one of two concurrent inserts with the same event id win', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const a = message(app, { event_id: 'race' });
        const b = message(app, { event_id: 'race' });
        const [ra, rb] = await Promise.all([
          store.insertMessages([{ message: a, deliveries: [delivery(a, ep)] }]),
          store.insertMessages([{ message: b, deliveries: [delivery(b, ep)] }]),
        ]);
        const results = [...ra, ...rb];
        expect(results.filter((r) => r.ok)).toHaveLength(1);
        const winner = ra[0].ok ? a : b;
        expect(results.filter((r) => !r.ok)).toEqual([{ ok: false, reason: 'duplicate_event_id', existingId: winner.id }]);
        expect(await store.getMessage(app.id, 'race')).toEqual(winner);
        expect((await store.listDeliveriesOfEndpoint(ep.id, {}, page())).items.map((i) => i.message.id)).toEqual([winner.id]);
      });

      it('lists with event type, channel and time filters, paged', async () => {
        const { env, app } = await seedApp();
        const other = application(env.id);
        await store.createApplication(other);
        const m1 = message(app, { event_type: 'user.created', channels: '["a_b","shared"]', created_at: T0 + 100 });
        const m2 = message(app, { event_type: 'user.deleted', channels: '["axb"]', created_at: T0 + 200 });
        const m3 = message(app, { event_type: 'invoice.paid', channels: null, created_at: T0 + 300 });
        const m4 = message(app, { event_type: 'user.created', channels: '["ab"]', created_at: T0 + 400 });
        const m5 = message(app, { event_type: 'user.created', channels: '["A_B","a%b"]', created_at: T0 + 500 });
        const mOther = message(other, { event_type: 'user.created', channels: '["a_b"]', created_at: T0 + 100 });
        const res = await store.insertMessages([m1, m2, m3, m4, m5, mOther].map((m) => ({ message: m, deliveries: [] })));
        expect(res.every((r) => r.ok)).toBe(true);

        const list = async (filter: Parameters<Store['listMessages']>[1], p = page()) => ids((await store.listMessages(app.id, filter, p)).items);

        expect(await list({})).toEqual(ids([m1, m2, m3, m4, m5]));
        expect(await list({ eventTypes: ['user.created'] })).toEqual(ids([m1, m4, m5]));
        expect(await list({ eventTypes: ['user.deleted', 'invoice.paid'] })).toEqual(ids([m2, m3]));
        expect(await list({ eventTypes: [] })).toEqual(ids([m1, m2, m3, m4, m5]));
        expect(await list({ eventTypes: ['nothing'] })).toEqual([]);

        // Channel filters are exact, case-sensitive whole-channel matches: "_" and "%" are not
        // wildcards, and "a" does not match inside "ab".
        expect(await list({ channel: 'a_b' })).toEqual(ids([m1]));
        expect(await list({ channel: 'axb' })).toEqual(ids([m2]));
        expect(await list({ channel: 'ab' })).toEqual(ids([m4]));
        expect(await list({ channel: 'a' })).toEqual([]);
        expect(await list({ channel: 'b' })).toEqual([]);
        expect(await list({ channel: 'A_B' })).toEqual(ids([m5]));
        expect(await list({ channel: 'a%b' })).toEqual(ids([m5]));
        expect(await list({ channel: 'shared' })).toEqual(ids([m1]));
        expect(await list({ channel: 'shared', eventTypes: ['user.deleted'] })).toEqual([]);

        // Times are exclusive on both sides.
        expect(await list({ after: T0 + 200 })).toEqual(ids([m3, m4, m5]));
        expect(await list({ before: T0 + 200 })).toEqual(ids([m1]));
        expect(await list({ after: T0 + 100, before: T0 + 400 })).toEqual(ids([m2, m3]));
        expect(await list({ after: T0 + 100, before: T0 + 500, eventTypes: ['user.created'] })).toEqual(ids([m4]));

        const p1 = await store.listMessages(app.id, { eventTypes: ['user.created', 'user.deleted'] }, page(2, null, 'desc'));
        expect(p1).toEqual({ items: [m5, m4], done: false });
        const p2 = await store.listMessages(app.id, { eventTypes: ['user.created', 'user.deleted'] }, page(2, m4.id, 'desc'));
        expect(p2).toEqual({ items: [m2, m1], done: true });
        expect(await store.listMessages(app.id, {}, page(3, m2.id, 'asc'))).toEqual({ items: [m3, m4, m5], done: true });
      });

      it('expunges a payload in its own application only', async () => {
        const { env, app } = await seedApp();
        const other = application(env.id);
        await store.createApplication(other);
        const { msg } = await seedMessage(app, []);
        await store.expungeMessagePayload(other.id, msg.id);
        expect(await store.getMessage(app.id, msg.id)).toEqual(msg);
        await store.expungeMessagePayload(app.id, msg.id);
        expect(await store.getMessage(app.id, msg.id)).toEqual({ ...msg, payload: null });
      });
    });

    // ── deliveries ─────────────────────────────────────────────────────────────────────────

    describe('deliveries', () => {
      it('claims only due rows, earliest first, within the limit and with their message and endpoint', async () => {
        const { app } = await seedApp();
        const e1 = await seedEndpoint(app);
        const e2 = await seedEndpoint(app);
        const { msg: m1, deliveries: [d1] } = await seedMessage(app, [e1], {}, { due_at: T0 + 300 });
        const { deliveries: [d2] } = await seedMessage(app, [e2], {}, { due_at: T0 + 100 });
        const { deliveries: [d3] } = await seedMessage(app, [e1], {}, { due_at: T0 + 200 });
        await seedMessage(app, [e1], {}, { due_at: T0 + 10_000 });
        await seedMessage(app, [e1], {}, { due_at: null, status: Status.success, attempts: 1 });

        expect(await store.claimDue('w0', T0 + 50, T0 + 1050, 10, [])).toEqual([]);

        const one = await store.claimDue('w1', T0 + 1000, T0 + 31_000, 1, []);
        expect(one.map((c) => c.delivery.id)).toEqual([d2.id]);

        const rest = await store.claimDue('w2', T0 + 1000, T0 + 32_000, 10, []);
        expect(rest.map((c) => c.delivery.id).sort()).toEqual([d1.id, d3.id].sort());
        const c1 = rest.find((c) => c.delivery.id === d1.id)!;
        expect(c1.delivery).toEqual({ ...d1, status: Status.sending, due_at: T0 + 32_000, lease_owner: 'w2', updated_at: T0 + 1000 });
        expect(c1.message).toEqual(m1);
        expect(c1.endpoint).toEqual(e1);
        expect(await store.getDelivery(m1.id, e1.id)).toEqual(c1.delivery);
      });

      it('gives every claimed delivery its message and endpoint when they repeat within a claim', async () => {
        const { app } = await seedApp();
        const eps = [await seedEndpoint(app), await seedEndpoint(app), await seedEndpoint(app)];
        const { msg: fanOut } = await seedMessage(app, eps);
        const { msg: other } = await seedMessage(app, [eps[0]], { payload: `{"big":"${'x'.repeat(100_000)}"}` });
        const claimed = await store.claimDue('w', T0, T0 + 1000, 10, []);
        expect(claimed).toHaveLength(4);
        for (const c of claimed) {
          expect(c.message).toEqual(c.delivery.message_id === fanOut.id ? fanOut : other);
          expect(c.endpoint).toEqual(eps.find((e) => e.id === c.delivery.endpoint_id));
        }
      });

      it('skips excluded endpoints', async () => {
        const { app } = await seedApp();
        const e1 = await seedEndpoint(app);
        const e2 = await seedEndpoint(app);
        const e3 = await seedEndpoint(app);
        const { deliveries } = await seedMessage(app, [e1, e2, e3]);
        const claimed = await store.claimDue('w', T0, T0 + 1000, 10, [e1.id, e3.id]);
        expect(claimed.map((c) => c.delivery.id)).toEqual([deliveries[1].id]);
        const more = await store.claimDue('w', T0, T0 + 1000, 10, [e1.id]);
        expect(more.map((c) => c.delivery.id)).toEqual([deliveries[2].id]);
      });

      it('never hands one row to two concurrent claimers', async () => {
        const { app } = await seedApp();
        const eps = [await seedEndpoint(app), await seedEndpoint(app), await seedEndpoint(app), await seedEndpoint(app)];
        const all: string[] = [];
        for (let i = 0; i < 6; i++) all.push(...ids((await seedMessage(app, eps)).deliveries));
        const claims = await Promise.all(['w1', 'w2', 'w3', 'w4'].map((w) => store.claimDue(w, T0, T0 + 30_000, 10, [])));
        const got = claims.flatMap((c) => c.map((x) => x.delivery.id));
        expect(new Set(got).size).toBe(got.length);
        for (const [i, c] of claims.entries()) for (const x of c) expect(x.delivery.lease_owner).toBe(`w${i + 1}`);
        // Whatever a claimer skipped is still there for the next claim.
        const rest = await store.claimDue('w5', T0, T0 + 30_000, 100, []);
        expect([...got, ...ids(rest.map((c) => c.delivery))].sort()).toEqual([...all].sort());
      });

      it('leases claimed rows until the lease expires', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const { deliveries: [d] } = await seedMessage(app, [ep]);
        expect(await store.claimDue('w1', T0, T0 + 30_000, 10, [])).toHaveLength(1);
        expect(await store.claimDue('w2', T0 + 1, T0 + 30_001, 10, [])).toEqual([]);
        expect(await store.claimDue('w2', T0 + 29_999, T0 + 60_000, 10, [])).toEqual([]);
        const again = await store.claimDue('w2', T0 + 30_001, T0 + 60_001, 10, []);
        expect(again.map((c) => c.delivery.id)).toEqual([d.id]);
        expect(again[0].delivery).toMatchObject({ lease_owner: 'w2', status: Status.sending, due_at: T0 + 60_001 });
      });

      it('hands claimed rows whose endpoint is gone over with a null endpoint', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const { msg } = await seedMessage(app, [ep]);
        // A concurrent delete of only the endpoint row (not through the store) would leave this;
        // simulate with a delivery to an endpoint id that never existed.
        const ghost = endpoint(app);
        const { msg: m2 } = await seedMessage(app, []);
        await store.scheduleResend(delivery(m2, ghost), T0);
        const claimed = await store.claimDue('w', T0, T0 + 10, 10, []);
        expect(claimed).toHaveLength(2);
        const byMsg = new Map(claimed.map((c) => [c.delivery.message_id, c]));
        expect(byMsg.get(msg.id)!.endpoint).toEqual(ep);
        expect(byMsg.get(m2.id)!.endpoint).toBeNull();
        expect(byMsg.get(m2.id)!.message).toEqual(m2);
      });

      it('settles: writes attempts and delivery state', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const { msg, deliveries: [d] } = await seedMessage(app, [ep]);
        await store.claimDue('w', T0, T0 + 30_000, 10, []);
        const a1 = attempt(d, { status: Status.fail, response_status_code: 500, response: 'boom', created_at: T0 + 5 });
        const disabled = await store.settle(
          [settlement(d, 'w', { attempt: a1, status: Status.pending, dueAt: T0 + 60_000, attempts: 1 })],
          { now: T0 + 6, disableAfterMs: DAY },
        );
        expect(disabled).toEqual([]);
        expect(await store.getDelivery(msg.id, ep.id)).toEqual({
          ...d, status: Status.pending, due_at: T0 + 60_000, attempts: 1, lease_owner: null, last_attempt_at: T0 + 5, updated_at: T0 + 6,
        });
        expect(await store.getAttempt(msg.id, a1.id)).toEqual(a1);

        await store.claimDue('w', T0 + 60_000, T0 + 90_000, 10, []);
        const a2 = attempt(d, { created_at: T0 + 60_010 });
        await store.settle([settlement(d, 'w', { attempt: a2, status: Status.success, dueAt: null, attempts: 2 })], { now: T0 + 60_011, disableAfterMs: DAY });
        expect(await store.getDelivery(msg.id, ep.id)).toEqual({
          ...d, status: Status.success, due_at: null, attempts: 2, lease_owner: null, last_attempt_at: T0 + 60_010, updated_at: T0 + 60_011,
        });
        expect(await store.nextDueAt()).toBeNull();
        expect(ids((await store.listAttempts({ messageId: msg.id }, {}, page())).items)).toEqual([a1.id, a2.id]);

        // A settlement without an attempt (nothing sent) keeps last_attempt_at.
        await store.scheduleResend(d, T0 + 70_000);
        await store.claimDue('w', T0 + 70_000, T0 + 90_000, 10, []);
        await store.settle([settlement(d, 'w', { status: Status.fail, dueAt: null, attempts: 0 })], { now: T0 + 70_001, disableAfterMs: DAY });
        expect(await store.getDelivery(msg.id, ep.id)).toMatchObject({ status: Status.fail, last_attempt_at: T0 + 60_010, lease_owner: null });
        expect(await store.settle([], { now: T0, disableAfterMs: DAY })).toEqual([]);
      });

      it('fences settle by lease owner but still records the attempt', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const { msg, deliveries: [d] } = await seedMessage(app, [ep]);
        await store.claimDue('w1', T0, T0 + 1000, 10, []);
        // w1's lease runs out; w2 takes the row over.
        await store.claimDue('w2', T0 + 1001, T0 + 31_001, 10, []);
        const before = await store.getDelivery(msg.id, ep.id);
        expect(before).toMatchObject({ lease_owner: 'w2', status: Status.sending });
        const late = attempt(d, { created_at: T0 + 1500 });
        await store.settle([settlement(d, 'w1', { attempt: late, status: Status.success, dueAt: null, attempts: 1 })], { now: T0 + 1501, disableAfterMs: DAY });
        expect(await store.getDelivery(msg.id, ep.id)).toEqual(before);
        expect(await store.getAttempt(msg.id, late.id)).toEqual(late);
        // The rightful owner can still settle.
        await store.settle([settlement(d, 'w2', { status: Status.success, dueAt: null, attempts: 1 })], { now: T0 + 1600, disableAfterMs: DAY });
        expect(await store.getDelivery(msg.id, ep.id)).toMatchObject({ lease_owner: null, status: Status.success, due_at: null });
      });

      it('tracks endpoint failure streaks and disables endpoints failing too long', async () => {
        const { env, app } = await seedApp();
        const ep = await seedEndpoint(app);
        const window = 60_000;
        let now = T0;
        /** One claim-and-settle round for a new message to `ep` with the given outcome. */
        const round = async (health: 'success' | 'failure' | 'none') => {
          const { deliveries: [d] } = await seedMessage(app, [ep], {}, { due_at: now });
          const claimed = await store.claimDue('w', now, now + 1000, 10, []);
          expect(claimed.map((c) => c.delivery.id)).toEqual([d.id]);
          const ok = health === 'success';
          return store.settle(
            [settlement(d, 'w', { attempt: attempt(d, { status: ok ? Status.success : Status.fail, response_status_code: ok ? 200 : 500, created_at: now }), status: ok ? Status.success : Status.fail, health })],
            { now, disableAfterMs: window },
          );
        };
        const failingSince = async () => (await store.getEndpoint(app.id, ep.id))!.failing_since;

        expect(await round('failure')).toEqual([]);
        expect(await failingSince()).toBe(T0);
        now = T0 + 10_000;
        expect(await round('failure')).toEqual([]);
        expect(await failingSince()).toBe(T0);
        now = T0 + 20_000;
        expect(await round('none')).toEqual([]);
        expect(await failingSince()).toBe(T0);
        now = T0 + 30_000;
        expect(await round('success')).toEqual([]);
        expect(await failingSince()).toBeNull();

        now = T0 + 100_000;
        expect(await round('failure')).toEqual([]);
        expect(await failingSince()).toBe(T0 + 100_000);
        now = T0 + 100_000 + window - 1;
        expect(await round('failure')).toEqual([]);
        expect((await store.getEndpoint(app.id, ep.id))!.disabled).toBe(0);
        now = T0 + 100_000 + window;
        expect(await round('failure')).toEqual([
          { endpointId: ep.id, appId: app.id, environmentId: env.id, failingSince: T0 + 100_000, reason: 'failing' },
        ]);
        expect(await store.getEndpoint(app.id, ep.id)).toMatchObject({ disabled: 1, failing_since: T0 + 100_000, updated_at: now });
        expect(await store.listEnabledEndpoints([app.id])).toEqual([]);
        // An already disabled endpoint is not reported again.
        now += 1000;
        expect(await round('failure')).toEqual([]);
      });

      it('lets the last outcome of a batch win for the streak', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const { deliveries: [d1] } = await seedMessage(app, [ep]);
        const { deliveries: [d3] } = await seedMessage(app, [ep]);
        await store.claimDue('w', T0, T0 + 1000, 10, []);
        await store.settle(
          [settlement(d1, 'w', { health: 'failure', status: Status.fail }), settlement(d3, 'w', { health: 'success' })],
          { now: T0 + 1, disableAfterMs: 1000 },
        );
        expect((await store.getEndpoint(app.id, ep.id))!.failing_since).toBeNull();

        const { deliveries: [d4] } = await seedMessage(app, [ep], {}, { due_at: T0 + 10 });
        const { deliveries: [d5] } = await seedMessage(app, [ep], {}, { due_at: T0 + 10 });
        await store.claimDue('w', T0 + 10, T0 + 1000, 10, []);
        await store.settle(
          [settlement(d4, 'w', { health: 'success' }), settlement(d5, 'w', { health: 'failure', status: Status.fail })],
          { now: T0 + 11, disableAfterMs: 1000 },
        );
        expect((await store.getEndpoint(app.id, ep.id))!.failing_since).toBe(T0 + 11);
      });

      it('disables at once on 410 Gone', async () => {
        const { env, app } = await seedApp();
        const ep = await seedEndpoint(app);
        const other = await seedEndpoint(app);
        const { deliveries: [d, dOther] } = await seedMessage(app, [ep, other]);
        await store.claimDue('w', T0, T0 + 1000, 10, []);
        const disabled = await store.settle(
          [
            settlement(d, 'w', { attempt: attempt(d, { status: Status.fail, response_status_code: 410 }), status: Status.fail, health: 'failure', disableNow: true }),
            settlement(dOther, 'w', { attempt: attempt(dOther), health: 'success' }),
          ],
          { now: T0 + 5, disableAfterMs: DAY },
        );
        expect(disabled).toEqual([{ endpointId: ep.id, appId: app.id, environmentId: env.id, failingSince: T0 + 5, reason: 'gone' }]);
        expect(await store.getEndpoint(app.id, ep.id)).toMatchObject({ disabled: 1, failing_since: T0 + 5, updated_at: T0 + 5 });
        expect(await store.getEndpoint(app.id, other.id)).toMatchObject({ disabled: 0, failing_since: null });
        expect(ids(await store.listEnabledEndpoints([app.id]))).toEqual([other.id]);
      });

      it('reports the earliest due time', async () => {
        expect(await store.nextDueAt()).toBeNull();
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        await seedMessage(app, [ep], {}, { due_at: T0 + 5000 });
        await seedMessage(app, [ep], {}, { due_at: null, status: Status.success });
        await seedMessage(app, [ep], {}, { due_at: T0 + 2000 });
        expect(await store.nextDueAt()).toBe(T0 + 2000);
        // A lease expiry counts too: it is when the row becomes claimable again.
        await store.claimDue('w', T0 + 2000, T0 + 3000, 10, []);
        expect(await store.nextDueAt()).toBe(T0 + 3000);
        // Only rows due strictly later than `after`: what a worker that could not take the rows
        // due now waits for.
        expect(await store.nextDueAt(T0 + 2999)).toBe(T0 + 3000);
        expect(await store.nextDueAt(T0 + 3000)).toBe(T0 + 5000);
        expect(await store.nextDueAt(T0 + 5000)).toBeNull();
      });

      it('releases only the given owner\'s leases', async () => {
        const { app } = await seedApp();
        const e1 = await seedEndpoint(app);
        const e2 = await seedEndpoint(app);
        const { msg, deliveries: [d1, d2] } = await seedMessage(app, [e1, e2]);
        await store.claimDue('w1', T0, T0 + 30_000, 1, [e2.id]);
        await store.claimDue('w2', T0, T0 + 30_000, 1, [e1.id]);
        await store.releaseLeases('w1', T0 + 100);
        expect(await store.getDelivery(msg.id, e1.id)).toEqual({ ...d1, status: Status.pending, due_at: T0 + 100, lease_owner: null, updated_at: T0 + 100 });
        expect(await store.getDelivery(msg.id, e2.id)).toMatchObject({ id: d2.id, status: Status.sending, lease_owner: 'w2', due_at: T0 + 30_000 });
        const reclaimed = await store.claimDue('w3', T0 + 100, T0 + 200, 10, []);
        expect(reclaimed.map((c) => c.delivery.id)).toEqual([d1.id]);
      });

      it('schedules a resend by creating or resetting the delivery', async () => {
        const { app } = await seedApp();
        const e1 = await seedEndpoint(app);
        const e2 = await seedEndpoint(app);
        const { msg, deliveries: [d1] } = await seedMessage(app, [e1], {}, { status: Status.fail, due_at: null, attempts: 5, last_attempt_at: T0 + 50 });

        await store.scheduleResend(delivery(msg, e1, { trigger_type: 1, created_at: T0 + 1000, updated_at: T0 + 1000 }), T0 + 1000);
        expect(await store.getDelivery(msg.id, e1.id)).toEqual({
          ...d1, status: Status.pending, due_at: T0 + 1000, attempts: 0, trigger_type: 1, lease_owner: null, updated_at: T0 + 1000,
        });

        const fresh = delivery(msg, e2, { trigger_type: 1, due_at: T0 + 2000, created_at: T0 + 2000, updated_at: T0 + 2000 });
        await store.scheduleResend(fresh, T0 + 2000);
        expect(await store.getDelivery(msg.id, e2.id)).toEqual(fresh);
        expect((await store.listDeliveriesOfMessage(msg.id, page())).items).toHaveLength(2);

        // Resetting a row that is being sent drops the lease.
        await store.claimDue('w', T0 + 2000, T0 + 9000, 10, []);
        await store.scheduleResend(delivery(msg, e2, { trigger_type: 1 }), T0 + 3000);
        expect(await store.getDelivery(msg.id, e2.id)).toMatchObject({ id: fresh.id, status: Status.pending, due_at: T0 + 3000, lease_owner: null });
      });

      it('recovers only failed deliveries created within [since, until)', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const otherEp = await seedEndpoint(app);
        const failed = { status: Status.fail, due_at: null, attempts: 3 };
        const { msg: early } = await seedMessage(app, [ep], { created_at: T0 + 999 }, failed);
        const { msg: atSince } = await seedMessage(app, [ep], { created_at: T0 + 1000 }, failed);
        const { msg: inside } = await seedMessage(app, [ep], { created_at: T0 + 1999 }, failed);
        const { msg: atUntil } = await seedMessage(app, [ep], { created_at: T0 + 2000 }, failed);
        const { msg: succeeded } = await seedMessage(app, [ep], { created_at: T0 + 1500 }, { status: Status.success, due_at: null, attempts: 1 });
        const { msg: pending } = await seedMessage(app, [ep], { created_at: T0 + 1500 }, { status: Status.pending, due_at: T0 + 99_000, attempts: 1 });
        const { msg: otherMsg } = await seedMessage(app, [otherEp], { created_at: T0 + 1500 }, failed);

        expect(await store.recoverFailed(ep.id, T0 + 1000, T0 + 2000, T0 + 5000)).toBe(2);
        for (const m of [atSince, inside]) {
          expect(await store.getDelivery(m.id, ep.id)).toMatchObject({ status: Status.pending, due_at: T0 + 5000, attempts: 0, trigger_type: 1, updated_at: T0 + 5000 });
        }
        for (const m of [early, atUntil]) expect(await store.getDelivery(m.id, ep.id)).toMatchObject({ status: Status.fail, due_at: null, attempts: 3 });
        expect(await store.getDelivery(succeeded.id, ep.id)).toMatchObject({ status: Status.success, due_at: null });
        expect(await store.getDelivery(pending.id, ep.id)).toMatchObject({ status: Status.pending, due_at: T0 + 99_000, attempts: 1 });
        expect(await store.getDelivery(otherMsg.id, otherEp.id)).toMatchObject({ status: Status.fail });
        expect(await store.recoverFailed(ep.id, T0 + 1000, T0 + 2000, T0 + 6000)).toBe(0);
      });

      it('counts deliveries per status for an endpoint, optionally within a time range', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const otherEp = await seedEndpoint(app);
        expect(await store.endpointStats(ep.id, null, null)).toEqual({ success: 0, pending: 0, fail: 0, sending: 0 });
        await seedMessage(app, [ep], { created_at: T0 + 1 }, { status: Status.success, due_at: null });
        await seedMessage(app, [ep], { created_at: T0 + 2 }, { status: Status.success, due_at: null });
        await seedMessage(app, [ep], { created_at: T0 + 3 }, { status: Status.fail, due_at: null });
        await seedMessage(app, [ep], { created_at: T0 + 4 }, { status: Status.pending, due_at: T0 + 50_000 });
        await seedMessage(app, [ep], { created_at: T0 + 5 }, { status: Status.pending, due_at: T0 });
        await seedMessage(app, [otherEp], { created_at: T0 + 1 }, { status: Status.success, due_at: null });
        await store.claimDue('w', T0, T0 + 1000, 10, []);
        expect(await store.endpointStats(ep.id, null, null)).toEqual({ success: 2, pending: 1, fail: 1, sending: 1 });
        expect(await store.endpointStats(ep.id, T0 + 2, null)).toEqual({ success: 1, pending: 1, fail: 1, sending: 1 });
        expect(await store.endpointStats(ep.id, null, T0 + 3)).toEqual({ success: 2, pending: 0, fail: 0, sending: 0 });
        expect(await store.endpointStats(ep.id, T0 + 2, T0 + 4)).toEqual({ success: 1, pending: 0, fail: 1, sending: 0 });
      });

      it('lists the deliveries of a message, paged by endpoint id', async () => {
        const { app } = await seedApp();
        const eps = [await seedEndpoint(app), await seedEndpoint(app), await seedEndpoint(app)];
        const { msg, deliveries } = await seedMessage(app, eps, {}, { due_at: null, status: Status.success, last_attempt_at: T0 + 3 });
        await seedMessage(app, eps);
        expect(await store.listDeliveriesOfMessage(msg.id, page(2))).toEqual({ items: deliveries.slice(0, 2), done: false });
        expect(await store.listDeliveriesOfMessage(msg.id, page(2, eps[1].id))).toEqual({ items: deliveries.slice(2), done: true });
        expect(await store.listDeliveriesOfMessage(msg.id, page(2, null, 'desc'))).toEqual({ items: [deliveries[2], deliveries[1]], done: false });
        expect(await store.listDeliveriesOfMessage(newId('msg'), page())).toEqual({ items: [], done: true });
      });

      it('lists the deliveries to an endpoint with their messages, filtered and paged', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const otherEp = await seedEndpoint(app);
        const a = await seedMessage(app, [ep, otherEp], { event_type: 'a.one', channels: '["c1"]', created_at: T0 + 10 }, { status: Status.success, due_at: null });
        const b = await seedMessage(app, [ep], { event_type: 'b.two', created_at: T0 + 20 }, { status: Status.fail, due_at: null, attempts: 4, last_attempt_at: T0 + 21 });
        const c = await seedMessage(app, [ep], { event_type: 'a.one', channels: '["c2"]', created_at: T0 + 30 }, { status: Status.success, due_at: null });
        const d = await seedMessage(app, [otherEp], { event_type: 'a.one', created_at: T0 + 40 });

        const all = await store.listDeliveriesOfEndpoint(ep.id, {}, page(10, null, 'desc'));
        expect(all.done).toBe(true);
        expect(all.items).toEqual([
          { delivery: c.deliveries[0], message: c.msg },
          { delivery: b.deliveries[0], message: b.msg },
          { delivery: a.deliveries[0], message: a.msg },
        ]);
        const p1 = await store.listDeliveriesOfEndpoint(ep.id, {}, page(2, null, 'desc'));
        expect(p1.done).toBe(false);
        expect(p1.items.map((i) => i.message.id)).toEqual([c.msg.id, b.msg.id]);
        const p2 = await store.listDeliveriesOfEndpoint(ep.id, {}, page(2, b.msg.id, 'desc'));
        expect(p2).toEqual({ items: [{ delivery: a.deliveries[0], message: a.msg }], done: true });

        const mids = async (f: Parameters<Store['listDeliveriesOfEndpoint']>[1]) =>
          (await store.listDeliveriesOfEndpoint(ep.id, f, page(10, null, 'asc'))).items.map((i) => i.message.id);
        expect(await mids({ status: Status.success })).toEqual([a.msg.id, c.msg.id]);
        expect(await mids({ status: Status.fail })).toEqual([b.msg.id]);
        expect(await mids({ status: Status.pending })).toEqual([]);
        expect(await mids({ eventTypes: ['a.one'] })).toEqual([a.msg.id, c.msg.id]);
        expect(await mids({ channel: 'c2' })).toEqual([c.msg.id]);
        expect(await mids({ after: T0 + 10, before: T0 + 30 })).toEqual([b.msg.id]);
        expect(await mids({ status: Status.success, after: T0 + 10 })).toEqual([c.msg.id]);
        expect((await store.listDeliveriesOfEndpoint(otherEp.id, {}, page())).items.map((i) => i.message.id)).toEqual([a.msg.id, d.msg.id]);
      });
    });

    // ── attempts ───────────────────────────────────────────────────────────────────────────

    describe('attempts', () => {
      /** Two endpoints, three messages, attempts with assorted outcomes, all recorded via settle. */
      async function seedAttempts() {
        const { app } = await seedApp();
        const e1 = await seedEndpoint(app);
        const e2 = await seedEndpoint(app);
        const m1 = await seedMessage(app, [e1, e2], { event_type: 'user.created', channels: '["x_y"]' });
        const m2 = await seedMessage(app, [e1], { event_type: 'user.deleted', channels: '["xzy"]' });
        const m3 = await seedMessage(app, [e1], { event_type: 'user.created' });
        await store.claimDue('w', T0, T0 + 1000, 10, []);
        const [d11, d12] = m1.deliveries;
        const [d21] = m2.deliveries;
        const [d31] = m3.deliveries;
        const at = {
          a1: attempt(d11, { status: Status.fail, response_status_code: 500, created_at: T0 + 1 }),
          a2: attempt(d11, { status: Status.fail, response_status_code: 0, error_class: 'timeout', error: 'timed out', created_at: T0 + 2 }),
          a3: attempt(d11, { status: Status.success, response_status_code: 200, created_at: T0 + 3 }),
          a4: attempt(d12, { status: Status.fail, response_status_code: 404, created_at: T0 + 4 }),
          a5: attempt(d21, { status: Status.success, response_status_code: 204, created_at: T0 + 5 }),
          a6: attempt(d31, { status: Status.fail, response_status_code: 503, response_truncated: 1, created_at: T0 + 6 }),
        };
        const settlements = Object.values(at).map((a) => settlement([d11, d12, d21, d31].find((d) => d.id === a.delivery_id)!, 'w', { attempt: a }));
        await store.settle(settlements, { now: T0 + 10, disableAfterMs: DAY });
        return { app, e1, e2, m1: m1.msg, m2: m2.msg, m3: m3.msg, ...at };
      }

      it('lists by endpoint and by message with status and status code class filters', async () => {
        const s = await seedAttempts();
        const list = async (scope: Parameters<Store['listAttempts']>[0], filter: Parameters<Store['listAttempts']>[1] = {}, p = page()) =>
          ids((await store.listAttempts(scope, filter, p)).items);

        expect(await store.listAttempts({ endpointId: s.e1.id }, {}, page())).toEqual({ items: [s.a1, s.a2, s.a3, s.a5, s.a6], done: true });
        expect(await list({ endpointId: s.e2.id })).toEqual(ids([s.a4]));
        expect(await list({ messageId: s.m1.id })).toEqual(ids([s.a1, s.a2, s.a3, s.a4]));
        expect(await list({ messageId: s.m1.id }, { endpointId: s.e2.id })).toEqual(ids([s.a4]));
        expect(await list({ messageId: s.m1.id, endpointId: s.e1.id })).toEqual(ids([s.a1, s.a2, s.a3]));

        expect(await list({ endpointId: s.e1.id }, { status: Status.success })).toEqual(ids([s.a3, s.a5]));
        expect(await list({ endpointId: s.e1.id }, { status: Status.fail })).toEqual(ids([s.a1, s.a2, s.a6]));
        expect(await list({ endpointId: s.e1.id }, { status: Status.pending })).toEqual([]);
        expect(await list({ endpointId: s.e1.id }, { statusCodeClass: 500 })).toEqual(ids([s.a1, s.a6]));
        expect(await list({ endpointId: s.e1.id }, { statusCodeClass: 200 })).toEqual(ids([s.a3, s.a5]));
        expect(await list({ endpointId: s.e1.id }, { statusCodeClass: 0 })).toEqual(ids([s.a2]));
        expect(await list({ messageId: s.m1.id }, { statusCodeClass: 400 })).toEqual(ids([s.a4]));
        expect(await list({ endpointId: s.e1.id }, { statusCodeClass: 300 })).toEqual([]);
        expect(await list({ endpointId: s.e1.id }, { status: Status.fail, statusCodeClass: 500 })).toEqual(ids([s.a1, s.a6]));

        expect(await list({ endpointId: s.e1.id }, { eventTypes: ['user.created'] })).toEqual(ids([s.a1, s.a2, s.a3, s.a6]));
        expect(await list({ endpointId: s.e1.id }, { channel: 'x_y' })).toEqual(ids([s.a1, s.a2, s.a3]));
        expect(await list({ endpointId: s.e1.id }, { channel: 'xzy' })).toEqual(ids([s.a5]));
        expect(await list({ endpointId: s.e1.id }, { after: T0 + 2, before: T0 + 6 })).toEqual(ids([s.a3, s.a5]));

        const p1 = await store.listAttempts({ endpointId: s.e1.id }, {}, page(2, null, 'desc'));
        expect(p1).toEqual({ items: [s.a6, s.a5], done: false });
        const p2 = await store.listAttempts({ endpointId: s.e1.id }, {}, page(2, s.a5.id, 'desc'));
        expect(p2).toEqual({ items: [s.a3, s.a2], done: false });
        const p3 = await store.listAttempts({ endpointId: s.e1.id }, {}, page(2, s.a2.id, 'desc'));
        expect(p3).toEqual({ items: [s.a1], done: true });
      });

      it('gets one attempt of a message and expunges its response', async () => {
        const s = await seedAttempts();
        expect(await store.getAttempt(s.m1.id, s.a4.id)).toEqual(s.a4);
        expect(await store.getAttempt(s.m2.id, s.a4.id)).toBeUndefined();
        expect(await store.getAttempt(s.m1.id, newId('atmpt'))).toBeUndefined();

        await store.expungeAttemptResponse(s.m2.id, s.a6.id);
        expect(await store.getAttempt(s.m3.id, s.a6.id)).toEqual(s.a6);
        await store.expungeAttemptResponse(s.m3.id, s.a6.id);
        expect(await store.getAttempt(s.m3.id, s.a6.id)).toEqual({ ...s.a6, response: '', response_truncated: 0 });
        expect(await store.getAttempt(s.m1.id, s.a1.id)).toEqual(s.a1);
      });
    });

    // ── idempotency ────────────────────────────────────────────────────────────────────────

    describe('idempotency', () => {
      it('migration 005 blanks credentials an earlier build kept in idempotency answers, and leaves message answers whole', async () => {
        const { env } = await seedApp();
        const answers: Record<string, string> = {
          apiKey: '{"id":"key_1","name":"ci","key":"kpl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}',
          environment: '{"id":"env_2","name":"staging","apiKey":{"id":"key_2","key":"kpl_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"}}',
          portal: '{"url":"http://localhost:8071/portal#token=kpp_CCCC","token":"kpp_CCCC"}',
          message: '{"id":"msg_1","eventType":"user.created","payload":{"note":"\\"kpl_ looks like a key"}}',
          other: '{"id":"app_1","name":"shop"}',
        };
        for (const [key, response] of Object.entries(answers)) {
          expect(await store.beginIdempotent(env.id, key, 'h', T0, DAY)).toEqual({ state: 'new' });
          await store.completeIdempotent(env.id, key, 201, response);
        }
        const migration = MIGRATIONS.find((m) => m.name === '005-idempotency-credentials')!;
        await migration.up((store as unknown as { db: Parameters<typeof migration.up>[0] }).db);
        const kept = async (key: string) => {
          const r = await store.beginIdempotent(env.id, key, 'h', T0 + 1, DAY);
          return r.state === 'done' ? r.response : r.state;
        };
        expect(await kept('apiKey')).toBe('');
        expect(await kept('environment')).toBe('');
        expect(await kept('portal')).toBe('');
        expect(await kept('message')).toBe(answers.message);
        expect(await kept('other')).toBe(answers.other);
      });

      it('records a response with the message it belongs to, in the same insert, and not for a refused one', async () => {
        const { env, app } = await seedApp();
        const ep = await seedEndpoint(app);
        expect(await store.beginIdempotent(env.id, 'with-msg', 'h', T0, DAY)).toEqual({ state: 'new' });
        expect(await store.beginIdempotent(env.id, 'dup-msg', 'h', T0, DAY)).toEqual({ state: 'new' });
        const m1 = message(app, { id: messageIdAt(T0 + 1), event_id: 'evt-1' });
        const m2 = message(app, { id: messageIdAt(T0 + 2), event_id: 'evt-1' });
        const completion = (key: string, response: string) => ({ environmentId: env.id, key, statusCode: 202, response, expiresAt: T0 + 30 * DAY });
        expect(await store.insertMessages([{ message: m1, deliveries: [delivery(m1, ep)], idempotency: completion('with-msg', `{"id":"${m1.id}"}`) }])).toEqual([{ ok: true }]);
        // A repeated eventId is refused: its key keeps waiting for the request's own answer (409).
        const [dup] = await store.insertMessages([{ message: m2, deliveries: [delivery(m2, ep)], idempotency: completion('dup-msg', `{"id":"${m2.id}"}`) }]);
        expect(dup.ok).toBe(false);
        expect(await store.beginIdempotent(env.id, 'with-msg', 'h', T0 + 5, DAY)).toEqual({ state: 'done', statusCode: 202, response: `{"id":"${m1.id}"}` });
        expect(await store.beginIdempotent(env.id, 'dup-msg', 'h', T0 + 5, DAY)).toEqual({ state: 'pending' });
      });

      it('keeps a recorded response no longer than the payloads it holds, then forgets and purges the key', async () => {
        const { env, app } = await seedApp();
        const HOUR = DAY / 24;
        for (const key of ['short', 'long', 'bulk', 'plain']) expect(await store.beginIdempotent(env.id, key, 'h', T0, DAY)).toEqual({ state: 'new' });
        const short = message(app, { expires_at: T0 + HOUR });
        const long = message(app, { expires_at: T0 + 90 * DAY });
        const completion = (key: string, m: MessageRow) => ({ environmentId: env.id, key, statusCode: 202, response: `{"id":"${m.id}"}`, expiresAt: m.expires_at });
        await store.insertMessages([
          { message: short, deliveries: [], idempotency: completion('short', short) },
          { message: long, deliveries: [], idempotency: completion('long', long) },
        ]);
        // As the API records a response that holds payloads (bulk), and one that holds none.
        await store.completeIdempotent(env.id, 'bulk', 202, '{"data":[]}', T0 + 2 * HOUR);
        await store.completeIdempotent(env.id, 'plain', 200, '{}');
        const state = async (key: string, at: number) => (await store.beginIdempotent(env.id, key, 'h', at, DAY)).state;
        expect(await state('short', T0 + HOUR - 1)).toBe('done');
        expect(await state('bulk', T0 + HOUR)).toBe('done');
        // Once the payload has expired its key is free: a repeat runs as a new request.
        expect(await state('short', T0 + HOUR)).toBe('new');
        // The retention job removes an expired key, and only that one.
        expect((await store.purgeExpired(T0 + 2 * HOUR + 1, T0 - 30 * DAY, 100)).idempotencyKeys).toBe(1);
        expect(await state('bulk', T0 + 2 * HOUR + 1)).toBe('new');
        // A later expiry never lengthens the key's TTL.
        expect(await state('long', T0 + DAY - 1)).toBe('done');
        expect(await state('plain', T0 + DAY - 1)).toBe('done');
        expect(await state('long', T0 + DAY)).toBe('new');
      });

      it('begins, sees pending, completes, replays, and detects a different request', async () => {
        const env = environment();
        await store.createEnvironment(env);
        const ttl = DAY;
        expect(await store.beginIdempotent(env.id, 'k1', 'h1', T0, ttl)).toEqual({ state: 'new' });
        expect(await store.beginIdempotent(env.id, 'k1', 'h1', T0 + 1, ttl)).toEqual({ state: 'pending' });
        expect(await store.beginIdempotent(env.id, 'k1', 'h2', T0 + 1, ttl)).toEqual({ state: 'mismatch' });
        await store.completeIdempotent(env.id, 'k1', 202, '{"id":"msg_1"}');
        expect(await store.beginIdempotent(env.id, 'k1', 'h1', T0 + 2, ttl)).toEqual({ state: 'done', statusCode: 202, response: '{"id":"msg_1"}' });
        expect(await store.beginIdempotent(env.id, 'k1', 'h2', T0 + 2, ttl)).toEqual({ state: 'mismatch' });
        // Keys are per environment.
        const other = environment();
        await store.createEnvironment(other);
        expect(await store.beginIdempotent(other.id, 'k1', 'h2', T0 + 2, ttl)).toEqual({ state: 'new' });
      });

      it('lets exactly one of several concurrent begins with one key proceed', async () => {
        const env = environment();
        await store.createEnvironment(env);
        const states = await Promise.all([1, 2, 3, 4].map(() => store.beginIdempotent(env.id, 'race', 'h', T0, DAY)));
        expect(states.filter((x) => x.state === 'new')).toHaveLength(1);
        expect(states.filter((x) => x.state === 'pending')).toHaveLength(3);
      });

      it('forgets an expired key', async () => {
        const env = environment();
        await store.createEnvironment(env);
        expect(await store.beginIdempotent(env.id, 'k', 'h1', T0, 1000)).toEqual({ state: 'new' });
        await store.completeIdempotent(env.id, 'k', 200, 'first');
        expect(await store.beginIdempotent(env.id, 'k', 'h1', T0 + 999, 1000)).toEqual({ state: 'done', statusCode: 200, response: 'first' });
        expect(await store.beginIdempotent(env.id, 'k', 'h2', T0 + 1000, 1000)).toEqual({ state: 'new' });
        expect(await store.beginIdempotent(env.id, 'k', 'h2', T0 + 1001, 1000)).toEqual({ state: 'pending' });
        // A pending key expires too (a crashed request does not block the key forever).
        expect(await store.beginIdempotent(env.id, 'k', 'h3', T0 + 2000, 1000)).toEqual({ state: 'new' });
      });

      it('abandons a pending key but never a completed one', async () => {
        const env = environment();
        await store.createEnvironment(env);
        await store.beginIdempotent(env.id, 'k', 'h', T0, DAY);
        await store.abandonIdempotent(env.id, 'k');
        expect(await store.beginIdempotent(env.id, 'k', 'h-other', T0 + 1, DAY)).toEqual({ state: 'new' });
        await store.completeIdempotent(env.id, 'k', 201, 'r');
        await store.abandonIdempotent(env.id, 'k');
        expect(await store.beginIdempotent(env.id, 'k', 'h-other', T0 + 2, DAY)).toEqual({ state: 'done', statusCode: 201, response: 'r' });
        // Abandoning an unknown key is harmless.
        await store.abandonIdempotent(env.id, 'unknown');
      });
    });

    // ── endpoint versions ──────────────────────────────────────────────────────────────────

    describe('endpoint versions', () => {
      it('creates an endpoint with its first version in one step and lists versions in order', async () => {
        const { app } = await seedApp();
        const ep = endpoint(app, { auth: 'sealed-auth', transformation: '{"kind":"jsonata"}' });
        expect(await store.createEndpoint(ep, endpointVersion(ep, 1, { reason: 'created' }))).toBe(true);
        expect(await store.getEndpoint(app.id, ep.id)).toEqual(ep);
        const v2 = endpointVersion(ep, 2);
        expect(await store.saveEndpointVersion(app.id, ep.id, { url: 'https://example.com/v2', version: 2 }, v2)).toBe('ok');
        expect(await store.getEndpoint(app.id, ep.id)).toMatchObject({ url: 'https://example.com/v2', version: 2 });
        expect(await store.getEndpointVersion(ep.id, 2)).toEqual(v2);
        expect(await store.getEndpointVersion(ep.id, 3)).toBeUndefined();
        const listed = await store.listEndpointVersions(ep.id, page(10, null, 'desc'));
        expect(listed.items.map((v) => v.version)).toEqual([2, 1]);
        expect(listed.done).toBe(true);
        expect((await store.listEndpointVersions(ep.id, page(1))).items.map((v) => v.version)).toEqual([1]);
      });

      it('refuses a change based on a version that is no longer current, writing nothing', async () => {
        const { app } = await seedApp();
        const ep = endpoint(app);
        await store.createEndpoint(ep, endpointVersion(ep, 1));
        expect(await store.saveEndpointVersion(app.id, ep.id, { url: 'https://a.example/', version: 2 }, endpointVersion(ep, 2))).toBe('ok');
        // A second writer that also read version 1 must not overwrite the first.
        expect(await store.saveEndpointVersion(app.id, ep.id, { url: 'https://b.example/', version: 2 }, endpointVersion(ep, 2))).toBe('stale');
        expect((await store.getEndpoint(app.id, ep.id))!.url).toBe('https://a.example/');
        expect((await store.listEndpointVersions(ep.id, page())).items).toHaveLength(2);
      });

      it('reports a taken uid without changing the endpoint', async () => {
        const { app } = await seedApp();
        const a = endpoint(app, { uid: 'a' });
        const b = endpoint(app, { uid: 'b' });
        await store.createEndpoint(a, endpointVersion(a, 1));
        await store.createEndpoint(b, endpointVersion(b, 1));
        expect(await store.saveEndpointVersion(app.id, b.id, { uid: 'a', version: 2 }, endpointVersion(b, 2))).toBe('uid_taken');
        expect((await store.getEndpoint(app.id, b.id))!.uid).toBe('b');
        expect(await store.getEndpointVersion(b.id, 2)).toBeUndefined();
      });

      it('deleting the endpoint or its application deletes its versions', async () => {
        const { env, app } = await seedApp();
        const ep = endpoint(app);
        await store.createEndpoint(ep, endpointVersion(ep, 1));
        await store.deleteEndpoint(app.id, ep.id);
        expect(await store.getEndpointVersion(ep.id, 1)).toBeUndefined();
        const ep2 = endpoint(app);
        await store.createEndpoint(ep2, endpointVersion(ep2, 1));
        await store.deleteApplication(env.id, app.id);
        expect(await store.getEndpointVersion(ep2.id, 1)).toBeUndefined();
      });
    });

    // ── sources ────────────────────────────────────────────────────────────────────────────

    describe('sources', () => {
      it('creates, finds by id or uid, lists, updates and deletes, scoped to the application', async () => {
        const { env, app } = await seedApp();
        const other = application(env.id);
        await store.createApplication(other);
        const s = source(app, { uid: 'shop' });
        expect(await store.createSource(s)).toBe(true);
        expect(await store.createSource(source(app, { uid: 'shop' }))).toBe(false);
        expect(await store.createSource(source(other, { uid: 'shop' }))).toBe(true);
        expect(await store.getSource(app.id, s.id)).toEqual(s);
        expect(await store.getSource(app.id, 'shop')).toEqual(s);
        expect(await store.getSource(other.id, s.id)).toBeUndefined();
        expect(await store.getSourceById(s.id)).toEqual(s);
        const s2 = source(app);
        await store.createSource(s2);
        expect(await store.listSources(app.id, page(1))).toEqual({ items: [s], done: false });
        expect(await store.listSources(app.id, page(1, s.id))).toEqual({ items: [s2], done: true });
        expect(await store.updateSource({ ...s2, uid: 'shop' })).toBe(false);
        expect(await store.updateSource({ ...s, name: 'Renamed', disabled: 1 })).toBe(true);
        expect(await store.getSource(app.id, s.id)).toEqual({ ...s, name: 'Renamed', disabled: 1 });
        await store.recordSourceEvent({ event: sourceEvent(s), dedupe: { keyHash: 'k', expiresAt: T0 + DAY }, message: null });
        await store.deleteSource(other.id, s.id);
        expect(await store.getSource(app.id, s.id)).toBeDefined();
        await store.deleteSource(app.id, s.id);
        expect(await store.getSource(app.id, s.id)).toBeUndefined();
        expect((await store.listSourceEvents(s.id, {}, page())).items).toEqual([]);
        // The de-duplication key went with it: a new source with the same id could not collide,
        // and the same key on another source was never shared.
        const again = await store.recordSourceEvent({ event: sourceEvent(s2, { dedupe_key: 'k' }), dedupe: { keyHash: 'k', expiresAt: T0 + DAY }, message: null });
        expect(again).toEqual({ status: 'accepted' });
      });

      it('records an accepted event with its message and deliveries in one step', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const s = source(app);
        await store.createSource(s);
        const msg = message(app, { event_type: 'push' });
        const dlv = delivery(msg, ep);
        const ev = sourceEvent(s, { message_id: msg.id });
        expect(await store.recordSourceEvent({ event: ev, dedupe: { keyHash: 'h1', expiresAt: T0 + DAY }, message: { message: msg, deliveries: [dlv] } })).toEqual({ status: 'accepted' });
        expect(await store.getSourceEvent(s.id, ev.id)).toEqual(ev);
        expect(await store.getMessage(app.id, msg.id)).toEqual(msg);
        expect(await store.getDelivery(msg.id, ep.id)).toEqual(dlv);
      });

      it('stores a repeated key inside its window as a duplicate of the first, without a message', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const s = source(app);
        await store.createSource(s);
        const first = sourceEvent(s);
        await store.recordSourceEvent({ event: first, dedupe: { keyHash: 'h', expiresAt: T0 + DAY }, message: null });
        const msg = message(app);
        const second = sourceEvent(s, { created_at: T0 + DAY - 1, message_id: msg.id });
        const r = await store.recordSourceEvent({ event: second, dedupe: { keyHash: 'h', expiresAt: T0 + 2 * DAY }, message: { message: msg, deliveries: [delivery(msg, ep)] } });
        expect(r).toEqual({ status: 'duplicate', duplicateOf: first.id });
        expect(await store.getSourceEvent(s.id, second.id)).toEqual({ ...second, status: 'duplicate', reason: `duplicate of ${first.id}`, message_id: null });
        expect(await store.getMessage(app.id, msg.id)).toBeUndefined();
        // After the window the same key is new again.
        const third = sourceEvent(s, { created_at: T0 + DAY });
        expect(await store.recordSourceEvent({ event: third, dedupe: { keyHash: 'h', expiresAt: T0 + 2 * DAY }, message: null })).toEqual({ status: 'accepted' });
        // Without a key nothing is de-duplicated.
        expect(await store.recordSourceEvent({ event: sourceEvent(s), dedupe: null, message: null })).toEqual({ status: 'accepted' });
      });

      it('lets exactly one of many concurrent events with the same key through', async () => {
        const { app } = await seedApp();
        const s = source(app);
        await store.createSource(s);
        const results = await Promise.all(
          Array.from({ length: 8 }, () => store.recordSourceEvent({ event: sourceEvent(s), dedupe: { keyHash: 'same', expiresAt: T0 + DAY }, message: null }).catch((e) => ({ status: String(e) }))),
        );
        expect(results.filter((r) => r.status === 'accepted')).toHaveLength(1);
        expect(results.filter((r) => r.status === 'duplicate')).toHaveLength(7);
      });

      it('lists events newest first with a status filter; rejected events keep no payload', async () => {
        const { app } = await seedApp();
        const s = source(app);
        await store.createSource(s);
        const ok = sourceEvent(s);
        const bad = sourceEvent(s, { status: 'rejected', reason: 'signature mismatch', payload: null, event_type: null, dedupe_key: null });
        await store.recordSourceEvent({ event: ok, dedupe: null, message: null });
        await store.insertSourceEvent(bad);
        expect(await store.listSourceEvents(s.id, {}, page(10, null, 'desc'))).toEqual({ items: [bad, ok], done: true });
        expect(await store.listSourceEvents(s.id, { status: 'rejected' }, page())).toEqual({ items: [bad], done: true });
        expect(await store.getSourceEvent('src_other', ok.id)).toBeUndefined();
      });

      it('retention removes source events past the retention period and expired keys', async () => {
        const { app } = await seedApp();
        const s = source(app);
        await store.createSource(s);
        const old = sourceEvent(s, { created_at: T0 });
        const fresh = sourceEvent(s, { created_at: T0 + 40 * DAY });
        await store.recordSourceEvent({ event: old, dedupe: { keyHash: 'old', expiresAt: T0 + DAY }, message: null });
        await store.recordSourceEvent({ event: fresh, dedupe: { keyHash: 'fresh', expiresAt: T0 + 41 * DAY + 1 }, message: null });
        const now = T0 + 41 * DAY;
        expect(await store.purgeExpired(now, now - 30 * DAY, 100)).toMatchObject({ sourceEvents: 1, dedupeKeys: 1 });
        expect(await store.getSourceEvent(s.id, old.id)).toBeUndefined();
        expect(await store.getSourceEvent(s.id, fresh.id)).toEqual(fresh);
        // The fresh key still holds, so a repeat is a duplicate of the fresh event.
        expect(await store.recordSourceEvent({ event: sourceEvent(s, { created_at: now }), dedupe: { keyHash: 'fresh', expiresAt: now + DAY }, message: null })).toEqual({ status: 'duplicate', duplicateOf: fresh.id });
      });

      it('deleting the application deletes its sources and their events', async () => {
        const { env, app } = await seedApp();
        const s = source(app);
        await store.createSource(s);
        const ev = sourceEvent(s);
        await store.recordSourceEvent({ event: ev, dedupe: { keyHash: 'x', expiresAt: T0 + DAY }, message: null });
        await store.deleteApplication(env.id, app.id);
        expect(await store.getSourceById(s.id)).toBeUndefined();
        expect(await store.getSourceEvent(s.id, ev.id)).toBeUndefined();
      });
    });

    // ── operational events ─────────────────────────────────────────────────────────────────

    describe('operational events', () => {
      it('records and lists per environment, paged', async () => {
        const env = environment();
        const other = environment();
        await store.createEnvironment(env);
        await store.createEnvironment(other);
        const ev = (environmentId: string, i: number): OperationalEventRow => ({
          id: newId('oe'), environment_id: environmentId, event_type: 'endpoint.disabled', payload: `{"i":${i}}`, created_at: T0 + i,
        });
        const mine = [ev(env.id, 1), ev(env.id, 2), ev(env.id, 3)];
        const theirs = ev(other.id, 4);
        for (const e of [mine[0], theirs, mine[1], mine[2]]) await store.recordOperationalEvent(e);
        expect(await store.listOperationalEvents(env.id, page())).toEqual({ items: mine, done: true });
        expect(await store.listOperationalEvents(env.id, page(2, null, 'desc'))).toEqual({ items: [mine[2], mine[1]], done: false });
        expect(await store.listOperationalEvents(env.id, page(2, mine[1].id, 'desc'))).toEqual({ items: [mine[0]], done: true });
        expect(await store.listOperationalEvents(other.id, page())).toEqual({ items: [theirs], done: true });
      });
    });

    describe('queue depth and signals', () => {
      it('counts due, scheduled and in-flight deliveries', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        await seedMessage(app, [ep], {}, { due_at: T0 });
        await seedMessage(app, [ep], {}, { due_at: T0 });
        await seedMessage(app, [ep], {}, { due_at: T0 + DAY });
        await seedMessage(app, [ep], {}, { status: Status.success, due_at: null });
        expect(await store.queueDepth(T0)).toEqual({ due: 2, scheduled: 1, inFlight: 0 });
        const claimed = await store.claimDue('w1', T0, T0 + 60_000, 1, []);
        expect(claimed).toHaveLength(1);
        expect(await store.queueDepth(T0)).toEqual({ due: 1, scheduled: 1, inFlight: 1 });
        // Once its lease has run out the row is any worker's to claim again: due, not in flight.
        expect(await store.queueDepth(T0 + 60_000)).toEqual({ due: 2, scheduled: 1, inFlight: 0 });
        expect((await store.claimDue('w2', T0 + 60_000, T0 + 120_000, 5, [])).map((c) => c.delivery.id)).toContain(claimed[0].delivery.id);
      });

      it('delivers a due signal to subscribers, with its endpoints (or accepts it silently in one process)', async () => {
        const signals: (string[] | undefined)[] = [];
        const off = await store.onDue((ids) => signals.push(ids));
        await store.notifyDue();
        await store.notifyDue(['ep_1', 'ep_2']);
        // Too many ids for one NOTIFY payload: a signal for everything.
        await store.notifyDue(Array.from({ length: 1000 }, (_, i) => `ep_${String(i).padStart(20, '0')}`));
        if (store.dialect === 'postgres') {
          for (let i = 0; i < 100 && signals.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
          expect(signals).toEqual([undefined, ['ep_1', 'ep_2'], undefined]);
        } else {
          expect(signals).toEqual([]);
        }
        await off();
      });

      it('signals the endpoints of inserted deliveries when their messages commit', async () => {
        const { app } = await seedApp();
        const [e1, e2] = [await seedEndpoint(app), await seedEndpoint(app)];
        const signals: (string[] | undefined)[] = [];
        const off = await store.onDue((ids) => signals.push(ids));
        const m1 = message(app, { id: messageIdAt(T0 + 1) });
        const m2 = message(app, { id: messageIdAt(T0 + 2) });
        await store.insertMessages([
          { message: m1, deliveries: [delivery(m1, e1)] },
          { message: m2, deliveries: [delivery(m2, e2), delivery(m2, e1)] },
        ]);
        // Messages with no delivery wake nobody.
        const m3 = message(app, { id: messageIdAt(T0 + 3) });
        await store.insertMessages([{ message: m3, deliveries: [] }]);
        await expectSignalsAfterCommit(signals, [[e1.id, e2.id]]);
        await off();
      });

      it('writes a delivery leased at insert as its owner holds it: not claimable or signalled, settled by its owner', async () => {
        const { app } = await seedApp();
        const [e1, e2] = [await seedEndpoint(app), await seedEndpoint(app)];
        const signals: (string[] | undefined)[] = [];
        const off = await store.onDue((ids) => signals.push(ids));
        const m = message(app, { id: messageIdAt(T0 + 1) });
        // As the ingest's own worker leases the rows it will start itself (DeliveryWorker.lease).
        const leased = delivery(m, e1, { status: Status.sending, due_at: T0 + 60_000, lease_owner: 'w-local' });
        const open = delivery(m, e2);
        expect(await store.insertMessages([{ message: m, deliveries: [leased, open] }])).toEqual([{ ok: true }]);
        expect((await store.claimDue('w-other', T0, T0 + 60_000, 50, [])).map((c) => c.delivery.id)).toEqual([open.id]);
        expect(await store.queueDepth(T0)).toEqual({ due: 0, scheduled: 0, inFlight: 2 });
        // Its owner settles it as it would a claimed row.
        await store.settle([settlement(leased, 'w-local')], { now: T0 + 10, disableAfterMs: DAY });
        expect(await store.getDelivery(m.id, e1.id)).toMatchObject({ status: Status.success, lease_owner: null });
        // An owner that never settles (a crash) lets it go when the lease ends, as a claim does.
        const m2 = message(app, { id: messageIdAt(T0 + 2) });
        const lost = delivery(m2, e1, { status: Status.sending, due_at: T0 + 60_000, lease_owner: 'w-crashed' });
        await store.insertMessages([{ message: m2, deliveries: [lost] }]);
        expect(await store.claimDue('w-other', T0 + 1000, T0 + 61_000, 50, [])).toEqual([]);
        expect((await store.claimDue('w-other', T0 + 60_000, T0 + 120_000, 50, [e2.id])).map((c) => c.delivery.id)).toEqual([lost.id]);
        // Only the row left for any worker wakes the others.
        await expectSignalsAfterCommit(signals, [[e2.id]]);
        await off();
      });
    });

    describe('endpoint rate buckets', () => {
      it('allows a full bucket at once, then refills at the rate, shared by every caller', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        for (let i = 0; i < 5; i++) expect(await store.takeRateToken(ep.id, 5, T0)).toBe(0);
        const wait = await store.takeRateToken(ep.id, 5, T0);
        expect(wait).toBeGreaterThan(0);
        expect(wait).toBeLessThanOrEqual(200);
        expect(await store.takeRateToken(ep.id, 5, T0 + 100)).toBeGreaterThan(0);
        expect(await store.takeRateToken(ep.id, 5, T0 + 200)).toBe(0);
        // Refill is capped at the capacity: after a long pause only 5 go at once.
        let granted = 0;
        for (let i = 0; i < 8; i++) if ((await store.takeRateToken(ep.id, 5, T0 + 60_000)) === 0) granted++;
        expect(granted).toBe(5);
        const other = await seedEndpoint(app);
        expect(await store.takeRateToken(other.id, 5, T0 + 60_000)).toBe(0);
      });

      it('hands out no more tokens than the bucket holds to concurrent takers', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const results = await Promise.all(Array.from({ length: 12 }, () => store.takeRateToken(ep.id, 4, T0)));
        expect(results.filter((w) => w === 0)).toHaveLength(4);
      });
    });

    describe('retention', () => {
      const NONE = { messages: 0, payloads: 0, deliveries: 0, attempts: 0, idempotencyKeys: 0, operationalEvents: 0, sourceEvents: 0, dedupeKeys: 0, rateBuckets: 0 };
      /** An attempt made at `at`, with its id from that time as the worker makes it. */
      const attemptAt = (d: DeliveryRow, at: number) => attempt(d, { id: idForTime('atmpt', at), created_at: at });
      /** Writes attempt rows as settle does (the lease owner matches nothing, so only the rows go in). */
      const recordAttempts = (rows: AttemptRow[]) =>
        store.settle(rows.map((a) => ({ deliveryId: a.delivery_id, leaseOwner: 'gone', attempt: a, status: Status.success, dueAt: null, attempts: 1, endpointId: a.endpoint_id, health: 'none' as const, disableNow: false })), { now: T0, disableAfterMs: DAY });

      it('removes rows of every payload-bearing table once past retention, keeping what is still pending', async () => {
        const { env, app } = await seedApp();
        const ep = await seedEndpoint(app);
        const old = await seedMessage(app, [ep], { created_at: T0, expires_at: T0 + DAY }, { status: Status.success, due_at: null });
        const oldAttempt = attemptAt(old.deliveries[0], T0);
        const pendingOld = await seedMessage(app, [ep], { created_at: T0, expires_at: T0 + DAY }, { due_at: T0 + 10 * DAY });
        const fresh = await seedMessage(app, [ep], { created_at: T0 + 40 * DAY, expires_at: T0 + 70 * DAY }, { status: Status.success, due_at: null });
        const freshAttempt = attemptAt(fresh.deliveries[0], T0 + 40 * DAY);
        await recordAttempts([oldAttempt, freshAttempt]);
        await store.beginIdempotent(env.id, 'old-key', 'h', T0, DAY);
        await store.beginIdempotent(env.id, 'new-key', 'h', T0 + 40 * DAY, DAY);
        await store.recordOperationalEvent({ id: newId('oe'), environment_id: env.id, event_type: 'endpoint.disabled', payload: '{}', created_at: T0 });
        expect(await store.takeRateToken(ep.id, 5, T0)).toBe(0);

        const now = T0 + 41 * DAY;
        const counts = await store.purgeExpired(now, now - 30 * DAY, 100);
        expect(counts).toEqual({ ...NONE, messages: 1, deliveries: 1, attempts: 1, idempotencyKeys: 1, operationalEvents: 1, rateBuckets: 1 });
        expect(await store.getMessage(app.id, old.msg.id)).toBeUndefined();
        expect(await store.getDelivery(old.msg.id, ep.id)).toBeUndefined();
        expect(await store.getAttempt(old.msg.id, oldAttempt.id)).toBeUndefined();
        expect(await store.getMessage(app.id, pendingOld.msg.id)).toEqual(pendingOld.msg);
        expect(await store.getMessage(app.id, fresh.msg.id)).toEqual(fresh.msg);
        expect(await store.getAttempt(fresh.msg.id, freshAttempt.id)).toBeDefined();
        expect(await store.beginIdempotent(env.id, 'new-key', 'h', T0 + 40 * DAY + 1, DAY)).toEqual({ state: 'pending' });
        expect((await store.listOperationalEvents(env.id, page())).items).toEqual([]);
        expect(await store.purgeExpired(now, now - 30 * DAY, 100)).toEqual(NONE);
      });

      it("removes a payload at its message's own expiry, the message at the retention period, and attempts by their own age", async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const HOUR = DAY / 24;
        const settledRow = { status: Status.success, due_at: null };
        // payloadRetentionHours 1, the default 30 days, payloadRetentionPeriod 90: all created at T0.
        const short = await seedMessage(app, [ep], { expires_at: T0 + HOUR }, settledRow);
        const usual = await seedMessage(app, [ep], { expires_at: T0 + 30 * DAY }, settledRow);
        const long = await seedMessage(app, [ep], { expires_at: T0 + 90 * DAY }, settledRow);
        // A short one whose delivery is still being retried keeps its payload for the retry.
        const retried = await seedMessage(app, [ep], { expires_at: T0 + HOUR }, { due_at: T0 + 40 * DAY });
        const attempts = [attemptAt(short.deliveries[0], T0), attemptAt(usual.deliveries[0], T0), attemptAt(long.deliveries[0], T0), attemptAt(retried.deliveries[0], T0)];
        await recordAttempts(attempts);
        const purge = (now: number) => store.purgeExpired(now, now - 30 * DAY, 100);

        // Past the short expiry: only that payload goes; the message, its delivery and attempt stay.
        expect(await purge(T0 + 2 * DAY)).toEqual({ ...NONE, payloads: 1 });
        expect(await store.getMessage(app.id, short.msg.id)).toEqual({ ...short.msg, payload: null });
        expect(await store.getDelivery(short.msg.id, ep.id)).toBeDefined();
        expect(await store.getAttempt(short.msg.id, attempts[0].id)).toEqual(attempts[0]);
        expect(await store.getMessage(app.id, retried.msg.id)).toEqual(retried.msg);
        expect(await store.getMessage(app.id, usual.msg.id)).toEqual(usual.msg);

        // Past the retention period: every attempt made before it goes, also those of the message
        // kept for its longer payloadRetentionPeriod; the short message goes (its payload went
        // already), and the usual one with its payload.
        expect(await purge(T0 + 31 * DAY)).toEqual({ ...NONE, messages: 2, deliveries: 2, attempts: 4 });
        for (const m of [short, usual]) {
          expect(await store.getMessage(app.id, m.msg.id)).toBeUndefined();
          expect(await store.getDelivery(m.msg.id, ep.id)).toBeUndefined();
        }
        expect(await store.getMessage(app.id, long.msg.id)).toEqual(long.msg);
        expect(await store.getDelivery(long.msg.id, ep.id)).toBeDefined();
        expect((await store.listAttempts({ messageId: long.msg.id }, {}, page())).items).toEqual([]);
        expect(await store.getMessage(app.id, retried.msg.id)).toEqual(retried.msg);

        // Past its own period the long message goes; the retried one once its delivery settles.
        expect(await purge(T0 + 91 * DAY)).toEqual({ ...NONE, messages: 1, deliveries: 1 });
        expect(await store.getMessage(app.id, long.msg.id)).toBeUndefined();
        expect(await store.getMessage(app.id, retried.msg.id)).toEqual(retried.msg);
        const [claimed] = await store.claimDue('w1', T0 + 91 * DAY, T0 + 91 * DAY + 60_000, 1, []);
        expect(claimed.delivery.id).toBe(retried.deliveries[0].id);
        await store.settle([settlement(claimed.delivery, 'w1', { status: Status.fail })], { now: T0 + 91 * DAY, disableAfterMs: 100 * DAY });
        expect(await purge(T0 + 91 * DAY)).toEqual({ ...NONE, messages: 1, deliveries: 1 });
        expect(await store.getMessage(app.id, retried.msg.id)).toBeUndefined();
      });

      it('removes a payload expunged by hand with its message at the retention period', async () => {
        const { app } = await seedApp();
        const ep = await seedEndpoint(app);
        const m = await seedMessage(app, [ep], { expires_at: T0 + 90 * DAY }, { status: Status.success, due_at: null });
        await store.expungeMessagePayload(app.id, m.msg.id);
        expect(await store.purgeExpired(T0 + 29 * DAY, T0 - DAY, 100)).toEqual(NONE);
        expect(await store.purgeExpired(T0 + 31 * DAY, T0 + DAY, 100)).toEqual({ ...NONE, messages: 1, deliveries: 1 });
      });

      it('removes at most one batch per query and pass, from every table', async () => {
        const { env, app } = await seedApp();
        const ep = await seedEndpoint(app);
        const s = source(app);
        await store.createSource(s);
        const now = T0 + 3 * DAY;
        const olderThan = T0 + DAY;
        for (let i = 0; i < 5; i++) {
          // Past the retention period, and younger with an expired payload.
          await seedMessage(app, [], { created_at: T0, expires_at: T0 + 1 });
          await seedMessage(app, [], { created_at: T0 + 2 * DAY, expires_at: T0 + 2 * DAY + 1 });
          await recordAttempts([attemptAt(delivery(message(app), ep), T0 + i)]);
          await store.beginIdempotent(env.id, `key-${i}`, 'h', T0, DAY);
          await store.recordOperationalEvent({ id: newId('oe'), environment_id: env.id, event_type: 'endpoint.disabled', payload: '{}', created_at: T0 });
          await store.recordSourceEvent({ event: sourceEvent(s, { created_at: T0 }), dedupe: { keyHash: `k-${i}`, expiresAt: T0 + DAY }, message: null });
          expect(await store.takeRateToken(`ep_${i}`, 5, T0)).toBe(0);
        }
        const total = { ...NONE };
        let passes = 0;
        for (;;) {
          const c = await store.purgeExpired(now, olderThan, 2);
          passes++;
          // Both message queries feed messages and payloads; here only one of them finds rows.
          expect(c.messages + c.payloads).toBeLessThanOrEqual(2);
          for (const k of ['attempts', 'idempotencyKeys', 'operationalEvents', 'sourceEvents', 'dedupeKeys', 'rateBuckets'] as const) expect(c[k]).toBeLessThanOrEqual(2);
          for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += c[k];
          if (Object.values(c).every((n) => n === 0)) break;
        }
        expect(total).toEqual({ ...NONE, messages: 5, payloads: 5, attempts: 5, idempotencyKeys: 5, operationalEvents: 5, sourceEvents: 5, dedupeKeys: 5, rateBuckets: 5 });
        // Ten message rows two at a time, and one pass that finds nothing.
        expect(passes).toBe(6);
      });
    });
  });
}
