/**
 * A known tenant's usage event from observation to its answer (issue #11: edge autonomy).
 *
 * - A block in force answers it at once (deny, reason blocked), as before.
 * - Online and caught up: it is journalled, batched and sent; the cloud's decision answers it. If
 *   that answer is later than `deadlineMs`, or the connection drops first, the agent decides it
 *   itself from the tenant's newest bundle, hands the decision to the enforcer at once ("local",
 *   with the bundle's policy version) and makes sure the cloud gets that local decision too: on
 *   the pending send if the event has not gone out yet, otherwise in a report of the same event
 *   (the cloud records it on the stored event); journalled either way.
 * - Offline, or while a journal backlog is being replayed (the cloud could not answer in time
 *   anyway): decided locally at once, and the event carries its local decision to the cloud.
 * - No bundle of the tenant at this tower yet (its first device here): nothing to decide from, so
 *   it waits for the cloud's answer, however late; if too many wait, the oldest are rejected
 *   (no_policy_bundle). Either way it is journalled and sent, and the cloud decides and stores it.
 *
 * When the cloud's decision of an event answered locally arrives, it is compared with the local
 * one (a 'reconciled' report); the enforcer is not called again (the usage it decided is past).
 */
import type { IdFactory } from '../shared/ids.js';
import { MAX_EVENTS_PER_BATCH, SCHEMA_VERSION, type Decision, type DecisionBatch, type LocalDecision, type UsageEvent } from '../shared/mqtt/payloads.js';
import type { ObservedUsage, Reconciliation, RejectionReason } from './agent-types.js';
import type { Batcher } from './batcher.js';
import type { EdgePolicy } from './edge-policy.js';
import type { EventRouter } from './event-router.js';
import type { JournalFeed } from './journal-feed.js';
import type { Journal, ReplayEvent } from './journal/journal.js';
import type { LocalAnswers } from './local-answers.js';
import { LruMap } from './lru.js';
import type { OutboundBatch } from './offline-buffer.js';

export interface UsagePathOptions {
  policy: EdgePolicy;
  batcher: Batcher;
  router: EventRouter;
  local: LocalAnswers;
  journal: Journal | null;
  feed: () => JournalFeed | null;
  push: (item: OutboundBatch) => void;
  newId: IdFactory;
  now: () => number;
  online: () => boolean;
  /** Longest wait for the cloud's answer before deciding locally; 0: wait (until the uplink drops). */
  deadlineMs: number;
  /** Events answered locally remembered until their cloud answer arrives (for reconciliation). */
  reconcileMax: number;
  /** Events waiting for the cloud at most; beyond it the oldest undecidable ones are rejected. */
  awaitingMax: number;
  onCloud: (tenantId: string, decision: Decision, batch: DecisionBatch) => void;
  onReject: (eventId: string, deviceId: string | null, tenantId: string | null, reason: RejectionReason, message: string) => void;
  onReconciled: (r: Reconciliation) => void;
  /** Events per report of late local decisions at most (the agent's batch size; default the contract's limit). */
  batchMaxEvents?: number;
  /** The journal could not take an event (disk full, I/O error): it goes on from memory only. */
  onJournalError?: (err: Error) => void;
}

interface Awaiting {
  tenantId: string;
  profile: string | null;
  /** The object in the batch that will be (or was) published. */
  event: UsageEvent;
  seq: number;
  /**
   * Monotonic time (performance.now) by which the cloud must answer: on the wall clock, a clock
   * stepped back by an hour delayed every local decision by deadline by that hour.
   */
  due: number;
  sent: boolean;
}

interface Answered {
  tenantId: string;
  deviceId: string;
  local: LocalDecision | null;
  previousRun: boolean;
}

export type UsageRoute = 'blocked' | 'local' | 'awaiting';

export class UsagePath {
  readonly #o: UsagePathOptions;
  readonly #awaiting = new Map<string, Awaiting>();
  /** Event ids in deadline order (entries no longer awaiting are skipped). */
  #queue: string[] = [];
  #queueHead = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #answered: LruMap<string, Answered>;
  /** Journal sequence numbers below this were written by an earlier run (set once it is open). */
  #runStartSeq = 0;
  /** The last journal append failed. */
  #journalFailing = false;
  readonly stats = { decided_locally: 0, reconciled: 0, disagreements: 0, unmatched: 0, no_bundle: 0 };

  constructor(opts: UsagePathOptions) {
    this.#o = opts;
    this.#answered = new LruMap(Math.max(1, opts.reconcileMax));
  }

  /** The journal is open: what it holds below its next sequence number is an earlier run's. */
  journalOpened(): void {
    this.#runStartSeq = this.#o.journal?.nextSeq ?? 0;
  }

  /** Events sent (or about to be) and still waiting for the cloud's answer. */
  get awaiting(): number {
    return this.#awaiting.size;
  }

  /** Routes a known tenant's event; says how it was answered (or that it awaits the cloud). */
  usage(tenantId: string, profile: string | null, id: string, ts: number, e: ObservedUsage): UsageRoute {
    // Built field by field (same keys, same order): a conditional spread allocated a second object
    // and copied it property by property, for every event.
    const event: UsageEvent = { id, ts, device_id: e.device_id, app: e.app, action: e.action };
    if (e.bytes !== undefined) event.bytes = e.bytes;
    let route: UsageRoute;
    if (this.#o.router.blocked(tenantId, id, e)) {
      route = 'blocked';
    } else {
      // Offline, or behind a backlog: the cloud cannot answer in time, the bundle decides now.
      const local = !this.#o.online() || this.#o.feed()?.catchingUp ? this.#decide(tenantId, profile, event) : null;
      if (local) {
        event.local = local.local;
        this.#answered.set(id, { tenantId, deviceId: e.device_id, local: local.local, previousRun: false });
        this.#o.router.answer(tenantId, local.decision, { source: 'local', bundle_version: local.local.policy_version });
        route = 'local';
      } else {
        // Online, or no bundle of the tenant here to decide from: the cloud's answer it is.
        route = 'awaiting';
      }
    }
    const seq = this.#journalled(tenantId, event);
    if (route === 'awaiting') this.#await({ tenantId, profile, event, seq, due: performance.now() + this.#o.deadlineMs, sent: false });
    // Behind a backlog an event goes out after it, from the journal; one the journal could not
    // take goes out now, from memory.
    if (seq < 0 || !this.#o.feed()?.catchingUp) this.#o.batcher.addUsage(tenantId, event, seq);
    return route;
  }

  /**
   * Appends the event to the journal; -1 without one, or when the write failed (disk full): the
   * event is then decided and sent all the same, from memory. A throw from here made observe()
   * throw, so with the disk full every event was answered invalid_input and none was sent.
   */
  #journalled(tenantId: string, event: UsageEvent): number {
    const journal = this.#o.journal;
    if (!journal) return -1;
    try {
      const seq = journal.append({ tenantId, event });
      this.#journalFailing = false;
      return seq;
    } catch (err) {
      // Reported once per spell of failures, not once per event.
      if (!this.#journalFailing) this.#o.onJournalError?.(err instanceof Error ? err : new Error(String(err)));
      this.#journalFailing = true;
      return -1;
    }
  }

  /** A batch went to the connection (live, replayed or a report). */
  sent(item: OutboundBatch): void {
    if (item.kind !== 'usage') return;
    for (const e of item.batch.events) {
      const a = this.#awaiting.get(e.id);
      if (a) a.sent = true;
    }
  }

  /** The broker acknowledged a batch: its events (and the local decisions they carried) are delivered. */
  acked(item: OutboundBatch, withLocal: boolean[]): void {
    const journal = this.#o.journal;
    if (!journal || item.kind !== 'usage' || !item.seqs) return;
    const plain: number[] = [];
    const carried: number[] = [];
    item.seqs.forEach((seq, i) => {
      if (seq >= 0) (withLocal[i] ? carried : plain).push(seq);
    });
    if (plain.length > 0) journal.ack(plain, false);
    if (carried.length > 0) journal.ack(carried, true);
  }

  /** Events the feed read back from the journal, about to be sent. */
  replayed(tenantId: string, events: ReplayEvent[]): void {
    for (const r of events) {
      const a = this.#awaiting.get(r.event.id);
      if (a) {
        // Still awaiting its answer (spilled from memory): this is the object now being sent.
        a.event = r.event;
        continue;
      }
      this.#answered.set(r.event.id, { tenantId, deviceId: r.event.device_id, local: r.event.local ?? null, previousRun: r.seq < this.#runStartSeq });
    }
  }

  /** The cloud's answer to one UsageBatch (already deduplicated by the agent). */
  decisionBatch(tenantId: string, batch: DecisionBatch): void {
    for (const d of batch.decisions) {
      const w = this.#awaiting.get(d.event_id);
      // An answer on another tenant's topic, or for another device, is not this event's answer
      // (a confused or compromised broker): the event keeps waiting for its own.
      if (w && (w.tenantId !== tenantId || w.event.device_id !== d.device_id)) {
        this.stats.unmatched++;
        continue;
      }
      if (w) {
        this.#awaiting.delete(d.event_id);
        this.#o.onCloud(tenantId, d, batch);
        continue;
      }
      const a = this.#answered.get(d.event_id);
      if (a && (a.tenantId !== tenantId || a.deviceId !== d.device_id)) {
        this.stats.unmatched++;
        continue;
      }
      if (a) {
        this.#answered.delete(d.event_id);
        const disagreement = a.local !== null && a.local.effect !== d.effect;
        this.stats.reconciled++;
        if (disagreement) this.stats.disagreements++;
        this.#o.onReconciled({ event_id: d.event_id, tenant_id: tenantId, device_id: d.device_id, local: a.local, cloud: d, disagreement, previous_run: a.previousRun });
        continue;
      }
      // Denied at once for a block in force, or an answer to an event this agent no longer tracks.
      if (!this.#o.local.has(d.event_id)) this.stats.unmatched++;
    }
    for (const r of batch.rejected) {
      const a = this.#awaiting.get(r.event_id);
      if (this.#answered.get(r.event_id)?.tenantId === tenantId) this.#answered.delete(r.event_id);
      if (!a || a.tenantId !== tenantId) continue;
      this.#awaiting.delete(r.event_id);
      const message = r.reason === 'plan_rate_limited' ? "over the tenant plan's event rate" : 'the device belongs to another tenant than the topic';
      this.#o.onReject(r.event_id, a.event.device_id, tenantId, r.reason, message);
    }
  }

  /** The event was dropped before it could be sent: true when it was still waiting for an answer. */
  drop(eventId: string): boolean {
    this.#answered.delete(eventId);
    return this.#awaiting.delete(eventId);
  }

  /** The connection dropped: events waiting for the cloud are decided locally now. */
  down(): void {
    this.#decideLate([...this.#awaiting.keys()], false);
  }

  /**
   * Stopping: waiting events are decided locally where possible (unless local decisions by
   * deadline are off), the others rejected. No report goes out now (it would race the
   * disconnect): a journal sends those local decisions at the next start.
   */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#decideLate([...this.#awaiting.keys()], true);
  }

  #await(a: Awaiting): void {
    this.#awaiting.set(a.event.id, a);
    if (this.#awaiting.size > this.#o.awaitingMax) this.#shed();
    if (this.#o.deadlineMs <= 0) return;
    this.#queue.push(a.event.id);
    this.#arm();
  }

  /**
   * Too many events wait for the cloud (a long outage, and no bundle to decide them from): the
   * oldest get their answer now, a rejection. They are still sent (journalled) and stored.
   */
  #shed(): void {
    for (const [id, a] of this.#awaiting) {
      if (this.#awaiting.size <= this.#o.awaitingMax) break;
      this.#awaiting.delete(id);
      this.stats.no_bundle++;
      this.#answered.set(id, { tenantId: a.tenantId, deviceId: a.event.device_id, local: null, previousRun: false });
      this.#o.onReject(id, a.event.device_id, a.tenantId, 'no_policy_bundle', "no cloud answer yet and no policy bundle of the device's tenant at this tower to decide from (too many events waiting): the cloud decides it when it can");
    }
  }

  #arm(): void {
    if (this.#timer) return;
    while (this.#queueHead < this.#queue.length && !this.#awaiting.has(this.#queue[this.#queueHead]!)) this.#queueHead++;
    if (this.#queueHead > 4096 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
    const first = this.#awaiting.get(this.#queue[this.#queueHead] ?? '');
    if (!first) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const now = performance.now();
      const due: string[] = [];
      while (this.#queueHead < this.#queue.length) {
        const id = this.#queue[this.#queueHead]!;
        const a = this.#awaiting.get(id);
        if (a && a.due > now) break;
        this.#queueHead++;
        if (a) due.push(id);
      }
      this.#decideLate(due, false);
      this.#arm();
    }, Math.max(0, first.due - performance.now()));
  }

  /** Local decisions for events whose cloud answer is late; `final`: reject what cannot be. */
  #decideLate(ids: string[], final: boolean): void {
    const reports = new Map<string, Array<{ event: UsageEvent; seq: number }>>();
    for (const id of ids) {
      const a = this.#awaiting.get(id);
      if (!a) continue;
      const local = final && this.#o.deadlineMs <= 0 ? null : this.#decide(a.tenantId, a.profile, a.event);
      if (!local) {
        if (!final) continue; // nothing to decide from: the cloud's answer is all there is
        this.#awaiting.delete(id);
        this.#o.onReject(id, a.event.device_id, a.tenantId, 'shutdown', 'the agent stopped before the cloud answered');
        continue;
      }
      this.#awaiting.delete(id);
      if (a.seq >= 0) this.#o.journal?.late(a.seq, local.local);
      if (!a.sent) {
        a.event.local = local.local;
      } else {
        let list = reports.get(a.tenantId);
        if (!list) reports.set(a.tenantId, (list = []));
        list.push({ event: { ...a.event, local: local.local }, seq: a.seq });
      }
      this.#answered.set(id, { tenantId: a.tenantId, deviceId: a.event.device_id, local: local.local, previousRun: false });
      this.#o.router.answer(a.tenantId, local.decision, { source: 'local', bundle_version: local.local.policy_version });
    }
    // Events already sent without it: the cloud records the local decision from a report.
    if (final) return;
    for (const [tenantId, list] of reports) {
      // No report larger than a batch: one larger than the uplink buffer was dropped whole.
      const max = Math.min(MAX_EVENTS_PER_BATCH, Math.max(1, this.#o.batchMaxEvents ?? MAX_EVENTS_PER_BATCH));
      for (let i = 0; i < list.length; i += max) {
        const chunk = list.slice(i, i + max);
        this.#o.push({
          kind: 'usage',
          tenantId,
          batch: { v: SCHEMA_VERSION, id: this.#o.newId(), sent_at: this.#o.now(), events: chunk.map((c) => c.event) },
          seqs: chunk.map((c) => c.seq),
        });
      }
    }
  }

  #decide(tenantId: string, profile: string | null, event: UsageEvent): { decision: Decision; local: LocalDecision } | null {
    if (profile === null) return null;
    const v = this.#o.policy.decide({ tenantId, profile }, event);
    if (!v.ok) return null;
    this.stats.decided_locally++;
    const reason = v.decision.reason === 'rule' ? 'rule' : 'default';
    return { decision: v.decision, local: { effect: v.decision.effect, reason, rule_id: v.decision.rule_id, policy_version: v.version } };
  }
}
