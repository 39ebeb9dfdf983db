import { describe, expect, it } from 'vitest';
import { filterWithin, mayPublish, maySubscribe, parseTopic, topics, TOPIC_SPECS, type MqttPrincipal } from './topics.js';

describe('topics', () => {
  it('every builder output parses back to its kind and ids', () => {
    expect(parseTopic(topics.usage('A', 'T1'))).toEqual({ kind: 'usage', tenantId: 'A', towerId: 'T1' });
    expect(parseTopic(topics.decisions('A', 'T1'))).toEqual({ kind: 'decisions', tenantId: 'A', towerId: 'T1' });
    expect(parseTopic(topics.commands('A', 'T1'))).toEqual({ kind: 'commands', tenantId: 'A', towerId: 'T1' });
    expect(parseTopic(topics.acks('A', 'T1'))).toEqual({ kind: 'acks', tenantId: 'A', towerId: 'T1' });
    expect(parseTopic(topics.discovery('T1'))).toEqual({ kind: 'discovery', towerId: 'T1' });
    expect(parseTopic(topics.status('T1'))).toEqual({ kind: 'status', towerId: 'T1' });
    expect(parseTopic(topics.policy('A'))).toEqual({ kind: 'policy', tenantId: 'A' });
    expect(Object.keys(TOPIC_SPECS).sort()).toEqual(['acks', 'commands', 'decisions', 'discovery', 'policy', 'status', 'usage']);
  });

  it('builders refuse ids that would change the topic structure', () => {
    for (const bad of ['', 'a/b', '+', '#', '$SYS', 'x'.repeat(65)]) {
      expect(() => topics.usage(bad, 'T1')).toThrow();
      expect(() => topics.status(bad)).toThrow();
    }
  });

  it('parseTopic rejects foreign and malformed topics', () => {
    for (const t of ['', 'tenants', 'tenants/A/towers/T1', 'tenants/A/towers/T1/usage/extra', 'tenants/+/policy', 'towers/T1/other', '$SYS/x', 'foo/bar']) {
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
    expect(mayPublish(t1, topics.policy('A'))).toBe(false);
    expect(mayPublish(t1, 'tenants/A/towers/T1/usage/x')).toBe(false);
    expect(maySubscribe(t1, 'tenants/+/towers/T1/commands')).toBe(true);
    expect(maySubscribe(t1, 'tenants/+/towers/T2/commands')).toBe(false);
    expect(maySubscribe(t1, 'tenants/+/policy')).toBe(true);
    expect(maySubscribe(t1, 'tenants/+/towers/T1/usage')).toBe(false);
  });
});
