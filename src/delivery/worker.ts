/**
 * The delivery worker: claims due deliveries from the store in batches with a lease, sends each
 * (signed, through the guarded HTTP client), and writes the outcomes back in batches. The
 * database is the queue, so a crash loses nothing: a lease that is never settled expires and the
 * delivery is claimed again (only attempts in flight at the crash can be sent twice).
 *
 * Concurrency is bounded per process and per endpoint: a slow endpoint fills only its own slots
 * and is left out of claims while full, so it never delays the others.
 */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { activeSecrets, openSecrets } from '../endpoints/secrets.js';
import { newId } from '../lib/ids.js';
import type { ClaimedDelivery, DisabledEndpoint, Settlement, Store } from '../store/port.js';
import { Status, type AttemptRow, type DeliveryRow, type EndpointRow } from '../store/schema.js';
import { HttpSender, type SendRequest, type SendResult } from './http-sender.js';
import { SenderThreads } from './sender-threads.js';
import { nextRetry } from './retry-policy.js';
import { signatureHeader } from './signature.js';
import { authHeaders, openAuth } from '../endpoints/auth.js';
import { deliveryLimitsOf, sharedSandbox, worstCaseMs, type SandboxLimits } from '../transformations/sandbox.js';
import { applyTransformation, parseTransformation, runnableOf, type Runnable } from '../transformations/transformation.js';

const SENSITIVE_HEADER = /(authorization|cookie|token|secret|key|password|credential)/i;

interface PreparedEndpoint {
  secrets_source: string;
  headers_source: string;
  auth_source: string | null;
  transformation_source: string | null;
  secrets: { secret: string; expiresAt: number | null }[];
  headers: Record<string, string>;
  /** Credentials for the target API (src/endpoints/auth.ts), opened once per endpoint version. */
  authHeaders: Record<string, string>;
  /** The enabled transformation, or null (the common case: no extra work per delivery). */
  transform: Runnable | null;
  /**
   * Names of this endpoint's own and credential headers whose values the attempt log shows as
   * [redacted]; the headers Koppel adds (content type, ids, timestamps, signatures) never are.
   */
  redacted: Set<string>;
}

/**
 * The most an exchange's deadline may be stretched to give back time this process stalled
 * (HttpSender's stallGraceMs): half the lease margin an attempt must have left when it starts
 * beyond its deadline (startNextWaiting), so the stretched exchange still ends, and its outcome
 * can be written, inside the lease.
 */
export function stallGraceMs(c: Pick<Config, 'leaseMs' | 'requestTimeoutMs'>): number {
  return Math.max(0, Math.min(1000, (c.leaseMs - c.requestTimeoutMs) / 2) / 2);
}

/** How long freed slots are collected before one claim refills them (measured: a claim per
 * completed attempt made claims 90 % of the worker's time at 10 busy endpoints). */
const WAKE_COALESCE_MS = 5;

export interface WorkerDeps {
  config: Config;
  store: Store;
  box: SecretBox;
  log: Logger;
  /** Called for each endpoint the worker disabled (after it is committed). */
  onEndpointDisabled?: (e: DisabledEndpoint) => void;
  /** Called after every settled attempt (metrics, tests). */
  onAttempt?: (a: AttemptRow) => void;
}

export class DeliveryWorker {
  readonly owner = `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly sender: { send(req: SendRequest): Promise<SendResult>; close(): Promise<void>; ready: Promise<void> };
  private stopped = false;
  private inFlight = 0;
  private readonly perEndpoint = new Map<string, number>();
  private readonly pausedUntil = new Map<string, number>();
  /**
   * Claimed deliveries waiting for a free slot of their endpoint, in claim order. A claim batch
   * can hold more rows for one endpoint than it has free slots; keeping them here (they are
   * leased to us) and starting each as a slot frees up lets a busy endpoint run at its full
   * concurrency instead of handing rows back and re-claiming them.
   */
  private readonly waiting = new Map<string, ClaimedDelivery[]>();
  private waitingCount = 0;
  private pumpDone: Promise<void> = Promise.resolve();
  /**
   * Deliveries claimed by this process whose outcome is not yet written back, with their attempt
   * count at the claim. If the event loop stalls past a lease (e.g. during startup under load),
   * our own expired lease lets us claim such a row again: it must not be sent a second time, the
   * outcome we still hold settles it.
   */
  private readonly held = new Map<string, number>();
  private readonly endpointCache = new Map<string, PreparedEndpoint>();
  private settleQueue: { s: Settlement; done: () => void }[] = [];
  private settling: Promise<void> | null = null;
  private pumping = false;
  private pumpAgain = false;
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private soonTimer: NodeJS.Timeout | null = null;
  /** Endpoint slots freed with nothing waiting for them since the last claim began. */
  private freedSinceClaim = 0;
  /**
   * Whether the last claim may have left due rows behind: it was cut short by its limit or by the
   * process's capacity, or it left busy endpoints out. Only then can a freed slot find anything
   * to claim; otherwise new work arrives with a wake (a commit here, a NOTIFY from another
   * process, a retry this worker scheduled) or falls due by the poll. (At a steady 1,000
   * messages/s on PostgreSQL, a fifth of each worker's claims were made by freed slots and found
   * nothing, each followed by a next-due query.)
   */
  private leftBehind = true;
  private idleWaiters: (() => void)[] = [];
  /**
   * What the last claim that left endpoints out learned: at `at`, nothing was due for any other
   * endpoint. Until new work is signalled for one of those others, or `until` (the next due time
   * after `at`, at most one poll interval away) passes, a claim that leaves out at least the same
   * endpoints would walk their whole backlog to find nothing, so it is not made.
   */
  private drained: { excluded: Set<string>; at: number; until: number } | null = null;
  /** Endpoints new work was signalled for since the current claim began ('all': unknown). */
  private signalled: Set<string> | 'all' = new Set();
  /**
   * Fresh deliveries this process's ingest leased to this worker in their insert (lease()) and
   * has not handed over yet, in all and per endpoint: they hold capacity, as claimed rows do.
   */
  private promised = 0;
  private readonly promisedFor = new Map<string, number>();
  /**
   * Attempts per endpoint from their start until their outcome is written (an endpoint slot is
   * given up earlier, when the exchange ends). lease() counts these against the endpoint's cap, so
   * a crash repeats at most the cap's worth of an endpoint's attempts: a claimed row only refills
   * a freed slot through a transaction that commits after the outcome queued before it, but a
   * leased row is started straight from the ingest.
   */
  private readonly openFor = new Map<string, number>();

  /**
   * Transformation limits, with a bound on waiting for a sandbox thread: waiting, running and
   * sending must all fit inside the lease, or another worker could take the delivery meanwhile.
   */
  private readonly transformLimits: SandboxLimits;

  constructor(private readonly deps: WorkerDeps) {
    const c = deps.config;
    this.transformLimits = deliveryLimitsOf(c);
    const senderOptions = { allowedNetworks: c.allowedNetworks, deadlineMs: c.requestTimeoutMs, maxResponseBytes: c.maxResponseBytes, stallGraceMs: stallGraceMs(c) };
    this.sender = c.deliveryThreads > 0 ? new SenderThreads(c.deliveryThreads, senderOptions) : new HttpSender(senderOptions);
  }

  start() {
    // Claim only once the delivery threads are up (a claimed delivery would otherwise spend part
    // of its lease waiting for them instead of waiting in the database).
    void this.sender.ready.then(() => {
      if (this.stopped) return;
      this.running = true;
      this.kick();
    });
  }

  /**
   * New work may be due: claim now rather than at the next poll. Given the endpoints the new work
   * is for, a wake for endpoints that are all at their cap (or paused) is dropped: a claim would
   * leave them out anyway, after walking their whole backlog (2.7 ms per claim at a 50,000-row
   * backlog); the slot that frees first claims for them.
   */
  wake(endpointIds?: Iterable<string>) {
    if (!this.running) return;
    if (endpointIds) {
      const ids = [...endpointIds];
      if (this.signalled !== 'all') for (const id of ids) this.signalled.add(id);
      if (this.drained && ids.some((id) => !this.drained!.excluded.has(id))) this.drained = null;
      if (this.allBusy(ids)) {
        // Dropped: the first slot these endpoints free must claim for them.
        this.leftBehind = true;
        return;
      }
    } else {
      this.signalled = 'all';
      this.drained = null;
    }
    this.kick();
  }

  /** Claims as soon as the current claim (if any) is done. */
  private kick() {
    if (!this.running) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    setImmediate(() => void this.pump());
  }

  private allBusy(endpointIds: Iterable<string>): boolean {
    const now = Date.now();
    for (const id of endpointIds) {
      if ((this.perEndpoint.get(id) ?? 0) < this.deps.config.endpointConcurrency && !((this.pausedUntil.get(id) ?? 0) > now)) return false;
    }
    return true;
  }

  /**
   * Offered the delivery rows of messages this process is about to insert, leases to this worker,
   * in place (as a claim would: status sending, due at the lease's end, this owner), those it can
   * start as soon as they are durable: due now, capacity free, their endpoint below its cap
   * (counting attempts whose outcome is not yet written) and not paused. The insert then writes
   * them leased, and handOver() starts them after the commit, so they need no claim, no commit
   * of their own and no wake (at a steady 1,000 messages/s on SQLite a claim, a commit and a
   * next-due query followed every group commit).
   *
   * Only while the last claim left nothing due behind: otherwise older rows wait in the database
   * and fresh ones must queue behind them rather than take the slots those rows are waiting for.
   * Returns how many rows were leased; each must come back through handOver() or forgo().
   */
  lease(rows: DeliveryRow[], now: number): number {
    const { workerConcurrency, endpointConcurrency, leaseMs } = this.deps.config;
    if (!this.running || this.leftBehind) return 0;
    let free = workerConcurrency - this.inFlight - this.waitingCount - this.promised;
    let leased = 0;
    for (const d of rows) {
      if (free <= 0) break;
      if (d.lease_owner !== null || d.due_at === null || d.due_at > now) continue;
      const ep = d.endpoint_id;
      if ((this.pausedUntil.get(ep) ?? 0) > now) continue;
      if ((this.openFor.get(ep) ?? 0) + (this.promisedFor.get(ep) ?? 0) >= endpointConcurrency) continue;
      d.status = Status.sending;
      d.due_at = now + leaseMs;
      d.lease_owner = this.owner;
      this.promisedFor.set(ep, (this.promisedFor.get(ep) ?? 0) + 1);
      this.promised++;
      free--;
      leased++;
    }
    return leased;
  }

  /** Starts leased rows (lease()) whose insert is durable. */
  handOver(claimed: ClaimedDelivery[]) {
    for (const c of claimed) {
      this.unpromise(c.delivery.endpoint_id);
      // Shutdown began meanwhile: hand the row back (stop() also releases our leases).
      if (this.running) this.dispatch(c);
      else void this.queueSettlement(this.releaseOf(c, Date.now()));
    }
  }

  /** Gives up leased rows (lease()) that were not written. */
  forgo(rows: DeliveryRow[]) {
    for (const d of rows) this.unpromise(d.endpoint_id);
  }

  private unpromise(endpointId: string) {
    const n = (this.promisedFor.get(endpointId) ?? 1) - 1;
    if (n <= 0) this.promisedFor.delete(endpointId);
    else this.promisedFor.set(endpointId, n);
    this.promised--;
  }

  /** Stops claiming, waits for attempts in flight (up to the deadline) and writes them back. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.soonTimer) clearTimeout(this.soonTimer);
    // A claim already on its way must land before leases are released, or rows it brings back
    // would be sent after shutdown began.
    await this.pumpDone;
    // Deliveries still waiting for a slot were never sent: releaseLeases below hands them back.
    this.waiting.clear();
    this.waitingCount = 0;
    const deadline = Date.now() + this.deps.config.requestTimeoutMs + 2000;
    while (this.inFlight > 0 && Date.now() < deadline) {
      await new Promise<void>((res) => this.idleWaiters.push(res));
    }
    await this.flushSettlements();
    await this.deps.store.releaseLeases(this.owner, Date.now()).catch(() => {});
    await this.sender.close();
  }

  get activeAttempts() {
    return this.inFlight;
  }

  private schedulePoll(delayMs: number) {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.pump(), Math.max(1, delayMs));
    this.timer.unref?.();
  }

  private pump(): Promise<void> {
    if (!this.running || this.pumping) return this.pumpDone;
    this.pumpDone = this.pumpOnce();
    return this.pumpDone;
  }

  private async pumpOnce(): Promise<void> {
    this.pumping = true;
    const { config, store, log } = this.deps;
    // When the loop below stopped: everything due then was claimed, left out (endpoints at their
    // cap or paused), or waits for free capacity.
    let checkedAt: number | undefined;
    let failed = false;
    try {
      do {
        this.pumpAgain = false;
        for (;;) {
          const now = Date.now();
          checkedAt = now;
          const free = config.workerConcurrency - this.inFlight - this.waitingCount - this.promised;
          if (free <= 0) {
            this.leftBehind = true;
            break;
          }
          const exclude: string[] = [];
          // Endpoints at their concurrency cap are left out. (Claiming for them into the waiting
          // line instead made claims cheaper with a large backlog, but under load rows waited
          // past their lease margin and were handed back over and over; see docs/benchmarks.md.)
          for (const [id, n] of this.perEndpoint) if (n >= config.endpointConcurrency) exclude.push(id);
          for (const [id, until] of this.pausedUntil) {
            if (until > now) exclude.push(id);
            else this.pausedUntil.delete(id);
          }
          if (exclude.length && this.stillDrained(exclude, now)) break;
          const limit = Math.min(free, config.claimBatchSize);
          this.signalled = new Set();
          this.freedSinceClaim = 0;
          const claimed = await store.claimDue(this.owner, now, now + config.leaseMs, limit, exclude);
          this.leftBehind = claimed.length === limit || exclude.length > 0;
          for (const c of claimed) this.dispatch(c);
          if (claimed.length < limit) {
            if (exclude.length) await this.rememberDrained(exclude, now);
            break;
          }
        }
      } while (this.pumpAgain && this.running);
    } catch (e) {
      failed = true;
      log.error({ err: e }, 'claiming deliveries failed; retrying after the poll interval');
    } finally {
      this.pumping = false;
    }
    // Sleep until the next delivery is due, but never longer than the poll interval (other
    // processes may add work we are not told about). Rows due by the last claim that it did not
    // take are not worth waking for: they wait for a slot of their endpoint, and a freed slot
    // claims at once (waking for them polled every millisecond, each claim walking the backlog).
    let delay = config.pollIntervalMs;
    if (!failed) {
      try {
        const next = await store.nextDueAt(checkedAt);
        if (next !== null) delay = Math.min(delay, Math.max(0, next - Date.now()));
      } catch {
        /* the next pump reports database trouble */
      }
    }
    this.schedulePoll(delay);
  }

  /** True while the last short claim's finding covers a claim leaving out `exclude`. */
  private stillDrained(exclude: string[], now: number): boolean {
    const d = this.drained;
    if (!d || now >= d.until) return false;
    const left = new Set(exclude);
    for (const id of d.excluded) if (!left.has(id)) return false;
    return true;
  }

  private async rememberDrained(exclude: string[], at: number) {
    // Rows of the other endpoints that fall due later (retries, deliverAt) end the finding.
    const next = await this.deps.store.nextDueAt(at);
    // Work signalled for another endpoint while the claim ran may not have been visible to it.
    const excluded = new Set(exclude);
    const s = this.signalled;
    if (s === 'all' || [...s].some((id) => !excluded.has(id))) return;
    this.drained = { excluded, at, until: Math.min(at + this.deps.config.pollIntervalMs, next ?? Infinity) };
  }

  private dispatch(c: ClaimedDelivery) {
    const { delivery: d, endpoint: ep, message: m } = c;
    if (this.held.get(d.id) === d.attempts) return;
    this.held.set(d.id, d.attempts);
    if (!ep || !m || m.payload === null || ep.disabled) {
      // Nothing to send: endpoint deleted or disabled, or payload expunged. Settle as failed
      // without an attempt; recover/resend can bring it back once the cause is fixed.
      void this.queueSettlement({ ...this.releaseOf(c, 0), status: Status.fail, dueAt: null });
      return;
    }
    if ((this.perEndpoint.get(ep.id) ?? 0) >= this.deps.config.endpointConcurrency) {
      const q = this.waiting.get(ep.id) ?? [];
      q.push(c);
      this.waiting.set(ep.id, q);
      this.waitingCount++;
      return;
    }
    this.startAttempt(c);
  }

  /** The settlement that hands a claimed delivery back unsent, due at `dueAt`. */
  private releaseOf(c: ClaimedDelivery, dueAt: number): Settlement {
    const d = c.delivery;
    return { deliveryId: d.id, leaseOwner: this.owner, endpointId: d.endpoint_id, disableNow: false, attempt: null, status: Status.pending, dueAt, attempts: d.attempts, health: 'none' };
  }

  /**
   * Starts an attempt now (holding an endpoint slot), unless the endpoint's rate limit says later.
   * The endpoint's slot is given up as soon as its HTTP exchange is over: the cap is on requests
   * the endpoint has to carry at once, and an outcome waiting for its batched write asks nothing
   * of the endpoint. (Holding the slot until the write kept about an eighth of a busy
   * endpoint's slots idle.) The attempt still counts against the process's concurrency, and its
   * row stays leased, until the outcome is durable, which is what bounds what a crash can make us
   * send twice.
   */
  private startAttempt(c: ClaimedDelivery) {
    const ep = c.endpoint!;
    this.inFlight++;
    this.perEndpoint.set(ep.id, (this.perEndpoint.get(ep.id) ?? 0) + 1);
    this.openFor.set(ep.id, (this.openFor.get(ep.id) ?? 0) + 1);
    let holdsSlot = true;
    const releaseSlot = () => {
      if (!holdsSlot) return;
      holdsSlot = false;
      const n = (this.perEndpoint.get(ep.id) ?? 1) - 1;
      if (n <= 0) this.perEndpoint.delete(ep.id);
      else this.perEndpoint.set(ep.id, n);
      // A freed slot goes to the next delivery already waiting for this endpoint; only when
      // none waits may the database hold more for it, and then one claim soon serves every
      // slot freed meanwhile (claiming per completed attempt would cost a query each).
      if (!this.startNextWaiting(ep.id)) this.slotFreed();
    };
    void this.rateLimited(c)
      .then((limited) => (limited ? undefined : this.attempt(c, releaseSlot)))
      .catch((e) => this.deps.log.error({ err: e, msgId: c.delivery.message_id, endpointId: ep.id, deliveryId: c.delivery.id, appId: c.delivery.app_id }, 'attempt failed unexpectedly; its lease will expire and it will be retried'))
      .finally(() => {
        this.inFlight--;
        const open = (this.openFor.get(ep.id) ?? 1) - 1;
        if (open <= 0) this.openFor.delete(ep.id);
        else this.openFor.set(ep.id, open);
        releaseSlot();
        if (this.inFlight === 0) this.idleWaiters.splice(0).forEach((f) => f());
      });
  }

  /**
   * Applies the endpoint's rateLimit (deliveries per second) from a token bucket in the database,
   * shared by all worker processes. Over the rate, the row is handed back due when a token will be
   * there, and the endpoint is left out of claims until then. Returns true when it was handed back.
   */
  private async rateLimited(c: ClaimedDelivery): Promise<boolean> {
    const ep = c.endpoint!;
    if (!ep.throttle_rate) return false;
    let wait: number;
    try {
      wait = await this.deps.store.takeRateToken(ep.id, ep.throttle_rate, Date.now());
    } catch (e) {
      // Without the shared bucket we cannot know the rate is respected: try again shortly.
      this.deps.log.warn({ err: e, msgId: c.delivery.message_id, endpointId: ep.id, deliveryId: c.delivery.id, appId: c.delivery.app_id }, 'rate limit check failed');
      wait = 1000;
    }
    if (wait === 0) return false;
    const until = Date.now() + wait;
    this.pausedUntil.set(ep.id, until);
    await this.queueSettlement(this.releaseOf(c, until));
    return true;
  }

  /**
   * Starts the next delivery waiting for this endpoint that can still finish inside its lease,
   * handing back those that cannot; false when none was started (the freed slot should claim).
   */
  private startNextWaiting(endpointId: string): boolean {
    for (;;) {
      const q = this.waiting.get(endpointId);
      if (!q || !this.running) return false;
      const next = q.shift()!;
      this.waitingCount--;
      if (q.length === 0) this.waiting.delete(endpointId);
      const now = Date.now();
      // Only start what can finish inside our lease; otherwise another worker may take it
      // meanwhile and send it a second time. A transformation comes before the request and can
      // take its wait for a sandbox thread plus its run up to the hard kill.
      const { requestTimeoutMs, leaseMs } = this.deps.config;
      const margin = requestTimeoutMs + this.transformWorstCaseMs(next.endpoint!) + Math.min(1000, (leaseMs - requestTimeoutMs) / 2);
      if (now + margin < (next.delivery.due_at ?? 0)) {
        this.startAttempt(next);
        return true;
      }
      void this.queueSettlement(this.releaseOf(next, now));
    }
  }

  /** The longest an endpoint's transformation can delay an attempt's request; 0 without one. */
  private transformWorstCaseMs(ep: EndpointRow): number {
    try {
      return this.prepared(ep).transform ? worstCaseMs(this.transformLimits) : 0;
    } catch {
      // An endpoint that cannot be prepared (an undecryptable secret) sends nothing: attempt()
      // reports it without running a transformation.
      return 0;
    }
  }

  /**
   * A slot freed with nothing waiting for it: claims again within a few milliseconds, once for
   * every slot freed meanwhile, or at once when the slots freed since the last claim fill a
   * whole claim batch (waiting longer would only leave them idle).
   */
  private slotFreed() {
    if (!this.running || !this.leftBehind) return;
    if (++this.freedSinceClaim >= this.deps.config.claimBatchSize) {
      if (this.soonTimer) clearTimeout(this.soonTimer);
      this.soonTimer = null;
      this.kick();
      return;
    }
    if (this.soonTimer) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = null;
      // A freed slot is no news about other endpoints: what the last short claim found holds.
      this.kick();
    }, WAKE_COALESCE_MS);
  }

  /**
   * What an endpoint row needs before sending, decrypted and parsed once per version of the row
   * rather than per attempt (AES-GCM and JSON parsing per delivery showed up in profiles).
   */
  private prepared(ep: EndpointRow): PreparedEndpoint {
    const key = `${ep.id}:${ep.updated_at}:${ep.secrets.length}`;
    let p = this.endpointCache.get(key);
    if (!p || p.secrets_source !== ep.secrets || p.headers_source !== ep.headers || p.auth_source !== ep.auth || p.transformation_source !== ep.transformation) {
      const t = parseTransformation(ep.transformation);
      const headers: Record<string, string> = JSON.parse(ep.headers);
      const credentials = authHeaders(openAuth(this.deps.box, ep.auth));
      const redacted = new Set(Object.keys({ ...headers, ...credentials }).filter((k) => (SENSITIVE_HEADER.test(k) && !/signature/i.test(k)) || k in credentials));
      p = {
        secrets_source: ep.secrets, headers_source: ep.headers, auth_source: ep.auth, transformation_source: ep.transformation,
        secrets: openSecrets(this.deps.box, ep.secrets), headers, authHeaders: credentials, transform: t && t.enabled ? runnableOf(t) : null, redacted,
      };
      if (this.endpointCache.size >= 10_000) this.endpointCache.delete(this.endpointCache.keys().next().value!);
      this.endpointCache.set(key, p);
    }
    return p;
  }

  /** Sends one delivery and queues its outcome; `exchanged` is called once the endpoint is done with it. */
  private async attempt(c: ClaimedDelivery, exchanged: () => void): Promise<void> {
    const { delivery: d } = c;
    const ep = c.endpoint!;
    const m = c.message!;
    const { config, log } = this.deps;
    const started = Date.now();
    const ts = Math.floor(started / 1000);
    let body = m.payload!;
    let result: SendResult;
    let sentHeaders: Record<string, string> = {};
    let redacted: Set<string> | null = null;
    try {
      const prepared = this.prepared(ep);
      // A transformation's output is the body that is signed and sent; when it fails, that is the
      // attempt's outcome (retried like any failure, so a fix or rollback is picked up).
      let transformError: string | null = null;
      if (prepared.transform) {
        const t = await applyTransformation(sharedSandbox(config.transformThreads), prepared.transform, JSON.parse(body), { url: ep.url, eventType: m.event_type, messageId: m.id }, this.transformLimits);
        if (t.ok) body = JSON.stringify(t.output);
        else transformError = `transformation failed (${t.errorKind}): ${t.error}`;
      }
      redacted = prepared.redacted;
      const signature = transformError === null ? signatureHeader(activeSecrets(prepared.secrets, started), m.id, ts, body) : '';
      const timestamp = String(ts);
      sentHeaders = transformError !== null ? {} : {
        ...prepared.headers,
        ...prepared.authHeaders,
        'content-type': 'application/json',
        'webhook-id': m.id,
        'webhook-timestamp': timestamp,
        'webhook-signature': signature,
        'svix-id': m.id,
        'svix-timestamp': timestamp,
        'svix-signature': signature,
      };
      result = transformError !== null
        ? { ok: false, status: null, headers: {}, body: '', truncated: false, durationMs: Date.now() - started, errorClass: 'transformation', error: transformError, retryAfterMs: null }
        : await this.sender.send({ url: ep.url, headers: sentHeaders, body });
    } catch (e) {
      // Bugs and infrastructure faults (e.g. an undecryptable secret) fail the attempt visibly.
      log.error({ err: e, msgId: m.id, endpointId: ep.id, deliveryId: d.id, appId: d.app_id }, 'attempt could not be made');
      result = { ok: false, status: null, headers: {}, body: '', truncated: false, durationMs: Date.now() - started, errorClass: 'network', error: `internal error: ${(e as Error).message}`, retryAfterMs: null };
    }
    exchanged();
    const now = Date.now();
    const attempts = d.attempts + 1;
    const shown: Record<string, string> = {};
    for (const k in sentHeaders) shown[k] = redacted?.has(k) ? '[redacted]' : sentHeaders[k];
    const attempt: AttemptRow = {
      id: newId('atmpt', now), delivery_id: d.id, message_id: m.id, endpoint_id: ep.id, app_id: d.app_id, environment_id: d.environment_id,
      url: ep.url, status: result.ok ? Status.success : Status.fail, response_status_code: result.status ?? 0, response: result.body,
      response_truncated: result.truncated ? 1 : 0, duration_ms: Math.max(0, Math.round(result.durationMs)), error_class: result.ok ? null : result.errorClass,
      error: result.ok ? null : result.error, request_headers: JSON.stringify(shown), trigger_type: d.trigger_type, created_at: started,
    };
    const base = { deliveryId: d.id, leaseOwner: this.owner, endpointId: ep.id, attempt, attempts };
    // Successful attempts are logged at debug only: at 1,000 deliveries/s a line each would be
    // most of the log (and of the worker's CPU); the metrics count them. A failed attempt is
    // logged at info (the receiver's failure, not Koppel's), as it is what an operator looks
    // for, and failures are bounded per delivery by the retry schedule.
    const level = result.ok ? 'debug' : 'info';
    const fields = log.isLevelEnabled(level)
      ? {
          msgId: m.id, endpointId: ep.id, deliveryId: d.id, attemptId: attempt.id, appId: d.app_id, attempt: attempts, trigger: d.trigger_type === 1 ? 'manual' : 'scheduled',
          statusCode: result.status, errorClass: result.errorClass, error: result.error === null ? null : result.error.slice(0, 300), durationMs: attempt.duration_ms,
        }
      : null;
    // The caller keeps the endpoint slot until this write is done: an attempt whose outcome is
    // not yet durable is still in flight, which bounds what a crash can make us send twice.
    if (result.ok) {
      if (fields) log.debug(fields, 'attempt succeeded');
      await this.queueSettlement({ ...base, status: Status.success, dueAt: null, health: 'success', disableNow: false });
    } else if (result.status === 410) {
      if (fields) log.info({ ...fields, retryInMs: null }, 'attempt failed; 410 Gone disables the endpoint');
      await this.queueSettlement({ ...base, status: Status.fail, dueAt: null, health: 'failure', disableNow: true });
    } else {
      const next = nextRetry(attempts, config.retrySchedule, result.retryAfterMs, config.retryAfterMaxMs);
      if (fields) log.info({ ...fields, retryInMs: next.retry ? next.delayMs : null }, next.retry ? 'attempt failed' : 'attempt failed; no retries left');
      await this.queueSettlement({
        ...base,
        status: next.retry ? Status.pending : Status.fail,
        dueAt: next.retry ? now + next.delayMs : null,
        health: 'failure',
        disableNow: false,
      });
    }
  }

  /** Queues an outcome for the next batched write; resolves once that write has finished. */
  private queueSettlement(s: Settlement): Promise<void> {
    const written = new Promise<void>((done) => this.settleQueue.push({ s, done }));
    if (!this.settling) this.settling = new Promise<void>((res) => setImmediate(res)).then(() => this.drainSettlements());
    return written;
  }

  /** Writes queued outcomes; everything queued while a write runs goes into the next one. */
  private async drainSettlements(): Promise<void> {
    const { store, config, log } = this.deps;
    while (this.settleQueue.length) {
      const queued = this.settleQueue.splice(0, 500);
      const batch = queued.map((q) => q.s);
      for (let tries = 0; ; tries++) {
        try {
          const disabled = await store.settle(batch, { now: Date.now(), disableAfterMs: config.disableAfterFailingMs });
          for (const a of batch) if (a.attempt) this.deps.onAttempt?.(a.attempt);
          for (const e of disabled) await this.endpointDisabled(e);
          break;
        } catch (e) {
          // If the database stays away the leases expire and the deliveries are retried.
          // The first ids of the batch, to find its deliveries (a whole batch is up to 500).
          log.error({ err: e, tries, count: batch.length, deliveryIds: batch.slice(0, 20).map((s) => s.deliveryId), attemptIds: batch.slice(0, 20).flatMap((s) => (s.attempt ? [s.attempt.id] : [])) }, 'writing delivery outcomes failed');
          if (tries >= 5) break;
          await new Promise((r) => setTimeout(r, 200 * (tries + 1)));
        }
      }
      for (const s of batch) {
        // Forget the claim this settlement belongs to (not a newer claim of the same row).
        const claimedAt = s.attempt ? s.attempts - 1 : s.attempts;
        if (this.held.get(s.deliveryId) === claimedAt) this.held.delete(s.deliveryId);
      }
      for (const q of queued) q.done();
      // Handed back or to be retried: new work for those endpoints (and a due time to wake for).
      const again = batch.filter((s) => s.status === Status.pending).map((s) => s.endpointId);
      if (again.length) this.wake(again);
    }
    this.settling = null;
  }

  private async flushSettlements() {
    while (this.settling || this.settleQueue.length) {
      if (this.settling) await this.settling;
      else this.settling = this.drainSettlements();
    }
  }

  private async endpointDisabled(e: DisabledEndpoint) {
    const { store, log } = this.deps;
    const payload = { appId: e.appId, endpointId: e.endpointId, failSince: e.failingSince === null ? null : new Date(e.failingSince).toISOString(), reason: e.reason };
    log.warn({ endpointId: e.endpointId, appId: e.appId, environmentId: e.environmentId, reason: e.reason }, 'endpoint.disabled');
    await store.recordOperationalEvent({ id: newId('opev'), environment_id: e.environmentId, event_type: 'endpoint.disabled', payload: JSON.stringify(payload), created_at: Date.now() });
    this.deps.onEndpointDisabled?.(e);
  }
}
