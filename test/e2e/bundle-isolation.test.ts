/**
 * Least privilege at the tower (issue #11), over real sockets against the real embedded control
 * plane: a tower reads nothing about a tenant it does not serve. Tower T1 serves tenant A (its
 * devices are seen there), T2 serves B. As T2 we subscribe to every filter a tower may hold and
 * try the ones it may not, collect every message the broker delivers (retained bundles and the
 * directory included), and look for anything of tenant A: its id, device ids, user ids and names,
 * role, policy and rule ids. Only A's directory slice reaches T2, as an opaque blob. Then a device
 * of A seen at T2 for the first time is still mapped to A (through the directory), decided by the
 * cloud, and T2 starts serving A: only then does it receive A's bundle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { ErrorWithSubackPacket, type MqttClient } from 'mqtt';
import { EdgeAgent, type BundleInfo } from '../../edge-agent/edge-agent.js';
import type { Decision } from '../../shared/mqtt/payloads.js';
import { filters, parseTopic, topics } from '../../shared/mqtt/topics.js';
import { ApiClient } from '../../simulator/api-client.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

interface Tenant {
  id: string;
  owner: ApiClient;
  secrets: string[];
  devices: string[];
}

let tcp: TestControlPlane;
const tenants: Record<'A' | 'B', Tenant> = {} as Record<'A' | 'B', Tenant>;
const towers: Record<'T1' | 'T2', string> = {} as Record<'T1' | 'T2', string>;
const agents: EdgeAgent[] = [];

async function provisionTenant(name: string): Promise<Tenant> {
  const email = `owner@${name}.test`;
  const password = `${name}-owner-password-1`;
  const { tenant } = await tcp.operator.post<{ tenant: { id: string } }>('/api/v1/tenants', { name, owner: { email, password } });
  const owner = await ApiClient.login(tcp.cp.httpUrl, email, password);
  for (const [kind, key] of [['apps', 'dropbox'], ['apps', 'slack'], ['actions', 'upload'], ['actions', 'send']] as const) await owner.post(`/api/v1/${kind}`, { key, name: key });
  const { role } = await owner.post<{ role: { id: string } }>('/api/v1/roles', { name: `${name}-staff-role` });
  const { policy } = await owner.post<{ policy: { id: string } }>('/api/v1/policies', { name: `${name}-secret-policy`, severity: 'high' });
  await owner.post('/api/v1/roles/policies/assign', { role_id: role.id, policy_id: policy.id });
  const { rule } = await owner.post<{ rule: { id: string } }>('/api/v1/policy-rules', { policy_id: policy.id, app: 'dropbox', action: 'upload', permission: 'deny' });
  const { user } = await owner.post<{ user: { id: string } }>('/api/v1/users', { name: `${name}-user-name`, email: `${name}.user@example.test` });
  await owner.post('/api/v1/users/roles/assign', { user_id: user.id, role_id: role.id });
  const devices = [`${name}-phone-1`, `${name}-phone-2`];
  for (const id of devices) await owner.post('/api/v1/devices', { id, name: `${name}-device-name`, user_id: user.id });
  return { id: tenant.id, owner, devices, secrets: [tenant.id, user.id, `${name}-user-name`, `${name}.user@example.test`, role.id, policy.id, rule.id, `${name}-secret-policy`, `${name}-staff-role`, ...devices] };
}

async function towerCredential(id: string): Promise<string> {
  await tcp.operator.post('/api/v1/towers', { id, name: id });
  const cred = await tcp.operator.post<{ mqtt: { password: string } }>(`/api/v1/towers/${id}/credentials`, {});
  return cred.mqtt.password;
}

async function startAgent(towerId: string): Promise<EdgeAgent> {
  const agent = new EdgeAgent({ url: tcp.cp.mqttUrl, towerId, password: towers[towerId as 'T1' | 'T2'], batchMaxDelayMs: 2, bundleSettleMs: 100 });
  agent.on('error', () => undefined);
  agents.push(agent);
  await agent.start();
  await agent.whenReady();
  return agent;
}

/** The cloud's decision of one event observed at the agent. */
function decide(agent: EdgeAgent, device: string, app: string, action: string): Promise<{ tenantId: string | null; decision: Decision }> {
  const { event_id } = agent.observe({ device_id: device, app, action });
  return new Promise((resolve) => {
    const on = (tenantId: string | null, d: Decision, origin: { source: string }): void => {
      if (d.event_id !== event_id || origin.source !== 'cloud') return;
      agent.off('decision', on);
      resolve({ tenantId, decision: d });
    };
    agent.on('decision', on);
  });
}

function policyBundleOf(agent: EdgeAgent, tenantId: string): Promise<BundleInfo> {
  return new Promise((resolve) => {
    if (agent.knownTenants().includes(tenantId)) return resolve({ kind: 'policy', version: agent.bundleVersion(tenantId)! });
    const on = (t: string | null, b: BundleInfo): void => {
      if (t !== tenantId) return;
      agent.off('bundle', on);
      resolve(b);
    };
    agent.on('bundle', on);
  });
}

async function subscribeResult(client: MqttClient, filter: string): Promise<number> {
  try {
    return (await client.subscribeAsync(filter, { qos: 1 }))[0]?.qos ?? -1;
  } catch (err) {
    const granted = err instanceof ErrorWithSubackPacket ? (err.packet as { granted?: Array<number | object> }).granted?.[0] : undefined;
    if (typeof granted === 'number') return granted;
    throw err;
  }
}

beforeAll(async () => {
  tcp = await startTestControlPlane();
  tenants.A = await provisionTenant('alpha');
  tenants.B = await provisionTenant('bravo');
  towers.T1 = await towerCredential('T1');
  towers.T2 = await towerCredential('T2');
  // T1 serves A, T2 serves B: each tower's first stored event of a tenant.
  const t1 = await startAgent('T1');
  const t2 = await startAgent('T2');
  expect((await decide(t1, tenants.A.devices[0]!, 'slack', 'send')).tenantId).toBe(tenants.A.id);
  expect((await decide(t2, tenants.B.devices[0]!, 'slack', 'send')).tenantId).toBe(tenants.B.id);
  await policyBundleOf(t1, tenants.A.id);
  await policyBundleOf(t2, tenants.B.id);
  for (const a of agents.splice(0)) await a.stop();
}, 60_000);

afterAll(async () => {
  for (const a of agents.splice(0)) await a.stop();
  await tcp?.destroy();
});

describe('a tower reads nothing about a tenant it does not serve', () => {
  it('subscribe matrix and everything delivered to T2, over real sockets', async () => {
    const client = await mqtt.connectAsync(tcp.cp.mqttUrl, { protocolVersion: 4, clientId: 'tower-T2', username: 'T2', password: towers.T2, clean: true, reconnectPeriod: 0 });
    const received: Array<{ topic: string; payload: Buffer }> = [];
    client.on('message', (topic, payload) => received.push({ topic, payload }));
    const A = tenants.A.id;
    const B = tenants.B.id;
    const matrix: Array<[string, number]> = [
      [filters.towerDecisions('T2'), 1],
      [filters.towerCommands('T2'), 1],
      [filters.towerPolicies('T2'), 0],
      [filters.directory, 0],
      // Refused: another tower's bundles, a tenant's prefix, the old shared bundles, wildcards.
      [filters.towerPolicies('T1'), 128],
      ['tenants/+/towers/+/policy/#', 128],
      [`tenants/${A}/#`, 128],
      [`tenants/${A}/towers/T2/policy/#`, 128],
      [`tenants/${B}/#`, 128],
      ['tenants/+/policy', 128],
      [topics.legacyPolicy(A), 128],
      ['tenants/#', 128],
      ['#', 128],
      ['directory/+', 128],
      ['$SYS/#', 128],
    ];
    for (const [filter, qos] of matrix) expect({ filter, granted: await subscribeResult(client, filter) }).toEqual({ filter, granted: qos });

    // A marker after the retained messages: each connection delivers in order.
    await tcp.cp.broker.downlink.publish(topics.decisions(B, 'T2'), Buffer.from('{"marker":1}'));
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (received.some((m) => m.topic === topics.decisions(B, 'T2'))) resolve();
        else setImmediate(check);
      };
      check();
    });
    await client.endAsync();

    const kinds = received.map((m) => parseTopic(m.topic)?.kind);
    expect(kinds).toContain('policy');
    expect(kinds.filter((k) => k === 'directory')).toHaveLength(2);
    // T2's own bundle is B's; nothing under A's prefix, nothing of another tower.
    for (const m of received) {
      const p = parseTopic(m.topic);
      expect(p && 'tenantId' in p ? p.tenantId : B, m.topic).toBe(B);
      expect(p && 'towerId' in p ? p.towerId : 'T2', m.topic).toBe('T2');
    }
    // No trace of A in any topic or payload: ids, names, e-mails, devices.
    const everything = received.map((m) => `${m.topic}\n${m.payload.toString()}`).join('\n');
    for (const secret of tenants.A.secrets) expect(everything.includes(secret), secret).toBe(false);
    // Not B's user names or device ids either: bundles carry profiles and keyed hashes, not people.
    for (const secret of [tenants.B.devices[0]!, 'bravo-user-name', 'bravo.user@example.test']) expect(everything.includes(secret), secret).toBe(false);
  });

  it("maps a device seen at a tower for the first time to its tenant, and the tower then serves it", async () => {
    const t2 = await startAgent('T2');
    expect(t2.knownTenants()).toEqual([tenants.B.id]);
    // A's device, never seen at T2: the directory maps it (T2 holds no bundle of A yet).
    expect(t2.tenantOf(tenants.A.devices[1]!)).toBe(tenants.A.id);
    const bundle = policyBundleOf(t2, tenants.A.id);
    const { tenantId, decision } = await decide(t2, tenants.A.devices[1]!, 'dropbox', 'upload');
    expect(tenantId).toBe(tenants.A.id);
    expect(decision).toMatchObject({ effect: 'deny', reason: 'rule' });
    // The cloud stored it under A and now sends A's bundle to T2, which decides as the cloud does.
    await bundle;
    expect(t2.knownTenants().sort()).toEqual([tenants.A.id, tenants.B.id].sort());
    expect(t2.localDecision({ device_id: tenants.A.devices[1]!, app: 'dropbox', action: 'upload' })).toMatchObject({ tenant_id: tenants.A.id, decision: { effect: 'deny', rule_id: decision.rule_id } });
  });
});
