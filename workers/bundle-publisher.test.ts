/**
 * What the workers publish for the edge, and how they reconcile what the edge decided: per-tower
 * policy bundles (only to towers that serve the tenant, at once to a tower that starts serving
 * it, unchanged parts not resent), directory slices (only when devices change), and local
 * decisions recorded on usage with their disagreements; a tenant's versions published in order,
 * and one publisher for several worker processes (takeover, lapsed lease, unreachable lease store).
 * Real SQLite store, real pipeline; the downlink (the broker boundary) records.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../shared/bus.js';
import { createIdFactory } from '../shared/ids.js';
import { silentLogger } from '../shared/logger.js';
import { Counters } from '../shared/metrics.js';
import { decodePayload, DirectoryHeadSchema, encodePayload, PolicyBundleSchema, type LocalDecision, type UsageBatch } from '../shared/mqtt/payloads.js';
import { edgeDocumentOf, parseTopic, topics } from '../shared/mqtt/topics.js';
import { isUplinkTopic, type Downlink, type UplinkMessage } from '../shared/mqtt/transport.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { inProcessWorkflow } from '../shared/workflow/index.js';
import { InProcessLeases, type Leases } from '../shared/workflow/leases.js';
import { directoryToken } from '../shared/policy/edge-bundle.js';
import { Pipeline } from './pipeline.js';
import { testWorkerContext } from './test-support.js';

class RecordingDownlink implements Downlink {
  /** In the order the broker took them (a retained topic keeps the last). */
  readonly sent: Array<{ topic: string; payload: Buffer; retain: boolean }> = [];
  /** Heads whose retained parts were looked up, in order. */
  readonly lookups: string[] = [];
  /** Listings of every retained edge document; `failEdgeListings` of them throw first. */
  edgeListings = 0;
  failEdgeListings = 0;
  #held: { reached: () => void; release: Promise<void> } | null = null;
  /** What the broker retains: shared by the downlinks of processes on one broker. */
  constructor(readonly retained = new Map<string, Buffer>()) {}
  async publish(topic: string, payload: Buffer, opts?: { retain?: boolean }): Promise<void> {
    const held = this.#held;
    if (held) {
      this.#held = null;
      held.reached();
      await held.release;
    }
    this.sent.push({ topic, payload, retain: opts?.retain ?? false });
    if (opts?.retain) {
      if (payload.length === 0) this.retained.delete(topic);
      else this.retained.set(topic, payload);
    }
  }
  async retainedUnder(prefix: string): Promise<string[]> {
    this.lookups.push(prefix);
    return [...this.retained.keys()].filter((t) => t.startsWith(`${prefix}/`) && !t.slice(prefix.length + 1).includes('/'));
  }
  async retainedEdgeDocuments(): Promise<string[]> {
    this.edgeListings++;
    if (this.failEdgeListings > 0) {
      this.failEdgeListings--;
      throw new Error('retained index not built yet');
    }
    return [...this.retained.keys()].filter((t) => edgeDocumentOf(t) !== null);
  }
  /** The next publish waits for `release` (a slow broker write); resolves once it is waiting. */
  holdNext(release: Promise<void>): Promise<void> {
    return new Promise((reached) => (this.#held = { reached, release }));
  }
  /** The last retained payload published on a topic of this kind (and tower). */
  lastRetained(kind: string, towerId?: string): Buffer | undefined {
    for (let i = this.sent.length - 1; i >= 0; i--) {
      const p = parseTopic(this.sent[i]!.topic);
      if (p?.kind === kind && (towerId === undefined || ('towerId' in p && p.towerId === towerId))) return this.sent[i]!.payload;
    }
    return undefined;
  }
  kinds(from = 0): string[] {
    return this.sent.slice(from).map((m) => {
      const p = parseTopic(m.topic);
      if (p?.kind === 'policy' || p?.kind === 'policyPart') return `${p.kind}:${p.tenantId === tenantA ? 'A' : 'B'}:${p.towerId}`;
      return p?.kind ?? m.topic;
    });
  }
}

const newId = createIdFactory();
/** One directory key for every process, as in a deployment (derived from the shared service secret). */
const DIRECTORY_KEY = Buffer.alloc(32, 7);
let dir: string;
let store: SqliteStore;
let bus: InProcessBus;
let counters: Counters;
let downlink: RecordingDownlink;
let pipeline: Pipeline;
let ctx: ReturnType<typeof testWorkerContext>;
let tenantA: string;
let tenantB: string;
let roleId: string;
let policyId: string;
/** While true, committed policy changes are not announced on the bus (a lost announcement). */
let muted = false;

function usage(tenantId: string, towerId: string, events: Array<{ device: string; app: string; action: string; local?: LocalDecision; id?: string }>): { msg: UplinkMessage; batch: UsageBatch } {
  const batch: UsageBatch = {
    v: 1,
    id: newId(),
    sent_at: Date.now(),
    events: events.map((e) => ({ id: e.id ?? newId(), ts: Date.now(), device_id: e.device, app: e.app, action: e.action, ...(e.local ? { local: e.local } : {}) })),
  };
  const topic = topics.usage(tenantId, towerId);
  const parsed = parseTopic(topic);
  if (!isUplinkTopic(parsed)) throw new Error('not an uplink');
  return { msg: { topic, parsed, payload: encodePayload(batch), tower_id: towerId, received_at: Date.now() }, batch };
}

/** Resolves once the engine's debounced rebuild after a change has published its bundles. */
async function settled(): Promise<void> {
  await pipeline.engine.refresh(tenantA);
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-bundles-'));
  muted = false;
  bus = new InProcessBus();
  counters = new Counters();
  store = new SqliteStore({
    file: join(dir, 'db.sqlite'),
    hooks: { onPolicyChanged: (tenantId, version, scope) => muted || bus.publish('policy.changed', { tenant_id: tenantId, version, scope }) },
  });
  await store.init();
  downlink = new RecordingDownlink();
  tenantA = (await store.tenants.create({ name: 'A' })).id;
  tenantB = (await store.tenants.create({ name: 'B' })).id;
  const user = await store.users.create(tenantA, { name: 'alice' });
  roleId = (await store.roles.create(tenantA, { name: 'sales' })).id;
  policyId = (await store.policies.create(tenantA, { name: 'no uploads', severity: 'high' })).id;
  await store.userRoles.assign(tenantA, user.id, roleId);
  await store.rolePolicies.assign(tenantA, roleId, policyId);
  await store.rules.create(tenantA, { policy_id: policyId, app: 'dropbox', action: 'upload_file', permission: 'deny' });
  await store.devices.create(tenantA, { id: 'devA1', name: 'phone', user_id: user.id });
  await store.devices.create(tenantB, { id: 'devB1', name: 'phone' });
  for (const t of ['T1', 'T2']) await store.towers.create({ id: t, name: t });
  ctx = testWorkerContext({ store, bus, downlink, counters, logger: silentLogger(), newId });
  pipeline = new Pipeline(ctx, { concurrency: 4, rebuildDebounceMs: 60_000, directoryKey: DIRECTORY_KEY });
  await pipeline.start();
});

afterEach(async () => {
  await pipeline.stop();
  await ctx.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('edge bundles from the workers', () => {
  it("sends a tenant's bundle to a tower once it serves the tenant, and only to towers that do", async () => {
    const before = downlink.sent.length;
    await pipeline.accept(usage(tenantA, 'T1', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
    await settled();
    // The tower's first event of tenant A: A's bundle (its one part, then the head) to T1 alone.
    const sent = downlink.kinds(before).filter((k) => k.startsWith('policy'));
    expect(sent).toEqual(['policyPart:A:T1', 'policy:A:T1']);
    const head = downlink.sent.find((m) => m.topic === topics.policy(tenantA, 'T1'))!;
    const bundle = decodePayload(PolicyBundleSchema, head.payload);
    expect(bundle.ok && bundle.value).toMatchObject({ tenant_id: tenantA, tower_id: 'T1', grants: 1 });
    // Once per version: the next batch publishes nothing more.
    const after = downlink.sent.length;
    await pipeline.accept(usage(tenantA, 'T1', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
    expect(downlink.kinds(after).filter((k) => k.startsWith('policy'))).toEqual([]);
    // No tower gets tenant B's bundle: none serves B.
    expect(downlink.kinds().filter((k) => k.includes(':B:'))).toEqual([]);
  });

  it('a rule change re-sends the bundle to every serving tower, without unchanged parts or the directory', async () => {
    await pipeline.accept(usage(tenantA, 'T1', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
    await pipeline.accept(usage(tenantA, 'T2', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
    await settled();
    const before = downlink.sent.length;
    await store.rules.create(tenantA, { policy_id: policyId, app: 'tiktok', action: '*', permission: 'deny' });
    await settled();
    expect(downlink.kinds(before).sort()).toEqual(['policy:A:T1', 'policy:A:T2', 'policyPart:A:T1', 'policyPart:A:T2']);
    // A new device changes the directory slice (and the bundle's version).
    const again = downlink.sent.length;
    await store.devices.create(tenantA, { id: 'devA2', name: 'tablet' });
    await settled();
    expect(downlink.kinds(again).filter((k) => k.startsWith('directory'))).toEqual(['directoryPart', 'directory']);
    // Same grants: the parts are unchanged; only the heads go out again.
    expect(downlink.kinds(again).filter((k) => k.startsWith('policy')).sort()).toEqual(['policy:A:T1', 'policy:A:T2']);
  });

  it("publishes a tenant's documents in the order of its versions: a refresh that starts while an older one is still publishing goes after it", async () => {
    await pipeline.accept(usage(tenantA, 'T1', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
    await settled();
    // The refresh after a new device stalls on its first broker write (the directory's part).
    let release!: () => void;
    const held = downlink.holdNext(new Promise<void>((r) => (release = r)));
    await store.devices.create(tenantA, { id: 'devA2', name: 'tablet' });
    const older = pipeline.engine.refresh(tenantA);
    await held;
    // Another device meanwhile, and its refresh: it must not publish before the older one is done.
    // And a tower starts serving the tenant: it gets the version current when its turn comes.
    await store.devices.create(tenantA, { id: 'devA3', name: 'watch' });
    await pipeline.accept(usage(tenantA, 'T2', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
    const newer = pipeline.engine.refresh(tenantA);
    // The store answers in microtasks: once a macrotask has run, the newer refresh has gone as far
    // as it can without the held write.
    await new Promise<void>((r) => setImmediate(r));
    release();
    await Promise.all([older, newer]);
    const version = (await store.tenants.get(tenantA))!.policy_version;
    // What the broker retains last — what a tower that connects now receives — is the newest.
    const directory = decodePayload(DirectoryHeadSchema, downlink.lastRetained('directory')!);
    expect(directory.ok && { version: directory.value.version, devices: directory.value.devices }).toEqual({ version, devices: 3 });
    for (const tower of ['T1', 'T2']) {
      const bundle = decodePayload(PolicyBundleSchema, downlink.lastRetained('policy', tower)!);
      expect(bundle.ok && bundle.value.version, tower).toBe(version);
    }
  });

  it('after rule-side changes only, rebuilds from the rule side and keeps the inventory; any other change, or a gap, reads everything', async () => {
    await pipeline.accept(usage(tenantA, 'T1', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
    await settled();
    const ruleSide = () => counters.get('policy_index_rule_side_builds_total');
    const builds = () => counters.get('policy_index_builds_total');
    const headAt = (from: number) => {
      const m = downlink.sent.slice(from).find((s) => s.topic === topics.policy(tenantA, 'T1'));
      const r = m && decodePayload(PolicyBundleSchema, m.payload);
      return r?.ok ? r.value : null;
    };
    const b0 = builds();
    const r0 = ruleSide();
    let from = downlink.sent.length;
    await store.rules.create(tenantA, { policy_id: policyId, app: 'tiktok', action: '*', permission: 'deny' });
    await store.policies.update(tenantA, policyId, { severity: 'low' });
    await settled();
    expect([builds() - b0, ruleSide() - r0]).toEqual([1, 1]);
    // The new rule side is what the towers get; the owner's profile is still there.
    expect(headAt(from)).toMatchObject({ grants: 2, policies: [[policyId, 'low']] });
    expect(Object.keys(headAt(from)!.profiles)).toHaveLength(2);
    expect(downlink.kinds(from).filter((k) => k.startsWith('directory'))).toEqual([]);
    expect(pipeline.engine.tenantOfDevice('devA1')).toBe(tenantA);

    // An inventory change is read whole: the new device reaches the directory.
    from = downlink.sent.length;
    await store.devices.create(tenantA, { id: 'devA2', name: 'tablet' });
    await settled();
    expect(ruleSide() - r0).toBe(1);
    expect(downlink.kinds(from).filter((k) => k.startsWith('directory'))).toEqual(['directoryPart', 'directory']);
    expect(pipeline.engine.tenantOfDevice('devA2')).toBe(tenantA);

    // A lost announcement: a device added unheard, then a rule change heard. The versions in
    // between are not all known to be rule-side, so the engine reads everything again.
    muted = true;
    await store.devices.create(tenantA, { id: 'devA3', name: 'laptop' });
    muted = false;
    from = downlink.sent.length;
    await store.rules.create(tenantA, { policy_id: policyId, app: 'telegram', action: '*', permission: 'deny' });
    await settled();
    expect(ruleSide() - r0).toBe(1);
    expect(pipeline.engine.tenantOfDevice('devA3')).toBe(tenantA);
    expect(headAt(from)).toMatchObject({ grants: 3 });
    expect(downlink.kinds(from).filter((k) => k.startsWith('directory'))).toEqual(['directoryPart', 'directory']);
  });

  it('records local decisions and their disagreements, counts them, once also when reported after the event', async () => {
    const allowed: LocalDecision = { effect: 'allow', reason: 'default', rule_id: null, policy_version: 1 };
    const { msg, batch } = usage(tenantA, 'T1', [
      { device: 'devA1', app: 'dropbox', action: 'upload_file', local: allowed },
      { device: 'devA1', app: 'slack', action: 'send', local: allowed },
      { device: 'devA1', app: 'slack', action: 'send' },
    ]);
    await pipeline.accept(msg);
    const disagreeing = (await store.usage.list(tenantA, { disagreement: true })).items;
    expect(disagreeing.map((u) => [u.id, u.effect, u.local_effect, u.local_policy_version])).toEqual([[batch.events[0]!.id, 'deny', 'allow', 1]]);
    expect(counters.get('usage_local_decisions_reconciled_total')).toBe(2);
    expect(counters.get('usage_disagreements_total', { local_effect: 'allow', cloud_effect: 'deny' })).toBe(1);
    // The tower reports its late local decision for the third event (already stored): recorded once.
    const late = usage(tenantA, 'T1', [{ id: batch.events[2]!.id, device: 'devA1', app: 'slack', action: 'send', local: { ...allowed, effect: 'deny' } }]);
    await pipeline.accept(late.msg);
    await pipeline.accept(late.msg);
    expect((await store.usageHistory.get(tenantA, batch.events[2]!.id))!).toMatchObject({ effect: 'allow', local_effect: 'deny', disagreement: true });
    expect(counters.get('usage_local_decisions_reconciled_total')).toBe(3);
    expect(counters.get('usage_disagreements_total', { local_effect: 'deny', cloud_effect: 'allow' })).toBe(1);
    expect((await store.usage.list(tenantA)).items).toHaveLength(3);
  });

  it("does not refuse events the tower already decided for the plan's event rate: a replayed backlog is stored whole", async () => {
    await store.plans.update('free', { max_events_per_s: 2 });
    const local: LocalDecision = { effect: 'allow', reason: 'default', rule_id: null, policy_version: 1 };
    const events = Array.from({ length: 20 }, (_, i) => ({ device: 'devA1', app: 'slack', action: 'send', ...(i % 2 === 0 ? { local } : {}) }));
    const { msg, batch } = usage(tenantA, 'T1', events);
    await pipeline.accept(msg);
    const stored = new Set((await store.usage.list(tenantA, { limit: 100 })).items.map((u) => u.id));
    const replayed = batch.events.filter((e) => e.local).map((e) => e.id);
    expect(replayed.every((id) => stored.has(id))).toBe(true);
    // Live events beyond the plan's budget are refused as before.
    expect(stored.size).toBeLessThan(20);
    expect(counters.get('usage_events_rejected_total', { tower: 'T1', reason: 'plan_rate_limited' })).toBe(20 - stored.size);
  });
});

describe('one bundle publisher for the cluster', () => {
  /** A second worker process: its own pipeline and downlink, the same store, bus and leases. */
  let second: { pipeline: Pipeline; downlink: RecordingDownlink; ctx: ReturnType<typeof testWorkerContext> };
  let clock: number;

  beforeEach(async () => {
    // The first worker (started by the outer beforeEach) holds the lease; move both onto one clock.
    clock = Date.now();
    const down = new RecordingDownlink(downlink.retained);
    const base = testWorkerContext({ store, bus, downlink: down, logger: silentLogger(), newId, now: () => clock, workflow: { ...inProcessWorkflow(), leases: ctx.leases } });
    const c2 = { ...base, processId: 'worker-2' };
    const p2 = new Pipeline(c2, { concurrency: 4, rebuildDebounceMs: 60_000, directoryKey: DIRECTORY_KEY });
    await p2.start();
    second = { pipeline: p2, downlink: down, ctx: base };
  });

  afterEach(async () => {
    await second.pipeline.stop();
    await second.ctx.close();
  });

  const edgeKinds = (d: RecordingDownlink, from = 0) => d.kinds(from).filter((k) => /^(policy|directory)/.test(k));

  it("publishes from one process only; another process's tower is served through the publisher, with its tenant's bundle alone", async () => {
    expect([pipeline.engine.publishing, second.pipeline.engine.publishing]).toEqual([true, false]);
    expect(edgeKinds(second.downlink)).toEqual([]);
    const from = downlink.sent.length;
    // The second process stores T1's first event of tenant A: the publisher sends A's bundle to T1.
    await second.pipeline.accept(usage(tenantA, 'T1', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
    await settled();
    expect(edgeKinds(downlink, from)).toEqual(['policyPart:A:T1', 'policy:A:T1']);
    // A rule added, then removed: the part holding it changes and comes back, from the one publisher.
    const rule = await store.rules.create(tenantA, { policy_id: policyId, app: 'tiktok', action: '*', permission: 'deny' });
    await Promise.all([settled(), second.pipeline.engine.refresh(tenantA)]);
    await store.rules.delete(tenantA, rule.id);
    await Promise.all([settled(), second.pipeline.engine.refresh(tenantA)]);
    expect(edgeKinds(downlink, from)).toEqual(['policyPart:A:T1', 'policy:A:T1', 'policyPart:A:T1', 'policy:A:T1', 'policyPart:A:T1', 'policy:A:T1']);
    expect(edgeKinds(second.downlink)).toEqual([]);
  });

  it('when the publisher stops, another process takes over at its next renewal and republishes every tenant whole', async () => {
    await pipeline.accept(usage(tenantA, 'T1', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
    await settled();
    await pipeline.stop();
    await second.pipeline.engine.claimPublishing();
    expect(second.pipeline.engine.publishing).toBe(true);
    // Both tenants' directory slices and A's bundle for the tower serving it, parts included.
    expect(edgeKinds(second.downlink).sort()).toEqual(['directory', 'directory', 'directoryPart', 'directoryPart', 'policy:A:T1', 'policyPart:A:T1']);
    // A later change is published by the new publisher.
    const from = second.downlink.sent.length;
    await store.rules.create(tenantA, { policy_id: policyId, app: 'tiktok', action: '*', permission: 'deny' });
    await second.pipeline.engine.refresh(tenantA);
    expect(edgeKinds(second.downlink, from)).toEqual(['policyPart:A:T1', 'policy:A:T1']);
  });

  it('a new publisher clears the parts an earlier one retained beyond each document\'s count, once per document, and nothing of other tenants or towers', async () => {
    await pipeline.accept(usage(tenantA, 'T1', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
    await settled();
    const dirHead = downlink.sent.find((m) => parseTopic(m.topic)?.kind === 'directory' && decodePayload(DirectoryHeadSchema, m.payload).ok)!.topic;
    // What a run with larger documents left at the broker: parts 3 and 4 of A's bundle for T1, and
    // part 6 of a directory slice; beside them, parts of documents this tenant's publication must
    // not touch (tenant B's bundle at T1, A's bundle at a tower that does not serve A).
    const stale = [`${topics.policy(tenantA, 'T1')}/3`, `${topics.policy(tenantA, 'T1')}/4`, `${dirHead}/6`];
    const others = [`${topics.policy(tenantB, 'T1')}/2`, `${topics.policy(tenantA, 'T2')}/2`];
    for (const t of [...stale, ...others]) downlink.retained.set(t, Buffer.from('part of an earlier version'));

    await pipeline.stop();
    await second.pipeline.engine.claimPublishing();
    const cleared = second.downlink.sent.filter((m) => m.retain && m.payload.length === 0).map((m) => m.topic);
    expect(cleared.filter((t) => stale.includes(t) || others.includes(t)).sort()).toEqual([...stale].sort());
    for (const t of stale) expect(downlink.retained.has(t)).toBe(false);
    for (const t of others) expect(downlink.retained.has(t)).toBe(true);
    // Cleared before the head that no longer names them is published again.
    const headAt = second.downlink.sent.findIndex((m) => m.topic === topics.policy(tenantA, 'T1'));
    expect(second.downlink.sent.findIndex((m) => m.topic === stale[1])).toBeLessThan(headAt);
    expect(second.ctx.counters.get('bundle_stale_parts_cleared_total')).toBe(stale.length);

    // Looked up once per document: a later version publishes without asking again.
    const asked = second.downlink.lookups.length;
    expect(second.downlink.lookups).toContain(topics.policy(tenantA, 'T1'));
    await store.rules.create(tenantA, { policy_id: policyId, app: 'tiktok', action: '*', permission: 'deny' });
    await second.pipeline.engine.refresh(tenantA);
    expect(second.downlink.lookups.length).toBe(asked);
  });

  it("a new publisher clears what the broker retains of a tenant deleted while no process published, once, and nothing of the tenants that remain", async () => {
    // Tenant C is served by T1 and T2: its bundles there and its directory slice are retained.
    const tenantC = (await store.tenants.create({ name: 'C' })).id;
    await store.devices.create(tenantC, { id: 'devC1', name: 'phone' });
    await pipeline.engine.refresh(tenantC);
    for (const t of ['T1', 'T2']) await pipeline.accept(usage(tenantC, t, [{ device: 'devC1', app: 'slack', action: 'send' }]).msg);
    await pipeline.accept(usage(tenantA, 'T1', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
    await Promise.all([settled(), pipeline.engine.refresh(tenantC)]);
    const ofC = (t: string): boolean => {
      const doc = edgeDocumentOf(t)!;
      return 'tenantId' in doc ? doc.tenantId === tenantC : doc.token === directoryToken(DIRECTORY_KEY, tenantC);
    };
    const edge = (): string[] => [...downlink.retained.keys()].filter((t) => edgeDocumentOf(t) !== null);
    // What a release before bundle schema 2 left for C, beside what this one published.
    downlink.retained.set(topics.legacyPolicy(tenantC), Buffer.from('{"whole":"bundle"}'));
    const leftOfC = edge().filter(ofC);
    const remaining = edge().filter((t) => !ofC(t));
    expect(leftOfC.filter((t) => edgeDocumentOf(t)!.kind === 'policy').length).toBe(2);
    expect(leftOfC.some((t) => edgeDocumentOf(t)!.kind === 'directoryPart')).toBe(true);
    expect(remaining.length).toBeGreaterThan(0);

    // The publisher stops; C is deleted with no publisher running and its announcement lost.
    await pipeline.stop();
    muted = true;
    expect(await store.tenants.delete(tenantC)).toBe(true);
    muted = false;
    // The first listing fails (the broker's index not built yet): tried again at the next renewal.
    second.downlink.failEdgeListings = 1;
    await second.pipeline.engine.claimPublishing();
    expect(second.pipeline.engine.publishing).toBe(true);
    expect(edge().filter(ofC).sort()).toEqual([...leftOfC].sort());
    // Two renewals at once (a slow listing overtaken by the next renewal): one sweep, joined.
    const before = second.downlink.edgeListings;
    await Promise.all([second.pipeline.engine.claimPublishing(), second.pipeline.engine.claimPublishing()]);
    expect(second.downlink.edgeListings).toBe(before + 1);
    expect(edge().filter(ofC)).toEqual([]);
    expect(edge().filter((t) => !ofC(t)).sort()).toEqual([...remaining].sort());
    const cleared = second.downlink.sent.filter((m) => m.retain && m.payload.length === 0 && ofC(m.topic)).map((m) => m.topic);
    expect([...cleared].sort()).toEqual([...leftOfC].sort());
    // Parts before heads.
    const isPart = (t: string): boolean => ['policyPart', 'directoryPart'].includes(edgeDocumentOf(t)!.kind);
    expect(cleared.findIndex((t) => !isPart(t))).toBeGreaterThan(cleared.findLastIndex((t) => isPart(t)));
    expect(second.ctx.counters.get('bundle_orphans_cleared_total')).toBe(leftOfC.length);
    // Once per claim: later renewals do not list again.
    const listings = second.downlink.edgeListings;
    await second.pipeline.engine.claimPublishing();
    expect(second.downlink.edgeListings).toBe(listings);
  });

  it('with the lease store unreachable a worker starts and decides without publishing, and publishes once a claim succeeds', async () => {
    let reachable = false;
    const leases = new InProcessLeases();
    const flaky: Leases = {
      acquire: (...a) => (reachable ? leases.acquire(...a) : Promise.reject(new Error('lease store unreachable'))),
      release: (...a) => leases.release(...a),
    };
    const down = new RecordingDownlink();
    const base = testWorkerContext({ store, bus: new InProcessBus(), downlink: down, logger: silentLogger(), newId, workflow: { ...inProcessWorkflow(), leases: flaky } });
    const third = new Pipeline({ ...base, processId: 'worker-3' }, { concurrency: 4, rebuildDebounceMs: 60_000 });
    try {
      await third.start();
      expect(third.engine.publishing).toBe(false);
      await third.accept(usage(tenantA, 'T1', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
      expect(down.kinds()).toEqual(['decisions']);
      reachable = true;
      await third.engine.claimPublishing();
      expect(third.engine.publishing).toBe(true);
      expect(edgeKinds(down).sort()).toEqual(['directory', 'directory', 'directoryPart', 'directoryPart', 'policy:A:T1', 'policyPart:A:T1']);
    } finally {
      await third.stop();
      await base.close();
    }
  });

  it('a publisher paused past its lease stops publishing, and forgets what it had sent when it takes the lease back', async () => {
    // The second process runs on the test's clock: make it the publisher, then let its lease lapse.
    await pipeline.engine.stop();
    await second.pipeline.engine.claimPublishing();
    await second.pipeline.accept(usage(tenantA, 'T1', [{ device: 'devA1', app: 'slack', action: 'send' }]).msg);
    await second.pipeline.engine.refresh(tenantA);
    expect(second.pipeline.engine.publishing).toBe(true);
    clock += 11_000; // past its renewal margin, within the lease: it publishes nothing more
    expect(second.pipeline.engine.publishing).toBe(false);
    const from = second.downlink.sent.length;
    await store.rules.create(tenantA, { policy_id: policyId, app: 'tiktok', action: '*', permission: 'deny' });
    await second.pipeline.engine.refresh(tenantA);
    expect(edgeKinds(second.downlink, from)).toEqual([]);
    // Renewed before the lease ended: the same holder, its memory intact (only what changed goes).
    await second.pipeline.engine.claimPublishing();
    await second.pipeline.engine.refresh(tenantA);
    expect(edgeKinds(second.downlink, from)).toEqual(['policyPart:A:T1', 'policy:A:T1']);
    // Lapsed altogether: on taking the lease back, everything goes again, unchanged parts included.
    clock += 16_000;
    const again = second.downlink.sent.length;
    await second.pipeline.engine.claimPublishing();
    expect(edgeKinds(second.downlink, again).sort()).toEqual(['directory', 'directory', 'directoryPart', 'directoryPart', 'policy:A:T1', 'policyPart:A:T1']);
  });
});
