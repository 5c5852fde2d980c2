/**
 * The webhook receiver every system delivers to, in a child process of its own: one HTTP server
 * per endpoint on a loopback port. It verifies every Standard Webhooks signature (node:crypto),
 * records for each (endpoint, seq) the first receipt time and the latency from the create time
 * in the payload, and counts duplicates, losses, bad signatures and unexpected bodies.
 *
 * Driven over IPC by the benchmark (see receiver-client.ts): setup → status* → unhang? → collect → close.
 * It exits by itself if the parent goes away or after a hard time limit.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GroupSummary, ReceiverReply, ReceiverRequest, EndpointSpec } from './lib/receiver-protocol.js';

const HARD_LIMIT_MS = 60 * 60_000;
const TOLERANCE_S = 5 * 60;

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

interface Ep {
  spec: EndpointSpec;
  key: Buffer;
  server: http.Server;
  port: number;
  /** Latency of the first receipt of each seq (NaN: not received). */
  latency: Float64Array;
  receivedAt: Float64Array;
  createdAt: Float64Array;
  count: Uint16Array;
  unique: number;
  duplicates: number;
  badSignatures: number;
  unexpected: number;
  requests: number;
  /** Verified warm-up deliveries (not in the results). */
  warmup: number;
  hang: boolean;
  held: Set<http.ServerResponse>;
}

const eps: Ep[] = [];

function send(msg: ReceiverReply) {
  process.send?.(msg);
}

function verify(ep: Ep, headers: http.IncomingHttpHeaders, body: Buffer): boolean {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sig = headers['webhook-signature'];
  if (typeof id !== 'string' || typeof ts !== 'string' || typeof sig !== 'string') return false;
  const tsNum = Number(ts);
  if (!Number.isInteger(tsNum) || Math.abs(Date.now() / 1000 - tsNum) > TOLERANCE_S) return false;
  const expected = crypto.createHmac('sha256', ep.key).update(`${id}.${ts}.`).update(body).digest();
  for (const part of sig.split(' ')) {
    const comma = part.indexOf(',');
    if (comma < 0 || part.slice(0, comma) !== 'v1') continue;
    const given = Buffer.from(part.slice(comma + 1), 'base64');
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) return true;
  }
  return false;
}

function handle(ep: Ep, req: http.IncomingMessage, res: http.ServerResponse) {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const at = nowMs();
    ep.requests++;
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    if (!verify(ep, req.headers, body)) {
      ep.badSignatures++;
      res.statusCode = 400;
      res.end('bad signature');
      return;
    }
    let seq = -1;
    let t = NaN;
    let warm = false;
    try {
      const p = JSON.parse(body.toString('utf8')) as { seq?: unknown; t?: unknown; w?: unknown };
      if (typeof p.seq === 'number') seq = p.seq;
      if (typeof p.t === 'number') t = p.t;
      warm = p.w === 1;
    } catch {
      /* counted below */
    }
    if (warm) {
      ep.warmup++;
    } else if (!Number.isInteger(seq) || seq < 0 || seq >= ep.count.length || !Number.isFinite(t)) {
      ep.unexpected++;
    } else if (ep.count[seq]++ === 0) {
      ep.unique++;
      ep.latency[seq] = at - t;
      ep.receivedAt[seq] = at;
      ep.createdAt[seq] = t;
    } else {
      ep.duplicates++;
    }
    if (ep.hang) {
      // Never answer (the sender's deadline fires) until told to stop hanging.
      ep.held.add(res);
      res.on('close', () => ep.held.delete(res));
      return;
    }
    if (ep.spec.delayMs > 0) {
      setTimeout(() => res.end('ok'), ep.spec.delayMs);
      return;
    }
    res.end('ok');
  });
}

async function setup(specs: EndpointSpec[]): Promise<number[]> {
  for (const spec of specs) {
    const n = spec.expected;
    const ep: Ep = {
      spec,
      key: Buffer.from(spec.secret.replace(/^whsec_/, ''), 'base64'),
      server: http.createServer(),
      port: 0,
      latency: new Float64Array(n).fill(NaN),
      receivedAt: new Float64Array(n).fill(NaN),
      createdAt: new Float64Array(n).fill(NaN),
      count: new Uint16Array(n),
      unique: 0,
      duplicates: 0,
      badSignatures: 0,
      unexpected: 0,
      requests: 0,
      warmup: 0,
      hang: spec.hang,
      held: new Set(),
    };
    ep.server.keepAliveTimeout = 65_000;
    ep.server.on('request', (req, res) => handle(ep, req, res));
    await new Promise<void>((resolve) => ep.server.listen(0, '127.0.0.1', 1024, resolve));
    ep.port = (ep.server.address() as AddressInfo).port;
    eps.push(ep);
  }
  return eps.map((e) => e.port);
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function summarize(): GroupSummary[] {
  const groups = new Map<string, Ep[]>();
  for (const ep of eps) groups.set(ep.spec.group, [...(groups.get(ep.spec.group) ?? []), ep]);
  const out: GroupSummary[] = [];
  for (const [group, list] of groups) {
    let expected = 0;
    let unique = 0;
    let firstCreate = Infinity;
    let lastReceipt = -Infinity;
    let firstReceipt = Infinity;
    const lats: number[] = [];
    const pairs: [number, number][] = [];
    for (const ep of list) {
      expected += ep.spec.expected;
      unique += ep.unique;
      for (let i = 0; i < ep.latency.length; i++) {
        const l = ep.latency[i];
        if (Number.isNaN(l)) continue;
        lats.push(l);
        pairs.push([ep.createdAt[i], l]);
        if (ep.createdAt[i] < firstCreate) firstCreate = ep.createdAt[i];
        if (ep.receivedAt[i] > lastReceipt) lastReceipt = ep.receivedAt[i];
        if (ep.receivedAt[i] < firstReceipt) firstReceipt = ep.receivedAt[i];
      }
    }
    const sorted = Float64Array.from(lats).sort();
    const buckets = new Map<number, number[]>();
    for (const [c, l] of pairs) {
      const sec = Math.floor((c - firstCreate) / 1000);
      if (sec >= 0 && sec < 600) (buckets.get(sec) ?? buckets.set(sec, []).get(sec)!).push(l);
    }
    const timeline = [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([second, ls]) => {
      const s = Float64Array.from(ls).sort();
      return { second, count: s.length, p50: percentile(s, 50), max: s[s.length - 1] };
    });
    const sum = lats.reduce((a, b) => a + b, 0);
    out.push({
      group,
      endpoints: list.length,
      checkLoss: list.every((e) => e.spec.checkLoss),
      expected,
      unique,
      lost: list.every((e) => e.spec.checkLoss) ? expected - unique : 0,
      duplicates: list.reduce((a, e) => a + e.duplicates, 0),
      badSignatures: list.reduce((a, e) => a + e.badSignatures, 0),
      unexpected: list.reduce((a, e) => a + e.unexpected, 0),
      requests: list.reduce((a, e) => a + e.requests, 0),
      firstCreate: Number.isFinite(firstCreate) ? firstCreate : null,
      firstReceipt: Number.isFinite(firstReceipt) ? firstReceipt : null,
      lastReceipt: Number.isFinite(lastReceipt) ? lastReceipt : null,
      latency: {
        p50: percentile(sorted, 50),
        p90: percentile(sorted, 90),
        p99: percentile(sorted, 99),
        max: sorted.length ? sorted[sorted.length - 1] : NaN,
        mean: lats.length ? sum / lats.length : NaN,
      },
      timeline,
    });
  }
  return out;
}

function status(): Extract<ReceiverReply, { type: 'status' }> {
  let unique = 0;
  let expected = 0;
  let requests = 0;
  let badSignatures = 0;
  let duplicates = 0;
  let warmup = 0;
  for (const ep of eps) {
    requests += ep.requests;
    badSignatures += ep.badSignatures;
    if (!ep.spec.checkLoss) continue;
    unique += ep.unique;
    expected += ep.spec.expected;
    duplicates += ep.duplicates;
    warmup += ep.warmup;
  }
  return { type: 'status', unique, expected, requests, badSignatures, duplicates, warmup };
}

function unhang() {
  for (const ep of eps) {
    ep.hang = false;
    for (const res of ep.held) res.end('ok');
    ep.held.clear();
  }
}

async function close() {
  for (const ep of eps) {
    for (const res of ep.held) res.destroy();
    ep.server.closeAllConnections();
    await new Promise<void>((r) => ep.server.close(() => r()));
  }
}

process.on('message', (raw) => {
  const msg = raw as ReceiverRequest;
  void (async () => {
    switch (msg.type) {
      case 'setup':
        send({ type: 'ready', ports: await setup(msg.endpoints) });
        break;
      case 'status':
        send(status());
        break;
      case 'unhang':
        unhang();
        send({ type: 'ok' });
        break;
      case 'collect':
        send({ type: 'summary', groups: summarize() });
        break;
      case 'close':
        await close();
        send({ type: 'ok' });
        process.exit(0);
    }
  })();
});
process.on('disconnect', () => process.exit(0));
setTimeout(() => process.exit(3), HARD_LIMIT_MS).unref();
send({ type: 'started' });
