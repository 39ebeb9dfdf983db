/**
 * Turns single observations into batches: one pending UsageBatch per tenant and one pending
 * DiscoveryBatch (devices aggregated by id).
 *
 * Usage batching is adaptive (Nagle-style), so batching costs no latency at low load: when no
 * batch of the tenant is awaiting its answer, an event goes out at once (events observed in the
 * same task travel together); while `window` batches await their DecisionBatch,
 * events accumulate and go out as soon as an answer arrives (`answered`), or when the batch reaches
 * `maxEvents`, or after `maxDelayMs` at the latest (the agent's default: 50 ms). Under load the
 * batches grow by themselves to what the round trip allows: the cloud's per-message costs are paid
 * once per round trip and tower, not once per event (with a 5 ms bound, batches stayed at 1–7
 * events while answers took longer, and the pipeline was bound by ~3,000–4,000 messages/s). An answer that never comes (the uplink went down) stops counting after
 * `answerTimeoutMs`, so a lost batch cannot hold the others back for longer than that.
 * Timers are plain setTimeout (so fake timers drive them in tests) and a microtask; the injected clock
 * is used only for timestamps.
 */
import type { IdFactory } from '../shared/ids.js';
import { MAX_EVENTS_PER_BATCH, SCHEMA_VERSION, type UsageEvent } from '../shared/mqtt/payloads.js';
import type { OutboundBatch } from './offline-buffer.js';

export interface BatcherOptions {
  maxEvents: number;
  maxDelayMs: number;
  /** Unknown devices are not latency-critical; a longer window aggregates more sightings. */
  discoveryMaxDelayMs: number;
  newId: IdFactory;
  now: () => number;
  onBatch: (item: OutboundBatch) => void;
  /** Usage batches per tenant that may await their answer before events accumulate. Default 1. */
  window?: number;
  /** An unanswered batch stops holding others back after this. Default 1000 ms. */
  answerTimeoutMs?: number;
}

interface PendingUsage {
  events: UsageEvent[];
  /** Journal sequence numbers, aligned with events (-1: not journalled). */
  seqs: number[];
  timer: NodeJS.Timeout | null;
}

interface DeviceSighting {
  device_id: string;
  first_seen: number;
  last_seen: number;
  count: number;
}

export class Batcher {
  readonly #opts: BatcherOptions;
  readonly #maxEvents: number;
  readonly #usage = new Map<string, PendingUsage>();
  /** tenant → batch id → when it went out, for batches awaiting their DecisionBatch. */
  readonly #awaiting = new Map<string, Map<string, number>>();
  readonly #window: number;
  readonly #answerTimeoutMs: number;
  #discovery = new Map<string, DeviceSighting>();
  #discoveryTimer: NodeJS.Timeout | null = null;
  #pendingEvents = 0;

  constructor(opts: BatcherOptions) {
    if (!Number.isInteger(opts.maxEvents) || opts.maxEvents < 1) throw new Error(`batchMaxEvents must be a positive integer, got ${opts.maxEvents}`);
    if (!(opts.maxDelayMs >= 0)) throw new Error(`batchMaxDelayMs must be >= 0, got ${opts.maxDelayMs}`);
    this.#opts = opts;
    // The cloud refuses batches above the contract's limit, so never build one.
    this.#maxEvents = Math.min(opts.maxEvents, MAX_EVENTS_PER_BATCH);
    this.#window = Math.max(1, opts.window ?? 1);
    this.#answerTimeoutMs = opts.answerTimeoutMs ?? 1000;
  }

  /** Usage events plus discovery sightings not yet handed to `onBatch`. */
  get pendingEvents(): number {
    return this.#pendingEvents;
  }

  addUsage(tenantId: string, event: UsageEvent, seq = -1): void {
    let p = this.#usage.get(tenantId);
    if (!p) {
      const pending: PendingUsage = (p = { events: [], seqs: [], timer: null });
      this.#usage.set(tenantId, p);
      if (this.#busy(tenantId)) {
        p.timer = setTimeout(() => this.flushTenant(tenantId), this.#opts.maxDelayMs);
      } else {
        // Nothing in flight: out at once, together with whatever the task that observed this
        // event observes next (a microtask, not setImmediate: that waited for the rest of the
        // loop's I/O callbacks, ~0.09 ms at the median in bench (b), where 20 towers share a
        // process). Unless maxEvents sent it meanwhile.
        queueMicrotask(() => {
          if (this.#usage.get(tenantId) === pending) this.flushTenant(tenantId);
        });
      }
    }
    p.events.push(event);
    p.seqs.push(seq);
    this.#pendingEvents++;
    if (p.events.length >= this.#maxEvents) this.flushTenant(tenantId);
  }

  /** The DecisionBatch for `batchId` arrived: what accumulated meanwhile may go. */
  answered(tenantId: string, batchId: string): void {
    const awaiting = this.#awaiting.get(tenantId);
    if (!awaiting?.delete(batchId)) return;
    if (awaiting.size === 0) this.#awaiting.delete(tenantId);
    if (this.#usage.has(tenantId) && !this.#busy(tenantId)) this.flushTenant(tenantId);
  }

  /** True while `window` batches of the tenant await their answer (expired ones forgotten). */
  #busy(tenantId: string): boolean {
    const awaiting = this.#awaiting.get(tenantId);
    if (!awaiting) return false;
    const expired = this.#opts.now() - this.#answerTimeoutMs;
    for (const [id, at] of awaiting) if (at <= expired) awaiting.delete(id);
    if (awaiting.size === 0) this.#awaiting.delete(tenantId);
    return awaiting.size >= this.#window;
  }

  addDiscovery(deviceId: string, ts: number): void {
    const seen = this.#discovery.get(deviceId);
    if (seen) {
      seen.count++;
      seen.first_seen = Math.min(seen.first_seen, ts);
      seen.last_seen = Math.max(seen.last_seen, ts);
      this.#pendingEvents++;
      return;
    }
    if (this.#discovery.size >= this.#maxEvents) this.flushDiscovery();
    this.#discovery.set(deviceId, { device_id: deviceId, first_seen: ts, last_seen: ts, count: 1 });
    this.#pendingEvents++;
    this.#discoveryTimer ??= setTimeout(() => this.flushDiscovery(), this.#opts.discoveryMaxDelayMs);
  }

  flushTenant(tenantId: string): void {
    const p = this.#usage.get(tenantId);
    if (!p) return;
    if (p.timer) clearTimeout(p.timer);
    this.#usage.delete(tenantId);
    this.#pendingEvents -= p.events.length;
    const id = this.#opts.newId();
    const now = this.#opts.now();
    let awaiting = this.#awaiting.get(tenantId);
    if (!awaiting) this.#awaiting.set(tenantId, (awaiting = new Map()));
    awaiting.set(id, now);
    this.#opts.onBatch({
      kind: 'usage',
      tenantId,
      batch: { v: SCHEMA_VERSION, id, sent_at: now, events: p.events },
      ...(p.seqs.some((s) => s >= 0) ? { seqs: p.seqs } : {}),
    });
  }

  flushDiscovery(): void {
    if (this.#discoveryTimer) clearTimeout(this.#discoveryTimer);
    this.#discoveryTimer = null;
    if (this.#discovery.size === 0) return;
    const devices = [...this.#discovery.values()];
    this.#discovery = new Map();
    for (const d of devices) this.#pendingEvents -= d.count;
    this.#opts.onBatch({
      kind: 'discovery',
      batch: { v: SCHEMA_VERSION, id: this.#opts.newId(), sent_at: this.#opts.now(), devices },
    });
  }

  /** Finishes every pending batch now (used by stop and flush). */
  flushAll(): void {
    for (const tenantId of [...this.#usage.keys()]) this.flushTenant(tenantId);
    this.flushDiscovery();
  }
}
