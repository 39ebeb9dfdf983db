/**
 * Audit: a batch processed again after the escalation it caused (a QoS 1 redelivery; an uplink
 * job re-run because its worker died after remediating, or because another message of the job
 * failed) must change nothing. The escalation's reset forgot the window's event ids, so the same
 * events counted again: the escalating event fell through to the rule's own remediation (a
 * second command from one event), and every re-counted event started the next window early (a
 * second escalation after fewer than `threshold` new violations). Run with the in-process and
 * the Redis remediation state; the rule's actions last shorter than its window, so claims of
 * actions in force do not hide what is issued.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import { InProcessBus } from '../shared/bus.js';
import { createIdFactory } from '../shared/ids.js';
import { Counters } from '../shared/metrics.js';
import { CommandSchema, encodePayload, type UsageBatch } from '../shared/mqtt/payloads.js';
import { parseTopic, topics } from '../shared/mqtt/topics.js';
import { isUplinkTopic, type Downlink, type UplinkMessage } from '../shared/mqtt/transport.js';
import { createRedis } from '../shared/redis/connection.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { inProcessWorkflow } from '../shared/workflow/index.js';
import { RedisRemediationState } from '../shared/workflow/redis/remediation-state.js';
import type { RemediationState } from '../shared/workflow/remediation-state.js';
import { Pipeline } from './pipeline.js';
import { testWorkerContext, type TestWorkerContext } from './test-support.js';

const newId = createIdFactory();

function suite(name: string, makeState: () => RemediationState): void {
  describe(`escalation and re-processed batches (${name})`, () => {
    let dir: string;
    let store: SqliteStore;
    let ctx: TestWorkerContext;
    let pipeline: Pipeline;
    let clock: number;
    let tenantId: string;
    let counters: Counters;
    const sent: Array<{ topic: string; payload: Buffer }> = [];
    const downlink: Downlink = {
      publish: async (topic, payload) => void sent.push({ topic, payload }),
    };

    const commandTypes = () =>
      sent.filter((m) => m.topic.endsWith('/commands')).map((m) => CommandSchema.parse(JSON.parse(m.payload.toString())).type);

    function violation(): UplinkMessage {
      const b: UsageBatch = { v: 1, id: newId(), sent_at: clock, events: [{ id: newId(), ts: clock, device_id: 'dev1', app: 'dropbox', action: 'upload_file' }] };
      const topic = topics.usage(tenantId, 'T1');
      const parsed = parseTopic(topic);
      if (!isUplinkTopic(parsed)) throw new Error('not an uplink');
      return { topic, parsed, payload: encodePayload(b), tower_id: 'T1', received_at: clock };
    }

    async function at(t: number, msg: UplinkMessage): Promise<void> {
      clock = t;
      await pipeline.accept(msg);
      await ctx.settle();
    }

    beforeEach(async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      sent.length = 0;
      clock = 1_700_000_000_000;
      dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-escalation-'));
      const bus = new InProcessBus();
      store = new SqliteStore({
        file: join(dir, 'db.sqlite'),
        now: () => clock,
        hooks: { onPolicyChanged: (tenant, version) => bus.publish('policy.changed', { tenant_id: tenant, version }) },
      });
      await store.init();
      await store.towers.create({ id: 'T1', name: 't1' });
      const t = await store.tenants.create({ name: 'p', plan_id: 'premium' });
      tenantId = t.id;
      await store.apps.create(tenantId, { key: 'dropbox', name: 'Dropbox' });
      await store.actions.create(tenantId, { key: 'upload_file', name: 'Upload' });
      const user = await store.users.create(tenantId, { name: 'u' });
      const role = await store.roles.create(tenantId, { name: 'r' });
      const policy = await store.policies.create(tenantId, { name: 'dlp', severity: 'high' });
      await store.userRoles.assign(tenantId, user.id, role.id);
      await store.rolePolicies.assign(tenantId, role.id, policy.id);
      await store.rules.create(tenantId, {
        policy_id: policy.id,
        app: 'dropbox',
        action: 'upload_file',
        permission: 'deny',
        remediation: { type: 'block_app', duration_s: 60 },
        escalation: { threshold: 3, window_s: 600, remediation: { type: 'block_device', duration_s: 60 } },
      });
      await store.devices.create(tenantId, { id: 'dev1', name: 'phone', user_id: user.id });
      counters = new Counters();
      const workflow = { ...inProcessWorkflow(), remediation: makeState() };
      ctx = testWorkerContext({ store, bus, downlink, counters, now: () => clock, newId, workflow });
      pipeline = new Pipeline(ctx, { concurrency: 4, rebuildDebounceMs: 1 });
      await pipeline.start();
    });

    afterEach(async () => {
      await pipeline.stop();
      await ctx.close();
      await store.close();
      vi.useRealTimers();
      await rm(dir, { recursive: true, force: true });
    });

    const T0 = 1_700_000_000_000;

    it('the escalating batch processed again issues nothing, and the next window starts from zero', async () => {
      const v1 = violation();
      const v2 = violation();
      const v3 = violation();
      await at(T0, v1); // block_app until T0+60 s
      await at(T0 + 100_000, v2); // block_app again (the first ended)
      await at(T0 + 200_000, v3); // third within 10 min: block_device
      expect(commandTypes()).toEqual(['block_app', 'block_app', 'block_device']);

      // The third batch again (its job re-run), once the second block_app has ended.
      await at(T0 + 200_000, v3);
      expect(commandTypes()).toEqual(['block_app', 'block_app', 'block_device']);
      expect((await store.commands.list(tenantId)).items).toHaveLength(3);

      // Two new violations are two, not three: no second escalation.
      await at(T0 + 300_000, violation());
      await at(T0 + 310_000, violation());
      expect(commandTypes()).toEqual(['block_app', 'block_app', 'block_device', 'block_app']);
      expect(counters.get('usage_events_duplicate_total')).toBe(1);
    });

    it('batches that led up to the escalation, processed again, do not start the next window', async () => {
      const vs = [violation(), violation(), violation()];
      await at(T0, vs[0]!);
      await at(T0 + 100_000, vs[1]!);
      await at(T0 + 200_000, vs[2]!);
      // A job holding the first two re-run (e.g. its worker died before completing it).
      for (const v of vs.slice(0, 2)) await at(T0 + 250_000, v);
      expect(commandTypes()).toEqual(['block_app', 'block_app', 'block_device']);
      // After the block_device ended, one new violation is the first of a new window.
      await at(T0 + 400_000, violation());
      await at(T0 + 401_000, violation());
      expect(commandTypes()).toEqual(['block_app', 'block_app', 'block_device', 'block_app']);
      // The third new one escalates, as it would have without the re-run.
      await at(T0 + 402_000, violation());
      expect(commandTypes()).toEqual(['block_app', 'block_app', 'block_device', 'block_app', 'block_device']);
      expect(counters.get('remediations_skipped_total', { reason: 'already_escalated' })).toBe(2);
    });
  });
}

suite('in-process', () => inProcessWorkflow().remediation);

describeWithRedis('with Redis', (url) => {
  const redis = createRedis(url, { name: 'edgeplane-audit-escalation' });
  afterAll(() => redis.quit());
  suite('redis', () => new RedisRemediationState(redis, uniquePrefix()));
});
