/**
 * Audit: a tower may publish usage under any tenant id its ACL pattern allows
 * (`tenants/+/towers/<self>/usage`), so the ids reaching the pipeline are the tower's choice. Each
 * unknown one is dropped and counted, and must leave nothing behind in the worker: the policy
 * engine kept one entry per id tried, for good (a tower cycling through ids grew the worker's
 * memory without bound).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../shared/bus.js';
import { createIdFactory } from '../shared/ids.js';
import { Counters } from '../shared/metrics.js';
import { encodePayload, type UsageBatch } from '../shared/mqtt/payloads.js';
import { parseTopic, topics } from '../shared/mqtt/topics.js';
import { isUplinkTopic, type Downlink, type UplinkMessage } from '../shared/mqtt/transport.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { Pipeline } from './pipeline.js';
import { testWorkerContext, type TestWorkerContext } from './test-support.js';

const newId = createIdFactory();
const decisions: string[] = [];
const downlink: Downlink = {
  publish: async (topic) => {
    if (topic.endsWith('/decisions')) decisions.push(topic);
  },
};

let dir: string;
let store: SqliteStore;
let bus: InProcessBus;
let counters: Counters;
let ctx: TestWorkerContext;
let pipeline: Pipeline;
let tenantId: string;

function usage(tenant: string): UplinkMessage {
  const topic = topics.usage(tenant, 'T1');
  const parsed = parseTopic(topic);
  if (!isUplinkTopic(parsed)) throw new Error('not an uplink');
  const batch: UsageBatch = { v: 1, id: newId(), sent_at: 1, events: [{ id: newId(), ts: 1, device_id: 'dev1', app: 'slack', action: 'send_message' }] };
  return { topic, parsed, payload: encodePayload(batch), tower_id: 'T1', received_at: 1 };
}

beforeEach(async () => {
  decisions.length = 0;
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-tenants-'));
  bus = new InProcessBus();
  counters = new Counters();
  store = new SqliteStore({
    file: join(dir, 'db.sqlite'),
    hooks: { onPolicyChanged: (tenant, version) => bus.publish('policy.changed', { tenant_id: tenant, version }) },
  });
  await store.init();
  tenantId = (await store.tenants.create({ name: 'A' })).id;
  await store.apps.create(tenantId, { key: 'slack', name: 'Slack' });
  await store.actions.create(tenantId, { key: 'send_message', name: 'Send' });
  await store.towers.create({ id: 'T1', name: 'tower 1' });
  ctx = testWorkerContext({ store, bus, downlink, counters, newId });
  pipeline = new Pipeline(ctx, { concurrency: 4, rebuildDebounceMs: 1 });
  await pipeline.start();
});

afterEach(async () => {
  await pipeline.stop();
  await ctx.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('usage under tenant ids that do not exist', () => {
  it('is dropped and counted, and the worker holds nothing for the ids tried', async () => {
    const held = pipeline.engine.tenantsHeld;
    expect(held).toBe(1);
    const tries = 300;
    for (let i = 0; i < tries; i++) await pipeline.accept(usage(`nosuch-${i}`));
    expect(counters.get('uplink_dropped_total', { tower: 'T1', kind: 'usage', reason: 'unknown_tenant' })).toBe(tries);
    expect(decisions).toEqual([]);
    expect(pipeline.engine.tenantsHeld).toBe(held);

    // The same ids tried concurrently (builds shared between callers) leave nothing either.
    await Promise.all(Array.from({ length: 50 }, (_, i) => pipeline.accept(usage(`nosuch-${i % 5}`))));
    expect(pipeline.engine.tenantsHeld).toBe(held);

    // The real tenant is still decided, and stays held.
    await pipeline.accept(usage(tenantId));
    expect(decisions).toEqual([topics.decisions(tenantId, 'T1')]);
    expect(pipeline.engine.tenantsHeld).toBe(held);
  });
});
