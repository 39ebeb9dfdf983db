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
 */
import { createIdFactory } from '../shared/ids.js';
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
}

interface Pending {
  message: UplinkJob['messages'][number];
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
  #closed = false;
  readonly #flushing = new Set<Promise<void>>();

  constructor(opts: QueueUplinkSinkOptions) {
    this.#o = opts;
    this.#queue = opts.queues.open({ name: UPLINK_QUEUE, schema: UplinkJobSchema });
  }

  async accept(msg: UplinkMessage): Promise<void> {
    if (this.#closed) throw new Error('uplink sink is closed');
    await this.#belowHighWater();
    return new Promise<void>((resolve, reject) => {
      this.#batch.push({ message: packUplink(msg), resolve, reject });
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
    const p = this.#queue
      .add({ messages: batch.map((b) => b.message) }, { id: this.#newId() })
      .then(
        () => {
          this.#o.counters.inc('uplink_jobs_queued_total');
          this.#o.counters.inc('uplink_messages_queued_total', undefined, batch.length);
          for (const b of batch) b.resolve();
        },
        (err: unknown) => {
          this.#o.counters.inc('uplink_queue_errors_total');
          for (const b of batch) b.reject(err);
        },
      )
      .finally(() => this.#flushing.delete(p));
    this.#flushing.add(p);
  }

  async #belowHighWater(): Promise<void> {
    const pollMs = this.#o.depthPollMs ?? 100;
    for (;;) {
      const now = Date.now();
      if (now - this.#depthAt >= pollMs) {
        this.#depthAt = now;
        this.#depth = await this.#queue.depth();
      }
      if (this.#depth <= this.#o.highWater || this.#closed) return;
      this.#o.counters.inc('uplink_backpressure_waits_total');
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
}
