/**
 * Audit: the worker side of the uplink queue against forged and malformed jobs, on real Redis
 * (BullMQ). A job whose data is not an uplink job is given up at once (never retried, never
 * handed to the pipeline) and counted; a message in a well-formed job that is not an uplink of
 * the tower it names (another tower's topic, a downlink topic) is dropped and counted while the
 * rest of the job is processed; a transient failure of one message re-runs the whole job, the
 * messages that succeeded included (the pipeline recognises them by event id).
 */
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import { Counters } from '../shared/metrics.js';
import { UPLINK_QUEUE, type UplinkJob } from '../shared/mqtt/uplink-jobs.js';
import type { UplinkMessage, UplinkSink } from '../shared/mqtt/transport.js';
import { BullJobQueues } from '../shared/workflow/bullmq/job-queue.js';
import { UplinkConsumer } from './uplink-consumer.js';

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function message(topic: string, towerId: string, payload = '{}'): UplinkJob['messages'][number] {
  return { topic, tower_id: towerId, payload_b64: Buffer.from(payload).toString('base64'), received_at: 1 };
}

/** Records what reaches the pipeline; `fail` decides which calls throw. */
class RecordingSink implements UplinkSink {
  readonly seen: UplinkMessage[] = [];
  readonly #waiters: Array<{ n: number; resolve: () => void }> = [];
  fail: (msg: UplinkMessage, call: number) => boolean = () => false;

  async accept(msg: UplinkMessage): Promise<void> {
    this.seen.push(msg);
    const call = this.seen.length;
    for (const w of this.#waiters.splice(0)) {
      if (this.seen.length >= w.n) w.resolve();
      else this.#waiters.push(w);
    }
    if (this.fail(msg, call)) throw new Error('store unavailable');
  }

  /** Resolves once `n` messages reached the sink. */
  reached(n: number): Promise<void> {
    if (this.seen.length >= n) return Promise.resolve();
    const d = deferred();
    this.#waiters.push({ n, resolve: d.resolve });
    return d.promise;
  }
}

describeWithRedis('uplink consumer: forged and malformed jobs (audit)', (url) => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const c of open.splice(0).reverse()) await c.close();
  });

  function setup() {
    const prefix = uniquePrefix().replace(/:$/, '');
    const counters = new Counters();
    const sink = new RecordingSink();
    const failures: unknown[] = [];
    const failed = deferred();
    const consumerQueues = new BullJobQueues({ url, prefix });
    const consumer = new UplinkConsumer({
      queues: consumerQueues,
      sink,
      counters,
      concurrency: 2,
      onError: (err) => {
        failures.push(err);
        failed.resolve();
      },
    });
    // Whoever can write to the queue (a forger with Redis access, a corrupted job): no schema.
    const forgerQueues = new BullJobQueues({ url, prefix });
    const forger = forgerQueues.open({ name: UPLINK_QUEUE, schema: z.unknown() });
    open.push(consumerQueues, forgerQueues, { close: () => consumer.stop() });
    consumer.start();
    return { counters, sink, failures, failed: failed.promise, forger };
  }

  it('gives up a job whose data is not an uplink job at once, counted, without handing anything on', async () => {
    const { counters, sink, failures, failed, forger } = setup();
    await forger.add({ messages: [{ topic: 'towers/T1/status', tower_id: 'T1'.repeat(40), payload_b64: '', received_at: 1 }] }, { id: 'bad-1' });
    await failed;
    expect(failures).toHaveLength(1);
    expect(String(failures[0])).toMatch(/invalid job data/);
    expect(counters.get('uplink_jobs_failed_total')).toBe(1);
    // Not run, so not retried either.
    expect(counters.get('uplink_jobs_started_total')).toBe(0);
    expect(counters.get('uplink_jobs_retried_total')).toBe(0);
    expect(sink.seen).toEqual([]);
    // The queue goes on with the next job.
    await forger.add({ messages: [message('towers/T1/status', 'T1')] }, { id: 'good-1' });
    await sink.reached(1);
    expect(sink.seen.map((m) => m.topic)).toEqual(['towers/T1/status']);
  });

  it("drops messages that are not the named tower's uplinks and processes the rest of the job", async () => {
    const { counters, sink, forger } = setup();
    await forger.add(
      {
        messages: [
          // Another tower's usage, claimed as T1's.
          message('tenants/TEN1/towers/T2/usage', 'T1'),
          // A downlink topic: never something a tower publishes.
          message('tenants/TEN1/towers/T1/decisions', 'T1'),
          message('towers/T1/../T2/status', 'T1'),
          message('tenants/TEN1/towers/T1/usage', 'T1'),
        ],
      },
      { id: 'mixed-1' },
    );
    await sink.reached(1);
    expect(sink.seen.map((m) => [m.topic, m.tower_id, m.parsed.kind])).toEqual([['tenants/TEN1/towers/T1/usage', 'T1', 'usage']]);
    expect(counters.get('uplink_dropped_total', { tower: 'T1', kind: 'unknown', reason: 'not_an_uplink' })).toBe(3);
  });

  it('re-runs the whole job after a transient failure of one message, then completes it', async () => {
    const { counters, sink, forger } = setup();
    // The second message fails on its first delivery only.
    sink.fail = (msg, call) => msg.topic === 'towers/T1/discovery' && call <= 2;
    await forger.add({ messages: [message('towers/T1/status', 'T1'), message('towers/T1/discovery', 'T1')] }, { id: 'flaky-1' });
    await sink.reached(4);
    expect(sink.seen.map((m) => m.topic)).toEqual(['towers/T1/status', 'towers/T1/discovery', 'towers/T1/status', 'towers/T1/discovery']);
    expect(counters.get('uplink_jobs_retried_total')).toBe(1);
    expect(counters.get('uplink_jobs_failed_total')).toBe(0);
  });
});
