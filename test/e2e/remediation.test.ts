/**
 * Auto-remediation end to end over real sockets: the real control plane, a real edge agent with
 * its persistent enforcer, the REST API. Covers the command lifecycle with a tower online, offline
 * and gone past the command's expiry, and the simulator's remediation accounting.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';
import type { CommandEvent, CommandRecord } from '../../shared/domain.js';
import type { CommandAck, Decision } from '../../shared/mqtt/payloads.js';
import { ApiClient } from '../../simulator/api-client.js';
import { runFleet } from '../../simulator/fleet.js';
import { provisionWorld } from '../../simulator/provision.js';
import { loadScenario } from '../../simulator/scenario.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

const REMEDIATION_SMOKE = fileURLToPath(new URL('../../simulator/scenarios/remediation-smoke.yaml', import.meta.url));

interface World {
  owner: ApiClient;
  tenantId: string;
  device: string;
  tower: { id: string; password: string };
}

/** A premium tenant whose contractors may not upload to Dropbox (block the app for 10 minutes). */
async function provision(tcp: TestControlPlane, name: string, plan: 'free' | 'premium'): Promise<World> {
  const email = `owner@${name}.test`;
  const password = `${name}-owner-password-1`;
  const { tenant } = await tcp.operator.post<{ tenant: { id: string } }>('/api/v1/tenants', { name, plan_id: plan, owner: { email, password } });
  const owner = await ApiClient.login(tcp.cp.httpUrl, email, password);
  await owner.post('/api/v1/apps', { key: 'dropbox', name: 'Dropbox' });
  await owner.post('/api/v1/actions', { key: 'upload_file', name: 'Upload' });
  const { role } = await owner.post<{ role: { id: string } }>('/api/v1/roles', { name: 'contractor' });
  const { policy } = await owner.post<{ policy: { id: string } }>('/api/v1/policies', { name: 'dlp', severity: 'high' });
  await owner.post('/api/v1/roles/policies/assign', { role_id: role.id, policy_id: policy.id });
  await owner.post('/api/v1/policy-rules', {
    policy_id: policy.id,
    app: 'dropbox',
    action: 'upload_file',
    permission: 'deny',
    remediation: { type: 'block_app', duration_s: 600 },
  });
  const { user } = await owner.post<{ user: { id: string } }>('/api/v1/users', { name: 'dana' });
  await owner.post('/api/v1/users/roles/assign', { user_id: user.id, role_id: role.id });
  const device = `${name}-phone`;
  await owner.post('/api/v1/devices', { id: device, name: 'phone', user_id: user.id });
  const towerId = `${name}-tower`;
  await tcp.operator.post('/api/v1/towers', { id: towerId, name: towerId });
  const cred = await tcp.operator.post<{ mqtt: { password: string } }>(`/api/v1/towers/${towerId}/credentials`, {});
  return { owner, tenantId: tenant.id, device, tower: { id: towerId, password: cred.mqtt.password } };
}

function startAgent(tcp: TestControlPlane, w: World, stateDir: string): EdgeAgent {
  return new EdgeAgent({ url: tcp.cp.mqttUrl, towerId: w.tower.id, password: w.tower.password, stateDir, reconnectMinMs: 20, reconnectMaxMs: 100 });
}

/** Reports one ordinary event so the tenant's device is known to have been seen at the tower. */
async function seenAtTower(agent: EdgeAgent, w: World): Promise<void> {
  const { event_id } = agent.observe({ device_id: w.device, app: 'dropbox', action: 'open' });
  await nextDecision(agent, event_id);
}

async function ready(agent: EdgeAgent, w: World): Promise<void> {
  await agent.start();
  if (agent.tenantOf(w.device)) return;
  await new Promise<void>((resolve) => {
    const on = () => {
      if (agent.tenantOf(w.device)) {
        agent.off('bundle', on);
        resolve();
      }
    };
    agent.on('bundle', on);
  });
}

function nextAck(agent: EdgeAgent, commandId?: string): Promise<CommandAck> {
  return new Promise((resolve) => {
    const on = (_t: string, cmd: { id: string }, ack: CommandAck) => {
      if (commandId && cmd.id !== commandId) return;
      agent.off('command', on);
      resolve(ack);
    };
    agent.on('command', on);
  });
}

function nextDecision(agent: EdgeAgent, eventId: string): Promise<Decision> {
  return new Promise((resolve) => {
    const on = (_t: string | null, d: Decision) => {
      if (d.event_id !== eventId) return;
      agent.off('decision', on);
      resolve(d);
    };
    agent.on('decision', on);
  });
}

/** Resolves when the control plane announces the command reaching `status`. */
function commandReaches(tcp: TestControlPlane, status: CommandRecord['status'], id?: string): Promise<CommandRecord> {
  return new Promise((resolve) => {
    const off = tcp.cp.bus.subscribe('command.updated', (e) => {
      if (e.command.status !== status || (id && e.command.id !== id)) return;
      off();
      resolve(e.command);
    });
  });
}

describe('auto-remediation end to end', () => {
  let tcp: TestControlPlane;
  let stateDir: string;
  beforeAll(async () => {
    tcp = await startTestControlPlane({ config: { command_retry_min_ms: 20, command_retry_max_ms: 200 } });
    stateDir = await mkdtemp(join(tmpdir(), 'edgeplane-agent-state-'));
  });
  afterAll(async () => {
    await tcp.destroy();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('premium: a violation is blocked at the tower, acked, recorded step by step; the next use is answered locally', async () => {
    const w = await provision(tcp, 'prem', 'premium');
    const agent = startAgent(tcp, w, stateDir);
    await ready(agent, w);
    const applied = commandReaches(tcp, 'applied');
    const ack = nextAck(agent);
    const { event_id } = agent.observe({ device_id: w.device, app: 'dropbox', action: 'upload_file' });
    expect((await nextDecision(agent, event_id)).effect).toBe('deny');
    expect((await ack).status).toBe('applied');
    const cmd = await applied;
    const { command, events } = await w.owner.get<{ command: CommandRecord; events: CommandEvent[] }>(`/api/v1/commands/${cmd.id}`);
    expect(command).toMatchObject({ type: 'block_app', app: 'dropbox', device_id: w.device, source: 'auto', status: 'applied', tower_id: w.tower.id });
    expect(events.map((e) => e.kind)).toEqual(expect.arrayContaining(['pending', 'published', 'delivered', 'applied']));
    // Blocked now: the tower answers at once, without the cloud.
    const next = agent.observe({ device_id: w.device, app: 'dropbox', action: 'open' });
    expect(next.answered_locally).toBe(true);
    expect(await nextDecision(agent, next.event_id)).toMatchObject({ effect: 'deny', reason: 'blocked' });
    const listed = await w.owner.get<{ remedial_actions: CommandRecord[] }>('/api/v1/remedial-actions');
    expect(listed.remedial_actions.map((c) => c.id)).toContain(cmd.id);
    await agent.stop();
  });

  it('free: the same violation raises an alert and sends no command', async () => {
    const w = await provision(tcp, 'freeco', 'free');
    const agent = startAgent(tcp, w, stateDir);
    await ready(agent, w);
    const { event_id } = agent.observe({ device_id: w.device, app: 'dropbox', action: 'upload_file' });
    expect((await nextDecision(agent, event_id)).effect).toBe('deny');
    await agent.stop();
    const { alerts } = await w.owner.get<{ alerts: unknown[] }>('/api/v1/dashboard/alerts');
    expect(alerts).toHaveLength(1);
    const { remedial_actions } = await w.owner.get<{ remedial_actions: unknown[] }>('/api/v1/remedial-actions');
    expect(remedial_actions).toHaveLength(0);
  });

  it('offline tower: a manual command is held and resent, delivered on reconnect and acked; the block survives an agent restart', async () => {
    const w = await provision(tcp, 'offl', 'premium');
    let agent = startAgent(tcp, w, stateDir);
    await ready(agent, w);
    await seenAtTower(agent, w);
    await agent.stop();
    // No tower_id: the command goes to the tower where the device was last seen.
    const { command } = await w.owner.post<{ command: CommandRecord }>('/api/v1/remedial-actions', {
      device_id: w.device,
      type: 'block_device',
      duration_s: 3600,
      reason: 'lost device',
    });
    expect(command).toMatchObject({ status: 'pending', tower_id: w.tower.id, source: 'manual' });
    const applied = commandReaches(tcp, 'applied', command.id);
    agent = startAgent(tcp, w, stateDir);
    const ack = nextAck(agent, command.id);
    await ready(agent, w);
    expect((await ack).status).toBe('applied');
    await applied;
    const { events } = await w.owner.get<{ events: CommandEvent[] }>(`/api/v1/commands/${command.id}`);
    const kinds = events.map((e) => e.kind);
    expect(kinds.filter((k) => k === 'published').length).toBeGreaterThanOrEqual(1);
    expect(kinds.indexOf('delivered')).toBeLessThan(kinds.indexOf('applied'));
    await agent.stop();
    // A new agent process on the same state dir still enforces the block.
    const restarted = startAgent(tcp, w, stateDir);
    await ready(restarted, w);
    expect(restarted.observe({ device_id: w.device, app: 'dropbox', action: 'upload_file' }).answered_locally).toBe(true);
    await restarted.stop();
  });
});

describe('command expiry', () => {
  it('a command that outlives its expiry while the tower is away is marked expired and never applied', async () => {
    const tcp = await startTestControlPlane({ config: { command_ttl_s: 1, command_retry_min_ms: 20, command_retry_max_ms: 100 } });
    const stateDir = await mkdtemp(join(tmpdir(), 'edgeplane-agent-state-'));
    try {
      const w = await provision(tcp, 'expi', 'premium');
      let agent = startAgent(tcp, w, stateDir);
      await ready(agent, w);
      await seenAtTower(agent, w);
      await agent.stop();
      const expired = commandReaches(tcp, 'expired');
      const { command } = await w.owner.post<{ command: CommandRecord }>('/api/v1/remedial-actions', {
        device_id: w.device,
        type: 'block_device',
        duration_s: 600,
        tower_id: w.tower.id,
      });
      expect((await expired).id).toBe(command.id);
      // The tower comes back; its persistent session may still hand it the old command.
      agent = startAgent(tcp, w, stateDir);
      await ready(agent, w);
      expect(agent.observe({ device_id: w.device, app: 'dropbox', action: 'open' }).answered_locally).toBe(false);
      await agent.stop();
      const { command: after } = await w.owner.get<{ command: CommandRecord }>(`/api/v1/commands/${command.id}`);
      expect(after.status).toBe('expired');
    } finally {
      await tcp.destroy();
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});

describe('simulator with remediation enabled', () => {
  it('reports, per injected violation, that the expected action reached the tower and was acked', async () => {
    const tcp = await startTestControlPlane();
    try {
      const { world } = await provisionWorld(await loadScenario(REMEDIATION_SMOKE), { apiUrl: tcp.cp.httpUrl, adminEmail: ADMIN_EMAIL, adminPassword: ADMIN_PASSWORD });
      const report = await runFleet(world, { mqttUrl: tcp.cp.mqttUrl });
      expect(report.remediations_expected).toBeGreaterThan(0);
      expect(report.remediations_acked).toBe(report.remediations_expected);
      expect(report.passed).toBe(true);
    } finally {
      await tcp.destroy();
    }
  });
});
