/**
 * The tower → cloud path of finished batches: a bounded buffer (what waits while offline, and
 * what the pacer holds back while online), drained oldest first within the publish pacer's rate
 * and in-flight window, so a replayed backlog never trips the broker's per-client rate limit.
 *
 * Command acks take the same tokens, ahead of the buffer: a flood of commands published its acks
 * at once and could push the agent over the broker's rate (and get it disconnected), yet an ack
 * never waits behind a usage backlog, only behind earlier acks. Their number is bounded by
 * CommandFlow (MAX_ACKS_IN_FLIGHT), so they do not count against maxInflight.
 */
import { encodePayload } from '../shared/mqtt/payloads.js';
import { topics } from '../shared/mqtt/topics.js';
import { OfflineBuffer, type OutboundBatch } from './offline-buffer.js';
import { PublishPacer } from './publish-pacer.js';
import type { TowerSession } from './tower-session.js';
import { Waiters } from './waiters.js';

/** Tenants whose usage topic is remembered at most (see #usageTopic). */
const USAGE_TOPICS_MAX = 256;

export interface UplinkOptions {
  session: TowerSession;
  towerId: string;
  bufferMaxEvents: number;
  publishRatePerS: number;
  publishBurst: number;
  maxInflight: number;
  /** A batch was handed to the connection (live, or replayed from the buffer). */
  onSent: (item: OutboundBatch) => void;
  /** The buffer was full: these, the oldest, gave way. */
  onOverflow: (dropped: OutboundBatch[]) => void;
  /**
   * The broker acknowledged a batch (PUBACK); `withLocal[i]`: event i carried a local decision
   * when it was published.
   */
  onAcked?: (item: OutboundBatch, withLocal: boolean[]) => void;
}

interface PendingAck {
  topic: string;
  payload: Buffer;
  done: (acked: boolean) => void;
}

export class Uplink {
  readonly #o: UplinkOptions;
  readonly #buffer: OfflineBuffer;
  readonly #pacer: PublishPacer;
  readonly #idle = new Waiters();
  #paceTimer: NodeJS.Timeout | null = null;
  /** Acks waiting for a token, oldest first. */
  readonly #acks: PendingAck[] = [];
  #stopped = false;
  /**
   * This uplink's publishes awaiting their PUBACK: what maxInflight bounds. Not the session's
   * count, which holds command acks and status publishes too: acks a broker never acknowledged
   * took every slot, and usage stopped for good.
   */
  #inflight = 0;
  readonly #usageTopics = new Map<string, string>();

  constructor(opts: UplinkOptions) {
    this.#o = opts;
    this.#buffer = new OfflineBuffer(opts.bufferMaxEvents);
    // The wall clock, like the timers that wait for its tokens (the agent's `now` is for timestamps).
    this.#pacer = new PublishPacer({ ratePerS: opts.publishRatePerS, burst: opts.publishBurst, maxInflight: opts.maxInflight, now: Date.now });
  }

  /** Events waiting in the buffer. */
  get bufferedEvents(): number {
    return this.#buffer.events;
  }

  push(item: OutboundBatch): void {
    // Publishing while offline would hand the batch to mqtt.js's unbounded queue; the bounded
    // buffer holds it instead.
    const dropped = this.#buffer.push(item);
    if (dropped.length > 0) this.#o.onOverflow(dropped);
    this.drain();
  }

  /**
   * QoS 1 publish of a command ack at the next token, before any buffered batch; resolves true on
   * PUBACK, false when it failed or the uplink stopped first. While offline it waits here.
   */
  publishAck(topic: string, payload: Buffer): Promise<boolean> {
    if (this.#stopped) return Promise.resolve(false);
    return new Promise((done) => {
      this.#acks.push({ topic, payload, done });
      this.drain();
    });
  }

  /** Publishes waiting acks, then buffered batches, oldest first, as fast as the pacer allows. */
  drain(): void {
    if (this.#paceTimer) return; // a token is on its way; the timer drains
    const session = this.#o.session;
    while (session.up && (this.#acks.length > 0 || this.#buffer.length > 0)) {
      const ack = this.#acks.length > 0;
      // Acks have their own in-flight bound (see above): only usage waits for maxInflight.
      const verdict = this.#pacer.acquire(ack ? 0 : this.#inflight);
      if (!verdict.go) {
        // null: too many awaiting a PUBACK; the next PUBACK drains (see #publish).
        if (verdict.retryInMs !== null) {
          this.#paceTimer = setTimeout(() => {
            this.#paceTimer = null;
            this.drain();
          }, verdict.retryInMs);
        }
        return;
      }
      if (ack) {
        const { topic, payload, done } = this.#acks.shift()!;
        void session.publish(topic, payload, false).then(done);
      } else this.#publish(this.#buffer.shift()!);
    }
  }

  /** Re-checks idle waiters (the session has nothing awaiting a PUBACK any more). */
  settled(): void {
    this.#idle.wake();
  }

  /** True once nothing is waiting (acks or batches) or awaiting a PUBACK, false when `timeoutMs` passed first. */
  untilIdle(timeoutMs: number): Promise<boolean> {
    return this.#idle.until(() => this.#o.session.inflight === 0 && this.#buffer.length === 0 && this.#acks.length === 0, timeoutMs);
  }

  /** Removes the usage batches waiting in the buffer (discovery reports stay), oldest first. */
  takeUsage(): OutboundBatch[] {
    const all = this.#buffer.drain();
    const usage = all.filter((b) => b.kind === 'usage');
    for (const b of all) if (b.kind !== 'usage') this.#buffer.push(b);
    return usage;
  }

  /** Stops pacing; returns what was never sent, oldest first. Waiting acks resolve false (their journal keeps them). */
  stop(): OutboundBatch[] {
    if (this.#paceTimer) clearTimeout(this.#paceTimer);
    this.#paceTimer = null;
    this.#stopped = true;
    for (const a of this.#acks.splice(0)) a.done(false);
    return this.#buffer.drain();
  }

  /** topics.usage, built and checked once per tenant rather than for every batch. */
  #usageTopic(tenantId: string): string {
    let topic = this.#usageTopics.get(tenantId);
    if (topic === undefined) {
      topic = topics.usage(tenantId, this.#o.towerId);
      // Bounded: a tower serves a few tenants; ids it was handed and no longer sees cannot pile up.
      if (this.#usageTopics.size >= USAGE_TOPICS_MAX) this.#usageTopics.clear();
      this.#usageTopics.set(tenantId, topic);
    }
    return topic;
  }

  #publish(item: OutboundBatch): void {
    const topic = item.kind === 'usage' ? this.#usageTopic(item.tenantId) : topics.discovery(this.#o.towerId);
    // What the payload carries now: a local decision attached later is not in this send.
    const withLocal = item.kind === 'usage' ? item.batch.events.map((e) => e.local !== undefined) : [];
    this.#inflight++;
    void this.#o.session.publish(topic, encodePayload(item.batch), false).then((acked) => {
      this.#inflight--;
      if (acked) this.#o.onAcked?.(item, withLocal);
      this.drain();
    });
    this.#o.onSent(item);
  }
}
