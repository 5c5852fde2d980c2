/** Small helpers shared by the API tests in this folder (on top of test/helpers.ts). */
import fs from 'node:fs';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import { expect } from 'vitest';
import { eventually, type Receiver, type ReceivedRequest, type TestKoppel } from '../helpers.js';

/** Creates an application and returns its body (asserting 201). */
export async function createApp(k: TestKoppel, body: Record<string, unknown> = {}, key?: string): Promise<any> {
  const r = await k.api('POST', '/api/v1/app', { name: 'Test app', ...body }, { key });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body;
}

/** Creates an endpoint and returns its body (asserting 201). */
export async function createEndpoint(k: TestKoppel, appId: string, body: Record<string, unknown>, key?: string): Promise<any> {
  const r = await k.api('POST', `/api/v1/app/${appId}/endpoint`, body, { key });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body;
}

/** Sends a message and returns its body (asserting 202). */
export async function sendMessage(k: TestKoppel, appId: string, body: Record<string, unknown>, key?: string): Promise<any> {
  const r = await k.api('POST', `/api/v1/app/${appId}/msg`, body, { key });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body;
}

/** Requests the receiver got on one path. */
export const onPath = (rcv: Receiver, path: string): ReceivedRequest[] => rcv.requests.filter((r) => r.url === path);

/** Waits (bounded) until the receiver got at least n requests on `path`. */
export function waitForPath(rcv: Receiver, path: string, n: number, timeoutMs = 10_000): Promise<ReceivedRequest[]> {
  return eventually(async () => {
    const got = onPath(rcv, path);
    return got.length >= n ? got : undefined;
  }, timeoutMs);
}

/** Polls a GET until `pick` returns something truthy (bounded), then returns it. */
export function pollApi<T>(k: TestKoppel, path: string, pick: (body: any) => T | undefined | null | false, timeoutMs = 10_000, key?: string): Promise<T> {
  return eventually(async () => {
    const r = await k.api('GET', path, undefined, { key });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return pick(r.body);
  }, timeoutMs);
}

export const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

/** Makes the receiver answer 500 "broken" on the paths in `failing` and 200 "ok" elsewhere. */
export function failOnPaths(rcv: Receiver, failing: Set<string>) {
  rcv.respond((req, res) => {
    res.statusCode = failing.has(req.url) ? 500 : 200;
    res.end(failing.has(req.url) ? 'broken' : 'ok');
  });
}

/** The test server's database (either store), for looking at what was written. */
export const databaseOf = (k: TestKoppel): Kysely<any> => (k.koppel.ctx.store as unknown as { db: Kysely<any> }).db;

/**
 * Where `text` is stored in clear in the test server's database: the tables with a row that
 * contains it and, on SQLite, the database and WAL files themselves, which also hold freed pages
 * and superseded row versions that no query shows.
 */
export async function whereStored(k: TestKoppel, text: string): Promise<string[]> {
  const db = databaseOf(k);
  const found: string[] = [];
  const postgres = k.koppel.ctx.store.dialect === 'postgres';
  const tables = postgres
    ? (await sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = current_schema()`.execute(db)).rows
    : (await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(db)).rows;
  for (const { name } of tables) {
    const rows = postgres
      ? (await sql<{ row: string }>`select t::text as row from ${sql.table(name)} t`.execute(db)).rows.map((r) => r.row)
      : (await sql`select * from ${sql.table(name)}`.execute(db)).rows.map((r) => JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
    if (rows.some((r) => r.includes(text))) found.push(`table ${name}`);
  }
  if (!postgres) {
    for (const file of ['koppel.db', 'koppel.db-wal']) {
      const p = path.join(k.dataDir, file);
      if (fs.existsSync(p) && fs.readFileSync(p).includes(text)) found.push(`file ${file}`);
    }
  }
  return found;
}
