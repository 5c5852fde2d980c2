/**
 * Group commit for message creation. Requests that arrive while a write is in progress are
 * coalesced into the next single transaction (one multi-row insert of messages and their
 * deliveries), so throughput is bounded by transactions per second × batch size instead of
 * one transaction per message. A message is answered 202 only after that transaction commits.
 */
import { newId } from '../lib/ids.js';
import { endpointMatches } from '../endpoints/filter.js';
import { StaleRoutingError, type ClaimedDelivery, type IdempotencyCompletion, type InsertMessageResult, type NewMessage, type Store } from '../store/port.js';
import { Status, type DeliveryRow, type EndpointRow, type MessageRow } from '../store/schema.js';

export interface MessageDraft {
  message: MessageRow;
  /** Earliest delivery time (deliverAt), default now. */
  dueAt: number;
  /** Deliver to this endpoint only (send-example), whatever its filters say. */
  onlyEndpoint?: EndpointRow;
  /** The response to record for the request's idempotency key, with the message. */
  idempotency?: IdempotencyCompletion;
}

/**
 * This process's delivery worker, as ingest sees it (DeliveryWorker): it may lease fresh rows to
 * itself in their insert and start them once they are durable, instead of claiming them.
 */
export interface LocalWorker {
  readonly owner: string;
  lease(rows: DeliveryRow[], now: number): number;
  handOver(claimed: ClaimedDelivery[]): void;
  forgo(rows: DeliveryRow[]): void;
}

interface Written {
  news: NewMessage[];
  results: InsertMessageResult[];
  /** The endpoints the messages were routed to, by id. */
  endpoints: Map<string, EndpointRow>;
  /** The worker that leased some of the rows, or null. */
  worker: LocalWorker | null;
}

interface Pending {
  draft: MessageDraft;
  resolve: (r: InsertMessageResult & { deliveries: number }) => void;
  reject: (e: unknown) => void;
}

/** Soft cap on messages per transaction; a bulk request larger than this still goes in one. */
const MAX_BATCH = 1000;

/**
 * Batches written at once. A batch's transaction is quick; waiting for its sync to disk is not,
 * and the next batch can commit meanwhile (its sync then follows, covering both if it started
 * late enough). Two lanes keep the disk busy without splitting requests into tiny batches.
 */
const LANES = 2;

export class MessageWriter {
  private queue: Pending[][] = [];
  private lanes = 0;
  private scheduled = false;

  constructor(
    private readonly store: Store,
    /**
     * Called after each commit with the number of messages it accepted and the endpoints of their
     * deliveries that still wait to be claimed (none when the local worker took them all).
     */
    private readonly onCommitted: (accepted: number, endpointIds: Set<string>) => void,
    /** This process's worker, if it runs one. */
    private readonly localWorker: () => LocalWorker | null = () => null,
  ) {}

  write(draft: MessageDraft): Promise<InsertMessageResult & { deliveries: number }> {
    return this.writeMany([draft])[0];
  }

  /** Writes several messages in the same transaction: all of them commit, or none. */
  writeMany(drafts: MessageDraft[]): Promise<InsertMessageResult & { deliveries: number }>[] {
    const group: Pending[] = [];
    const promises = drafts.map((draft) => new Promise<InsertMessageResult & { deliveries: number }>((resolve, reject) => group.push({ draft, resolve, reject })));
    this.queue.push(group);
    this.schedule();
    return promises;
  }

  private schedule() {
    if (this.scheduled || this.lanes >= LANES || !this.queue.length) return;
    this.scheduled = true;
    // setImmediate lets every request parsed in this event-loop turn join the batch.
    setImmediate(() => {
      this.scheduled = false;
      if (this.lanes >= LANES || !this.queue.length) return;
      this.lanes++;
      void this.flush().finally(() => {
        this.lanes--;
        this.schedule();
      });
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length) {
      // Whole groups only, so a bulk request is never split across transactions.
      const batch: Pending[] = [];
      while (this.queue.length && (batch.length === 0 || batch.length + this.queue[0].length <= MAX_BATCH)) batch.push(...this.queue.shift()!);
      // Whatever arrives while this batch commits and syncs can go in the other lane.
      this.schedule();
      try {
        const drafts = batch.map((p) => p.draft);
        let written: Written;
        try {
          written = await this.insert(drafts, false);
        } catch (e) {
          if (!(e instanceof StaleRoutingError)) throw e;
          // The store's copy of the endpoints was out of date and nothing was written: route by
          // a fresh read, and write as a read just before the insert always did.
          written = await this.insert(drafts, true);
        }
        const { news, results, endpoints, worker } = written;
        results.forEach((r, i) => batch[i].resolve({ ...r, deliveries: r.ok ? news[i].deliveries.length : 0 }));
        let accepted = 0;
        const endpointIds = new Set<string>();
        const handOver: ClaimedDelivery[] = [];
        const forgo: DeliveryRow[] = [];
        const isLeased = (d: DeliveryRow) => worker !== null && d.lease_owner === worker.owner;
        results.forEach((r, i) => {
          if (!r.ok) {
            // Not written (a repeated eventId): its leased rows are the worker's to give up.
            forgo.push(...news[i].deliveries.filter(isLeased));
            return;
          }
          accepted++;
          for (const d of news[i].deliveries) {
            if (isLeased(d)) handOver.push({ delivery: d, message: news[i].message, endpoint: endpoints.get(d.endpoint_id) ?? null });
            else endpointIds.add(d.endpoint_id);
          }
        });
        if (forgo.length) worker!.forgo(forgo);
        if (handOver.length) worker!.handOver(handOver);
        if (accepted) this.onCommitted(accepted, endpointIds);
      } catch (e) {
        for (const p of batch) p.reject(e);
      }
    }
  }

  /**
   * Routes, fans out and inserts one batch, with the delivery rows the local worker can start at
   * once leased to it (they are its to start or give up). With `fresh`, routes by a fresh read
   * and writes without a routing guard.
   */
  private async insert(drafts: MessageDraft[], fresh: boolean): Promise<Written> {
    const routing = await this.routing(drafts, fresh);
    const endpoints = new Map(routing.endpoints.map((ep) => [ep.id, ep]));
    for (const d of drafts) if (d.onlyEndpoint) endpoints.set(d.onlyEndpoint.id, d.onlyEndpoint);
    const news = this.fanOut(drafts, routing.endpoints);
    const worker = this.localWorker();
    const leased = worker && worker.lease(news.flatMap((n) => n.deliveries), Date.now()) > 0 ? worker : null;
    try {
      const results = await this.store.insertMessages(news, fresh ? undefined : routing.guard);
      return { news, results, endpoints, worker: leased };
    } catch (e) {
      if (leased) leased.forgo(news.flatMap((n) => n.deliveries).filter((d) => d.lease_owner === leased.owner));
      throw e;
    }
  }

  /** The endpoints of the applications whose messages are routed (not sent to one endpoint). */
  private routing(drafts: MessageDraft[], fresh: boolean) {
    const appIds = [...new Set(drafts.filter((d) => !d.onlyEndpoint).map((d) => d.message.app_id))];
    return this.store.routeMessages(appIds, { fresh });
  }

  /** Fans each message out to the endpoints whose filters match, one delivery row each. */
  private fanOut(drafts: MessageDraft[], endpoints: EndpointRow[]): NewMessage[] {
    const byApp = new Map<string, EndpointRow[]>();
    for (const ep of endpoints) {
      const list = byApp.get(ep.app_id) ?? [];
      list.push(ep);
      byApp.set(ep.app_id, list);
    }
    return drafts.map((d) => {
      const m = d.message;
      const channels = m.channels === null ? null : (JSON.parse(m.channels) as string[]);
      const targets = d.onlyEndpoint ? [d.onlyEndpoint] : (byApp.get(m.app_id) ?? []).filter((ep) => endpointMatches(ep, m.event_type, channels));
      const deliveries: DeliveryRow[] = targets.map((ep) => ({
        id: newId('dlv', m.created_at),
        message_id: m.id,
        endpoint_id: ep.id,
        app_id: m.app_id,
        environment_id: m.environment_id,
        status: Status.pending,
        due_at: d.dueAt,
        attempts: 0,
        trigger_type: 0,
        lease_owner: null,
        last_attempt_at: null,
        created_at: m.created_at,
        updated_at: m.created_at,
      }));
      return { message: m, deliveries, idempotency: d.idempotency };
    });
  }
}
