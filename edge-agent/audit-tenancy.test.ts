/**
 * Fault injection on tenancy at the tower, with the real agent on a plain broker: an event whose
 * caller-given tenant is not the one the device directory lists (it went out on that other
 * tenant's topic, for the cloud to refuse), and decisions that arrive on another tenant's topic or
 * name another device (a confused or compromised broker: they answered the event, under the wrong
 * tenant, and reached the enforcer). No sleeps: MQTT keeps one client's messages in order.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION, type Decision, type DecisionBatch, type UsageBatch } from '../shared/mqtt/payloads.js';
import { filters, topics } from '../shared/mqtt/topics.js';
import { EdgeAgent, type DecisionOrigin, type Rejection } from './edge-agent.js';
import { RecordingEnforcer } from './enforcer.js';
import { MessageRecorder, startTestBroker, type TestBroker } from './test-broker.js';
import { buildPolicyBundle } from '../shared/policy/edge-bundle.js';
import { publishTenant, startWithBundles, testModel, type TestTenant } from './test-bundles.js';

const TOWER = 'tower-tenancy';
const ACME: TestTenant = { id: 'acme', version: 2, devices: [{ id: 'dev-1', roles: ['eng'] }], grants: [], defaultEffect: 'allow' };

describe('EdgeAgent keeps tenants apart', () => {
  let broker: TestBroker;
  let cloud: MessageRecorder;
  let agent: EdgeAgent;
  let enforcer: RecordingEnforcer;
  const decisions: Array<{ tenantId: string | null; decision: Decision; origin: DecisionOrigin }> = [];
  const rejections: Rejection[] = [];

  beforeEach(async () => {
    broker = await startTestBroker();
    cloud = await MessageRecorder.connect(broker.url, [filters.allUsage]);
    await publishTenant(cloud, ACME, [TOWER]);
    enforcer = new RecordingEnforcer();
    decisions.length = 0;
    rejections.length = 0;
    agent = new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'pw', bundleSettleMs: 30, batchMaxDelayMs: 1, localDecisionDeadlineMs: 0, enforcer });
    agent.on('error', () => undefined);
    agent.on('decision', (tenantId, decision, origin) => decisions.push({ tenantId, decision, origin }));
    agent.on('rejected', (r) => rejections.push(r));
    await startWithBundles(agent);
    expect(agent.tenantOf('dev-1')).toBe('acme');
  });

  afterEach(async () => {
    await agent.stop();
    await cloud.close();
    await broker.close();
  });

  const sentIds = (tenant: string): string[] => cloud.json<UsageBatch>(topics.usage(tenant, TOWER)).flatMap((b) => b.events.map((e) => e.id));

  it("refuses an event whose tenant_id is not the directory's tenant for the device, and publishes it under no tenant", async () => {
    const wrong = agent.observe({ device_id: 'dev-1', app: 'mail', action: 'send', tenant_id: 'globex' });
    expect(wrong).toMatchObject({ tenant_id: 'globex', answered_locally: true });
    const right = agent.observe({ device_id: 'dev-1', app: 'mail', action: 'send', tenant_id: 'acme' }).event_id;
    await cloud.waitFor(() => sentIds('acme').includes(right), 'the acme event at the cloud');
    expect(rejections).toEqual([expect.objectContaining({ event_id: wrong.event_id, tenant_id: 'globex', device_id: 'dev-1', reason: 'device_tenant_mismatch' })]);
    expect(sentIds('globex')).toEqual([]);
    expect(sentIds('acme')).toEqual([right]);
  });

  it("refuses another tower's policy bundle published on this tower's topic: the version held stays", async () => {
    const { head } = buildPolicyBundle(testModel({ ...ACME, version: 9 }));
    const outcome = new Promise<string>((resolve) => {
      agent.once('invalid', (info) => resolve(`invalid ${info.error}`));
      agent.once('bundle', (tenantId, info) => resolve(`applied ${tenantId} v${info.version}`));
    });
    await cloud.client.publishAsync(topics.policy('acme', TOWER), JSON.stringify({ ...head, id: '01JXXXXX000000000000000009', tower_id: 'tower-other', published_at: Date.now() }), { qos: 1, retain: true });
    expect(await outcome).toBe('invalid tower_id: does not match the topic');
    expect(agent.bundleVersion('acme')).toBe(2);
  });

  it('ignores a decision on another tenant\'s topic or for another device: the event keeps waiting for its own answer', async () => {
    const id = agent.observe({ device_id: 'dev-1', app: 'mail', action: 'send' }).event_id;
    const batch = await cloud.waitFor(() => cloud.json<UsageBatch>(topics.usage('acme', TOWER)).find((b) => b.events.some((e) => e.id === id)), 'the batch');
    const answer = (n: number, d: Partial<Decision>): DecisionBatch => ({
      v: SCHEMA_VERSION,
      id: `01JXXXXX000000000000000${String(n).padStart(3, '0')}`,
      batch_id: batch.id,
      policy_version: 2,
      decided_at: Date.now(),
      decisions: [{ event_id: id, device_id: 'dev-1', effect: 'deny', reason: 'rule', rule_id: 'R-forged', policy_id: 'P-forged', severity: 'high', ...d }],
      rejected: [],
    });
    await cloud.publishJson(topics.decisions('globex', TOWER), answer(1, {}));
    await cloud.publishJson(topics.decisions('acme', TOWER), answer(2, { device_id: 'dev-other' }));
    // A rejection of the event on another tenant's topic is not its answer either.
    await cloud.publishJson(topics.decisions('globex', TOWER), { ...answer(3, {}), decisions: [], rejected: [{ event_id: id, reason: 'device_tenant_mismatch' }] });
    await cloud.publishJson(topics.decisions('acme', TOWER), answer(4, { effect: 'allow', reason: 'default', rule_id: null, policy_id: null, severity: null }));
    // The first answer the event gets, whichever it is.
    await new Promise<void>((resolve) => {
      const answered = (): boolean => decisions.some((d) => d.decision.event_id === id) || rejections.some((r) => r.event_id === id);
      const check = (): void => {
        if (!answered()) return;
        agent.off('decision', check);
        agent.off('rejected', check);
        resolve();
      };
      agent.on('decision', check);
      agent.on('rejected', check);
      check();
    });
    expect(rejections).toEqual([]);
    expect(decisions.filter((d) => d.decision.event_id === id)).toEqual([
      { tenantId: 'acme', decision: expect.objectContaining({ device_id: 'dev-1', effect: 'allow' }), origin: expect.objectContaining({ source: 'cloud' }) },
    ]);
    expect(enforcer.decisions.filter((d) => d.decision.event_id === id)).toEqual([{ tenantId: 'acme', decision: expect.objectContaining({ device_id: 'dev-1', effect: 'allow' }) }]);
  });
});
