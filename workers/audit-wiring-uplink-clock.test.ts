/**
 * Audit (distributed wiring): the uplink consumer's retry window is measured by the injected
 * clock, as every other duration of a process is (the foundation's `now`). It read Date.now()
 * itself, so a test (or a process) driving the clock could not end a run that keeps failing: the
 * window below is an hour of the injected clock, and the job must be given up to the queue.
 *
 * The in-process job queue (the same JobQueue port BullMQ implements) and fake timers: a store
 * whose every call fails after a minute of the clock; each run of the job ends as a failed
 * attempt once its window has passed, and after the queue's attempts the job is given up.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { Counters } from '../shared/metrics.js';
import { UPLINK_QUEUE, UplinkJobSchema, type UplinkJob } from '../shared/mqtt/uplink-jobs.js';
import type { UplinkSink } from '../shared/mqtt/transport.js';
import { InProcessJobQueues, type JobQueue, type JobQueueOptions, type JobQueues } from '../shared/workflow/job-queue.js';
import { UplinkConsumer } from './uplink-consumer.js';

afterEach(() => {
  vi.useRealTimers();
});

it('a run that keeps failing ends after retryForMs of the injected clock, and the job is given up after its attempts', async () => {
  // Timers only: the wall clock keeps its own time, which the consumer must not read.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  let clock = 1_700_000_000_000;
  let calls = 0;
  const failingStore: UplinkSink = {
    accept: () => {
      calls++;
      clock += 60_000;
      return Promise.reject(new Error('store unavailable'));
    },
  };
  const counters = new Counters();
  const failures: unknown[] = [];
  // The consumer's queue, so the job added below is the one it processes (an in-process queue
  // is shared by the objects that open it, as a Redis queue is by its name).
  const inProcess = new InProcessJobQueues();
  let uplinkQueue: JobQueue<UplinkJob> | null = null;
  const queues: JobQueues = {
    open: <T>(opts: JobQueueOptions<T>) => (uplinkQueue ??= inProcess.open(opts as unknown as JobQueueOptions<UplinkJob>)) as unknown as JobQueue<T>,
    close: () => inProcess.close(),
  };
  const consumer = new UplinkConsumer({ queues, sink: failingStore, counters, concurrency: 1, retryForMs: 5 * 60_000, now: () => clock, onError: (err) => failures.push(err) });
  consumer.start();
  const producer = queues.open({ name: UPLINK_QUEUE, schema: UplinkJobSchema });
  const payload = Buffer.from(JSON.stringify({ state: 'online' })).toString('base64');
  await producer.add({ messages: [{ topic: 'towers/T1/status', tower_id: 'T1', payload_b64: payload, received_at: 1 }] }, { id: 'job-1' });

  // Far more timer time than 10 runs of a few short waits plus the queue's backoffs take.
  await vi.advanceTimersByTimeAsync(30 * 60_000);
  expect(failures).toHaveLength(1);
  expect(counters.get('uplink_jobs_failed_total')).toBe(1);
  // Each run gave up after five minutes of the clock (five calls), for each of the 10 attempts.
  expect(calls).toBe(50);
  await consumer.stop();
});
