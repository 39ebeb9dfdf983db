/**
 * Contract of the JobQueue port: run against the in-process adapter and BullMQ on a real Redis.
 * Jobs are observed through promises their handlers resolve: nothing sleeps, and no assertion
 * is about how long anything took.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { UnrecoverableJobError, type JobQueues } from '../job-queue.js';

export interface JobQueuesHarness {
  queues: JobQueues;
  /** Another factory over the same storage (another process), when the adapter has one. */
  peer?: () => JobQueues;
  cleanup(): Promise<void>;
}

const Data = z.object({ n: z.number().int() });

/** A promise with its resolver, to await what a handler does. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

let counter = 0;
const qname = () => `contract-${process.pid}-${++counter}`;

/** `shared`: the adapter's queues are shared by processes (peer() opens another process' view). */
export function describeJobQueueContract(name: string, open: () => Promise<JobQueuesHarness>, opts: { shared: boolean }): void {
  describe(`JobQueue contract: ${name}`, () => {
    let h: JobQueuesHarness;
    const extra: JobQueues[] = [];
    beforeEach(async () => {
      h = await open();
    });
    afterEach(async () => {
      for (const q of extra.splice(0)) await q.close();
      await h.cleanup();
    });

    it('runs a job once with its parsed data; adding the same id again while it waits is a no-op', async () => {
      const q = h.queues.open({ name: qname(), schema: Data });
      await q.add({ n: 1 }, { id: 'job-1' });
      await q.add({ n: 2 }, { id: 'job-1' });
      await q.add({ n: 3 }, { id: 'job-2' });
      const seen: Array<[string, number]> = [];
      const two = deferred();
      const three = deferred();
      q.process(async (data, job) => {
        seen.push([job.id, data.n]);
        if (seen.length === 2) two.resolve();
        if (seen.length === 3) three.resolve();
      });
      await two.promise;
      // job-3 proves the queue moved on; nothing else may have run in between.
      await q.add({ n: 9 }, { id: 'job-3' });
      await three.promise;
      expect(seen).toEqual([
        ['job-1', 1],
        ['job-2', 3],
        ['job-3', 9],
      ]);
    });

    it('a delayed job runs after work added later without delay, or at once when promoted', async () => {
      const q = h.queues.open({ name: qname(), schema: Data });
      const order: number[] = [];
      const twoDone = deferred();
      const promoted = deferred();
      q.process(
        async (data) => {
          order.push(data.n);
          if (data.n === 2 && order.includes(1)) twoDone.resolve();
          if (data.n === 1 && order.includes(2)) twoDone.resolve();
          if (data.n === 3) promoted.resolve();
        },
        { concurrency: 2 },
      );
      await q.add({ n: 1 }, { id: 'later', delayMs: 300 });
      await q.add({ n: 2 }, { id: 'now' });
      await twoDone.promise;
      expect(order).toEqual([2, 1]);
      await q.add({ n: 3 }, { id: 'far', delayMs: 3_600_000 });
      expect(await q.promote('far')).toBe(true);
      await promoted.promise;
      expect(await q.promote('no-such-job')).toBe(false);
    });

    it('retries a failing job with backoff until it succeeds', async () => {
      const q = h.queues.open({ name: qname(), schema: Data, attempts: 4, backoffMs: 10 });
      const attempts: number[] = [];
      const done = deferred();
      q.process(async (data, job) => {
        attempts.push(job.attempt);
        if (data.n === 1 && job.attempt < 3) throw new Error('transient');
        done.resolve();
      });
      await q.add({ n: 1 }, { id: 'flaky' });
      await done.promise;
      expect(attempts).toEqual([1, 2, 3]);
    });

    it('gives up on unrecoverable errors and invalid data without retrying, and reports them', async () => {
      const failed: Array<{ id: string; message: string }> = [];
      const twoFailed = deferred();
      const q = h.queues.open({
        name: qname(),
        schema: Data,
        attempts: 5,
        backoffMs: 10,
        onFailed: (err, job) => {
          failed.push({ id: job.id, message: err instanceof Error ? err.message : String(err) });
          if (failed.length === 2) twoFailed.resolve();
        },
      });
      let runs = 0;
      q.process(async () => {
        runs++;
        throw new UnrecoverableJobError('gone for good');
      });
      await q.add({ n: 1 }, { id: 'doomed' });
      await q.add({ n: 'not a number' } as unknown as { n: number }, { id: 'bad-data' });
      await twoFailed.promise;
      expect(runs).toBe(1);
      expect(failed.map((f) => f.id).sort()).toEqual(['bad-data', 'doomed']);
      expect(failed.find((f) => f.id === 'bad-data')?.message).toMatch(/invalid job data/);
    });

    it('close waits for the running handler', async () => {
      const q = h.queues.open({ name: qname(), schema: Data });
      const started = deferred();
      const release = deferred();
      let finished = false;
      q.process(async () => {
        started.resolve();
        await release.promise;
        finished = true;
      });
      await q.add({ n: 1 }, { id: 'slow' });
      await started.promise;
      const closing = q.close();
      release.resolve();
      await closing;
      expect(finished).toBe(true);
    });

    // Only adapters whose storage processes share can show this (BullMQ on one Redis).
    if (opts.shared) it('two consumers of one queue run each job exactly once', async () => {
      const name = qname();
      const other = h.peer!();
      extra.push(other);
      const a = h.queues.open({ name, schema: Data });
      const b = other.open({ name, schema: Data });
      const runs = new Map<number, number>();
      const all = deferred();
      const total = 60;
      let done = 0;
      const handler = async (data: { n: number }) => {
        runs.set(data.n, (runs.get(data.n) ?? 0) + 1);
        if (++done === total) all.resolve();
      };
      a.process(handler, { concurrency: 4 });
      b.process(handler, { concurrency: 4 });
      for (let i = 0; i < total; i++) await (i % 2 ? a : b).add({ n: i }, { id: `j-${i}` });
      await all.promise;
      expect(runs.size).toBe(total);
      expect([...runs.values()].every((n) => n === 1)).toBe(true);
    });
  });
}
