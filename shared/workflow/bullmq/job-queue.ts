/**
 * JobQueues on BullMQ: jobs (delayed ones included) live in Redis, any worker process claims each
 * one once, and a job whose worker died is taken over by another after the lock expires
 * (`lockDurationMs`). Idempotent adds come from BullMQ's custom job ids; retries from its
 * exponential backoff; our UnrecoverableJobError maps to BullMQ's UnrecoverableError.
 * Completed and given-up jobs are removed, so an id can be scheduled again later.
 */
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { createRedis } from '../../redis/connection.js';
import {
  checkJobId,
  UnrecoverableJobError,
  type JobHandler,
  type JobInfo,
  type JobQueue,
  type JobQueueOptions,
  type JobQueues,
  type JobSpec,
} from '../job-queue.js';

export interface BullJobQueuesOptions {
  url: string;
  /** Key prefix, e.g. 'edgeplane' (BullMQ's own default is 'bull'). */
  prefix: string;
  /** How long a worker's claim on a job lasts without renewal: the takeover time after a crash. */
  lockDurationMs?: number;
  /** Shown in CLIENT LIST. */
  name?: string;
}

class BullJobQueue<T> implements JobQueue<T> {
  readonly name: string;
  readonly #opts: JobQueueOptions<T>;
  readonly #factory: BullJobQueuesOptions;
  readonly #queue: Queue;
  readonly #connections: Redis[] = [];
  #worker: Worker | null = null;

  constructor(opts: JobQueueOptions<T>, factory: BullJobQueuesOptions, connection: Redis) {
    this.name = opts.name;
    this.#opts = opts;
    this.#factory = factory;
    this.#queue = new Queue(opts.name, { connection, prefix: factory.prefix });
    // An 'error' event without a listener would crash the process; connection errors are
    // retried by ioredis and surface through the roles' readiness checks.
    this.#queue.on('error', () => {});
  }

  async add(data: T, spec: JobSpec): Promise<void> {
    checkJobId(spec.id);
    await this.#queue.add(this.name, data, {
      jobId: spec.id,
      ...(spec.delayMs && spec.delayMs > 0 ? { delay: spec.delayMs } : {}),
      attempts: this.#opts.attempts ?? 5,
      backoff: { type: 'exponential', delay: this.#opts.backoffMs ?? 1000 },
      removeOnComplete: true,
      removeOnFail: true,
    });
  }

  async promote(id: string): Promise<boolean> {
    const job = await this.#queue.getJob(id);
    if (!job || !(await job.isDelayed())) return false;
    try {
      await job.promote();
      return true;
    } catch {
      // Became waiting or active meanwhile (another process promoted it, or its delay ended).
      return false;
    }
  }

  process(handler: JobHandler<T>, opts: { concurrency?: number } = {}): void {
    if (this.#worker) throw new Error(`queue ${this.name} already has a processor`);
    // Workers block on their connection: each gets its own.
    const connection = createRedis(this.#factory.url, { name: `${this.#factory.name ?? 'edgeplane'}-${this.name}-worker`, blocking: true });
    this.#connections.push(connection);
    const worker = new Worker(
      this.name,
      async (job: Job) => {
        // attemptsStarted includes the run of a worker that died holding the job (a takeover).
        const info: JobInfo = { id: job.id ?? '', attempt: Math.max(job.attemptsStarted, job.attemptsMade + 1) };
        const parsed = this.#opts.schema.safeParse(job.data);
        if (!parsed.success) throw new UnrecoverableError(`invalid job data: ${parsed.error.message}`);
        try {
          await handler(parsed.data, info);
        } catch (err) {
          if (err instanceof UnrecoverableJobError) throw new UnrecoverableError(err.message);
          throw err;
        }
      },
      {
        connection,
        prefix: this.#factory.prefix,
        concurrency: Math.max(1, opts.concurrency ?? 1),
        ...(this.#factory.lockDurationMs ? { lockDuration: this.#factory.lockDurationMs, stalledInterval: this.#factory.lockDurationMs } : {}),
        // Redelivered after a crash up to this many times before being failed for good.
        maxStalledCount: 5,
      },
    );
    worker.on('failed', (job, err) => {
      if (!job) return;
      const attempts = job.opts.attempts ?? 1;
      const final = err instanceof UnrecoverableError || job.attemptsMade >= attempts;
      if (final) this.#opts.onFailed?.(err, { id: job.id ?? '', attempt: job.attemptsMade });
    });
    worker.on('error', () => {});
    this.#worker = worker;
  }

  async depth(): Promise<number> {
    const c = await this.#queue.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
    return Object.values(c).reduce((a, b) => a + b, 0);
  }

  async close(): Promise<void> {
    await this.#worker?.close();
    await this.#queue.close();
    await Promise.all(this.#connections.map((c) => c.quit().catch(() => c.disconnect())));
  }
}

export class BullJobQueues implements JobQueues {
  readonly #opts: BullJobQueuesOptions;
  readonly #queues: Array<JobQueue<unknown>> = [];
  #connection: Redis | null = null;

  constructor(opts: BullJobQueuesOptions) {
    this.#opts = opts;
  }

  open<T>(opts: JobQueueOptions<T>): JobQueue<T> {
    // Producers share one connection; maxRetriesPerRequest null as BullMQ requires for its Queue.
    this.#connection ??= createRedis(this.#opts.url, { name: `${this.#opts.name ?? 'edgeplane'}-queues`, blocking: true });
    const q = new BullJobQueue(opts, this.#opts, this.#connection);
    this.#queues.push(q as JobQueue<unknown>);
    return q;
  }

  async close(): Promise<void> {
    await Promise.all(this.#queues.map((q) => q.close()));
    const c = this.#connection;
    this.#connection = null;
    await c?.quit().catch(() => c.disconnect());
  }
}
