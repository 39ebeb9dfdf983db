/**
 * A worker process killed with -9 while it holds a job: another consumer takes the job over once
 * the lock expires, and runs it to completion (BullMQ's stalled-job recovery, which the
 * distributed mode's "0 events lost when a worker dies" rests on). Real processes, real Redis.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { describeWithRedis, uniquePrefix } from '../../../test/support/redis.js';
import { BullJobQueues } from '../bullmq/job-queue.js';

const CHILD = fileURLToPath(new URL('./takeover-child.ts', import.meta.url));

describeWithRedis('BullMQ job takeover after a kill -9', (url) => {
  const open: BullJobQueues[] = [];
  afterEach(async () => {
    for (const q of open.splice(0)) await q.close();
  });

  it('the job a dead worker held is run by another worker, once', async () => {
    const prefix = uniquePrefix().replace(/:$/, '');
    const name = 'takeover';
    const lockMs = 1000;
    const producer = new BullJobQueues({ url, prefix, lockDurationMs: lockMs });
    open.push(producer);
    const q = producer.open({ name, schema: z.object({ n: z.number() }) });
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, url, prefix, name, String(lockMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const holding = new Promise<string>((resolve) => child.stdout.on('data', (d: Buffer) => resolve(d.toString().trim())));
    await q.add({ n: 42 }, { id: 'held-job' });
    expect(await holding).toBe('holding 42');
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;

    const runs: Array<{ n: number; attempt: number }> = [];
    const taken = new Promise<void>((resolve) => {
      const survivor = new BullJobQueues({ url, prefix, lockDurationMs: lockMs });
      open.push(survivor);
      survivor.open({ name, schema: z.object({ n: z.number() }) }).process(async (data, job) => {
        runs.push({ n: data.n, attempt: job.attempt });
        resolve();
      });
    });
    await taken;
    expect(runs).toEqual([{ n: 42, attempt: 2 }]);
  }, 30_000);
});
