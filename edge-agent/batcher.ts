/**
 * Turns single observations into batches: one pending UsageBatch per tenant and one pending
 * DiscoveryBatch (devices aggregated by id). A pending batch is finished when it reaches
 * `maxEvents` or when `maxDelayMs` has passed since its first event, whichever comes first.
 * Timers are plain setTimeout (so fake timers drive them in tests); the injected clock is used
 * only for timestamps.
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
}

interface PendingUsage {
  events: UsageEvent[];
  timer: NodeJS.Timeout;
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
  #discovery = new Map<string, DeviceSighting>();
  #discoveryTimer: NodeJS.Timeout | null = null;
  #pendingEvents = 0;

  constructor(opts: BatcherOptions) {
    if (!Number.isInteger(opts.maxEvents) || opts.maxEvents < 1) throw new Error(`batchMaxEvents must be a positive integer, got ${opts.maxEvents}`);
    if (!(opts.maxDelayMs >= 0)) throw new Error(`batchMaxDelayMs must be >= 0, got ${opts.maxDelayMs}`);
    this.#opts = opts;
    // The cloud refuses batches above the contract's limit, so never build one.
    this.#maxEvents = Math.min(opts.maxEvents, MAX_EVENTS_PER_BATCH);
  }

  /** Usage events plus discovery sightings not yet handed to `onBatch`. */
  get pendingEvents(): number {
    return this.#pendingEvents;
  }

  addUsage(tenantId: string, event: UsageEvent): void {
    let p = this.#usage.get(tenantId);
    if (!p) {
      p = { events: [], timer: setTimeout(() => this.flushTenant(tenantId), this.#opts.maxDelayMs) };
      this.#usage.set(tenantId, p);
    }
    p.events.push(event);
    this.#pendingEvents++;
    if (p.events.length >= this.#maxEvents) this.flushTenant(tenantId);
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
    clearTimeout(p.timer);
    this.#usage.delete(tenantId);
    this.#pendingEvents -= p.events.length;
    this.#opts.onBatch({
      kind: 'usage',
      tenantId,
      batch: { v: SCHEMA_VERSION, id: this.#opts.newId(), sent_at: this.#opts.now(), events: p.events },
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
