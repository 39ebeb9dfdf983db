/**
 * Test fixture (run by bullmq-takeover.test.ts in a child process): consumes one job from the
 * given queue and never finishes it, so the parent can kill -9 this process while it holds the job.
 */
import { z } from 'zod';
import { BullJobQueues } from '../bullmq/job-queue.js';

const [url, prefix, name, lockMs] = process.argv.slice(2);
const queues = new BullJobQueues({ url: url!, prefix: prefix!, lockDurationMs: Number(lockMs) });
const q = queues.open({ name: name!, schema: z.object({ n: z.number() }) });
q.process(async (data) => {
  process.stdout.write(`holding ${data.n}\n`);
  await new Promise(() => {});
});
