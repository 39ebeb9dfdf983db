/**
 * The worker role's side of the uplink queue (distributed mode): takes micro-batch jobs and hands
 * each message to the same Pipeline the embedded mode uses. A job completes only when every
 * message in it was processed (decided, stored, answered); an infrastructure failure re-runs the
 * job, which is safe because processing is idempotent by event id and the answer's id is derived
 * from the batch's.
 *
 * Every message of a job was acknowledged to its tower, so a failure must not lose it. Left to the
 * queue's own retries (a few attempts, backing off), each job fetched during an outage of the
 * store (or of the brokers the answers go through) used its attempts up in about a minute and a
 * half and was given up for good: a longer outage lost every acknowledged message that was queued.
 * So a run waits out such a failure itself, re-running the job with a capped backoff: meanwhile
 * the other jobs stay queued in Redis, untouched (this worker takes no more than `concurrency`).
 * Only a run that keeps failing for `retryForMs` (a message that can never succeed, or a very
 * long outage) ends as a failed attempt of the queue, which retries it later and, after its
 * attempts, gives it up; and `stop()` ends the waiting at once, leaving the job to the queue.
 */
import type { Counters } from '../shared/metrics.js';
import { UPLINK_QUEUE, UplinkJobSchema, unpackUplink, type UplinkJob } from '../shared/mqtt/uplink-jobs.js';
import type { UplinkSink } from '../shared/mqtt/transport.js';
import { UnrecoverableJobError, type JobQueue, type JobQueues } from '../shared/workflow/job-queue.js';

export interface UplinkConsumerOptions {
  queues: JobQueues;
  sink: UplinkSink;
  counters: Counters;
  /** Jobs processed at once by this worker. */
  concurrency: number;
  onError?: (err: unknown) => void;
  /** First wait before a failed job runs again in the same run (doubles up to `retryMaxMs`). Default 200 ms. */
  retryMs?: number;
  /** Longest wait between two runs of a failing job. Default 5 s. */
  retryMaxMs?: number;
  /** How long one run keeps re-running a failing job before it fails to the queue. Default 10 min. */
  retryForMs?: number;
  /** The clock `retryForMs` is measured by (injected, like every clock here, so tests drive it). */
  now?: () => number;
}

const DEFAULT_RETRY_MS = 200;
const DEFAULT_RETRY_MAX_MS = 5_000;
const DEFAULT_RETRY_FOR_MS = 10 * 60_000;

export class UplinkConsumer {
  readonly #o: UplinkConsumerOptions;
  readonly #queue: JobQueue<UplinkJob>;
  #stopping = false;
  /** Wakes the runs waiting to re-run a job, so stop() does not wait for their timers. */
  readonly #wakers = new Set<() => void>();

  constructor(opts: UplinkConsumerOptions) {
    this.#o = opts;
    this.#queue = opts.queues.open({
      name: UPLINK_QUEUE,
      schema: UplinkJobSchema,
      attempts: 10,
      backoffMs: 200,
      onFailed: (err) => {
        opts.counters.inc('uplink_jobs_failed_total');
        opts.onError?.(err);
      },
    });
  }

  start(): void {
    this.#stopping = false;
    this.#queue.process(
      (job, info) => {
        // A second start: the job failed before, or its worker died holding it and we took over.
        if (info.attempt > 1) this.#o.counters.inc('uplink_jobs_retried_total');
        this.#o.counters.inc('uplink_jobs_started_total');
        return this.#processUntilDone(job);
      },
      { concurrency: this.#o.concurrency },
    );
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    for (const wake of [...this.#wakers]) wake();
    await this.#queue.close();
  }

  async #processUntilDone(job: UplinkJob): Promise<void> {
    const retryMaxMs = this.#o.retryMaxMs ?? DEFAULT_RETRY_MAX_MS;
    const now = this.#o.now ?? Date.now;
    const giveUpAt = now() + (this.#o.retryForMs ?? DEFAULT_RETRY_FOR_MS);
    let waitMs = this.#o.retryMs ?? DEFAULT_RETRY_MS;
    for (;;) {
      try {
        await this.#process(job);
        return;
      } catch (err) {
        if (err instanceof UnrecoverableJobError || this.#stopping || now() + waitMs > giveUpAt) throw err;
      }
      await this.#wait(waitMs);
      waitMs = Math.min(waitMs * 2, retryMaxMs);
      if (this.#stopping) throw new Error('uplink consumer stopping: the job is left to the queue');
      this.#o.counters.inc('uplink_jobs_retried_total');
    }
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#wakers.add(wake);
    });
  }

  async #process(job: UplinkJob): Promise<void> {
    const results = await Promise.allSettled(
      job.messages.map((m) => {
        const msg = unpackUplink(m);
        if (!msg) {
          this.#o.counters.inc('uplink_dropped_total', { tower: m.tower_id.slice(0, 64), kind: 'unknown', reason: 'not_an_uplink' });
          return Promise.resolve();
        }
        return this.#o.sink.accept(msg);
      }),
    );
    this.#o.counters.inc('uplink_jobs_processed_total');
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    // The whole job is run again: what already succeeded is recognised by event id.
    if (failed) throw failed.reason;
  }
}
