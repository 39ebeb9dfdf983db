/**
 * Auto-remediation in the pipeline, against the real SQLite store and bus; the broker boundary is
 * a recording Downlink (the broker's own PUBACK → 'command.delivered' path is covered end to end).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../../shared/bus.js';
import type { CommandRecord } from '../../shared/domain.js';
import { createIdFactory } from '../../shared/ids.js';
import { silentLogger } from '../../shared/logger.js';
import { Counters } from '../../shared/metrics.js';
import { CommandSchema, encodePayload, type Command, type UsageBatch } from '../../shared/mqtt/payloads.js';
import { parseTopic, topics } from '../../shared/mqtt/topics.js';
import { isUplinkTopic, type Downlink, type UplinkMessage } from '../../shared/mqtt/transport.js';
import { SqliteStore } from '../../shared/store/sqlite/sqlite-store.js';
import { Pipeline } from '../pipeline.js';
import { seedUploadDenyTenant, testWorkerContext, type TestWorkerContext } from '../test-support.js';

class RecordingDownlink implements Downlink {
  readonly sent: Array<{ topic: string; payload: Buffer }> = [];
  async publish(topic: string, payload: Buffer): Promise<void> {
    this.sent.push({ topic, payload });
  }
  commands(): Command[] {
    return this.sent.filter((m) => m.topic.endsWith('/commands')).map((m) => CommandSchema.parse(JSON.parse(m.payload.toString())));
  }
}

const newId = createIdFactory();
let dir: string;
let store: SqliteStore;
let bus: InProcessBus;
let downlink: RecordingDownlink;
let pipeline: Pipeline;
let ctx: TestWorkerContext;
let clock: number;
let updates: CommandRecord[];

function uplink(topic: string, payload: Buffer): UplinkMessage {
  const parsed = parseTopic(topic);
  if (!isUplinkTopic(parsed)) throw new Error('not uplink');
  return { topic, parsed, payload, tower_id: parsed.towerId, received_at: clock };
}

function violation(device: string, app = 'dropbox'): Buffer {
  const b: UsageBatch = { v: 1, id: newId(), sent_at: clock, events: [{ id: newId(), ts: clock, device_id: device, app, action: 'upload_file' }] };
  return encodePayload(b);
}

/** A tenant with one deny rule carrying a remediation and an escalation. */
async function tenantOn(planId: 'free' | 'premium') {
  return seedUploadDenyTenant(store, {
    name: planId,
    plan_id: planId,
    device: `${planId}-dev`,
    rule: { remediation: { type: 'block_app', duration_s: 600 }, escalation: { threshold: 3, window_s: 600, remediation: { type: 'block_device', duration_s: 3600 } } },
  });
}

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-remediation-'));
  bus = new InProcessBus();
  clock = 1_700_000_000_000;
  store = new SqliteStore({
    file: join(dir, 'db.sqlite'),
    now: () => clock,
    hooks: { onPolicyChanged: (tenantId, version) => bus.publish('policy.changed', { tenant_id: tenantId, version }) },
  });
  await store.init();
  await store.towers.create({ id: 'T1', name: 't1' });
  downlink = new RecordingDownlink();
  updates = [];
  bus.subscribe('command.updated', (e) => updates.push(e.command));
  ctx = makeContext();
  pipeline = new Pipeline(ctx, { concurrency: 4, rebuildDebounceMs: 1 });
  await pipeline.start();
});

function makeContext(): TestWorkerContext {
  return testWorkerContext({ store, bus, downlink, counters: new Counters(), logger: silentLogger(), now: () => clock, newId, retryMinMs: 1000, retryMaxMs: 8000 });
}

/** Processes an uplink and everything it scheduled to run now (command sends). */
async function accept(msg: UplinkMessage): Promise<void> {
  await pipeline.accept(msg);
  await ctx.settle();
}

async function advance(ms: number): Promise<void> {
  clock += ms;
  await vi.advanceTimersByTimeAsync(ms);
  await ctx.settle();
}

afterEach(async () => {
  await pipeline.stop();
  await ctx.close();
  await store.close();
  vi.useRealTimers();
  await rm(dir, { recursive: true, force: true });
});

describe('auto-remediation', () => {
  it('premium: a violation becomes a command to the tower; free: the same violation is an alert only', async () => {
    const premium = await tenantOn('premium');
    const free = await tenantOn('free');
    await accept(uplink(topics.usage(premium.tenant.id, 'T1'), violation(premium.device)));
    await accept(uplink(topics.usage(free.tenant.id, 'T1'), violation(free.device)));

    const sent = downlink.commands();
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ type: 'block_app', app: 'dropbox', device_id: premium.device, duration_s: 600 });
    expect(downlink.sent.find((m) => m.topic === topics.commands(premium.tenant.id, 'T1'))).toBeDefined();
    const [cmd] = (await store.commands.list(premium.tenant.id)).items;
    expect(cmd).toMatchObject({ source: 'auto', rule_id: premium.rule.id, tower_id: 'T1', attempts: 1, status: 'pending' });

    expect((await store.commands.list(free.tenant.id)).items).toHaveLength(0);
    expect((await store.alerts.list(free.tenant.id)).items).toHaveLength(1);
    expect((await store.alerts.list(premium.tenant.id)).items).toHaveLength(1);
  });

  it('an action in force is not issued again for every violation', async () => {
    const { tenant, device } = await tenantOn('premium');
    await accept(uplink(topics.usage(tenant.id, 'T1'), violation(device)));
    clock += 1000;
    await accept(uplink(topics.usage(tenant.id, 'T1'), violation(device)));
    expect(downlink.commands().filter((c) => c.type === 'block_app')).toHaveLength(1);
  });

  it('an action in force at one tower does not suppress the same remediation at another tower', async () => {
    const { tenant, device } = await tenantOn('premium');
    await store.towers.create({ id: 'T2', name: 't2' });
    await accept(uplink(topics.usage(tenant.id, 'T1'), violation(device)));
    await accept(uplink(topics.usage(tenant.id, 'T2'), violation(device)));
    const blocks = (await store.commands.list(tenant.id)).items.filter((c) => c.type === 'block_app');
    expect(blocks.map((c) => c.tower_id).sort()).toEqual(['T1', 'T2']);
    expect(downlink.sent.filter((m) => m.topic === topics.commands(tenant.id, 'T2'))).toHaveLength(1);
  });

  it('two workers deciding the same violation issue one command', async () => {
    const { tenant, device } = await tenantOn('premium');
    const second = testWorkerContext({
      store, bus, downlink, counters: new Counters(), logger: silentLogger(), now: () => clock, newId,
      // The same workflow state (as two workers share Redis): only the queues are per worker here.
      workflow: { ...ctx.workflow, close: async () => {} },
    });
    const other = new Pipeline(second, { concurrency: 4, rebuildDebounceMs: 1 });
    await other.start();
    const same = violation(device);
    await Promise.all([pipeline.accept(uplink(topics.usage(tenant.id, 'T1'), same)), other.accept(uplink(topics.usage(tenant.id, 'T1'), same))]);
    await ctx.settle();
    await other.stop();
    await second.commands.stop();
    expect((await store.commands.list(tenant.id)).items).toHaveLength(1);
  });

  it('escalates after `threshold` violations within the window, not when they are spread out', async () => {
    const { tenant, device } = await tenantOn('premium');
    // Spread out: three violations 11 minutes apart never reach 3 within 10 minutes.
    for (let i = 0; i < 3; i++) {
      await accept(uplink(topics.usage(tenant.id, 'T1'), violation(device)));
      clock += 11 * 60_000;
    }
    expect(downlink.commands().filter((c) => c.type === 'block_device')).toHaveLength(0);
    // Close together: the third within the window escalates to block_device for an hour.
    for (let i = 0; i < 3; i++) {
      await accept(uplink(topics.usage(tenant.id, 'T1'), violation(device)));
      clock += 60_000;
    }
    const escalated = downlink.commands().filter((c) => c.type === 'block_device');
    expect(escalated).toHaveLength(1);
    expect(escalated[0]!.duration_s).toBe(3600);
    const rec = (await store.commands.list(tenant.id)).items.find((c) => c.type === 'block_device');
    expect(rec?.source).toBe('escalation');
  });

  it('a redelivered violation does not count twice towards escalation', async () => {
    const { tenant, device } = await tenantOn('premium');
    const same = violation(device);
    for (let i = 0; i < 3; i++) await accept(uplink(topics.usage(tenant.id, 'T1'), same));
    expect(downlink.commands().filter((c) => c.type === 'block_device')).toHaveLength(0);
  });
});

describe('command lifecycle', () => {
  it('resends with backoff until delivered, then applied on ack; every step recorded', async () => {
    const { tenant, device } = await tenantOn('premium');
    await accept(uplink(topics.usage(tenant.id, 'T1'), violation(device)));
    const id = downlink.commands()[0]!.id;
    // Not delivered: resent after 1 s, then 2 s.
    await advance(1000);
    await advance(2000);
    expect(downlink.commands().filter((c) => c.id === id)).toHaveLength(3);
    // The broker reports the tower's PUBACK; resends stop.
    await ctx.commands.reportDelivered(tenant.id, 'T1', id, clock);
    await ctx.settle();
    await advance(20_000);
    expect(downlink.commands().filter((c) => c.id === id)).toHaveLength(3);
    // The agent's reason is stored as shown: a bidi override from the field becomes U+FFFD.
    const ack = { v: 1, id: newId(), command_id: id, status: 'applied', reason: 'blocked \u202edropbox', ts: clock };
    await accept(uplink(topics.acks(tenant.id, 'T1'), encodePayload(ack)));
    const cmd = await store.commands.get(tenant.id, id);
    expect(cmd).toMatchObject({ status: 'applied', attempts: 3, ack_reason: 'blocked \ufffddropbox' });
    const steps = (await store.commands.events(tenant.id, id)).map((e) => e.kind);
    expect(steps).toEqual(['pending', 'published', 'published', 'published', 'delivered', 'applied']);
    expect(updates.filter((u) => u.id === id).map((u) => u.status)).toEqual(['pending', 'delivered', 'applied']);
    expect(await store.commands.listOpen()).toEqual([]);
  });

  it('a delivery reported by another tower, or twice, changes nothing more', async () => {
    const { tenant, device } = await tenantOn('premium');
    await accept(uplink(topics.usage(tenant.id, 'T1'), violation(device)));
    const id = downlink.commands()[0]!.id;
    await ctx.commands.reportDelivered(tenant.id, 'T9', id, clock);
    await ctx.settle();
    expect((await store.commands.get(tenant.id, id))!.status).toBe('pending');
    await ctx.commands.reportDelivered(tenant.id, 'T1', id, clock);
    await ctx.commands.reportDelivered(tenant.id, 'T1', id, clock + 5);
    await ctx.settle();
    expect(updates.filter((u) => u.id === id).map((u) => u.status)).toEqual(['pending', 'delivered']);
  });

  it('a command to a tower that never takes it expires, and a late ack changes nothing', async () => {
    const { tenant, device } = await tenantOn('premium');
    await accept(uplink(topics.usage(tenant.id, 'T1'), violation(device)));
    const id = downlink.commands()[0]!.id;
    await advance(3600_000);
    expect((await store.commands.get(tenant.id, id))!.status).toBe('expired');
    const late = { v: 1, id: newId(), command_id: id, status: 'applied', ts: clock };
    await accept(uplink(topics.acks(tenant.id, 'T1'), encodePayload(late)));
    expect((await store.commands.get(tenant.id, id))!.status).toBe('expired');
  });

  it('resends at once when the tower comes back online', async () => {
    const { tenant, device } = await tenantOn('premium');
    await accept(uplink(topics.usage(tenant.id, 'T1'), violation(device)));
    expect(downlink.commands()).toHaveLength(1);
    // Its status message (or the broker's view of it) says the tower is back.
    await accept(uplink(topics.status('T1'), encodePayload({ v: 1, id: newId(), state: 'online', ts: clock })));
    expect(downlink.commands()).toHaveLength(2);
    // The promoted send was the scheduled one: nothing extra at the old backoff time.
    await advance(1000);
    expect(downlink.commands()).toHaveLength(2);
  });

  it('an ack from another tower or for another tenant’s command is ignored', async () => {
    const a = await tenantOn('premium');
    await accept(uplink(topics.usage(a.tenant.id, 'T1'), violation(a.device)));
    const id = downlink.commands()[0]!.id;
    await store.towers.create({ id: 'T2', name: 't2' });
    const ack = encodePayload({ v: 1, id: newId(), command_id: id, status: 'applied', ts: clock });
    await accept(uplink(topics.acks(a.tenant.id, 'T2'), ack));
    const other = await store.tenants.create({ name: 'other' });
    await accept(uplink(topics.acks(other.id, 'T1'), ack));
    expect((await store.commands.get(a.tenant.id, id))!.status).toBe('pending');
  });

  it('resumes open commands after a restart', async () => {
    const { tenant, device } = await tenantOn('premium');
    await accept(uplink(topics.usage(tenant.id, 'T1'), violation(device)));
    await pipeline.stop();
    await ctx.close();
    const before = downlink.commands().length;
    // A restarted process: fresh in-process queues, the same store.
    ctx = makeContext();
    pipeline = new Pipeline(ctx, { concurrency: 4, rebuildDebounceMs: 1 });
    await pipeline.start();
    expect(await ctx.commands.resume()).toBe(1);
    await ctx.settle();
    expect(downlink.commands().length).toBe(before + 1);
  });
});

describe('plan limits at ingest', () => {
  it('one tower flooding cannot spend the share of the tenant budget its other towers use', async () => {
    await store.plans.create({ id: 'small', name: 'Small', auto_remediation: false, max_events_per_s: 10, retention_days: 1 });
    const t = await store.tenants.create({ name: 'small', plan_id: 'small' });
    await store.devices.create(t.id, { id: 'small-dev', name: 'd' });
    await store.towers.create({ id: 'T2', name: 't2' });
    const batchOf = (n: number): Buffer =>
      encodePayload({ v: 1, id: newId(), sent_at: clock, events: Array.from({ length: n }, () => ({ id: newId(), ts: clock, device_id: 'small-dev', app: 'slack', action: 'open' })) });
    const lastAnswer = (tower: string) =>
      JSON.parse(downlink.sent.filter((m) => m.topic === topics.decisions(t.id, tower)).at(-1)!.payload.toString()) as { decisions: unknown[]; rejected: unknown[] };
    // T2 sends its usual 4 events a second (within an equal share of the 10/s budget)…
    await accept(uplink(topics.usage(t.id, 'T2'), batchOf(4)));
    clock += 1000;
    // …then T1 floods for ten seconds, each second ahead of T2.
    for (let s = 0; s < 10; s++) {
      await accept(uplink(topics.usage(t.id, 'T1'), batchOf(200)));
      await accept(uplink(topics.usage(t.id, 'T2'), batchOf(4)));
      expect(lastAnswer('T2').rejected).toEqual([]);
      expect(lastAnswer('T1').decisions.length).toBeLessThanOrEqual(5);
      clock += 1000;
    }
  });


  it('events beyond the plan rate are rejected with a clear reason, and a plan change applies at once', async () => {
    await store.plans.create({ id: 'tiny', name: 'Tiny', auto_remediation: false, max_events_per_s: 2, retention_days: 1 });
    const t = await store.tenants.create({ name: 'tiny', plan_id: 'tiny' });
    await store.devices.create(t.id, { id: 'tiny-dev', name: 'd' });
    const batch: UsageBatch = { v: 1, id: newId(), sent_at: clock, events: Array.from({ length: 5 }, () => ({ id: newId(), ts: clock, device_id: 'tiny-dev', app: 'slack', action: 'open' })) };
    await accept(uplink(topics.usage(t.id, 'T1'), encodePayload(batch)));
    const answer = JSON.parse(downlink.sent.filter((m) => m.topic.endsWith('/decisions')).at(-1)!.payload.toString()) as { decisions: unknown[]; rejected: Array<{ reason: string }> };
    expect(answer.decisions).toHaveLength(2);
    expect(answer.rejected.map((r) => r.reason)).toEqual(['plan_rate_limited', 'plan_rate_limited', 'plan_rate_limited']);
    await store.tenants.update(t.id, { plan_id: 'premium' });
    const again: UsageBatch = { ...batch, id: newId(), events: batch.events.map((e) => ({ ...e, id: newId() })) };
    await accept(uplink(topics.usage(t.id, 'T1'), encodePayload(again)));
    const next = JSON.parse(downlink.sent.filter((m) => m.topic.endsWith('/decisions')).at(-1)!.payload.toString()) as { decisions: unknown[] };
    expect(next.decisions).toHaveLength(5);
  });
});
