/**
 * Restoring a policy version end to end (issue #12): the real embedded control plane (broker,
 * policy workers, API, SQLite) and a real edge agent connected to it. Version n allows Dropbox
 * uploads; version n+1 denies them; restoring n makes a new version that the workers decide the
 * next event with (as n did), and that reaches the connected tower as its retained bundle, whose
 * compiled policy decides as n's content does. (The tower gets the tenant's bundle once it serves
 * the tenant, from its first event; the device directory maps the device before that.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeAgent, type BundleInfo } from '../../edge-agent/edge-agent.js';
import { startWithBundles } from '../../edge-agent/test-bundles.js';
import type { Decision, DecisionBatch } from '../../shared/mqtt/payloads.js';
import { compilePolicyIndex } from '../../shared/policy/compile-policy-index.js';
import type { PolicyContent } from '../../shared/policy/content.js';
import { modelFromContent } from '../../shared/policy/model.js';
import { ApiClient } from '../../simulator/api-client.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

let tcp: TestControlPlane;
let owner: ApiClient;
let agent: EdgeAgent;
let tenantId: string;
let policyId: string;
let allowRule: string;
const DEVICE = 'restore-phone';
const OTHER = 'restore-tablet';
/** The tenant's bundles the tower applied, newest last. */
const bundles: BundleInfo[] = [];

function bundleAtLeast(version: number): Promise<BundleInfo> {
  const held = bundles.find((b) => b.version >= version);
  if (held) return Promise.resolve(held);
  return new Promise((resolve) => {
    const on = (t: string | null, b: BundleInfo) => {
      if (t !== tenantId || b.version < version) return;
      agent.off('bundle', on);
      resolve(b);
    };
    agent.on('bundle', on);
  });
}

/** Observes one event at the tower and resolves with the cloud's decision and its batch. */
function decideAtTower(device: string, app: string, action: string): Promise<{ decision: Decision; batch: DecisionBatch }> {
  const { event_id } = agent.observe({ device_id: device, app, action });
  return new Promise((resolve) => {
    const on = (_t: string | null, d: Decision, origin: { source: string; batch?: DecisionBatch }) => {
      if (d.event_id !== event_id || origin.source !== 'cloud') return;
      agent.off('decision', on);
      resolve({ decision: d, batch: origin.batch! });
    };
    agent.on('decision', on);
  });
}

async function currentVersion(): Promise<number> {
  const { versions } = await owner.get<{ versions: Array<{ version: number }> }>('/api/v1/policy-versions?limit=1');
  return versions[0]!.version;
}

beforeAll(async () => {
  tcp = await startTestControlPlane();
  const email = 'owner@restore.test';
  const password = 'restore-owner-password-1';
  ({
    tenant: { id: tenantId },
  } = await tcp.operator.post<{ tenant: { id: string } }>('/api/v1/tenants', { name: 'restore-co', owner: { email, password } }));
  owner = await ApiClient.login(tcp.cp.httpUrl, email, password);
  for (const [kind, key] of [['apps', 'dropbox'], ['apps', 'slack'], ['actions', 'upload'], ['actions', 'send']] as const) {
    await owner.post(`/api/v1/${kind}`, { key, name: key });
  }
  const { role } = await owner.post<{ role: { id: string } }>('/api/v1/roles', { name: 'staff' });
  ({
    policy: { id: policyId },
  } = await owner.post<{ policy: { id: string } }>('/api/v1/policies', { name: 'files', severity: 'high' }));
  await owner.post('/api/v1/roles/policies/assign', { role_id: role.id, policy_id: policyId });
  ({
    rule: { id: allowRule },
  } = await owner.post<{ rule: { id: string } }>('/api/v1/policy-rules', { policy_id: policyId, app: 'dropbox', action: '*', permission: 'allow' }));
  await owner.patch('/api/v1/tenant', { default_effect: 'deny' });
  const { user } = await owner.post<{ user: { id: string } }>('/api/v1/users', { name: 'dana' });
  await owner.post('/api/v1/users/roles/assign', { user_id: user.id, role_id: role.id });
  await owner.post('/api/v1/devices', { id: DEVICE, name: 'phone', user_id: user.id });
  await owner.post('/api/v1/devices', { id: OTHER, name: 'tablet' });
  await tcp.operator.post('/api/v1/towers', { id: 'restore-tower', name: 'Restore St' });
  const cred = await tcp.operator.post<{ mqtt: { password: string } }>('/api/v1/towers/restore-tower/credentials', {});

  agent = new EdgeAgent({ url: tcp.cp.mqttUrl, towerId: 'restore-tower', password: cred.mqtt.password, batchMaxDelayMs: 2 });
  agent.on('bundle', (t, b) => {
    if (t === tenantId) bundles.push(b);
  });
  // Its tenant's directory slice applied (the policy bundle follows once the tower serves the
  // tenant), not only a quiet period passed: a loaded machine can pause longer than that first.
  await startWithBundles(agent, ['directory']);
  expect(agent.tenantOf(DEVICE)).toBe(tenantId);
});

afterAll(async () => {
  await agent?.stop();
  await tcp?.destroy();
});

describe('restoring a policy version', () => {
  it('the next event decides as version n did, at the workers and at the connected tower', async () => {
    // Version n: Dropbox allowed by the rule, everything else denied by default.
    const n = await currentVersion();
    const atN = await decideAtTower(DEVICE, 'dropbox', 'upload');
    expect(atN.decision).toMatchObject({ effect: 'allow', reason: 'rule', rule_id: allowRule });
    expect(atN.batch.policy_version).toBe(n);
    // The tower serves the tenant now: it gets the tenant's bundle.
    await bundleAtLeast(n);

    // Version n+1 denies Dropbox uploads; the tower gets it, the workers decide with it.
    const { rule: deny } = await owner.post<{ rule: { id: string } }>('/api/v1/policy-rules', { policy_id: policyId, app: 'dropbox', action: 'upload', permission: 'deny' });
    await bundleAtLeast(n + 1);
    const atN1 = await decideAtTower(DEVICE, 'dropbox', 'upload');
    expect(atN1.decision).toMatchObject({ effect: 'deny', rule_id: deny.id });
    expect(atN1.batch.policy_version).toBe(n + 1);

    // Restore n: a new version, made of n's content.
    const restored = await owner.post<{ version: { version: number; restored_from: number }; created: boolean }>(`/api/v1/policy-versions/${n}/restore`, {});
    expect(restored).toMatchObject({ created: true, version: { version: n + 2, restored_from: n } });

    // The workers: the very next event decides as version n did, under the new version number.
    const next = await decideAtTower(DEVICE, 'dropbox', 'upload');
    expect({ effect: next.decision.effect, rule_id: next.decision.rule_id }).toEqual({ effect: atN.decision.effect, rule_id: atN.decision.rule_id });
    expect(next.batch.policy_version).toBe(n + 2);

    // The tower: it holds the restored version's bundle, which decides as n's content does.
    const bundle = await bundleAtLeast(n + 2);
    expect(bundle.version).toBe(n + 2);
    const { content } = await owner.get<{ content: PolicyContent }>(`/api/v1/policy-versions/${n}`);
    const versionN = compilePolicyIndex(modelFromContent(content));
    for (const device of [DEVICE, OTHER, 'unknown-phone']) {
      for (const [app, action] of [['dropbox', 'upload'], ['dropbox', 'send'], ['slack', 'send'], ['zoom', 'join']] as const) {
        const a = agent.localDecision({ device_id: device, app, action });
        const b = versionN.decideForDevice(device, app, action);
        expect({ effect: a?.decision.effect, rule: a?.decision.rule_id ?? null }, `${device} ${app}/${action}`).toEqual({ effect: b?.effect, rule: b?.rule?.rule_id ?? null });
        if (a) expect(a.bundle_version).toBe(n + 2);
      }
    }
    expect(agent.tenantOf(DEVICE)).toBe(tenantId);

    // And the event decided after the restore is explained at the restored version.
    const explained = await owner.get<{ explanation: { policy_version: number; rule_id: string }; consistent: boolean }>(`/api/v1/app-usage/${next.decision.event_id}/explain`);
    expect(explained).toMatchObject({ consistent: true, explanation: { policy_version: n + 2, rule_id: allowRule } });
  });
});
