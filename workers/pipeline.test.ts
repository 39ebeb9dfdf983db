import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../shared/bus.js';
import { createIdFactory } from '../shared/ids.js';
import { silentLogger } from '../shared/logger.js';
import { Counters } from '../shared/metrics.js';
import { DecisionBatchSchema, encodePayload, type DecisionBatch, type UsageBatch } from '../shared/mqtt/payloads.js';
import { parseTopic, topics } from '../shared/mqtt/topics.js';
import { isUplinkTopic, type Downlink, type DownlinkOptions, type UplinkMessage } from '../shared/mqtt/transport.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { Pipeline, ShuttingDownError } from './pipeline.js';
import { testWorkerContext } from './test-support.js';

/** Records what the pipeline publishes: the broker boundary. */
class RecordingDownlink implements Downlink {
  readonly sent: Array<{ topic: string; payload: Buffer; retain: boolean; qos: 0 | 1 }> = [];
  async publish(topic: string, payload: Buffer, opts?: DownlinkOptions): Promise<void> {
    this.sent.push({ topic, payload, retain: opts?.retain ?? false, qos: opts?.qos ?? 1 });
  }
  decisions(): DecisionBatch[] {
    return this.sent.filter((m) => m.topic.endsWith('/decisions')).map((m) => DecisionBatchSchema.parse(JSON.parse(m.payload.toString())));
  }
}

const newId = createIdFactory();
let dir: string;
let store: SqliteStore;
let bus: InProcessBus;
let counters: Counters;
let downlink: RecordingDownlink;
let pipeline: Pipeline;
let ctx: ReturnType<typeof testWorkerContext>;
let tenantA: string;
let tenantB: string;
let denyRuleId: string;

function uplink(topic: string, payload: Buffer | string): UplinkMessage {
  const parsed = parseTopic(topic);
  if (!isUplinkTopic(parsed)) throw new Error(`not an uplink topic: ${topic}`);
  return { topic, parsed, payload: Buffer.from(payload), tower_id: parsed.towerId, received_at: Date.now() };
}

function batch(events: Array<{ device: string; app: string; action: string }>): UsageBatch {
  return { v: 1, id: newId(), sent_at: Date.now(), events: events.map((e) => ({ id: newId(), ts: Date.now(), device_id: e.device, app: e.app, action: e.action })) };
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-pipeline-'));
  bus = new InProcessBus();
  counters = new Counters();
  store = new SqliteStore({
    file: join(dir, 'db.sqlite'),
    hooks: { onPolicyChanged: (tenantId, version) => bus.publish('policy.changed', { tenant_id: tenantId, version }) },
  });
  await store.init();
  downlink = new RecordingDownlink();
  const a = await store.tenants.create({ name: 'A' });
  const b = await store.tenants.create({ name: 'B' });
  tenantA = a.id;
  tenantB = b.id;
  await store.apps.create(tenantA, { key: 'slack', name: 'Slack' });
  await store.actions.create(tenantA, { key: 'upload_file', name: 'Upload' });
  await store.actions.create(tenantA, { key: 'send_message', name: 'Send' });
  const user = await store.users.create(tenantA, { name: 'alice' });
  const role = await store.roles.create(tenantA, { name: 'sales' });
  const policy = await store.policies.create(tenantA, { name: 'no uploads', severity: 'high' });
  await store.userRoles.assign(tenantA, user.id, role.id);
  await store.rolePolicies.assign(tenantA, role.id, policy.id);
  denyRuleId = (await store.rules.create(tenantA, { policy_id: policy.id, app: 'slack', action: 'upload_file', permission: 'deny' })).id;
  await store.devices.create(tenantA, { id: 'devA1', name: 'phone', user_id: user.id });
  await store.devices.create(tenantB, { id: 'devB1', name: 'phone' });
  await store.towers.create({ id: 'T1', name: 'tower 1' });
  ctx = testWorkerContext({ store, bus, downlink, counters, logger: silentLogger(), newId });
  pipeline = new Pipeline(ctx, { concurrency: 4, rebuildDebounceMs: 1 });
  await pipeline.start();
});

afterEach(async () => {
  await pipeline.stop();
  await ctx.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('pipeline', () => {
  it("publishes every tenant's device directory slice at start, and no tenant's bundle to a tower that serves none", () => {
    const slices = downlink.sent.filter((m) => parseTopic(m.topic)?.kind === 'directory');
    expect(slices).toHaveLength(2);
    expect(slices.every((m) => m.retain)).toBe(true);
    expect(downlink.sent.filter((m) => parseTopic(m.topic)?.kind === 'policy')).toEqual([]);
    // What releases before bundle schema 2 retained is cleared.
    expect(downlink.sent.filter((m) => m.topic === topics.legacyPolicy(tenantA)).map((m) => [m.payload.length, m.retain])).toEqual([[0, true]]);
  });

  it("answers at QoS 0 only a tower's own publish acknowledged after the answer; anything else at QoS 1", async () => {
    const ev = () => encodePayload(batch([{ device: 'devA1', app: 'slack', action: 'send_message' }]));
    // Distributed (the PUBACK meant "queued") and ingest plugins: no flag.
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), ev()));
    await pipeline.accept({ ...uplink(topics.usage(tenantA, 'T1'), ev()), acked_after_answer: true });
    expect(downlink.sent.filter((m) => m.topic.endsWith('/decisions')).map((m) => m.qos)).toEqual([1, 0]);
  });

  it('answers one DecisionBatch per UsageBatch, with a decision per event, and stores usage', async () => {
    const ub = batch([
      { device: 'devA1', app: 'slack', action: 'send_message' },
      { device: 'devA1', app: 'slack', action: 'upload_file' },
    ]);
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), encodePayload(ub)));
    const [db] = downlink.decisions();
    expect(db!.batch_id).toBe(ub.id);
    expect(db!.decisions.map((d) => [d.event_id, d.effect, d.reason])).toEqual([
      [ub.events[0]!.id, 'allow', 'default'],
      [ub.events[1]!.id, 'deny', 'rule'],
    ]);
    expect(db!.decisions[1]!.rule_id).toBe(denyRuleId);
    expect(db!.decisions[1]!.severity).toBe('high');
    const usage = await store.usage.list(tenantA);
    expect(usage.items).toHaveLength(2);
  });

  it('turns a violation into an alert and bumps it on the next one', async () => {
    const opened: string[] = [];
    bus.subscribe('alert.opened', (e) => opened.push(e.alert.id));
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), encodePayload(batch([{ device: 'devA1', app: 'slack', action: 'upload_file' }]))));
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), encodePayload(batch([{ device: 'devA1', app: 'slack', action: 'upload_file' }]))));
    const alerts = await store.alerts.list(tenantA);
    expect(alerts.items).toHaveLength(1);
    expect(alerts.items[0]!.count).toBe(2);
    expect(alerts.items[0]!.severity).toBe('high');
    expect(opened).toHaveLength(1);
  });

  it('a redelivered batch is answered again but creates no duplicate rows or alerts', async () => {
    const payload = encodePayload(batch([{ device: 'devA1', app: 'slack', action: 'upload_file' }, { device: 'devA1', app: 'slack', action: 'send_message' }]));
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), payload));
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), payload));
    expect(downlink.decisions()).toHaveLength(2);
    expect((await store.usage.list(tenantA)).items).toHaveLength(2);
    const alerts = await store.alerts.list(tenantA);
    expect(alerts.items.map((a) => a.count)).toEqual([1]);
    expect(counters.get('usage_events_duplicate_total')).toBe(2);
  });

  it('a re-processed batch gets the same DecisionBatch id and the stored decisions, even after a policy change', async () => {
    const b = batch([{ device: 'devA1', app: 'slack', action: 'upload_file' }, { device: 'devA1', app: 'slack', action: 'send_message' }]);
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), encodePayload(b)));
    // The rule is lifted before the same batch comes again (e.g. a worker died before its ack).
    await store.rules.delete(tenantA, denyRuleId);
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), encodePayload(b)));
    const [first, second] = downlink.decisions();
    expect(first!.id).toBe(b.id);
    expect(second!.id).toBe(first!.id);
    expect(second!.decisions).toEqual(first!.decisions);
    expect(first!.decisions.map((d) => d.effect)).toEqual(['deny', 'allow']);
    // A new event of the same kind is decided by the new policy.
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), encodePayload(batch([{ device: 'devA1', app: 'slack', action: 'upload_file' }]))));
    expect(downlink.decisions()[2]!.decisions[0]!.effect).toBe('allow');
  });

  it('an unknown device becomes a discovered device, decided by the tenant default', async () => {
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), encodePayload(batch([{ device: 'ghost1', app: 'slack', action: 'send_message' }]))));
    const [db] = downlink.decisions();
    expect(db!.decisions[0]).toMatchObject({ effect: 'allow', reason: 'unknown_device' });
    const discovered = await store.discovered.list(tenantA);
    expect(discovered.items.map((d) => d.device_id)).toEqual(['ghost1']);
    expect((await store.discovered.list(tenantB)).items).toHaveLength(0);
  });

  it('rejects and counts an event whose device belongs to another tenant', async () => {
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), encodePayload(batch([{ device: 'devB1', app: 'slack', action: 'send_message' }, { device: 'devA1', app: 'slack', action: 'send_message' }]))));
    const [db] = downlink.decisions();
    expect(db!.rejected).toHaveLength(1);
    expect(db!.rejected[0]!.reason).toBe('device_tenant_mismatch');
    expect(db!.decisions).toHaveLength(1);
    expect(counters.get('usage_events_rejected_total', { tower: 'T1', reason: 'device_tenant_mismatch' })).toBe(1);
    // Nothing about tenant B's device was written under tenant A.
    expect((await store.usage.list(tenantA)).items.map((u) => u.device_id)).toEqual(['devA1']);
    expect((await store.discovered.list(tenantA)).items).toHaveLength(0);
  });

  it.each([
    ['not JSON', '{oops'],
    ['wrong schema', JSON.stringify({ v: 1, id: 'nope', events: [] })],
    ['wrong version', JSON.stringify({ v: 2, id: '01J00000000000000000000000', sent_at: 1, events: [] })],
  ])('drops and counts a malformed payload (%s) without answering', async (_name, payload) => {
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), payload));
    expect(downlink.decisions()).toHaveLength(0);
    expect(counters.get('uplink_dropped_total', { tower: 'T1', kind: 'usage', reason: 'invalid_payload' })).toBe(1);
  });

  it('drops usage for a tenant that does not exist', async () => {
    await pipeline.accept(uplink(topics.usage('NoSuchTenant', 'T1'), encodePayload(batch([{ device: 'devA1', app: 'slack', action: 'send_message' }]))));
    expect(downlink.decisions()).toHaveLength(0);
    expect(counters.get('uplink_dropped_total', { tower: 'T1', kind: 'usage', reason: 'unknown_tenant' })).toBe(1);
  });

  it('a policy change takes effect for the very next event, without restart', async () => {
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), encodePayload(batch([{ device: 'devA1', app: 'slack', action: 'upload_file' }]))));
    await store.rules.delete(tenantA, denyRuleId);
    await pipeline.accept(uplink(topics.usage(tenantA, 'T1'), encodePayload(batch([{ device: 'devA1', app: 'slack', action: 'upload_file' }]))));
    const [before, after] = downlink.decisions();
    expect(before!.decisions[0]!.effect).toBe('deny');
    expect(after!.decisions[0]!.effect).toBe('allow');
    expect(after!.policy_version).toBeGreaterThan(before!.policy_version);
  });

  it('records tower status and discovery reports', async () => {
    await pipeline.accept(uplink(topics.status('T1'), JSON.stringify({ v: 1, id: newId(), state: 'online', ts: 1, agent_version: '1.2.3' })));
    expect((await store.towers.get('T1'))!.state).toBe('online');
    const report = JSON.stringify({ v: 1, id: newId(), sent_at: 1, devices: [{ device_id: 'stray', first_seen: 1, last_seen: 2, count: 3 }] });
    await pipeline.accept(uplink(topics.discovery('T1'), report));
    await pipeline.accept(uplink(topics.discovery('T1'), report));
    const platform = await store.discovered.list(null);
    expect(platform.items).toHaveLength(1);
    expect(platform.items[0]!.count).toBe(3);
  });

  it('stores the agent version a tower reports without controls or bidi overrides', async () => {
    const planted = 'v1\u202e2.3\u001b[31m\u2066';
    await pipeline.accept(uplink(topics.status('T1'), JSON.stringify({ v: 1, id: newId(), state: 'online', ts: 1, agent_version: planted })));
    expect((await store.towers.get('T1'))!.agent_version).toBe('v1\ufffd2.3\ufffd[31m\ufffd');
  });

  it("keeps a tower's latest status by when the broker received it, whatever order they are processed in", async () => {
    const status = (state: 'online' | 'offline', receivedAt: number) => ({
      ...uplink(topics.status('T1'), JSON.stringify({ v: 1, id: newId(), state, ts: 1 })),
      received_at: receivedAt,
    });
    // A takeover: the old connection's will (received first) is processed after the new online.
    await pipeline.accept(status('online', 2_000));
    await pipeline.accept(status('offline', 1_000));
    expect(await store.towers.get('T1')).toMatchObject({ state: 'online', last_seen: 2_000 });
    await pipeline.accept(status('offline', 3_000));
    expect(await store.towers.get('T1')).toMatchObject({ state: 'offline', last_seen: 3_000 });
  });

  it('drains in-flight work on stop and refuses new messages', async () => {
    const inflight = pipeline.accept(uplink(topics.usage(tenantA, 'T1'), encodePayload(batch([{ device: 'devA1', app: 'slack', action: 'send_message' }]))));
    await pipeline.stop();
    await inflight;
    expect(downlink.decisions()).toHaveLength(1);
    await expect(pipeline.accept(uplink(topics.usage(tenantA, 'T1'), encodePayload(batch([{ device: 'devA1', app: 'slack', action: 'send_message' }]))))).rejects.toBeInstanceOf(ShuttingDownError);
  });
});
