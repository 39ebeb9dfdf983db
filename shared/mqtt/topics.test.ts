import { describe, expect, it } from 'vitest';
import { filters, filterWithin, mayPublish, mayReceive, maySubscribe, mqttIdentity, parseTopic, subscriptionMaxQos, topics, TOPIC_SPECS, type MqttPrincipal } from './topics.js';

describe('topics', () => {
  it('every builder output parses back to its kind and ids', () => {
    expect(parseTopic(topics.usage('A', 'T1'))).toEqual({ kind: 'usage', tenantId: 'A', towerId: 'T1' });
    expect(parseTopic(topics.decisions('A', 'T1'))).toEqual({ kind: 'decisions', tenantId: 'A', towerId: 'T1' });
    expect(parseTopic(topics.commands('A', 'T1'))).toEqual({ kind: 'commands', tenantId: 'A', towerId: 'T1' });
    expect(parseTopic(topics.acks('A', 'T1'))).toEqual({ kind: 'acks', tenantId: 'A', towerId: 'T1' });
    expect(parseTopic(topics.discovery('T1'))).toEqual({ kind: 'discovery', towerId: 'T1' });
    expect(parseTopic(topics.status('T1'))).toEqual({ kind: 'status', towerId: 'T1' });
    expect(parseTopic(topics.sessions('T1'))).toEqual({ kind: 'sessions', towerId: 'T1' });
    expect(parseTopic(topics.carrierTowers('C1'))).toEqual({ kind: 'carrierTowers', carrierId: 'C1' });
    expect(parseTopic(topics.carrierDevices('C1'))).toEqual({ kind: 'carrierDevices', carrierId: 'C1' });
    expect(parseTopic(topics.carrierResults('C1'))).toEqual({ kind: 'carrierResults', carrierId: 'C1' });
    expect(parseTopic(topics.policy('A', 'T1'))).toEqual({ kind: 'policy', tenantId: 'A', towerId: 'T1' });
    expect(parseTopic(topics.policyPart('A', 'T1', 12))).toEqual({ kind: 'policyPart', tenantId: 'A', towerId: 'T1', part: 12 });
    expect(parseTopic(topics.directory('tok_-1'))).toEqual({ kind: 'directory', token: 'tok_-1' });
    expect(parseTopic(topics.directoryPart('tok', 0))).toEqual({ kind: 'directoryPart', token: 'tok', part: 0 });
    expect(parseTopic(topics.legacyPolicy('A'))).toEqual({ kind: 'legacyPolicy', tenantId: 'A' });
    expect(Object.keys(TOPIC_SPECS).sort()).toEqual([
      'acks', 'carrierDevices', 'carrierResults', 'carrierTowers', 'commands', 'decisions', 'directory', 'directoryPart', 'discovery', 'legacyPolicy', 'policy', 'policyPart', 'sessions', 'status', 'usage',
    ]);
  });

  it('builders refuse part numbers outside 0…65535', () => {
    expect(() => topics.policyPart('A', 'T1', -1)).toThrow();
    expect(() => topics.directoryPart('t', 65_536)).toThrow();
    expect(() => topics.directoryPart('t', 1.5)).toThrow();
  });

  it('builders refuse ids that would change the topic structure', () => {
    for (const bad of ['', 'a/b', '+', '#', '$SYS', 'x'.repeat(65)]) {
      expect(() => topics.usage(bad, 'T1')).toThrow();
      expect(() => topics.status(bad)).toThrow();
    }
  });

  it('parseTopic rejects foreign and malformed topics', () => {
    for (const t of ['', 'tenants', 'tenants/A/towers/T1', 'tenants/A/towers/T1/usage/extra', 'tenants/+/policy', 'towers/T1/other', '$SYS/x', 'foo/bar', 'tenants/A/towers/T1/policy/01', 'tenants/A/towers/T1/policy/65536', 'tenants/A/towers/T1/policy/x', 'directory', 'directory/+', 'directory/t/1/2', 'carriers/C1/feeds', 'carriers/C1/feeds/other', 'carriers/+/feeds/towers', 'carriers/C1/towers']) {
      expect(parseTopic(t)).toBeNull();
    }
  });

  it.each([
    ['tenants/A/towers/T1/usage', 'tenants/+/towers/T1/usage', true],
    ['tenants/+/towers/T1/decisions', 'tenants/+/towers/T1/decisions', true],
    ['tenants/+/towers/+/decisions', 'tenants/+/towers/T1/decisions', false],
    ['tenants/#', 'tenants/+/towers/T1/decisions', false],
    ['#', 'tenants/A/#', false],
    ['tenants/A/towers/#', 'tenants/A/#', true],
    ['tenants/B/towers/#', 'tenants/A/#', false],
    ['tenants/+/policy', 'tenants/A/#', false],
    ['$SYS/#', 'tenants/#', false],
    ['$SYS/broker', '#', false],
    ['tenants/A', 'tenants/A/#', true],
  ])('filterWithin(%s, %s) = %s', (filter, allowed, expected) => {
    expect(filterWithin(filter, allowed)).toBe(expected);
  });

  it('a tower may publish only its own uplinks and subscribe only to its own downlinks', () => {
    const t1: MqttPrincipal = { kind: 'tower', towerId: 'T1', credentialId: 'c' };
    expect(mayPublish(t1, topics.usage('A', 'T1'))).toBe(true);
    expect(mayPublish(t1, topics.usage('A', 'T2'))).toBe(false);
    expect(mayPublish(t1, topics.decisions('A', 'T1'))).toBe(false);
    expect(mayPublish(t1, topics.policy('A', 'T1'))).toBe(false);
    expect(mayPublish(t1, topics.directory('tok'))).toBe(false);
    expect(mayPublish(t1, 'tenants/A/towers/T1/usage/x')).toBe(false);
    expect(maySubscribe(t1, 'tenants/+/towers/T1/commands')).toBe(true);
    expect(maySubscribe(t1, 'tenants/+/towers/T2/commands')).toBe(false);
    expect(maySubscribe(t1, 'tenants/+/towers/T1/policy/#')).toBe(true);
    expect(maySubscribe(t1, 'directory/#')).toBe(true);
    // Another tower's bundles, and the old shared bundles of every tenant, are not its own.
    expect(maySubscribe(t1, 'tenants/+/towers/T2/policy/#')).toBe(false);
    expect(maySubscribe(t1, 'tenants/+/policy')).toBe(false);
    expect(maySubscribe(t1, 'tenants/+/towers/T1/usage')).toBe(false);
    // Exactly its four filters: not one per tenant id, which would let it hold thousands.
    expect(maySubscribe(t1, 'tenants/A/towers/T1/decisions')).toBe(false);
    expect(maySubscribe(t1, 'tenants/A/towers/T1/policy/#')).toBe(false);
    expect(maySubscribe(t1, 'tenants/A/policy')).toBe(false);
  });

  it('uplinks reach internal services only; everything else as the subscribe ACL says', () => {
    const t1: MqttPrincipal = { kind: 'tower', towerId: 'T1', credentialId: 'c' };
    const consoleA: MqttPrincipal = { kind: 'console', tenantId: 'A', userId: 'u1' };
    const service: MqttPrincipal = { kind: 'service', name: 'worker' };
    for (const uplink of [topics.usage('A', 'T1'), topics.acks('A', 'T1'), topics.status('T1'), topics.discovery('T1')]) {
      expect([mayReceive(t1, uplink), mayReceive(consoleA, uplink), mayReceive(service, uplink)]).toEqual([false, false, true]);
    }
    expect(mayReceive(t1, topics.decisions('A', 'T1'))).toBe(true);
    expect(mayReceive(t1, topics.decisions('A', 'T2'))).toBe(false);
    expect(mayReceive(consoleA, topics.decisions('A', 'T2'))).toBe(true);
    expect(mayReceive(consoleA, topics.decisions('B', 'T2'))).toBe(false);
    // A tower receives its own bundles (head and parts) and the directory, nothing of another tower's.
    expect(mayReceive(t1, topics.policy('A', 'T1'))).toBe(true);
    expect(mayReceive(t1, topics.policyPart('A', 'T1', 3))).toBe(true);
    expect(mayReceive(t1, topics.policy('A', 'T2'))).toBe(false);
    expect(mayReceive(t1, topics.policyPart('A', 'T2', 0))).toBe(false);
    expect(mayReceive(t1, topics.directoryPart('tok', 0))).toBe(true);
    expect(mayReceive(t1, topics.legacyPolicy('A'))).toBe(false);
    expect(mayReceive(consoleA, topics.directory('tok'))).toBe(false);
  });

  it('grants QoS 0 where nothing should be queued for an offline session', () => {
    const t1: MqttPrincipal = { kind: 'tower', towerId: 'T1', credentialId: 'c' };
    expect(subscriptionMaxQos(t1, filters.towerPolicies('T1'))).toBe(0);
    expect(subscriptionMaxQos(t1, filters.directory)).toBe(0);
    expect(subscriptionMaxQos(t1, filters.towerCommands('T1'))).toBe(1);
    expect(subscriptionMaxQos({ kind: 'console', tenantId: 'A', userId: 'u1' }, 'tenants/A/#')).toBe(0);
    expect(subscriptionMaxQos({ kind: 'service', name: 'w' }, 'tenants/#')).toBe(1);
  });

  it('pins console client ids to their user', () => {
    expect(mqttIdentity.consoleClientId('u1')).toBe('console-u1');
    expect(mqttIdentity.consoleClientId('u1', 'tab-2')).toBe('console-u1.tab-2');
    expect(mqttIdentity.isConsoleClientIdOf('console-u1', 'u1')).toBe(true);
    expect(mqttIdentity.isConsoleClientIdOf('console-u1.tab-2', 'u1')).toBe(true);
    // A user id that is a prefix of another's must not reach the other's ids.
    expect(mqttIdentity.isConsoleClientIdOf('console-u1-x', 'u1')).toBe(false);
    expect(mqttIdentity.isConsoleClientIdOf('console-u1.', 'u1')).toBe(false);
    expect(mqttIdentity.isConsoleClientIdOf('console-u1.a.b', 'u1')).toBe(false);
    expect(mqttIdentity.isConsoleClientIdOf('console-u2', 'u1')).toBe(false);
    expect(() => mqttIdentity.consoleClientId('u1', 'a.b')).toThrow();
  });
});
