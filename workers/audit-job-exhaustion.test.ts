/**
 * Audit: a job that fails on every run (a poison uplink batch, a store that stays down) is given
 * up after its attempts, and giving up is reported exactly once (the uplink consumer counts
 * `uplink_jobs_failed_total` and the worker logs "failed for good" from that report). A report
 * missing here would lose the batch silently; one per retry would page operators for nothing.
 * Both JobQueue adapters: in-process and BullMQ on real Redis.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import { BullJobQueues } from '../shared/workflow/bullmq/job-queue.js';
import { InProcessJobQueues, type JobInfo, type JobQueues } from '../shared/workflow/job-queue.js';

function exhaustion(name: string, make: () => JobQueues): void {
  describe(`a job failing on every run (${name})`, () => {
    const open: JobQueues[] = [];
    afterEach(async () => {
      for (const q of open.splice(0)) await q.close();
    });

    it('runs `attempts` times, then is reported given up once, with its last attempt', async () => {
      const queues = make();
      open.push(queues);
      const reports: Array<{ id: string; attempt: number; message: string }> = [];
      let reported!: () => void;
      const given = new Promise<void>((resolve) => (reported = resolve));
      const q = queues.open({
        name: `exhaust-${process.pid}`,
        schema: z.object({ n: z.number() }),
        attempts: 3,
        backoffMs: 5,
        onFailed: (err: unknown, job: JobInfo) => {
          reports.push({ id: job.id, attempt: job.attempt, message: err instanceof Error ? err.message : String(err) });
          reported();
        },
      });
      const runs: number[] = [];
      q.process(async (_data, job) => {
        runs.push(job.attempt);
        throw new Error(`store down (run ${job.attempt})`);
      });
      await q.add({ n: 1 }, { id: 'poison' });
      await given;
      // A later job proves the queue is past the poison one, and nothing reported it again.
      let after!: () => void;
      const done = new Promise<void>((resolve) => (after = resolve));
      const next = queues.open({ name: `exhaust-next-${process.pid}`, schema: z.object({ n: z.number() }) });
      next.process(async () => after());
      await next.add({ n: 2 }, { id: 'next' });
      await done;
      expect(runs).toEqual([1, 2, 3]);
      expect(reports).toEqual([{ id: 'poison', attempt: 3, message: 'store down (run 3)' }]);
      expect(await q.depth()).toBe(0);
    });
  });
}

exhaustion('in-process', () => new InProcessJobQueues());

describeWithRedis('with Redis', (url) => {
  exhaustion('bullmq', () => new BullJobQueues({ url, prefix: uniquePrefix().replace(/:$/, '') }));
});
