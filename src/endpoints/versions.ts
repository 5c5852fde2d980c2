/**
 * Endpoint versions: every change to an endpoint's URL, filters (event types, channels), auth or
 * transformation is saved as a new version with a snapshot of those fields, in the same
 * transaction as the change. The API lists versions with what changed from the one before, and
 * rolls back to any of them in one call (which is itself a new version, so a rollback can be
 * rolled back too).
 */
import type { Context } from '../context.js';
import { ApiError } from '../http/errors.js';
import { newId } from '../lib/ids.js';
import type { EndpointRow, EndpointVersionRow } from '../store/schema.js';
import { parseTransformation, type StoredTransformation } from '../transformations/transformation.js';
import { authSummary, openAuth } from './auth.js';

/** The versioned fields of an endpoint. Auth stays sealed here; it is opened only to compare and show. */
export interface Snapshot {
  url: string;
  eventTypes: string[] | null;
  channels: string[] | null;
  auth: string | null;
  transformation: StoredTransformation | null;
}

export function snapshotOf(ep: EndpointRow): Snapshot {
  return {
    url: ep.url,
    eventTypes: ep.event_types === null ? null : JSON.parse(ep.event_types),
    channels: ep.channels === null ? null : JSON.parse(ep.channels),
    auth: ep.auth,
    transformation: parseTransformation(ep.transformation),
  };
}

/** Transformation without its timestamp, so re-saving the same code is no change. */
const sameTransformation = (a: StoredTransformation | null, b: StoredTransformation | null) =>
  JSON.stringify(a && { ...a, updatedAt: 0 }) === JSON.stringify(b && { ...b, updatedAt: 0 });

/** Sealed values differ on every encryption, so credentials are compared opened. */
const sameAuth = (ctx: Pick<Context, 'box'>, a: string | null, b: string | null) =>
  a === b || (a !== null && b !== null && JSON.stringify(openAuth(ctx.box, a)) === JSON.stringify(openAuth(ctx.box, b)));

export interface Change {
  field: 'url' | 'eventTypes' | 'channels' | 'auth' | 'transformation';
  from: unknown;
  to: unknown;
}

/** What differs between two snapshots, for people: auth as its summary (plus whether the secret changed). */
export function diffSnapshots(ctx: Pick<Context, 'box'>, before: Snapshot | null, after: Snapshot): Change[] {
  const changes: Change[] = [];
  const b = before ?? { url: null, eventTypes: null, channels: null, auth: null, transformation: null };
  if (b.url !== after.url) changes.push({ field: 'url', from: b.url, to: after.url });
  if (JSON.stringify(b.eventTypes) !== JSON.stringify(after.eventTypes)) changes.push({ field: 'eventTypes', from: b.eventTypes, to: after.eventTypes });
  if (JSON.stringify(b.channels) !== JSON.stringify(after.channels)) changes.push({ field: 'channels', from: b.channels, to: after.channels });
  if (!sameAuth(ctx, b.auth, after.auth)) {
    const from = authSummary(openAuth(ctx.box, b.auth));
    const to = authSummary(openAuth(ctx.box, after.auth));
    changes.push({ field: 'auth', from, to: JSON.stringify(from) === JSON.stringify(to) ? { ...to, secretChanged: true } : to });
  }
  if (!sameTransformation(b.transformation, after.transformation)) changes.push({ field: 'transformation', from: publicTransformation(b.transformation), to: publicTransformation(after.transformation) });
  return changes;
}

export const publicTransformation = (t: StoredTransformation | null) =>
  t && { kind: t.kind, enabled: t.enabled, code: t.kind === 'javascript' ? t.code : null, expression: t.kind === 'javascript' ? null : t.code, mapping: t.mapping };

export function versionRow(ep: EndpointRow, reason: string, now: number): EndpointVersionRow {
  return { id: newId('epv', now), endpoint_id: ep.id, app_id: ep.app_id, environment_id: ep.environment_id, version: ep.version, reason, snapshot: JSON.stringify(snapshotOf(ep)), created_at: now };
}

/**
 * Saves `after` (an edited copy of `before`). When a versioned field changed, the version goes up
 * and the snapshot is recorded with it; otherwise it is a plain update. Answers 409 when another
 * change got there first or the uid is taken.
 */
export async function saveEndpoint(ctx: Context, before: EndpointRow, after: EndpointRow, reason: string): Promise<EndpointRow> {
  const a = snapshotOf(after);
  const b = snapshotOf(before);
  const changed = a.url !== b.url || JSON.stringify(a.eventTypes) !== JSON.stringify(b.eventTypes) || JSON.stringify(a.channels) !== JSON.stringify(b.channels) || !sameAuth(ctx, a.auth, b.auth) || !sameTransformation(a.transformation, b.transformation);
  // Only what this change touched is written, so a concurrent change to other fields (a secret
  // rotation, custom headers) is never overwritten with the values this request read.
  const fields = changedFields(before, after);
  const r = changed
    ? await ctx.store.saveEndpointVersion(before.app_id, before.id, { ...fields, version: before.version + 1 }, versionRow({ ...after, version: before.version + 1 }, reason, after.updated_at))
    : await ctx.store.updateEndpoint(before.app_id, before.id, fields);
  if (r === 'uid_taken') throw new ApiError('conflict', `An endpoint with uid "${after.uid}" already exists in this application; choose another uid.`);
  if (r === 'stale') throw concurrentChange();
  return { ...after, version: changed ? before.version + 1 : before.version };
}

/** 409 for a change that lost a race with another one to the same endpoint. */
export const concurrentChange = () => new ApiError('conflict', 'The endpoint was changed by another request at the same time; load it again and repeat the change.');

/** The columns whose values differ between two states of an endpoint row. */
function changedFields(before: EndpointRow, after: EndpointRow): Partial<EndpointRow> {
  const out: Partial<Record<keyof EndpointRow, unknown>> = {};
  for (const k of Object.keys(after) as (keyof EndpointRow)[]) {
    if (k === 'id' || k === 'app_id' || k === 'environment_id' || k === 'created_at' || k === 'version') continue;
    if (after[k] !== before[k]) out[k] = after[k];
  }
  return out as Partial<EndpointRow>;
}
