/**
 * Audit: remediation command ids derived from a tower-chosen event id. Event ids are unique per
 * tenant only (usage is keyed by tenant and id), and a tower names its event ids itself; command ids
 * are unique platform-wide. Real SQLite store and bus, a recording Downlink.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../../shared/bus.js';
import { createIdFactory } from '../../shared/ids.js';
import { silentLogger } from '../../shared/logger.js';
import { Counters } from '../../shared/metrics.js';
import { CommandSchema, encodePayload, type Command, type UsageBatch } from '../../shared/mqtt/payloads.js';
import { parseTopic, topics } from '../../shared/mqtt/topics.js';
import { isUplinkTopic, type Downlink, type UplinkMessage } from '../../shared/mqtt/transport.js';
import { derivedCommandId } from '../../shared/commands/command-id.js';
import { SqliteStore } from '../../shared/store/sqlite/sqlite-store.js';
import { Pipeline } from '../pipeline.js';
import { seedUploadDenyTenant, testWorkerContext, type TestWorkerContext } from '../test-support.js';

class RecordingDownlink implements Downlink {
  readonly sent: Array<{ topic: string; payload: Buffer }> = [];
  async publish(topic: string, payload: Buffer): Promise<void> {
    this.sent.push({ topic, payload });
  }
  commands(topic: string): Command[] {
    return this.sent.filter((m) => m.topic === topic).map((m) => CommandSchema.parse(JSON.parse(m.payload.toString())));
  }
}

const newId = createIdFactory();
let dir: string;
let store: SqliteStore;
let bus: InProcessBus;
let downlink: RecordingDownlink;
let pipeline: Pipeline;
let ctx: TestWorkerContext;
let counters: Counters;
let clock: number;

function uplink(topic: string, payload: Buffer): UplinkMessage {
  const parsed = parseTopic(topic);
  if (!isUplinkTopic(parsed)) throw new Error('not uplink');
  return { topic, parsed, payload, tower_id: parsed.towerId, received_at: clock };
}

function violation(device: string, eventId: string, app = 'dropbox'): Buffer {
  const b: UsageBatch = { v: 1, id: newId(), sent_at: clock, events: [{ id: eventId, ts: clock, device_id: device, app, action: 'upload_file' }] };
  return encodePayload(b);
}

async function premiumTenant(name: string) {
  return seedUploadDenyTenant(store, { name, plan_id: 'premium', device: `${name}-dev`, rule: { remediation: { type: 'block_app', duration_s: 600 } } });
}

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-cmdid-'));
  bus = new InProcessBus();
  clock = 1_700_000_000_000;
  store = new SqliteStore({
    file: join(dir, 'db.sqlite'),
    now: () => clock,
    hooks: { onPolicyChanged: (tenantId, version) => bus.publish('policy.changed', { tenant_id: tenantId, version }) },
  });
  await store.init();
  await store.towers.create({ id: 'T1', name: 't1' });
  await store.towers.create({ id: 'T2', name: 't2' });
  downlink = new RecordingDownlink();
  counters = new Counters();
  ctx = testWorkerContext({ store, bus, downlink, counters, logger: silentLogger(), now: () => clock, newId });
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

describe('remediation command ids across tenants', () => {
  it("an event id another tenant's tower already used still remediates, without failing the batch", async () => {
    const a = await premiumTenant('a');
    const b = await premiumTenant('b');
    const eventId = newId();
    await pipeline.accept(uplink(topics.usage(a.tenant.id, 'T1'), violation(a.device, eventId)));
    await ctx.settle();
    // Tenant b's tower reports an event with the same id (a reused or forged id): it is tenant b's
    // own event (usage is keyed by tenant), denied by b's rule.
    await pipeline.accept(uplink(topics.usage(b.tenant.id, 'T2'), violation(b.device, eventId)));
    await ctx.settle();

    const [cmdA] = (await store.commands.list(a.tenant.id)).items;
    const [cmdB] = (await store.commands.list(b.tenant.id)).items;
    expect(cmdA).toMatchObject({ tenant_id: a.tenant.id, tower_id: 'T1', device_id: a.device, type: 'block_app' });
    expect(cmdB).toMatchObject({ tenant_id: b.tenant.id, tower_id: 'T2', device_id: b.device, type: 'block_app' });
    expect(cmdB!.id).not.toBe(cmdA!.id);
    expect(downlink.commands(topics.commands(b.tenant.id, 'T2'))).toMatchObject([{ device_id: b.device }]);
    expect(counters.get('ingest_errors_total', { kind: 'usage' })).toBe(0);
  });

  it("a tenant's tower cannot pre-empt another tenant's remediation by using the event id first", async () => {
    const a = await premiumTenant('a');
    const b = await premiumTenant('b');
    const eventId = newId();
    await pipeline.accept(uplink(topics.usage(b.tenant.id, 'T2'), violation(b.device, eventId)));
    await pipeline.accept(uplink(topics.usage(a.tenant.id, 'T1'), violation(a.device, eventId)));
    await ctx.settle();
    expect(downlink.commands(topics.commands(a.tenant.id, 'T1'))).toMatchObject([{ device_id: a.device, type: 'block_app' }]);
    expect((await store.commands.list(a.tenant.id)).items).toHaveLength(1);
  });
});

describe('remediation of a re-processed event', () => {
  it.each([
    ['the same tower', 'T1'],
    ['another tower of the tenant', 'T2'],
  ])('a reused event id from %s naming another device does not remediate a device that never violated', async (_what, replayTower) => {
    const a = await premiumTenant('a');
    // A device of the same tenant whose user has no role: everything it does is allowed.
    const other = await store.users.create(a.tenant.id, { name: 'exec' });
    await store.devices.create(a.tenant.id, { id: 'exec-dev', name: 'exec phone', user_id: other.id });
    const eventId = newId();
    await pipeline.accept(uplink(topics.usage(a.tenant.id, 'T1'), violation(a.device, eventId)));
    await ctx.settle();
    // The same event id again, now naming the allowed device (a forged or buggy redelivery).
    clock += 1000;
    await pipeline.accept(uplink(topics.usage(a.tenant.id, replayTower), violation('exec-dev', eventId)));
    await ctx.settle();
    const cmds = (await store.commands.list(a.tenant.id)).items;
    expect(cmds.map((c) => c.device_id)).toEqual([a.device]);
    expect(downlink.sent.filter((m) => m.topic.endsWith('/commands'))).toHaveLength(1);
  });
});

describe('a batch redelivered across the upgrade that scoped command ids by tenant', () => {
  /** What a version before the scoping issued for the event: the id derived without the tenant. */
  async function issuedByOldVersion(tenantId: string, device: string, eventId: string) {
    const { command } = await ctx.commands.issue({
      id: derivedCommandId(eventId, 'auto:block_app'),
      tenant_id: tenantId,
      tower_id: 'T1',
      device_id: device,
      type: 'block_app',
      app: 'dropbox',
      duration_s: 600,
      reason: 'rule: dropbox/upload_file denied',
      source: 'auto',
      rule_id: null,
    });
    await ctx.settle();
    return command;
  }

  it('does not issue the command a second time under the new id', async () => {
    const a = await premiumTenant('a');
    const eventId = newId();
    // The old version decided the batch and issued its command, then stopped before the batch was
    // acknowledged; this process starts with no claims (embedded state is in memory) and gets it again.
    const old = await issuedByOldVersion(a.tenant.id, a.device, eventId);
    await pipeline.accept(uplink(topics.usage(a.tenant.id, 'T1'), violation(a.device, eventId)));
    await ctx.settle();
    expect((await store.commands.list(a.tenant.id)).items.map((c) => c.id)).toEqual([old.id]);
    expect(downlink.commands(topics.commands(a.tenant.id, 'T1'))).toHaveLength(1);
    expect(counters.get('remediations_skipped_total', { reason: 'already_issued' })).toBe(1);
  });

  it("another tenant's command under the legacy id does not hold this tenant's remediation", async () => {
    const a = await premiumTenant('a');
    const b = await premiumTenant('b');
    const eventId = newId();
    await issuedByOldVersion(b.tenant.id, b.device, eventId);
    await pipeline.accept(uplink(topics.usage(a.tenant.id, 'T1'), violation(a.device, eventId)));
    await ctx.settle();
    expect(downlink.commands(topics.commands(a.tenant.id, 'T1'))).toMatchObject([{ device_id: a.device, type: 'block_app' }]);
  });
});
