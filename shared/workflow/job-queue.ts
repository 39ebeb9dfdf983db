/**
 * Job queues (a workflow-state port): work that must run exactly once in the cluster, possibly
 * later — command resends and expiry, webhook deliveries, uplink micro-batches in distributed mode.
 * The in-process adapter is here (timers; embedded mode resumes from the store at start); the
 * BullMQ adapter (bullmq/job-queue.ts) keeps jobs in Redis, delayed jobs included, and lets any
 * worker process claim each job once. Both pass contract/job-queue.contract.ts.
 *
 * Semantics both keep:
 * - `add` is idempotent by job id while the job is delayed, waiting or running (a deterministic id
 *   — e.g. `expire.<commandId>` — makes "schedule this once" safe from any process);
 * - a handler that throws is retried with exponential backoff up to `attempts` in all; an
 *   UnrecoverableJobError, or data that fails the queue's schema, is not retried;
 * - every job's data is parsed with the queue's schema before the handler sees it;
 * - `close` stops taking jobs and waits for the running ones.
 */
import type { z } from 'zod';

export interface JobSpec {
  /** Unique while the job exists; no ':' (BullMQ reserves it). */
  id: string;
  /** Run no earlier than this many ms from now. */
  delayMs?: number;
}

export interface JobInfo {
  id: string;
  /** 1 on the first run; counts runs started, so a run cut short by a crash counts too. */
  attempt: number;
}

export type JobHandler<T> = (data: T, job: JobInfo) => Promise<void>;

/** Thrown by a handler for a job that can never succeed (bad data, gone for good). */
export class UnrecoverableJobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnrecoverableJobError';
  }
}

export interface JobQueueOptions<T> {
  /** Queue name: [a-z0-9-], no ':'. */
  name: string;
  schema: z.ZodType<T>;
  /** Runs in all before a failing job is given up. Default 5. */
  attempts?: number;
  /** First retry delay; doubles per attempt. Default 1000 ms. */
  backoffMs?: number;
  /** A job given up: attempts exhausted, unrecoverable, or invalid data. */
  onFailed?: (err: unknown, job: JobInfo) => void;
}

export interface JobQueue<T> {
  readonly name: string;
  add(data: T, spec: JobSpec): Promise<void>;
  /** Runs a delayed job now. False when no delayed job has this id. */
  promote(id: string): Promise<boolean>;
  /** Starts consuming in this process, at most `concurrency` handlers at once (default 1). */
  process(handler: JobHandler<T>, opts?: { concurrency?: number }): void;
  /** Jobs delayed, waiting or running: for metrics and backpressure. */
  depth(): Promise<number>;
  close(): Promise<void>;
}

export interface JobQueues {
  open<T>(opts: JobQueueOptions<T>): JobQueue<T>;
  /** Closes every queue opened from this factory. */
  close(): Promise<void>;
}

export const JOB_ID_RE = /^[^:]{1,200}$/;

export function checkJobId(id: string): void {
  if (!JOB_ID_RE.test(id)) throw new Error(`invalid job id ${JSON.stringify(id)}: 1-200 chars, no ':'`);
}

export function retryDelayMs(backoffMs: number, attempt: number): number {
  return backoffMs * 2 ** Math.max(0, attempt - 1);
}

interface Entry {
  id: string;
  raw: unknown;
  state: 'delayed' | 'waiting' | 'active';
  attempt: number;
  timer: NodeJS.Timeout | null;
}

class InProcessJobQueue<T> implements JobQueue<T> {
  readonly name: string;
  readonly #opts: JobQueueOptions<T>;
  readonly #jobs = new Map<string, Entry>();
  readonly #waiting: string[] = [];
  readonly #running = new Set<Promise<void>>();
  #handler: JobHandler<T> | null = null;
  #concurrency = 1;
  #active = 0;
  #closed = false;
  readonly #idleWaiters: Array<() => void> = [];

  constructor(opts: JobQueueOptions<T>) {
    this.name = opts.name;
    this.#opts = opts;
  }

  async add(data: T, spec: JobSpec): Promise<void> {
    checkJobId(spec.id);
    if (this.#closed || this.#jobs.has(spec.id)) return;
    const entry: Entry = { id: spec.id, raw: data, state: 'waiting', attempt: 0, timer: null };
    this.#jobs.set(spec.id, entry);
    if (spec.delayMs && spec.delayMs > 0) this.#delay(entry, spec.delayMs);
    else this.#enqueue(entry);
  }

  async promote(id: string): Promise<boolean> {
    const e = this.#jobs.get(id);
    if (!e || e.state !== 'delayed') return false;
    if (e.timer) clearTimeout(e.timer);
    e.timer = null;
    this.#enqueue(e);
    return true;
  }

  process(handler: JobHandler<T>, opts: { concurrency?: number } = {}): void {
    if (this.#handler) throw new Error(`queue ${this.name} already has a processor`);
    this.#handler = handler;
    this.#concurrency = Math.max(1, opts.concurrency ?? 1);
    this.#pump();
  }

  async depth(): Promise<number> {
    return this.#jobs.size;
  }

  /** Resolves once no job is waiting or running (delayed ones may remain). */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  isIdleNow(): boolean {
    return this.#isIdle();
  }

  #isIdle(): boolean {
    return this.#active === 0 && (this.#waiting.length === 0 || !this.#handler || this.#closed);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const e of this.#jobs.values()) if (e.timer) clearTimeout(e.timer);
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
    this.#jobs.clear();
    this.#waiting.length = 0;
  }

  #delay(e: Entry, ms: number): void {
    e.state = 'delayed';
    e.timer = setTimeout(() => {
      e.timer = null;
      this.#enqueue(e);
    }, ms);
    // A delayed job alone must not keep the process alive (a resend due in an hour).
    e.timer.unref?.();
  }

  #enqueue(e: Entry): void {
    e.state = 'waiting';
    this.#waiting.push(e.id);
    this.#pump();
  }

  #pump(): void {
    const handler = this.#handler;
    if (!handler || this.#closed) return;
    while (this.#active < this.#concurrency && this.#waiting.length > 0) {
      const id = this.#waiting.shift()!;
      const e = this.#jobs.get(id);
      if (!e || e.state !== 'waiting') continue;
      e.state = 'active';
      e.attempt++;
      this.#active++;
      const run = this.#run(handler, e).finally(() => {
        this.#active--;
        this.#running.delete(run);
        this.#pump();
        if (this.#isIdle()) for (const w of this.#idleWaiters.splice(0)) w();
      });
      this.#running.add(run);
    }
  }

  async #run(handler: JobHandler<T>, e: Entry): Promise<void> {
    const info = { id: e.id, attempt: e.attempt };
    const parsed = this.#opts.schema.safeParse(e.raw);
    if (!parsed.success) {
      this.#jobs.delete(e.id);
      this.#opts.onFailed?.(new UnrecoverableJobError(`invalid job data: ${parsed.error.message}`), info);
      return;
    }
    try {
      await handler(parsed.data, info);
      this.#jobs.delete(e.id);
    } catch (err) {
      const attempts = this.#opts.attempts ?? 5;
      if (err instanceof UnrecoverableJobError || e.attempt >= attempts || this.#closed) {
        this.#jobs.delete(e.id);
        this.#opts.onFailed?.(err, info);
        return;
      }
      this.#delay(e, retryDelayMs(this.#opts.backoffMs ?? 1000, e.attempt));
    }
  }
}

export class InProcessJobQueues implements JobQueues {
  readonly #queues: Array<InProcessJobQueue<unknown>> = [];

  open<T>(opts: JobQueueOptions<T>): JobQueue<T> {
    const q = new InProcessJobQueue(opts);
    this.#queues.push(q as InProcessJobQueue<unknown>);
    return q;
  }

  /**
   * Resolves once no job of any queue is waiting or running, including jobs those jobs added
   * (tests: "everything this event caused has happened"). Delayed jobs are not waited for.
   */
  async idle(): Promise<void> {
    for (;;) {
      // Let handlers that just resolved schedule their follow-ups before looking.
      await new Promise((r) => setImmediate(r));
      if (this.#queues.every((q) => q.isIdleNow())) return;
      await Promise.all(this.#queues.map((q) => q.idle()));
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.#queues.map((q) => q.close()));
  }
}
