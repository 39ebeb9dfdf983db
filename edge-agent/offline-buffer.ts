/**
 * The agent's own bounded store for batches finished while it is offline. mqtt.js would
 * queue such publishes without limit; this buffer caps memory by event count and, when full,
 * gives up the OLDEST batches first (the freshest usage is the most useful to the cloud).
 */
import type { DiscoveryBatch, UsageBatch } from '../shared/mqtt/payloads.js';

export type OutboundBatch =
  /** `seqs`: each event's journal sequence number (-1: not journalled), when the agent has a journal. */
  | { kind: 'usage'; tenantId: string; batch: UsageBatch; seqs?: number[] }
  | { kind: 'discovery'; batch: DiscoveryBatch };

/** What a batch costs against the buffer: usage events, or distinct devices in a discovery report. */
export function batchWeight(item: OutboundBatch): number {
  return item.kind === 'usage' ? item.batch.events.length : item.batch.devices.length;
}

export class OfflineBuffer {
  readonly #maxEvents: number;
  #items: OutboundBatch[] = [];
  #head = 0;
  #events = 0;

  constructor(maxEvents: number) {
    if (!Number.isInteger(maxEvents) || maxEvents < 0) throw new Error(`bufferMaxEvents must be a non-negative integer, got ${maxEvents}`);
    this.#maxEvents = maxEvents;
  }

  /** Events currently held. */
  get events(): number {
    return this.#events;
  }

  get length(): number {
    return this.#items.length - this.#head;
  }

  /**
   * Appends a batch, evicting the oldest batches until it fits. Returns what was evicted
   * (possibly the new batch itself when it alone exceeds the whole capacity).
   */
  push(item: OutboundBatch): OutboundBatch[] {
    const w = batchWeight(item);
    const dropped: OutboundBatch[] = [];
    if (w > this.#maxEvents) return [item];
    while (this.#events + w > this.#maxEvents) {
      const old = this.shift();
      if (!old) break;
      dropped.push(old);
    }
    this.#items.push(item);
    this.#events += w;
    return dropped;
  }

  shift(): OutboundBatch | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head]!;
    this.#head++;
    this.#events -= batchWeight(item);
    // Compact occasionally so shift stays O(1) amortised without the array growing forever.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Removes and returns everything, oldest first. */
  drain(): OutboundBatch[] {
    const out = this.#items.slice(this.#head);
    this.#items = [];
    this.#head = 0;
    this.#events = 0;
    return out;
  }
}
