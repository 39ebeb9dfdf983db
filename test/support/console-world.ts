/**
 * What the console's browser tests play against: a tenant provisioned through the public API
 * (apps, actions, a "contractor" role holding a DLP policy without rules yet, one user with a
 * phone, an admin and an analyst console account) and its own tower, with coordinates and a
 * credential, served by a real edge agent (persistent enforcer, so commands are applied and
 * acknowledged). Not a test file itself.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';
import type { Decision } from '../../shared/mqtt/payloads.js';
import { ApiClient } from '../../simulator/api-client.js';
import type { TestControlPlane } from './control-plane.js';

export const CONSOLE_PASSWORD = 'console-e2e-password-1';

export interface ConsoleTenant {
  name: string;
  tenantId: string;
  owner: ApiClient;
  emails: { owner: string; admin: string; analyst: string };
  userId: string;
  userName: string;
  /** A registered device of the user. */
  device: string;
  policyId: string;
  tower: { id: string; password: string };
}

export async function provisionConsoleTenant(
  tcp: TestControlPlane,
  name: string,
  opts: { plan?: 'free' | 'premium'; lat: number; lon: number },
): Promise<ConsoleTenant> {
  const emails = { owner: `owner@${name}.test`, admin: `admin@${name}.test`, analyst: `analyst@${name}.test` };
  const { tenant } = await tcp.operator.post<{ tenant: { id: string } }>('/api/v1/tenants', {
    name,
    plan_id: opts.plan ?? 'premium',
    owner: { email: emails.owner, password: CONSOLE_PASSWORD },
  });
  const owner = await ApiClient.login(tcp.cp.httpUrl, emails.owner, CONSOLE_PASSWORD);
  for (const role of ['admin', 'analyst'] as const) {
    await owner.post('/api/v1/console-users', { email: emails[role], password: CONSOLE_PASSWORD, console_role: role });
  }
  for (const [key, label] of [
    ['dropbox', 'Dropbox'],
    ['slack', 'Slack'],
  ]) {
    await owner.post('/api/v1/apps', { key, name: label });
  }
  for (const [key, label] of [
    ['upload_file', 'Upload a file'],
    ['open', 'Open'],
    ['send_message', 'Send a message'],
  ]) {
    await owner.post('/api/v1/actions', { key, name: label });
  }
  const { role } = await owner.post<{ role: { id: string } }>('/api/v1/roles', { name: 'contractor' });
  const { policy } = await owner.post<{ policy: { id: string } }>('/api/v1/policies', { name: `${name} data-loss-prevention`, severity: 'high' });
  await owner.post('/api/v1/roles/policies/assign', { role_id: role.id, policy_id: policy.id });
  const userName = `Dana of ${name}`;
  const { user } = await owner.post<{ user: { id: string } }>('/api/v1/users', { name: userName });
  await owner.post('/api/v1/users/roles/assign', { user_id: user.id, role_id: role.id });
  const device = `${name}-phone`;
  await owner.post('/api/v1/devices', { id: device, name: `${name} phone`, user_id: user.id });
  const towerId = `${name}-tower`;
  await tcp.operator.post('/api/v1/towers', { id: towerId, name: `${name} main street`, lat: opts.lat, lon: opts.lon, radius_m: 1500 });
  const cred = await tcp.operator.post<{ mqtt: { password: string } }>(`/api/v1/towers/${towerId}/credentials`, {});
  return { name, tenantId: tenant.id, owner, emails, userId: user.id, userName, device, policyId: policy.id, tower: { id: towerId, password: cred.mqtt.password } };
}

export interface RunningAgent {
  agent: EdgeAgent;
  /** Publishes one usage event and resolves with the cloud's decision for it. */
  decide(deviceId: string, app: string, action: string, tenantId?: string): Promise<Decision>;
  stop(): Promise<void>;
}

/** Bounds a wait of the set-up: a hang fails with what was awaited and the agent's state, not a bare hook timeout. */
const SETUP_WAIT_MS = 30_000;

function within<T>(p: Promise<T>, what: string, agent: EdgeAgent): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const state = { online: agent.online, known_tenants: agent.knownTenants(), stats: agent.stats() };
      reject(new Error(`${what}: nothing within ${SETUP_WAIT_MS} ms; agent ${JSON.stringify(state)}`));
    }, SETUP_WAIT_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** A real edge agent for the tenant's tower, started once its policy bundle names the tenant. */
export async function startTowerAgent(tcp: TestControlPlane, t: ConsoleTenant): Promise<RunningAgent> {
  const stateDir = await mkdtemp(join(tmpdir(), 'edgeplane-console-agent-'));
  const agent = new EdgeAgent({ url: tcp.cp.mqttUrl, towerId: t.tower.id, password: t.tower.password, stateDir, reconnectMinMs: 20, reconnectMaxMs: 200 });
  const bundled = new Promise<void>((resolve) => {
    const on = () => {
      if (agent.tenantOf(t.device)) {
        agent.off('bundle', on);
        resolve();
      }
    };
    agent.on('bundle', on);
  });
  await agent.start();
  if (!agent.tenantOf(t.device)) await within(bundled, `the bundle naming ${t.device}'s tenant at ${t.tower.id}`, agent);
  return {
    agent,
    decide: (deviceId, app, action, tenantId) => {
      let eventId = '';
      const decided = new Promise<Decision>((resolve) => {
        const { event_id } = agent.observe({ device_id: deviceId, app, action, ...(tenantId !== undefined && { tenant_id: tenantId }) });
        eventId = event_id;
        const on = (_topic: string | null, d: Decision) => {
          if (d.event_id !== event_id) return;
          agent.off('decision', on);
          resolve(d);
        };
        agent.on('decision', on);
      });
      return within(decided, `the decision of event ${eventId} (${deviceId} ${app} ${action})`, agent);
    },
    stop: async () => {
      await agent.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}
