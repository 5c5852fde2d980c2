/**
 * Ceiling: no queue, no database. The load generator itself signs each delivery (the same HMAC
 * the others compute) and posts it straight to the receiver with undici, one keep-alive pool per
 * endpoint. "Created" is the moment the request is handed to undici, so what this measures is
 * the physical limit of this machine in this run: client + loopback + receiver.
 */
import { Pool } from 'undici';
import { secretKey, signedHeaders } from '../lib/webhook.js';
import type { Deployment, EndpointTarget, SystemDef } from './types.js';

const TIMEOUT_MS = 15_000;
const BATCH_LANES = 25;

export const ceiling: SystemDef = {
  id: 'ceiling',
  label: 'Ceiling: raw undici client',
  async start(opts) {
    let endpoints: { pool: Pool; path: string; key: Buffer }[] = [];
    let next = 0;
    const post = async (ep: (typeof endpoints)[number], id: string, body: string) => {
      const res = await ep.pool.request({ method: 'POST', path: ep.path, headers: signedHeaders(ep.key, id, body), body, headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`receiver answered ${res.statusCode}`);
    };
    // A failed post (e.g. to the endpoint that never answers) is the receiver's business, as for
    // the other systems: the message was "created"; the receiver counts what arrived.
    const deliverAll = async (body: string) => {
      const id = `msg_${opts.tag}_${next++}`;
      await Promise.all(endpoints.map((ep) => post(ep, id, body).catch(() => {})));
    };
    const d: Deployment = {
      maxBatch: 1000,
      async addEndpoints(targets: EndpointTarget[]) {
        endpoints = targets.map((t) => {
          const u = new URL(t.url);
          return { pool: new Pool(u.origin, { connections: null, pipelining: 1 }), path: u.pathname, key: secretKey(t.secret) };
        });
      },
      createOne: deliverAll,
      async createMany(bodies: string[]) {
        // A batch goes out BATCH_LANES messages at a time, so 4 batches in flight keep about as
        // many requests in flight as 100 single creates do.
        let next = 0;
        const lane = async () => {
          while (next < bodies.length) await deliverAll(bodies[next++]);
        };
        await Promise.all(Array.from({ length: BATCH_LANES }, lane));
      },
      processes: () => [],
      async stop() {
        await Promise.all(endpoints.map((e) => e.pool.destroy().catch(() => {})));
      },
    };
    return d;
  },
};
