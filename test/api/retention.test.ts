/**
 * Retention through the API: a message's payloadRetentionHours / payloadRetentionPeriod (or, by
 * default, KOPPEL_RETENTION_DAYS) is when the retention job removes its payload, the message goes
 * after the retention period, and an idempotent response holding the payload goes no later than
 * the payload. The job runs on a clock the test sets (runOnce(now)), and once on its own timer.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idForTime } from '../../src/lib/ids.js';
import { RetentionJob } from '../../src/retention/retention-job.js';
import type { PurgeCounts } from '../../src/store/port.js';
import { eventually, startTestKoppel, type TestKoppel } from '../helpers.js';
import { createApp, databaseOf, sleep } from './support.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('retention', () => {
  let k: TestKoppel;
  const log = pino({ level: 'silent' });
  beforeAll(async () => {
    // The API role runs no worker, hence no retention job of its own beside the test's.
    k = await startTestKoppel({ KOPPEL_ROLE: 'api' });
  });
  afterAll(async () => {
    await k.close();
  });

  const post = (path: string, body: unknown, key: string) => k.api('POST', path, body, { headers: { 'idempotency-key': key } });

  it('removes a payload at its payloadRetentionHours or payloadRetentionPeriod, keeps the default for KOPPEL_RETENTION_DAYS, and forgets an idempotent response with its payload', async () => {
    const store = k.koppel.ctx.store;
    const job = new RetentionJob(store, k.koppel.config.retentionMs, 60_000, log);
    const app = await createApp(k);
    const msgs = `/api/v1/app/${app.id}/msg`;
    const bodies = {
      hours: { eventType: 'order.hours', payload: { card: 'hours' }, payloadRetentionHours: 1 },
      days: { eventType: 'order.days', payload: { card: 'days' }, payloadRetentionPeriod: 2 },
      usual: { eventType: 'order.usual', payload: { card: 'usual' } },
    };
    const bulkBody = { messages: [{ eventType: 'order.bulk', payload: { card: 'bulk-usual' } }, { eventType: 'order.bulk', payload: { card: 'bulk-hours' }, payloadRetentionHours: 1 }] };
    const t0 = Date.now();
    const id: Record<string, string> = {};
    for (const [name, body] of Object.entries(bodies)) {
      const r = await post(msgs, body, `key-${name}`);
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      id[name] = r.body.id;
    }
    const bulk = await post(`${msgs}/bulk`, bulkBody, 'key-bulk');
    expect(bulk.status, JSON.stringify(bulk.body)).toBe(202);
    const sent = Date.now();

    // The expiry each one was given: the default is the configured retention (30 days), which
    // the API document says too (not Svix's 90).
    expect(k.koppel.config.retentionMs).toBe(30 * DAY);
    const spec = await (await fetch(`${k.url}/api/v1/openapi.json`)).json();
    const period = JSON.stringify(spec.components.schemas.MessageIn.properties.payloadRetentionPeriod);
    expect(period).not.toContain('"default"');
    expect(period).toContain('KOPPEL_RETENTION_DAYS (default 30)');
    const lifetime = async (msgId: string) => {
      const m = (await store.getMessage(app.id, msgId))!;
      return m.expires_at - m.created_at;
    };
    expect(await lifetime(id.hours)).toBe(HOUR);
    expect(await lifetime(id.days)).toBe(2 * DAY);
    expect(await lifetime(id.usual)).toBe(30 * DAY);
    expect(await lifetime(bulk.body.data[0].id)).toBe(30 * DAY);
    expect(await lifetime(bulk.body.data[1].id)).toBe(HOUR);

    const payloadOf = async (msgId: string) => {
      const r = await k.api('GET', `${msgs}/${msgId}`);
      expect(r.status).toBe(200);
      return r.body.payload;
    };
    const replay = (name: keyof typeof bodies) => post(msgs, bodies[name], `key-${name}`);

    // Just before the first expiry nothing goes, and a repeat gets the first response back.
    expect((await job.runOnce(t0 + HOUR - 1)).payloads).toBe(0);
    const early = await replay('hours');
    expect(early.headers.get('idempotent-replayed')).toBe('true');
    expect(early.body).toMatchObject({ id: id.hours, payload: bodies.hours.payload });

    // Past an hour: the hour-long payloads go, and the idempotent responses that held them.
    expect(await job.runOnce(sent + HOUR + 1)).toMatchObject({ messages: 0, payloads: 2, idempotencyKeys: 2 });
    expect(await payloadOf(id.hours)).toEqual({});
    expect(await payloadOf(bulk.body.data[1].id)).toEqual({});
    expect(await payloadOf(id.days)).toEqual(bodies.days.payload);
    expect(await payloadOf(bulk.body.data[0].id)).toEqual(bulkBody.messages[0].payload);
    // The message itself is still listed; a repeat of its request is a new request now.
    expect((await k.api('GET', `${msgs}?event_types=order.hours`)).body.data.map((m: { id: string }) => m.id)).toEqual([id.hours]);
    const late = await replay('hours');
    expect(late.status).toBe(202);
    expect(late.headers.get('idempotent-replayed')).toBeNull();
    expect(late.body.id).not.toBe(id.hours);
    const lateBulk = await post(`${msgs}/bulk`, bulkBody, 'key-bulk');
    expect(lateBulk.headers.get('idempotent-replayed')).toBeNull();
    // A payload kept longer keeps its response (for the key's own lifetime).
    expect((await replay('days')).headers.get('idempotent-replayed')).toBe('true');

    // Past two days: that payload goes (with those of the hour-long messages just made again);
    // the default one stays.
    expect((await job.runOnce(sent + 2 * DAY + 1)).payloads).toBe(3);
    expect(await payloadOf(id.days)).toEqual({});
    expect(await payloadOf(id.usual)).toEqual(bodies.usual.payload);

    // Past the retention period all eight messages go, the default ones with their payloads.
    const end = Date.now() + 31 * DAY;
    expect((await job.runOnce(end)).messages).toBe(8);
    expect((await k.api('GET', msgs)).body.data).toEqual([]);
    expect((await k.api('GET', `${msgs}/${id.usual}`)).status).toBe(404);
  });

  it('runs on its own timer in small batches until nothing is left, and stops', async () => {
    const store = k.koppel.ctx.store;
    const app = await createApp(k);
    const { environment_id } = await databaseOf(k).selectFrom('applications').select('environment_id').where('id', '=', app.id).executeTakeFirstOrThrow();
    // Written 40 days ago with the default retention: 25 messages past it.
    const at = Date.now() - 40 * DAY;
    const old = Array.from({ length: 25 }, (_, i) => ({
      message: {
        id: idForTime('msg', at + i), environment_id, app_id: app.id, event_type: 'old', event_id: null, channels: null, tags: null,
        payload: '{}', created_at: at + i, expires_at: at + i + 30 * DAY,
      },
      deliveries: [],
    }));
    expect(await store.insertMessages(old)).toEqual(old.map(() => ({ ok: true })));

    const batches: PurgeCounts[] = [];
    const purge = store.purgeExpired.bind(store);
    store.purgeExpired = async (...args) => {
      const c = await purge(...args);
      batches.push(c);
      return c;
    };
    // The job logs each run that removed something, with what it removed.
    const runs: { purged: PurgeCounts }[] = [];
    const runLog = pino({ level: 'info' }, { write: (line: string) => void runs.push(JSON.parse(line)) });
    try {
      const job = new RetentionJob(store, 30 * DAY, 50, runLog, { batch: 10, pauseMs: 1 });
      job.start();
      await eventually(async () => (await store.listMessages(app.id, {}, { limit: 1, after: null, order: 'asc' })).items.length === 0, 10_000);
      await job.stop();
      // One run removed all 25, in batches of ten while a batch came back full, then the rest;
      // later runs found nothing.
      expect(runs.map((r) => r.purged.messages)).toEqual([25]);
      expect(batches.slice(0, 3).map((c) => c.messages)).toEqual([10, 10, 5]);
      expect(batches.slice(3).every((c) => c.messages === 0)).toBe(true);
      const stoppedAt = batches.length;
      await sleep(200);
      expect(batches.length).toBe(stoppedAt);
    } finally {
      store.purgeExpired = purge;
    }
  });
});
