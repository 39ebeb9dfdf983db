/**
 * Audit: uplink jobs through an outage of what processing needs (the store, the brokers the
 * answers go through), on real Redis (BullMQ). Every message in an uplink job was acknowledged to
 * its tower, so the job must wait the outage out: it used to be given up for good after the
 * queue's 10 attempts (about a minute and a half of backing off), and every job fetched meanwhile
 * burnt its attempts too. Now a run re-runs its job until it succeeds, while the other jobs stay
 * queued untouched; stop() ends that waiting at once and leaves the job to the queue.
 */
import { afterEach, expect, it } from 'vitest';
import { Counters } from '../shared/metrics.js';
import { UPLINK_QUEUE, UplinkJobSchema, type UplinkJob } from '../shared/mqtt/uplink-jobs.js';
import type { UplinkMessage, UplinkSink } from '../shared/mqtt/transport.js';
import { BullJobQueues } from '../shared/workflow/bullmq/job-queue.js';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import { UplinkConsumer } from './uplink-consumer.js';

function status(tag: string): UplinkJob {
  return { messages: [{ topic: 'towers/T1/status', tower_id: 'T1', payload_b64: Buffer.from(tag).toString('base64'), received_at: 1 }] };
}

/** A pipeline whose store is down until `recover()`; records every call and every success. */
class OutageSink implements UplinkSink {
  readonly calls: string[] = [];
  readonly done: string[] = [];
  #down = true;
  #waiters: Array<{ match: () => boolean; resolve: () => void }> = [];

  async accept(msg: UplinkMessage): Promise<void> {
    const tag = msg.payload.toString();
    this.calls.push(tag);
    this.#notify();
    if (this.#down) throw new Error('store unavailable');
    this.done.push(tag);
    this.#notify();
  }

  recover(): void {
    this.#down = false;
  }

  until(match: () => boolean): Promise<void> {
    if (match()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  #notify(): void {
    this.#waiters = this.#waiters.filter((w) => (w.match() ? (w.resolve(), false) : true));
  }
}

describeWithRedis('uplink jobs through an outage of the store (audit)', (url) => {
  const open: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of open.splice(0).reverse()) await close();
  });

  function setup(prefix = uniquePrefix().replace(/:$/, '')) {
    const counters = new Counters();
    const sink = new OutageSink();
    const failures: unknown[] = [];
    const queues = new BullJobQueues({ url, prefix });
    const consumer = new UplinkConsumer({ queues, sink, counters, concurrency: 1, retryMs: 5, retryMaxMs: 20, onError: (err) => failures.push(err) });
    open.push(() => queues.close(), () => consumer.stop());
    return { prefix, counters, sink, failures, consumer };
  }

  async function brokerQueue(prefix: string) {
    const queues = new BullJobQueues({ url, prefix });
    open.push(() => queues.close());
    return queues.open({ name: UPLINK_QUEUE, schema: UplinkJobSchema });
  }

  it('waits the outage out past the queue attempts, holding the other jobs queued, and then processes each job', async () => {
    const { prefix, counters, sink, failures, consumer } = setup();
    const broker = await brokerQueue(prefix);
    await broker.add(status('first'), { id: 'job-1' });
    await broker.add(status('second'), { id: 'job-2' });
    consumer.start();

    // More failed runs than the queue's 10 attempts allow.
    await sink.until(() => sink.calls.length >= 15);
    // One job at a time is run during the outage; the other waits in Redis, its attempts intact.
    expect(new Set(sink.calls)).toEqual(new Set([sink.calls[0]]));
    expect(await broker.depth()).toBe(2);

    sink.recover();
    await sink.until(() => sink.done.length >= 2);
    expect(sink.done.sort()).toEqual(['first', 'second']);
    expect(counters.get('uplink_jobs_failed_total')).toBe(0);
    expect(failures).toEqual([]);
  }, 30_000);

  it('stop() ends the waiting at once; the job stays queued and the next consumer completes it', async () => {
    const first = setup();
    const broker = await brokerQueue(first.prefix);
    await broker.add(status('held'), { id: 'job-held' });
    first.consumer.start();
    await first.sink.until(() => first.sink.calls.length >= 2);
    await first.consumer.stop();
    expect(await broker.depth()).toBe(1);

    const second = setup(first.prefix);
    second.sink.recover();
    second.consumer.start();
    await second.sink.until(() => second.sink.done.length >= 1);
    expect(second.sink.done).toEqual(['held']);
    expect(first.failures).toEqual([]);
  }, 30_000);
});
