/**
 * Group commit for message creation. Requests that arrive while a write is in progress are
 * coalesced into the next single transaction (one multi-row insert of messages and their
 * deliveries), so throughput is bounded by transactions per second × batch size instead of
 * one transaction per message. A message is answered 202 only after that transaction commits.
 */
import { newId } from '../lib/ids.js';
import { endpointMatches } from '../endpoints/filter.js';
import { StaleRoutingError, type IdempotencyCompletion, type InsertMessageResult, type NewMessage, type Store } from '../store/port.js';
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
    /** Called after each commit with the number of messages it accepted and the endpoints they go to. */
    private readonly onCommitted: (accepted: number, endpointIds: Set<string>) => void,
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
        let news: NewMessage[];
        let results: InsertMessageResult[];
        try {
          const routing = await this.routing(drafts, false);
          news = this.fanOut(drafts, routing.endpoints);
          results = await this.store.insertMessages(news, routing.guard);
        } catch (e) {
          if (!(e instanceof StaleRoutingError)) throw e;
          // The store's copy of the endpoints was out of date and nothing was written: route by
          // a fresh read, and write as a read just before the insert always did.
          news = this.fanOut(drafts, (await this.routing(drafts, true)).endpoints);
          results = await this.store.insertMessages(news);
        }
        results.forEach((r, i) => batch[i].resolve({ ...r, deliveries: r.ok ? news[i].deliveries.length : 0 }));
        let accepted = 0;
        const endpointIds = new Set<string>();
        results.forEach((r, i) => {
          if (!r.ok) return;
          accepted++;
          for (const d of news[i].deliveries) endpointIds.add(d.endpoint_id);
        });
        if (accepted) this.onCommitted(accepted, endpointIds);
      } catch (e) {
        for (const p of batch) p.reject(e);
      }
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
