/**
 * The worker role's side of the uplink queue (distributed mode): takes micro-batch jobs and hands
 * each message to the same Pipeline the embedded mode uses. A job completes only when every
 * message in it was processed (decided, stored, answered); an infrastructure failure fails the job
 * and BullMQ retries it, which is safe because processing is idempotent by event id and the
 * answer's id is derived from the batch's.
 */
import type { Counters } from '../shared/metrics.js';
import { UPLINK_QUEUE, UplinkJobSchema, unpackUplink, type UplinkJob } from '../shared/mqtt/uplink-jobs.js';
import type { UplinkSink } from '../shared/mqtt/transport.js';
import type { JobQueue, JobQueues } from '../shared/workflow/job-queue.js';

export interface UplinkConsumerOptions {
  queues: JobQueues;
  sink: UplinkSink;
  counters: Counters;
  /** Jobs processed at once by this worker. */
  concurrency: number;
  onError?: (err: unknown) => void;
}

export class UplinkConsumer {
  readonly #o: UplinkConsumerOptions;
  readonly #queue: JobQueue<UplinkJob>;

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
    this.#queue.process(
      (job, info) => {
        // A second start: the job failed before, or its worker died holding it and we took over.
        if (info.attempt > 1) this.#o.counters.inc('uplink_jobs_retried_total');
        this.#o.counters.inc('uplink_jobs_started_total');
        return this.#process(job);
      },
      { concurrency: this.#o.concurrency },
    );
  }

  async stop(): Promise<void> {
    await this.#queue.close();
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
    // The whole job is retried: what already succeeded is recognised by event id.
    if (failed) throw failed.reason;
  }
}
