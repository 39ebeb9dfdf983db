/**
 * A usage batch delivered twice (a QoS 1 resend after a reconnect, an uplink job re-run or retried
 * on another worker after its first worker died, a copy that came through another broker node) is
 * decided once: the second delivery gets the first one's answer, and spends neither the tenant's
 * plan budget nor the counters again. Real SQLite store, real pipeline; the plan budget in-process
 * (embedded) and on the run's real redis-server shared by two workers (distributed).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import { InProcessBus } from '../shared/bus.js';
import { createIdFactory } from '../shared/ids.js';
import { silentLogger } from '../shared/logger.js';
import { Counters } from '../shared/metrics.js';
import { DecisionBatchSchema, decodePayload, encodePayload, type DecisionBatch, type UsageBatch } from '../shared/mqtt/payloads.js';
import { parseTopic, topics } from '../shared/mqtt/topics.js';
import { isUplinkTopic, type Downlink, type UplinkMessage } from '../shared/mqtt/transport.js';
import { createRedis } from '../shared/redis/connection.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { inProcessWorkflow } from '../shared/workflow/index.js';
import type { RateBudgets } from '../shared/workflow/rate-budgets.js';
import { RedisRateBudgets } from '../shared/workflow/redis/rate-budgets.js';
import { Pipeline } from './pipeline.js';
import { seedUploadDenyTenant, testWorkerContext, type TestWorkerContext } from './test-support.js';

class RecordingDownlink implements Downlink {
  readonly sent: Array<{ topic: string; payload: Buffer }> = [];
  async publish(topic: string, payload: Buffer): Promise<void> {
    this.sent.push({ topic, payload });
  }
}

interface Worker {
  pipeline: Pipeline;
  ctx: TestWorkerContext;
  counters: Counters;
  downlink: RecordingDownlink;
}

const newId = createIdFactory();
const T0 = 1_700_000_000_000;

/** The plan's rate in these tests: events per second for the whole tenant. */
const RATE = 10;

function describeRedelivery(name: string, budgetsFor: () => { make: () => RateBudgets; close?: () => Promise<void> }): void {
  describe(`usage redelivery is decided once (${name})`, () => {
    let dir: string;
    let store: SqliteStore;
    let bus: InProcessBus;
    let clock: number;
    let workers: Worker[];
    let tenantId: string;
    let made: ReturnType<typeof budgetsFor>;

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'edgeplane-usage-redelivery-'));
      bus = new InProcessBus();
      clock = T0;
      store = new SqliteStore({
        file: join(dir, 'db.sqlite'),
        now: () => clock,
        hooks: { onPolicyChanged: (tenant, version) => bus.publish('policy.changed', { tenant_id: tenant, version }) },
      });
      await store.init();
      await store.towers.create({ id: 'T1', name: 't1' });
      await store.plans.create({ id: 'ten', name: 'Ten', auto_remediation: false, max_events_per_s: RATE, retention_days: 1 });
      tenantId = (await seedUploadDenyTenant(store, { name: 'acme', plan_id: 'ten', device: 'dev-1' })).tenant.id;
      made = budgetsFor();
      // Two workers of one deployment: one store, one bus, one plan budget (distributed: Redis).
      const budgets = made.make();
      workers = [];
      for (let i = 0; i < 2; i++) {
        const counters = new Counters();
        const downlink = new RecordingDownlink();
        const ctx = testWorkerContext({ store, bus, downlink, counters, logger: silentLogger(), now: () => clock, newId, workflow: { ...inProcessWorkflow(), budgets } });
        const pipeline = new Pipeline({ ...ctx, processId: `worker-${i}` }, { concurrency: 4, rebuildDebounceMs: 1 });
        await pipeline.start();
        workers.push({ pipeline, ctx, counters, downlink });
      }
    });

    afterEach(async () => {
      for (const w of workers) {
        await w.pipeline.stop();
        await w.ctx.close();
      }
      await made.close?.();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    });

    /** A batch of `n` live events from dev-1 at T1: every third one a dropbox upload (denied). */
    function batchOf(n: number): UsageBatch {
      return {
        v: 1,
        id: newId(),
        sent_at: clock,
        events: Array.from({ length: n }, (_, i) =>
          i % 3 === 0 ? { id: newId(), ts: clock, device_id: 'dev-1', app: 'dropbox', action: 'upload_file' } : { id: newId(), ts: clock, device_id: 'dev-1', app: 'slack', action: 'send' },
        ),
      };
    }

    function uplink(batch: UsageBatch): UplinkMessage {
      const topic = topics.usage(tenantId, 'T1');
      const parsed = parseTopic(topic);
      if (!isUplinkTopic(parsed)) throw new Error('not an uplink');
      return { topic, parsed, payload: encodePayload(batch), tower_id: 'T1', received_at: clock };
    }

    /** Delivers the batch to a worker and returns the answer it sent the tower. */
    async function deliver(worker: Worker, batch: UsageBatch): Promise<DecisionBatch> {
      const before = worker.downlink.sent.length;
      await worker.pipeline.accept(uplink(batch));
      const sent = worker.downlink.sent.slice(before).filter((m) => m.topic === topics.decisions(tenantId, 'T1'));
      expect(sent).toHaveLength(1);
      const decoded = decodePayload(DecisionBatchSchema, sent[0]!.payload);
      if (!decoded.ok) throw new Error(decoded.error);
      return decoded.value;
    }

    /** What the tower acts on: everything but the time of the answer. */
    const verdicts = (a: DecisionBatch) => ({ id: a.id, decisions: a.decisions, rejected: a.rejected });

    function counted(c: Counters) {
      return {
        batches: c.get('usage_batches_total'),
        allow: c.get('decisions_sent_total', { effect: 'allow' }),
        deny: c.get('decisions_sent_total', { effect: 'deny' }),
        rateLimited: c.get('usage_events_rejected_total', { tower: 'T1', reason: 'plan_rate_limited' }),
        stored: c.get('usage_events_stored_total'),
      };
    }
    const sum = (a: ReturnType<typeof counted>, b: ReturnType<typeof counted>) =>
      Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v + b[k as keyof typeof b]])) as ReturnType<typeof counted>;
    const allCounted = () => sum(counted(workers[0]!.counters), counted(workers[1]!.counters));

    it('a batch that nearly used up the budget, delivered again at once: the same answer, budget spent once', async () => {
      const batch = batchOf(RATE - 2);
      const first = await deliver(workers[0]!, batch);
      expect(first.rejected).toEqual([]);
      expect(first.decisions.map((d) => d.effect)).toEqual(['deny', 'allow', 'allow', 'deny', 'allow', 'allow', 'deny', 'allow']);
      const once = allCounted();

      // The same worker (a QoS 1 resend) and another worker (a job retried after a kill -9).
      expect(verdicts(await deliver(workers[0]!, batch))).toEqual(verdicts(first));
      expect(verdicts(await deliver(workers[1]!, batch))).toEqual(verdicts(first));
      expect(allCounted()).toEqual(once);
      expect(once).toMatchObject({ batches: 1, allow: 5, deny: 3, rateLimited: 0, stored: 8 });

      // The two tokens the first delivery left are still there for the tower's next batch.
      const next = await deliver(workers[1]!, batchOf(3));
      expect(next.decisions).toHaveLength(2);
      expect(next.rejected.map((r) => r.reason)).toEqual(['plan_rate_limited']);
    });

    it('a batch partly refused for the plan rate, delivered again after the budget refilled: refused again, the rest as stored', async () => {
      const batch = batchOf(RATE + 5);
      const first = await deliver(workers[0]!, batch);
      expect(first.decisions).toHaveLength(RATE);
      expect(first.rejected).toHaveLength(5);
      const once = allCounted();
      clock += 5_000;
      expect(verdicts(await deliver(workers[1]!, batch))).toEqual(verdicts(first));
      expect(allCounted()).toEqual(once);
      expect(once).toMatchObject({ batches: 1, rateLimited: 5, stored: RATE });
      expect((await store.usage.list(tenantId, { limit: 100 })).items).toHaveLength(RATE);
    });

    it('a batch refused whole, delivered again: refused again and counted once', async () => {
      await deliver(workers[0]!, batchOf(RATE));
      const refused = batchOf(3);
      const first = await deliver(workers[0]!, refused);
      expect(first.rejected.map((r) => r.reason)).toEqual(['plan_rate_limited', 'plan_rate_limited', 'plan_rate_limited']);
      const once = allCounted();
      clock += 5_000;
      expect(verdicts(await deliver(workers[1]!, refused))).toEqual(verdicts(first));
      expect(allCounted()).toEqual(once);
      expect(once).toMatchObject({ batches: 2, rateLimited: 3 });
    });

    it('a job re-run every few seconds through a long outage stays charged once (remembered after each run)', async () => {
      const batch = batchOf(RATE + 5);
      const first = await deliver(workers[0]!, batch);
      const once = allCounted();
      // Every 90 s for 12 minutes, each run within the memory of the previous one (not of the first).
      for (let run = 0; run < 8; run++) {
        clock += 90_000;
        expect(verdicts(await deliver(workers[run % 2]!, batch))).toEqual(verdicts(first));
      }
      expect(allCounted()).toEqual(once);
      // The last run spent nothing: the tower's next batch has the whole budget.
      expect((await deliver(workers[0]!, batchOf(RATE))).decisions).toHaveLength(RATE);
    });

    it('a batch re-sent with new events under an old batch id is charged as new: no way around the plan rate', async () => {
      const batch = batchOf(RATE);
      expect((await deliver(workers[0]!, batch)).decisions).toHaveLength(RATE);
      const forged: UsageBatch = { ...batch, events: batch.events.map((e) => ({ ...e, id: newId() })) };
      const answer = await deliver(workers[1]!, forged);
      expect(answer.decisions).toEqual([]);
      expect(answer.rejected).toHaveLength(RATE);
      expect((await store.usage.list(tenantId, { limit: 100 })).items).toHaveLength(RATE);
    });
  });
}

describeRedelivery('embedded: in-process budget', () => ({ make: () => inProcessWorkflow().budgets }));

describeWithRedis('distributed', (url) => {
  const redis = createRedis(url, { name: 'edgeplane-test' });
  afterAll(() => redis.quit());
  describeRedelivery('distributed: Redis budget shared by two workers', () => ({ make: () => new RedisRateBudgets(redis, uniquePrefix()) }));
});
