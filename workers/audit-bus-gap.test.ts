/**
 * Audit: Redis pub/sub is at-most-once. A worker whose bus connection drops (a Redis restart, a
 * network blip, CLIENT KILL) misses the `policy.changed` published meanwhile; ioredis reconnects
 * and subscribes again, but nothing told the policy engine, so the worker went on deciding with
 * the policy it held — until the tenant's next change, however long that took. Real Redis, two
 * buses (an API process publishing the store's changes and a worker), the worker's subscriber
 * connection killed on the server.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, expect, it } from 'vitest';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import { createIdFactory } from '../shared/ids.js';
import { Counters } from '../shared/metrics.js';
import { DecisionBatchSchema, encodePayload, type DecisionBatch, type UsageBatch } from '../shared/mqtt/payloads.js';
import { parseTopic, topics } from '../shared/mqtt/topics.js';
import { isUplinkTopic, type Downlink, type UplinkMessage } from '../shared/mqtt/transport.js';
import { createRedis } from '../shared/redis/connection.js';
import { RedisBus } from '../shared/redis/redis-bus.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { Pipeline } from './pipeline.js';
import { testWorkerContext } from './test-support.js';

const newId = createIdFactory();

describeWithRedis('policy changes published while a worker is disconnected from the bus (audit)', (url) => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('the worker rebuilds once its subscriber is back, and decides with the current policy', async () => {
    const prefix = uniquePrefix();
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-busgap-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));

    // The API process: its store announces every committed change on its bus.
    const apiPub = createRedis(url, { name: 'audit-api' });
    const apiSub = createRedis(url, { name: 'audit-api-bus' });
    const apiBus = new RedisBus({ publisher: apiPub, subscriber: apiSub, prefix });
    await apiBus.start();
    cleanups.push(() => apiPub.quit(), () => apiSub.quit(), () => apiBus.stop());
    const store = new SqliteStore({
      file: join(dir, 'db.sqlite'),
      hooks: { onPolicyChanged: (tenant, version, scope) => apiBus.publish('policy.changed', { tenant_id: tenant, version, ...(scope ? { scope } : {}) }) },
    });
    await store.init();
    cleanups.push(() => store.close());
    const tenantId = (await store.tenants.create({ name: 'A' })).id;
    await store.apps.create(tenantId, { key: 'slack', name: 'Slack' });
    await store.actions.create(tenantId, { key: 'upload_file', name: 'Upload' });
    const user = await store.users.create(tenantId, { name: 'alice' });
    const role = await store.roles.create(tenantId, { name: 'sales' });
    const policy = await store.policies.create(tenantId, { name: 'no uploads', severity: 'high' });
    await store.userRoles.assign(tenantId, user.id, role.id);
    await store.rolePolicies.assign(tenantId, role.id, policy.id);
    const rule = await store.rules.create(tenantId, { policy_id: policy.id, app: 'slack', action: 'upload_file', permission: 'deny' });
    await store.devices.create(tenantId, { id: 'devA1', name: 'phone', user_id: user.id });
    await store.towers.create({ id: 'T1', name: 'tower 1' });

    // The worker: its own bus connections; the subscriber comes back a little after a loss.
    const workerPub = createRedis(url, { name: 'audit-worker' });
    const subName = `audit-worker-bus-${prefix.slice(0, -1)}`;
    const workerSub = new Redis(url, { connectionName: subName, lazyConnect: true, retryStrategy: () => 300 });
    workerSub.on('error', () => {});
    const counters = new Counters();
    const workerBus = new RedisBus({ publisher: workerPub, subscriber: workerSub, prefix, counters });
    await workerBus.start();
    cleanups.push(() => workerPub.quit(), () => workerSub.quit(), () => workerBus.stop());
    const answers: DecisionBatch[] = [];
    const downlink: Downlink = {
      publish: async (topic, payload) => {
        if (topic.endsWith('/decisions')) answers.push(DecisionBatchSchema.parse(JSON.parse(payload.toString())));
      },
    };
    const ctx = testWorkerContext({ store, bus: workerBus, downlink, counters, newId });
    const pipeline = new Pipeline(ctx, { concurrency: 4, rebuildDebounceMs: 1 });
    await pipeline.start();
    cleanups.push(() => ctx.close(), () => pipeline.stop());

    const upload = (): UplinkMessage => {
      const b: UsageBatch = { v: 1, id: newId(), sent_at: 1, events: [{ id: newId(), ts: 1, device_id: 'devA1', app: 'slack', action: 'upload_file' }] };
      const topic = topics.usage(tenantId, 'T1');
      const parsed = parseTopic(topic);
      if (!isUplinkTopic(parsed)) throw new Error('not an uplink');
      return { topic, parsed, payload: encodePayload(b), tower_id: 'T1', received_at: 1 };
    };

    await pipeline.accept(upload());
    expect(answers.at(-1)!.decisions[0]!.effect).toBe('deny');

    // The worker's subscriber is cut; the rule is lifted while it is away.
    const clients = (await apiPub.client('LIST')) as string;
    const idLine = /(?:^|\n)id=(\d+) [^\n]*name=([^ \n]+)/g;
    const ids = [...clients.matchAll(idLine)].filter((m) => m[2] === subName).map((m) => m[1]!);
    expect(ids).toHaveLength(1);
    const closed = new Promise<void>((resolve) => workerSub.once('close', () => resolve()));
    const back = new Promise<void>((resolve) => workerBus.onMissedEvents(() => resolve()));
    await apiPub.client('KILL', 'ID', ids[0]!);
    await closed;
    await store.rules.delete(tenantId, rule.id);
    await back;
    expect(counters.get('bus_resubscribes_total')).toBe(1);

    await pipeline.accept(upload());
    expect(answers.at(-1)!.decisions[0]).toMatchObject({ effect: 'allow', reason: 'default' });
    expect(answers.at(-1)!.policy_version).toBe((await store.tenants.get(tenantId))!.policy_version);

    // Events flow again: the next change reaches the worker as before.
    const arrived = new Promise<void>((resolve) => workerBus.subscribe('policy.changed', () => resolve(), undefined, 'cluster'));
    await store.rules.create(tenantId, { policy_id: policy.id, app: 'slack', action: 'upload_file', permission: 'deny' });
    await arrived;
    await pipeline.accept(upload());
    expect(answers.at(-1)!.decisions[0]!.effect).toBe('deny');
  });
});
