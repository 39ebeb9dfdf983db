/**
 * A tiny world played against a real, plain Aedes broker. A small in-test "decider" stands in
 * for the cloud: it answers every UsageBatch with a DecisionBatch (deny for the scenario's
 * denied combos), sends a remediation Command for each deny of a premium tenant, and misbehaves
 * on purpose where the report must notice.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MessageRecorder, startTestBroker, type TestBroker } from '../edge-agent/test-broker.js';
import { createIdFactory } from '../shared/ids.js';
import { SCHEMA_VERSION, UsageBatchSchema, type Command, type DecisionBatch } from '../shared/mqtt/payloads.js';
import { filters, parseTopic, topics } from '../shared/mqtt/topics.js';
import { RecordingEnforcer } from '../edge-agent/enforcer.js';
import { publishTenant } from '../edge-agent/test-bundles.js';
import { runFleet } from './fleet.js';
import { formatReport, type FleetProgress } from './report.js';
import { deniedCombos, parseScenario, type Scenario } from './scenario.js';
import type { ProvisionedWorld } from './world.js';

const newId = createIdFactory();

function tinyScenario(): Scenario {
  // acme is premium (violations expect a command), globex free (alerts only) with the same rules.
  const tenant = (name: string, plan: 'free' | 'premium') => ({
    name,
    plan,
    apps: ['slack', 'dropbox'],
    actions: ['send', 'upload'],
    roles: [{ name: 'staff' }],
    policies: [
      {
        name: 'dlp',
        roles: ['staff'],
        rules: [{ app: 'dropbox', action: 'upload', permission: 'deny' as const, remediation: { type: 'block_app' as const, duration_s: 60 } }],
      },
    ],
    users: { count: 3, roles: ['staff'] },
    mix: [{ app: 'slack', action: 'send', weight: 1 }],
  });
  return parseScenario({
    name: 'tiny',
    seed: 3,
    duration_s: 1,
    rate_eps: 200,
    arrival: 'uniform',
    towers: { count: 3, id_prefix: 'sim' },
    tenants: [tenant('acme', 'premium'), tenant('globex', 'free')],
    violations: {
      count: 6,
      pick: [
        { tenant: 'acme', app: 'dropbox', action: 'upload' },
        { tenant: 'globex', app: 'dropbox', action: 'upload' },
      ],
    },
    outages: [{ tower_index: 1, at_s: 0.3, duration_s: 0.3 }],
    batch: { max_events: 10, max_delay_ms: 5 },
  });
}

function tinyWorld(): ProvisionedWorld {
  const scenario = tinyScenario();
  return {
    scenario,
    tenants: scenario.tenants.map((t) => ({
      name: t.name,
      id: `T-${t.name}`,
      device_ids: Array.from({ length: 4 }, (_, i) => `${t.name}-d${i}`),
      denied: deniedCombos(t),
    })),
    towers: ['sim-1', 'sim-2', 'sim-3'].map((id) => ({ id, password: `pw-${id}` })),
  };
}

interface DeciderMisbehaviour {
  /** Leave the first non-violation event unanswered. */
  skipOne?: boolean;
  /** Repeat the first decision of the first batch inside that batch. */
  duplicateOne?: boolean;
  /** Reject every event of this device as belonging to another tenant. */
  rejectDevice?: string;
  /** Never send a command for the first device that violates (its remediations stay unacked). */
  dropFirstDeviceCommands?: boolean;
  /** Also deny this app/action (a policy the towers' bundles do not have yet). */
  alsoDeny?: string;
}

/** The stand-in cloud: subscribes to all usage, answers each batch on the tower's decisions topic. */
async function startDecider(url: string, world: ProvisionedWorld, misbehave: DeciderMisbehaviour = {}) {
  const rec = await MessageRecorder.connect(url, [], 'decider');
  const tally = { skipped: new Set<string>(), rejected: 0, duplicated: false, commands: 0, droppedDevice: null as string | null, droppedViolations: 0 };
  const premium = new Set(world.tenants.filter((t) => world.scenario.tenants.find((s) => s.name === t.name)?.plan === 'premium').map((t) => t.id));
  // Like the real cloud, answer each event id once: a usage batch resent after a lost PUBACK
  // (the outage) must not produce a second decision.
  const answered = new Set<string>();
  const denied = new Map(world.tenants.map((t) => [t.id, new Set(t.denied.map((d) => `${d.app}/${d.action}`))]));
  rec.client.on('message', (topic, payload) => {
    const parsed = parseTopic(topic);
    if (parsed?.kind !== 'usage') return;
    const usage = UsageBatchSchema.parse(JSON.parse(payload.toString('utf8')));
    const deny = new Set([...(denied.get(parsed.tenantId) ?? []), ...(misbehave.alsoDeny ? [misbehave.alsoDeny] : [])]);
    const batch: DecisionBatch = { v: SCHEMA_VERSION, id: newId(), batch_id: usage.id, policy_version: 1, decided_at: Date.now(), decisions: [], rejected: [] };
    for (const e of usage.events) {
      if (answered.has(e.id)) continue;
      answered.add(e.id);
      const combo = `${e.app}/${e.action}`;
      if (misbehave.skipOne && tally.skipped.size === 0 && !deny.has(combo)) {
        tally.skipped.add(e.id);
        continue;
      }
      if (e.device_id === misbehave.rejectDevice) {
        batch.rejected.push({ event_id: e.id, reason: 'device_tenant_mismatch' });
        tally.rejected++;
        continue;
      }
      const effect = deny.has(combo) ? 'deny' : 'allow';
      batch.decisions.push({ event_id: e.id, device_id: e.device_id, effect, reason: effect === 'deny' ? 'rule' : 'default', rule_id: null, policy_id: null, severity: null });
    }
    if (misbehave.duplicateOne && !tally.duplicated && batch.decisions[0]) {
      batch.decisions.push(batch.decisions[0]);
      tally.duplicated = true;
    }
    void rec.client.publishAsync(topics.decisions(parsed.tenantId, parsed.towerId), JSON.stringify(batch), { qos: 1 });
    // Like the cloud: a premium tenant's deny becomes a command to the tower, after the decision.
    if (!premium.has(parsed.tenantId)) return;
    for (const d of batch.decisions) {
      if (d.effect !== 'deny') continue;
      if (misbehave.dropFirstDeviceCommands) {
        tally.droppedDevice ??= d.device_id;
        if (d.device_id === tally.droppedDevice) {
          tally.droppedViolations++;
          continue;
        }
      }
      const now = Date.now();
      const cmd: Command = { v: SCHEMA_VERSION, id: newId(), type: 'block_app', device_id: d.device_id, app: 'dropbox', duration_s: 60, issued_at: now, expires_at: now + 60_000 };
      tally.commands++;
      void rec.client.publishAsync(topics.commands(parsed.tenantId, parsed.towerId), JSON.stringify(cmd), { qos: 1 });
    }
  });
  await rec.client.subscribeAsync(filters.allUsage, { qos: 1 });
  return { rec, tally };
}

/** What the cloud publishes for the towers: every tenant's directory slice and bundle (its deny rules). */
async function publishBundles(cloud: MessageRecorder, world: ProvisionedWorld): Promise<void> {
  for (const t of world.tenants) {
    const grants = t.denied.map((d, i) => ({ rule_id: `R${i}`, role_id: 'staff', app: d.app, action: d.action, effect: 'deny' as const }));
    await publishTenant(cloud, { id: t.id, devices: t.device_ids.map((id) => ({ id, roles: ['staff'] })), grants }, world.towers.map((w) => w.id));
  }
}

describe('runFleet against a real Aedes broker', () => {
  let broker: TestBroker;
  let cloud: MessageRecorder;
  let decider: MessageRecorder | undefined;

  beforeEach(async () => {
    broker = await startTestBroker();
    cloud = await MessageRecorder.connect(broker.url, [filters.allStatus]);
  });

  afterEach(async () => {
    await decider?.close();
    decider = undefined;
    await cloud.close();
    await broker.close();
  });

  it('decides every event, catches every violation and survives an outage', async () => {
    const world = tinyWorld();
    await publishBundles(cloud, world);
    const started = await startDecider(broker.url, world);
    decider = started.rec;
    const progress: FleetProgress[] = [];
    // The phases a caller times (the bench's load-generator delay): playback after every agent is
    // ready (no usage batch sent before it), drained after the last decision.
    const phases: Array<{ phase: string; batches: number; decided: number }> = [];
    let batches = 0;
    const report = await runFleet(world, {
      mqttUrl: broker.url,
      drainTimeoutMs: 10_000,
      progressIntervalMs: 200,
      onProgress: (p) => progress.push(p),
      onAgent: (agent) => agent.on('sent', (item) => void (item.kind === 'usage' && batches++)),
      onPhase: (phase) => phases.push({ phase, batches, decided: progress.at(-1)?.decided ?? 0 }),
      agent: { reconnectMinMs: 10, reconnectMaxMs: 50 },
    });

    expect(report.events_sent).toBeGreaterThanOrEqual(200);
    expect(report).toMatchObject({
      events_decided: report.events_sent,
      events_without_decision: 0,
      events_unmapped: 0,
      duplicate_decisions: 0,
      unexpected_decisions: 0,
      rejected_events: 0,
      violations_injected: 6,
      violations_caught: 6,
      violations_missed: 0,
      // Three of the six violations are acme's (premium); globex is free: alerts only.
      remediations_expected: 3,
      remediations_acked: 3,
      events_dropped: 0,
      passed: true,
    });
    expect(started.tally.commands).toBe(3);
    expect(report).toMatchObject({ commands_received: 3, commands_applied: 3 });
    expect(report.commands_per_tenant.map((t) => t.applied)).toEqual([3]);
    expect(report.per_tower.map((t) => t.outages)).toEqual([0, 1, 0]);
    expect(report.per_tower.reduce((n, t) => n + t.events_sent, 0)).toBe(report.events_sent);
    expect(report.latency_ms.p50).toBeGreaterThan(0);
    expect(report.latency_ms.max).toBeGreaterThanOrEqual(report.latency_ms.p99);
    expect(progress.at(-1)).toMatchObject({ sent: report.events_sent, decided: report.events_decided });
    expect(phases.map((p) => p.phase)).toEqual(['playback', 'drained']);
    expect(phases[0]).toMatchObject({ batches: 0, decided: 0 });
    expect(phases[1]!.batches).toBeGreaterThan(0);
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
    expect(formatReport(report)).toMatch(/PASSED/);
    expect(formatReport(report)).toMatch(/remediations exp\/acked\s+3 \/ 3/);

    // The outage was a real abrupt loss: the broker published sim-2's will.
    const states = cloud.json<{ state: string }>(topics.status('sim-2')).map((s) => s.state);
    expect(states.slice(0, 3)).toEqual(['online', 'offline', 'online']);
  });

  it('counts an unanswered event and rejected events; a decision the cloud repeats is answered once', async () => {
    // No outage and no deadline: an event the cloud never answers stays without a decision.
    const world = tinyWorld();
    world.scenario = { ...world.scenario, outages: [] };
    await publishBundles(cloud, world);
    const started = await startDecider(broker.url, world, { skipOne: true, duplicateOne: true, rejectDevice: 'globex-d1' });
    decider = started.rec;
    const report = await runFleet(world, { mqttUrl: broker.url, drainTimeoutMs: 1_500, agent: { reconnectMinMs: 10, reconnectMaxMs: 50, localDecisionDeadlineMs: 0 } });

    expect(started.tally.skipped.size).toBe(1);
    expect(started.tally.duplicated).toBe(true);
    expect(report.events_without_decision).toBe(1);
    // The agent gives each event one answer, whatever the cloud repeats.
    expect(report.duplicate_decisions).toBe(0);
    expect(report.rejected_events).toBe(started.tally.rejected);
    expect(report.events_decided + report.rejected_events + report.events_without_decision).toBe(report.events_sent);
    expect(report.decisions_received).toBe(report.events_decided);
    expect(report.violations_missed).toBe(0);
    expect(report.passed).toBe(false);
    expect(formatReport(report)).toMatch(/FAILED/);
  });

  it('a long outage: the tower decides locally from its bundle, journals, replays and reconciles; nothing is lost', async () => {
    const world = tinyWorld();
    // Tower sim-2 is offline for most of the run; meanwhile the cloud's policy also denies
    // slack/send, which the towers' bundles do not say yet.
    world.scenario = { ...world.scenario, duration_s: 2, outages: [{ tower_index: 1, at_s: 0.2, duration_s: 1.6 }] };
    await publishBundles(cloud, world);
    const started = await startDecider(broker.url, world, { alsoDeny: 'slack/send' });
    decider = started.rec;
    const stateDir = await mkdtemp(join(tmpdir(), 'edgeplane-fleet-'));
    try {
      const report = await runFleet(world, { mqttUrl: broker.url, drainTimeoutMs: 10_000, stateDir, agent: { reconnectMinMs: 10, reconnectMaxMs: 50, bufferMaxEvents: 20 } });
      const sim2 = report.per_tower[1]!;
      expect(sim2.events_decided_locally).toBeGreaterThan(0);
      expect(report).toMatchObject({
        events_without_decision: 0,
        violations_missed: 0,
        events_lost: 0,
        events_dropped: 0,
        reconciled_events: report.local_decisions,
      });
      // Every slack/send the towers allowed locally, the cloud denies: each a disagreement.
      expect(report.disagreements).toBeGreaterThan(0);
      expect(report.disagreements).toBeLessThanOrEqual(report.local_decisions);
      expect(formatReport(report)).toMatch(/events lost\s+0/);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('fails a run where an expected remediation is never acked at the tower', async () => {
    const world = tinyWorld();
    await publishBundles(cloud, world);
    const started = await startDecider(broker.url, world, { dropFirstDeviceCommands: true });
    decider = started.rec;
    const report = await runFleet(world, { mqttUrl: broker.url, drainTimeoutMs: 1_500, agent: { reconnectMinMs: 10, reconnectMaxMs: 50 } });

    expect(started.tally.droppedViolations).toBeGreaterThan(0);
    expect(report).toMatchObject({
      events_without_decision: 0,
      violations_missed: 0,
      remediations_expected: 3,
      remediations_acked: 3 - started.tally.droppedViolations,
      passed: false,
    });
    expect(formatReport(report)).toMatch(/FAILED/);
  });

  it('counts a remediation acked only when the tower applied it', async () => {
    const world = tinyWorld();
    await publishBundles(cloud, world);
    decider = (await startDecider(broker.url, world)).rec;
    // The tower's equipment refuses every command: acks are 'failed', so nothing counts.
    const report = await runFleet(world, {
      mqttUrl: broker.url,
      drainTimeoutMs: 1_500,
      agent: { reconnectMinMs: 10, reconnectMaxMs: 50 },
      enforcer: () => new RecordingEnforcer(() => ({ status: 'failed', reason: 'switch unreachable' })),
    });
    expect(report).toMatchObject({ violations_missed: 0, remediations_expected: 3, remediations_acked: 0, passed: false });
  });

  it('fails fast when towers cannot connect or never receive complete bundles', async () => {
    const phases: string[] = [];
    await expect(runFleet(tinyWorld(), { mqttUrl: 'mqtt://127.0.0.1:1', readyTimeoutMs: 300, onPhase: (p) => phases.push(p) })).rejects.toThrow(/could not connect/);
    expect(phases).toEqual([]);
    // Connected, but no bundles or directory retained on this broker: devices cannot be mapped.
    await expect(runFleet(tinyWorld(), { mqttUrl: broker.url, readyTimeoutMs: 300 })).rejects.toThrow(/not ready/);
  });

  it('refuses a world whose violations are not among the tenant denied combos', async () => {
    const world = tinyWorld();
    world.tenants[0]!.denied = [];
    await expect(runFleet(world, { mqttUrl: broker.url })).rejects.toThrow(/violations\.pick\.0/);
  });
});
