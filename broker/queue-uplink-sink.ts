/**
 * The broker role's UplinkSink (distributed mode): uplinks are packed into micro-batches on the
 * 'uplinks' job queue (shared/mqtt/uplink-jobs.ts) and `accept` resolves once the job holding the
 * message is durably in Redis. So in distributed mode a PUBACK means "durably queued": from there
 * a worker decides it exactly once (idempotent by event id; a job whose worker dies is taken over
 * after the queue lock expires), and the decision reaches the tower through the broker cluster.
 *
 * Backpressure: when more than `highWater` uplink jobs wait, `accept` waits too, which holds the
 * towers' PUBACKs (and so their in-flight windows) until the workers catch up, instead of letting
 * Redis grow without bound.
 *
 * Redis away: the job queue's connection holds its commands until Redis is back (ioredis' offline
 * queue), so an add would wait for good and every message behind it stay in this process. Each
 * tower's waiting PUBLISHes stall its connection until its keep alive runs out; it reconnects and
 * resends them, and the copies piled up once per keep alive period, without bound. So what waits
 * for Redis is bounded twice: a message Redis has not confirmed within `confirmTimeoutMs` is
 * refused (no PUBACK: the broker closes the connection and the tower resends later), and beyond
 * `maxHeldBytes` of payloads still waiting (refused ones included, since their add is still
 * queued on the connection) new messages are refused at once. A refused message whose add
 * completes later is a job without a PUBACK: its resend is recognised by event id.
 */
import { createIdFactory } from '../shared/ids.js';
import { withDeadline } from '../shared/deadline.js';
import type { Counters } from '../shared/metrics.js';
import { packUplink, UPLINK_QUEUE, UplinkJobSchema, type UplinkJob } from '../shared/mqtt/uplink-jobs.js';
import type { UplinkMessage, UplinkSink } from '../shared/mqtt/transport.js';
import type { JobQueue, JobQueues } from '../shared/workflow/job-queue.js';

export interface QueueUplinkSinkOptions {
  queues: JobQueues;
  counters: Counters;
  /** Messages per job at most. */
  batchMax: number;
  /** Longest a message waits for its batch to fill (0: flush on the next turn of the loop). */
  batchMs: number;
  /** Waiting jobs above which accept() waits. */
  highWater: number;
  /** How often the queue depth is read while above the high-water mark. */
  depthPollMs?: number;
  /** Longest a message waits for Redis to confirm its job (or the queue depth) before it is refused. */
  confirmTimeoutMs?: number;
  /** Payload bytes held waiting for Redis above which new messages are refused at once. */
  maxHeldBytes?: number;
}

const DEFAULT_CONFIRM_TIMEOUT_MS = 15_000;
const DEFAULT_MAX_HELD_BYTES = 64 * 1024 * 1024;

/** Redis did not take an uplink: the broker refuses the PUBLISH, so it gets no PUBACK. */
export class UplinkQueueUnavailable extends Error {
  constructor(message: string) {
    super(`uplink queue unavailable: ${message}`);
    this.name = 'UplinkQueueUnavailable';
  }
}

interface Pending {
  message: UplinkJob['messages'][number];
  bytes: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class QueueUplinkSink implements UplinkSink {
  readonly #o: QueueUplinkSinkOptions;
  readonly #queue: JobQueue<UplinkJob>;
  readonly #newId = createIdFactory();
  #batch: Pending[] = [];
  #timer: NodeJS.Timeout | null = null;
  #immediate: NodeJS.Immediate | null = null;
  #depth = 0;
  #depthAt = 0;
  #depthRead: Promise<void> | null = null;
  #closed = false;
  /** Payload bytes of the messages accepted and not yet confirmed or failed by Redis. */
  #heldBytes = 0;
  /** Batches not answered yet (confirmed, failed or timed out): what close() waits for. */
  readonly #flushing = new Set<Promise<void>>();

  constructor(opts: QueueUplinkSinkOptions) {
    this.#o = opts;
    this.#queue = opts.queues.open({ name: UPLINK_QUEUE, schema: UplinkJobSchema });
  }

  /** Payload bytes held waiting for Redis. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  async accept(msg: UplinkMessage): Promise<void> {
    if (this.#closed) throw new Error('uplink sink is closed');
    const bytes = msg.payload.length;
    const maxHeld = this.#o.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES;
    // One message always goes, so a payload above the cap is not refused for good.
    if (this.#heldBytes > 0 && this.#heldBytes + bytes > maxHeld) {
      this.#o.counters.inc('uplink_refused_total', { reason: 'held_full' });
      throw new UplinkQueueUnavailable(`${this.#heldBytes} bytes of uplinks already wait for Redis (limit ${maxHeld})`);
    }
    this.#heldBytes += bytes;
    try {
      await this.#belowHighWater();
    } catch (err) {
      this.#heldBytes -= bytes;
      if (err instanceof UplinkQueueUnavailable) this.#o.counters.inc('uplink_refused_total', { reason: 'timeout' });
      throw err;
    }
    return new Promise<void>((resolve, reject) => {
      this.#batch.push({ message: packUplink(msg), bytes, resolve, reject });
      if (this.#batch.length >= this.#o.batchMax) this.#flush();
      else this.#schedule();
    });
  }

  /** Flushes what is pending and waits for it; later accepts are refused. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#flush();
    await Promise.allSettled([...this.#flushing]);
  }

  #schedule(): void {
    if (this.#timer || this.#immediate) return;
    if (this.#o.batchMs <= 0) this.#immediate = setImmediate(() => this.#flush());
    else this.#timer = setTimeout(() => this.#flush(), this.#o.batchMs);
  }

  #flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#timer = null;
    this.#immediate = null;
    const batch = this.#batch;
    this.#batch = [];
    if (batch.length === 0) return;
    const added = this.#queue.add({ messages: batch.map((b) => b.message) }, { id: this.#newId() });
    // Its bytes stay held until Redis answers, even after a timeout: the add is still queued.
    const release = (): void => {
      for (const b of batch) this.#heldBytes -= b.bytes;
    };
    void added.then(release, release);
    const answered = this.#confirmed(added, 'confirming an uplink job')
      .then(
        () => {
          this.#o.counters.inc('uplink_jobs_queued_total');
          this.#o.counters.inc('uplink_messages_queued_total', undefined, batch.length);
          for (const b of batch) b.resolve();
        },
        (err: unknown) => {
          if (err instanceof UplinkQueueUnavailable) this.#o.counters.inc('uplink_refused_total', { reason: 'timeout' }, batch.length);
          else this.#o.counters.inc('uplink_queue_errors_total');
          for (const b of batch) b.reject(err);
        },
      )
      .finally(() => this.#flushing.delete(answered));
    this.#flushing.add(answered);
  }

  /** `work`, or an UplinkQueueUnavailable once Redis has not answered within the timeout. */
  #confirmed<T>(work: Promise<T>, what: string): Promise<T> {
    const ms = this.#o.confirmTimeoutMs ?? DEFAULT_CONFIRM_TIMEOUT_MS;
    return withDeadline(work, ms, () => {
      throw new UplinkQueueUnavailable(`Redis did not answer within ${ms} ms (${what})`);
    });
  }

  async #belowHighWater(): Promise<void> {
    const pollMs = this.#o.depthPollMs ?? 100;
    for (;;) {
      const now = Date.now();
      // One read at a time: while Redis is away, the others go on with the last depth known
      // (and their adds time out) instead of each adding a read that waits for it.
      if (now - this.#depthAt >= pollMs && !this.#depthRead) {
        this.#depthAt = now;
        const read = this.#queue.depth().then((depth) => {
          this.#depth = depth;
        });
        this.#depthRead = read;
        void read.catch(() => undefined).then(() => (this.#depthRead = null));
        await this.#confirmed(read, 'reading the uplink queue depth');
      }
      if (this.#depth <= this.#o.highWater || this.#closed) return;
      this.#o.counters.inc('uplink_backpressure_waits_total');
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
}
