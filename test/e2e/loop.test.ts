/**
 * The whole embedded loop over real sockets: real agents and raw tower connections against the
 * real control plane (`startEmbedded`), provisioned through the real HTTP API.
 */
import { fileURLToPath } from 'node:url';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdFactory } from '../../shared/ids.js';
import { decisionBatchId, type DecisionBatch, type UsageBatch } from '../../shared/mqtt/payloads.js';
import { filters, topics } from '../../shared/mqtt/topics.js';
import { ApiClient } from '../../simulator/api-client.js';
import { runFleet } from '../../simulator/fleet.js';
import { provisionWorld, type TenantOwnerLogin } from '../../simulator/provision.js';
import { loadScenario } from '../../simulator/scenario.js';
import type { ProvisionedWorld } from '../../simulator/world.js';
import { connectTower, nextMessage, startTestControlPlane, ADMIN_EMAIL, ADMIN_PASSWORD, type TestControlPlane } from '../support/control-plane.js';

const SMOKE = fileURLToPath(new URL('../../simulator/scenarios/smoke.yaml', import.meta.url));
const newId = createIdFactory();

function usageBatch(events: Array<{ device: string; app: string; action: string }>): UsageBatch {
  const now = Date.now();
  return { v: 1, id: newId(), sent_at: now, events: events.map((e) => ({ id: newId(), ts: now, device_id: e.device, app: e.app, action: e.action })) };
}

interface Metrics {
  usage_total: number;
  usage_denied: number;
  alerts_open: number;
  discovered_devices: number;
}

let tcp: TestControlPlane;
let world: ProvisionedWorld;
let owner: ApiClient;
let ownerLogin: TenantOwnerLogin;
let tenantId: string;
let deviceId: string;
let tower: MqttClient | null = null;

/** The raw tower-0 connection; reconnected when an agent with the same client id took it over. */
async function rawTower(): Promise<MqttClient> {
  if (tower?.connected) return tower;
  tower?.end(true);
  tower = await connectTower(tcp.cp.mqttUrl, world.towers[0]!.id, world.towers[0]!.password);
  await tower.subscribeAsync(filters.towerDecisions(world.towers[0]!.id), { qos: 1 });
  return tower;
}

async function metrics(api: ApiClient): Promise<Metrics> {
  return (await api.get<{ metrics: Metrics }>('/api/v1/dashboard/metrics')).metrics;
}

/** Publishes a batch as the raw tower and returns the DecisionBatch that answers it. */
async function decide(batch: UsageBatch, tenant = tenantId): Promise<DecisionBatch> {
  const client = await rawTower();
  const answer = nextMessage<DecisionBatch>(client, topics.decisions(tenant, world.towers[0]!.id));
  await client.publishAsync(topics.usage(tenant, world.towers[0]!.id), JSON.stringify(batch), { qos: 1 });
  return answer;
}

beforeAll(async () => {
  tcp = await startTestControlPlane({ config: { mqtt_max_payload_bytes: 64 * 1024 } });
  const provisioned = await provisionWorld(await loadScenario(SMOKE), { apiUrl: tcp.cp.httpUrl, adminEmail: ADMIN_EMAIL, adminPassword: ADMIN_PASSWORD });
  world = provisioned.world;
  ownerLogin = provisioned.owners[0]!;
  tenantId = world.tenants[0]!.id;
  deviceId = world.tenants[0]!.device_ids[0]!;
  owner = await ApiClient.login(tcp.cp.httpUrl, ownerLogin.email, ownerLogin.password);
});

afterAll(async () => {
  await tower?.endAsync();
  await tcp?.destroy();
});

describe('embedded control plane, end to end', () => {
  it('plays a fleet: every event decided, every injected violation caught and alerted', async () => {
    const before = await metrics(owner);
    const report = await runFleet(world, { mqttUrl: tcp.cp.mqttUrl });
    expect(report.events_sent).toBeGreaterThan(100);
    expect(report.events_without_decision).toBe(0);
    expect(report.violations_injected).toBe(3);
    expect(report.violations_caught).toBe(3);
    expect(report.passed).toBe(true);
    const after = await metrics(owner);
    // Every decided event is stored exactly once, whatever the outage redelivered.
    expect(after.usage_total - before.usage_total).toBe(report.events_decided);
    expect(after.usage_denied).toBeGreaterThanOrEqual(3);
    const { alerts } = await owner.get<{ alerts: Array<{ rule_id: string; count: number; severity: string }> }>('/api/v1/dashboard/alerts');
    expect(alerts.length).toBeGreaterThan(0);
    expect(alerts.every((a) => a.severity === 'high')).toBe(true);
  });

  it('a violation creates an alert; the next one by the same device bumps its count', async () => {
    const device = world.tenants[0]!.device_ids[1]!;
    const first = await decide(usageBatch([{ device, app: 'dropbox', action: 'upload_file' }]));
    expect(first.decisions[0]).toMatchObject({ effect: 'deny', reason: 'rule', severity: 'high' });
    const ruleId = first.decisions[0]!.rule_id!;
    await decide(usageBatch([{ device, app: 'dropbox', action: 'upload_file' }]));
    const { alerts } = await owner.get<{ alerts: Array<{ device_id: string; rule_id: string; count: number }> }>(`/api/v1/dashboard/alerts?device_id=${device}`);
    const mine = alerts.filter((a) => a.rule_id === ruleId);
    expect(mine).toHaveLength(1);
    expect(mine[0]!.count).toBeGreaterThanOrEqual(2);
  });

  it('an unknown device becomes a discovered device of that tenant only', async () => {
    const other = await tcp.operator.post<{ tenant: { id: string } }>('/api/v1/tenants', {
      name: 'other-co',
      owner: { email: 'owner@other.test', password: 'other-owner-password-1' },
    });
    const otherOwner = await ApiClient.login(tcp.cp.httpUrl, 'owner@other.test', 'other-owner-password-1');
    const answer = await decide(usageBatch([{ device: 'ghost-device-1', app: 'slack', action: 'send_message' }]));
    expect(answer.decisions[0]).toMatchObject({ device_id: 'ghost-device-1', reason: 'unknown_device', effect: 'allow' });
    const mine = await owner.get<{ devices: Array<{ device_id: string; tower_id: string }> }>('/api/v1/devices/discovered');
    expect(mine.devices.map((d) => d.device_id)).toContain('ghost-device-1');
    const theirs = await otherOwner.get<{ devices: Array<{ device_id: string }> }>('/api/v1/devices/discovered');
    expect(theirs.devices).toHaveLength(0);
    expect(other.tenant.id).not.toBe(tenantId);
  });

  it('a redelivered batch (same event ids) is answered again but stores no duplicate rows or alerts', async () => {
    const device = world.tenants[0]!.device_ids[2]!;
    const batch = usageBatch([
      { device, app: 'dropbox', action: 'upload_file' },
      { device, app: 'slack', action: 'send_message' },
    ]);
    const before = await metrics(owner);
    const a1 = await decide(batch);
    const alertsAfterFirst = (await owner.get<{ alerts: Array<{ count: number }> }>(`/api/v1/dashboard/alerts?device_id=${device}`)).alerts;
    const a2 = await decide(batch);
    expect(a2.batch_id).toBe(a1.batch_id);
    expect(a2.decisions.map((d) => d.effect)).toEqual(a1.decisions.map((d) => d.effect));
    const after = await metrics(owner);
    expect(after.usage_total - before.usage_total).toBe(2);
    const alertsAfterSecond = (await owner.get<{ alerts: Array<{ count: number }> }>(`/api/v1/dashboard/alerts?device_id=${device}`)).alerts;
    expect(alertsAfterSecond).toEqual(alertsAfterFirst);
    const usage = await owner.get<{ usage: Array<{ id: string }> }>(`/api/v1/app-usage?device_id=${device}`);
    expect(new Set(usage.usage.map((u) => u.id)).size).toBe(usage.usage.length);
  });

  it("answers a tower's own batch on its connection before the PUBACK, at QoS 0 (nothing queued in its session)", async () => {
    const client = await rawTower();
    const order: string[] = [];
    const decisionsTopic = topics.decisions(tenantId, world.towers[0]!.id);
    const onMessage = (topic: string, _payload: Buffer, packet: IPublishPacket) => {
      if (topic === decisionsTopic) order.push(`decision qos ${packet.qos}`);
    };
    client.on('message', onMessage);
    try {
      const batch = usageBatch([{ device: deviceId, app: 'slack', action: 'send_message' }]);
      await client.publishAsync(topics.usage(tenantId, world.towers[0]!.id), JSON.stringify(batch), { qos: 1 });
      order.push('puback');
    } finally {
      client.off('message', onMessage);
    }
    expect(order).toEqual(['decision qos 0', 'puback']);
  });

  it('answers a batch the tower published at QoS 0 (no PUBACK to follow the answer, never resent) at QoS 1', async () => {
    const client = await rawTower();
    const decisionsTopic = topics.decisions(tenantId, world.towers[0]!.id);
    const qos = new Promise<number>((resolve) => {
      const onMessage = (topic: string, _payload: Buffer, packet: IPublishPacket) => {
        if (topic !== decisionsTopic) return;
        client.off('message', onMessage);
        resolve(packet.qos);
      };
      client.on('message', onMessage);
    });
    const batch = usageBatch([{ device: deviceId, app: 'slack', action: 'send_message' }]);
    await client.publishAsync(topics.usage(tenantId, world.towers[0]!.id), JSON.stringify(batch), { qos: 0 });
    expect(await qos).toBe(1);
  });

  it('a tower that loses its connection before the PUBACK sends the batch again and gets the same answer; stored once', async () => {
    await tower?.endAsync();
    tower = null;
    const t = world.towers[0]!;
    const client = await mqtt.connectAsync(tcp.cp.mqttUrl, { protocolVersion: 4, clientId: `tower-${t.id}`, username: t.id, password: t.password, clean: false, reconnectPeriod: 50 });
    try {
      await client.subscribeAsync(filters.towerDecisions(t.id), { qos: 1 });
      const batch = usageBatch([{ device: deviceId, app: 'slack', action: 'send_message' }]);
      const answers: DecisionBatch[] = [];
      client.on('message', (topic, payload) => {
        if (topic === topics.decisions(tenantId, t.id)) answers.push(JSON.parse(payload.toString()) as DecisionBatch);
      });
      // The connection is cut the moment the PUBLISH is written: its PUBACK, and any answer, are lost.
      let cut = false;
      client.on('packetsend', (packet) => {
        if (packet.cmd === 'publish' && !cut) {
          cut = true;
          client.stream.destroy();
        }
      });
      const before = await metrics(owner);
      // mqtt.js sends it again on the next connection (clean=false) and resolves on that PUBACK,
      // which follows the answer on the same connection.
      await client.publishAsync(topics.usage(tenantId, t.id), JSON.stringify(batch), { qos: 1 });
      expect(cut).toBe(true);
      expect(answers.length).toBeGreaterThanOrEqual(1);
      for (const a of answers) expect(a).toMatchObject({ id: decisionBatchId(batch.id), decisions: [{ event_id: batch.events[0]!.id, effect: 'allow' }] });
      expect((await metrics(owner)).usage_total - before.usage_total).toBe(1);
    } finally {
      await client.endAsync();
    }
  });

  it('malformed payloads are dropped and counted, and the pipeline keeps serving other towers', async () => {
    const t1 = world.towers[1]!;
    const bad = await connectTower(tcp.cp.mqttUrl, t1.id, t1.password);
    const usageTopic = topics.usage(tenantId, t1.id);
    await bad.publishAsync(usageTopic, '{not json', { qos: 1 });
    await bad.publishAsync(usageTopic, JSON.stringify({ v: 1, id: 'x', events: [] }), { qos: 1 });
    await bad.publishAsync(usageTopic, JSON.stringify({ ...usageBatch([{ device: deviceId, app: 'slack', action: 'send_message' }]), v: 9 }), { qos: 1 });
    const counters = tcp.cp.counters;
    expect(counters.get('uplink_dropped_total', { tower: t1.id, kind: 'usage', reason: 'invalid_payload' })).toBe(3);
    // Oversize: the broker refuses it and drops that connection only.
    const closed = new Promise<void>((r) => bad.once('close', () => r()));
    bad.publish(usageTopic, Buffer.alloc(70 * 1024, 'x'), { qos: 1 });
    await closed;
    expect(counters.get('mqtt_rejected_total', { reason: 'payload_too_large' })).toBeGreaterThanOrEqual(1);
    bad.end(true);
    // The other tower is still answered.
    const ok = await decide(usageBatch([{ device: deviceId, app: 'slack', action: 'send_message' }]));
    expect(ok.decisions).toHaveLength(1);
  });

  it('rejects and counts an event whose device belongs to another tenant', async () => {
    const other = await tcp.operator.post<{ tenant: { id: string } }>('/api/v1/tenants', { name: 'third-co' });
    const answer = await decide(usageBatch([{ device: deviceId, app: 'slack', action: 'send_message' }]), other.tenant.id);
    expect(answer.decisions).toHaveLength(0);
    expect(answer.rejected).toEqual([{ event_id: expect.any(String), reason: 'device_tenant_mismatch' }]);
    expect(tcp.cp.counters.get('usage_events_rejected_total', { tower: world.towers[0]!.id, reason: 'device_tenant_mismatch' })).toBe(1);
  });

  it('a policy change through the API takes effect for the next event, without restart', async () => {
    const allowed = await decide(usageBatch([{ device: deviceId, app: 'slack', action: 'send_message' }]));
    expect(allowed.decisions[0]!.effect).toBe('allow');
    const { policy } = await owner.post<{ policy: { id: string } }>('/api/v1/policies', { name: 'quiet hours', severity: 'low' });
    const { roles } = await owner.get<{ roles: Array<{ id: string }> }>('/api/v1/roles');
    await owner.post('/api/v1/roles/policies/assign', { role_id: roles[0]!.id, policy_id: policy.id });
    const { rule } = await owner.post<{ rule: { id: string } }>('/api/v1/policy-rules', { policy_id: policy.id, app: 'slack', action: 'send_message', permission: 'deny' });
    const denied = await decide(usageBatch([{ device: deviceId, app: 'slack', action: 'send_message' }]));
    expect(denied.decisions[0]).toMatchObject({ effect: 'deny', rule_id: rule.id, policy_id: policy.id });
    expect(denied.policy_version).toBeGreaterThan(allowed.policy_version);
    await owner.delete(`/api/v1/policy-rules/${rule.id}`);
    const again = await decide(usageBatch([{ device: deviceId, app: 'slack', action: 'send_message' }]));
    expect(again.decisions[0]!.effect).toBe('allow');
  });
});

describe('restart on the same data dir', () => {
  it('keeps tenants, devices, policies and alerts, and decides again', async () => {
    let cp = await startTestControlPlane();
    const { world: w, owners } = await provisionWorld(await loadScenario(SMOKE), { apiUrl: cp.cp.httpUrl, adminEmail: ADMIN_EMAIL, adminPassword: ADMIN_PASSWORD });
    const t = w.towers[0]!;
    const tenant = w.tenants[0]!;
    let client = await connectTower(cp.cp.mqttUrl, t.id, t.password);
    await client.subscribeAsync(filters.towerDecisions(t.id), { qos: 1 });
    const answer = nextMessage<DecisionBatch>(client, topics.decisions(tenant.id, t.id));
    await client.publishAsync(topics.usage(tenant.id, t.id), JSON.stringify(usageBatch([{ device: tenant.device_ids[0]!, app: 'dropbox', action: 'upload_file' }])), { qos: 1 });
    expect((await answer).decisions[0]!.effect).toBe('deny');
    await client.endAsync();
    let api = await ApiClient.login(cp.cp.httpUrl, owners[0]!.email, owners[0]!.password);
    const snapshot = async () => ({
      devices: (await api.get<{ devices: unknown[] }>('/api/v1/devices?limit=1000')).devices.length,
      policies: (await api.get<{ policies: unknown[] }>('/api/v1/policies')).policies,
      alerts: (await api.get<{ alerts: unknown[] }>('/api/v1/dashboard/alerts')).alerts,
      tenants: (await cp.operator.get<{ tenants: unknown[] }>('/api/v1/tenants')).tenants,
    });
    const before = await snapshot();
    await cp.stop();

    cp = await startTestControlPlane({ dataDir: cp.dataDir });
    try {
      api = await ApiClient.login(cp.cp.httpUrl, owners[0]!.email, owners[0]!.password);
      expect(await snapshot()).toEqual(before);
      expect(before.devices).toBe(tenant.device_ids.length);
      // Tower credentials survive too, and the index is rebuilt from the store.
      client = await connectTower(cp.cp.mqttUrl, t.id, t.password);
      await client.subscribeAsync(filters.towerDecisions(t.id), { qos: 1 });
      const again = nextMessage<DecisionBatch>(client, topics.decisions(tenant.id, t.id));
      await client.publishAsync(topics.usage(tenant.id, t.id), JSON.stringify(usageBatch([{ device: tenant.device_ids[0]!, app: 'dropbox', action: 'upload_file' }])), { qos: 1 });
      expect((await again).decisions[0]!.effect).toBe('deny');
      await client.endAsync();
    } finally {
      await cp.destroy();
    }
  });
});
