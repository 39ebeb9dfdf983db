/**
 * Audit: webhook delivery is fair between tenants. Tenant A's receiver accepts the connection and
 * never answers, and A has more pending deliveries than the deliverer has slots; tenant B's
 * receiver works. B's deliveries must all be made while A's first attempts are still hanging (A
 * holds at most its share of the slots), and A's must still be attempted, time out and be retried
 * per the policy until failed, each attempt recorded once; also when A has more due deliveries
 * than a sweep reads, all older than B's (the sweep reads per tenant). Real HTTP servers on
 * 127.0.0.1 (private targets allowed), a real SQLite store, the in-process queue and BullMQ on real
 * Redis. Attempts time out after a short configured timeout; backoff is crossed with the injected
 * clock; every wait is on an event (a request received, an attempt recorded), never a sleep.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { describeWithRedis, uniquePrefix } from '../../test/support/redis.js';
import { Counters } from '../../shared/metrics.js';
import { SqliteStore } from '../../shared/store/sqlite/sqlite-store.js';
import { BullJobQueues } from '../../shared/workflow/bullmq/job-queue.js';
import { InProcessJobQueues, type JobQueue, type JobQueueOptions, type JobQueues } from '../../shared/workflow/job-queue.js';
import { InProcessLeases } from '../../shared/workflow/leases.js';
import { WebhookDeliverer, backoffMs, pickFairly } from './webhook-deliverer.js';

const START = 1_700_000_000_000;
/** Delivery slots (N) and one tenant's share (K). */
const SLOTS = 4;
const PER_TENANT = 2;
const TIMEOUT_MS = 1000;
const MAX_ATTEMPTS = 2;
const A_DELIVERIES = SLOTS + 1;
const B_DELIVERIES = 3;
/** The deliveries a sweep reads (scanSize, and batchSize with it) in the case where A's backlog exceeds it. */
const SMALL_SCAN = 2 * (PER_TENANT + 1);

/** An HTTP receiver; `hang` ones read the request and never answer. Counts concurrent requests. */
class Receiver {
  readonly paths: string[] = [];
  open = 0;
  maxOpen = 0;
  readonly #listeners = new Set<() => void>();
  readonly #server: Server;

  constructor(hang: boolean) {
    this.#server = createServer((req, res) => {
      this.open++;
      this.maxOpen = Math.max(this.maxOpen, this.open);
      res.on('close', () => this.open--);
      req.resume();
      req.on('end', () => {
        this.paths.push(req.url ?? '');
        for (const l of this.#listeners) l();
        if (!hang) res.end('ok');
      });
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
  }
  url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hook`;
  }
  /** Resolves once `n` requests have been received. */
  received(n: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.paths.length < n) return;
        this.#listeners.delete(check);
        resolve();
      };
      this.#listeners.add(check);
      check();
    });
  }
  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** The deliverer's queues, with its 'webhooks' queue kept for the test to add jobs to directly. */
class TappedQueues implements JobQueues {
  webhooks: JobQueue<unknown> | null = null;
  constructor(readonly inner: JobQueues) {}
  open<T>(opts: JobQueueOptions<T>): JobQueue<T> {
    const q = this.inner.open(opts);
    if (opts.name === 'webhooks') this.webhooks = q as JobQueue<unknown>;
    return q;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

interface Recorded {
  id: string;
  status: string;
  error: string | null;
}

function fairnessScenario(openQueues: () => JobQueues): void {
  fairnessCase(openQueues, {});
  fairnessCase(openQueues, { preload: true });
  fairnessCase(openQueues, { aDeliveries: SMALL_SCAN + 1, scanSize: SMALL_SCAN });
}

interface CaseOptions {
  /**
   * Before the deliverer starts, every A delivery already has its job queued ahead of B's (as an
   * earlier pass or another sweeper could leave them), so A's jobs beyond its share reach the
   * handler and are deferred there rather than held back by the sweep.
   */
  preload?: boolean;
  /** A's due deliveries, all older than B's. Default A_DELIVERIES. */
  aDeliveries?: number;
  /**
   * The deliverer's scanSize and batchSize (default its own): below aDeliveries, the oldest due
   * deliveries across tenants would all be A's, and only a per-tenant read finds B's.
   */
  scanSize?: number;
}

function fairnessCase(openQueues: () => JobQueues, { preload = false, aDeliveries = A_DELIVERIES, scanSize }: CaseOptions): void {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const title =
    (preload ? ', A jobs queued beyond its share deferred, not lost' : '') +
    (scanSize !== undefined ? `, A's ${aDeliveries} due deliveries beyond the sweep's scan of ${scanSize}` : '');
  it(`delivers tenant B's webhooks while tenant A's receiver hangs, then retries A's per policy${title}`, { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-whfair-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    let clock = START;
    const store = new SqliteStore({ file: join(dir, 'edgeplane.db'), now: () => clock });
    await store.init();
    cleanups.push(() => store.close());
    const hanging = new Receiver(true);
    const working = new Receiver(false);
    await hanging.listen();
    await working.listen();
    cleanups.push(() => hanging.close(), () => working.close());

    const a = await store.tenants.create({ name: 'stuck' });
    const b = await store.tenants.create({ name: 'healthy' });
    const hookA = await store.webhooks.create(a.id, { url: hanging.url(), events: ['alert.opened'], secret: 'secret-a' });
    const hookB = await store.webhooks.create(b.id, { url: working.url(), events: ['alert.opened'], secret: 'secret-b' });
    // A's deliveries are all older than B's: oldest-first alone would attempt every A one first.
    const aIds = new Set<string>();
    const bIds = new Set<string>();
    for (let i = 0; i < aDeliveries; i++) {
      const d = await store.webhookDeliveries.create({ tenant_id: a.id, webhook_id: hookA.id, event: 'alert.opened', body: `{"id":"a${i}"}`, next_attempt_at: START - 1000 + i });
      aIds.add(d.id);
    }
    for (let i = 0; i < B_DELIVERIES; i++) {
      const d = await store.webhookDeliveries.create({ tenant_id: b.id, webhook_id: hookB.id, event: 'alert.opened', body: `{"id":"b${i}"}`, next_attempt_at: START - 500 + i });
      bIds.add(d.id);
    }

    // The real store, with every recorded attempt observed.
    const recorded: Recorded[] = [];
    const watchers = new Set<() => void>();
    const observed = Object.create(store) as SqliteStore;
    Object.defineProperty(observed, 'webhookDeliveries', {
      value: {
        ...store.webhookDeliveries,
        async recordAttempt(id: string, outcome: Parameters<SqliteStore['webhookDeliveries']['recordAttempt']>[1]) {
          await store.webhookDeliveries.recordAttempt(id, outcome);
          recorded.push({ id, status: outcome.status, error: outcome.error });
          for (const w of watchers) w();
        },
      },
    });
    const until = (done: () => boolean): Promise<void> =>
      new Promise((resolve) => {
        const check = () => {
          if (!done()) return;
          watchers.delete(check);
          resolve();
        };
        watchers.add(check);
        check();
      });
    const ofA = () => recorded.filter((r) => aIds.has(r.id));
    const ofB = () => recorded.filter((r) => bIds.has(r.id));

    const queues = new TappedQueues(openQueues());
    const counters = new Counters();
    const errors: unknown[] = [];
    const deliverer = new WebhookDeliverer({
      store: observed,
      counters,
      queues,
      leases: new InProcessLeases(),
      processId: 'fairness',
      maxAttempts: MAX_ATTEMPTS,
      timeoutMs: TIMEOUT_MS,
      concurrency: SLOTS,
      tenantConcurrency: PER_TENANT,
      ...(scanSize !== undefined ? { scanSize, batchSize: scanSize } : {}),
      allowPrivateTargets: true,
      now: () => clock,
      onError: (err) => errors.push(err),
    });
    cleanups.push(() => queues.close(), () => deliverer.stop());
    if (preload) {
      for (const id of aIds) await queues.webhooks!.add({ tenant_id: a.id, delivery_id: id, attempts: 0 }, { id: `webhook.${id}.0` });
    }
    deliverer.start();

    // B is served while A's first attempts hang: none of A's has timed out or been recorded yet.
    await hanging.received(PER_TENANT);
    await until(() => ofB().length === B_DELIVERIES);
    expect(ofB().map((r) => r.status)).toEqual(Array<string>(B_DELIVERIES).fill('delivered'));
    expect(working.paths).toHaveLength(B_DELIVERIES);
    expect(ofA()).toEqual([]);
    for (const id of aIds) expect(await store.webhookDeliveries.get(a.id, id)).toMatchObject({ status: 'pending', attempts: 0 });
    expect(hanging.open).toBe(PER_TENANT);
    expect(hanging.maxOpen).toBeLessThanOrEqual(PER_TENANT);

    // Every A delivery, deferred or not, gets its first attempt: a timeout, recorded, backed off.
    await until(() => ofA().length === aDeliveries);
    for (const id of aIds) {
      const d = await store.webhookDeliveries.get(a.id, id);
      expect(d).toMatchObject({ status: 'pending', attempts: 1, last_status_code: null, next_attempt_at: clock + backoffMs(1) });
      expect(d!.last_error).toMatch(/timeout/);
    }

    // Past the backoff, each is retried once more and, out of attempts, failed.
    clock += backoffMs(1);
    deliverer.poke();
    await until(() => ofA().length === aDeliveries * MAX_ATTEMPTS);
    for (const id of aIds) {
      expect(await store.webhookDeliveries.get(a.id, id)).toMatchObject({ status: 'failed', attempts: MAX_ATTEMPTS, next_attempt_at: null });
      expect(ofA().filter((r) => r.id === id).map((r) => r.status)).toEqual(['pending', 'failed']);
    }
    for (const id of bIds) {
      expect(await store.webhookDeliveries.get(b.id, id)).toMatchObject({ status: 'delivered', attempts: 1 });
      expect(ofB().filter((r) => r.id === id)).toHaveLength(1);
    }
    expect(hanging.paths).toHaveLength(aDeliveries * MAX_ATTEMPTS);
    expect(hanging.maxOpen).toBeLessThanOrEqual(PER_TENANT);
    expect(working.paths).toHaveLength(B_DELIVERIES);
    expect(counters.get('webhook_deliveries_total', { status: 'failed' })).toBe(aDeliveries);
    expect(counters.get('webhook_deliveries_total', { status: 'delivered' })).toBe(B_DELIVERIES);
    expect(errors).toEqual([]);
  });
}

describe('webhook fairness between tenants (audit), in-process queue', () => {
  fairnessScenario(() => new InProcessJobQueues());
});

describeWithRedis('webhook fairness between tenants (audit), BullMQ', (url) => {
  fairnessScenario(() => new BullJobQueues({ url, prefix: uniquePrefix().replace(/:$/, '') }));
});

describe('pickFairly', () => {
  it('takes tenants round-robin, oldest first, at most K each and the limit in all', () => {
    const rows = ['a1', 'a2', 'a3', 'a4', 'b1', 'c1', 'b2', 'b3'].map((id) => ({ id, tenant_id: id[0]! }));
    const ids = (picked: Array<{ id: string }>) => picked.map((r) => r.id);
    expect(ids(pickFairly(rows, 2, 100))).toEqual(['a1', 'b1', 'c1', 'a2', 'b2']);
    expect(ids(pickFairly(rows, 3, 4))).toEqual(['a1', 'b1', 'c1', 'a2']);
    expect(ids(pickFairly(rows, 1, 100))).toEqual(['a1', 'b1', 'c1']);
    expect(pickFairly([], 4, 10)).toEqual([]);
  });
});
