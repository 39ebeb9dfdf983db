/**
 * Unit tests of the authorization hooks where sockets cannot reach: authorizeForward as the last
 * line of defence, and the orphaned-will path aedes uses for clients of a dead cluster node.
 */
import type { AedesPublishPacket, Client, PublishPacket } from 'aedes';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../shared/logger.js';
import { Counters } from '../shared/metrics.js';
import { topics, type MqttPrincipal } from '../shared/mqtt/topics.js';
import { aclDenialReason, createAuthorizeHooks } from './authorize.js';
import { RefusalLog } from './refusal-log.js';
import { RetainedQuota } from './retained-quota.js';
import { newSession, Sessions } from './sessions.js';
import { RecordingSink } from './test-support.js';

/** The hooks only read `id` and `closed` from the client; aedes' Client type is far wider. */
const fakeClient = (id: string, closedFlag = false) => ({ id, closed: closedFlag }) as unknown as Client;

function setup(stopping = false) {
  const sessions = new Sessions();
  const counters = new Counters();
  const sink = new RecordingSink();
  const hooks = createAuthorizeHooks({
    sessions,
    counters,
    logger: silentLogger(),
    refusals: new RefusalLog(silentLogger(), 1000),
    retained: new RetainedQuota({ perOwnerBytes: 1024, totalMessages: 10, totalBytes: 10_000 }),
    consumed: new WeakSet(),
    refusedSubscriptions: new WeakSet(),
    maxPayloadBytes: 1024,
    maxSubscriptionsPerClient: 8,
    now: () => 42,
    sink: () => sink,
    stopping: () => stopping,
    movedAway: () => false,
  });
  const as = (principal: MqttPrincipal, id = 'c') => {
    const client = fakeClient(id);
    sessions.open(client, newSession({ principal, bucket: null, statusWill: false, deliveries: null }));
    return client;
  };
  return { sessions, counters, sink, hooks, as };
}

const packet = (topic: string) => ({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, retain: false, dup: false }) as unknown as AedesPublishPacket;

function publish(hooks: ReturnType<typeof setup>['hooks'], client: Client | null, p: PublishPacket): Promise<Error | null> {
  return new Promise((resolve) => hooks.authorizePublish(client, p, (err) => resolve(err ?? null)));
}

describe('authorizeForward', () => {
  it('drops a message whose topic the receiver may not subscribe to, even if it is subscribed', () => {
    const { hooks, as, counters } = setup();
    const consoleB = as({ kind: 'console', tenantId: 'B', userId: 'u' });
    expect(hooks.authorizeForward(consoleB, packet(topics.decisions('A', 'T1')))).toBeNull();
    expect(hooks.authorizeForward(consoleB, packet(topics.decisions('B', 'T1')))).not.toBeNull();
    expect(counters.get('mqtt_acl_denied_total', { action: 'forward', reason: 'not_granted' })).toBe(1);
  });

  it("keeps a tower's commands and bundles away from other towers and from unauthenticated clients", () => {
    const { hooks, as } = setup();
    const t2 = as({ kind: 'tower', towerId: 'T2', credentialId: 'c2' });
    expect(hooks.authorizeForward(t2, packet(topics.commands('A', 'T1')))).toBeNull();
    expect(hooks.authorizeForward(t2, packet(topics.policy('A', 'T2')))).not.toBeNull();
    expect(hooks.authorizeForward(t2, packet(topics.policy('A', 'T1')))).toBeNull();
    expect(hooks.authorizeForward(t2, packet(topics.directory('tok')))).not.toBeNull();
    expect(hooks.authorizeForward(fakeClient('nobody'), packet(topics.policy('A', 'T2')))).toBeNull();
  });

  it('never forwards $SYS, not even to services', () => {
    const { hooks, as } = setup();
    const svc = as({ kind: 'service', name: 'w' });
    expect(hooks.authorizeForward(svc, packet('$SYS/broker/heartbeat'))).toBeNull();
  });
});

describe('authorizePublish without a client (orphaned wills)', () => {
  const will = (topic: string, clientId: string) =>
    ({ ...packet(topic), retain: true, clientId }) as unknown as PublishPacket;

  it("hands a dead node's tower status LWT to the sink when the client id is the tower's", async () => {
    const { hooks, sink } = setup();
    expect(await publish(hooks, null, will(topics.status('T1'), 'tower-T1'))).toBeNull();
    expect(sink.messages).toMatchObject([{ topic: topics.status('T1'), tower_id: 'T1', received_at: 42 }]);
  });

  it('refuses any other orphaned will', async () => {
    const { hooks, sink } = setup();
    expect(await publish(hooks, null, will(topics.status('T1'), 'tower-T2'))).toBeInstanceOf(Error);
    expect(await publish(hooks, null, will(topics.usage('A', 'T1'), 'tower-T1'))).toBeInstanceOf(Error);
    expect(sink.messages).toEqual([]);
  });

  it('publishes no will while the broker is stopping', async () => {
    const { hooks, sink, sessions } = setup(true);
    const closing = fakeClient('tower-T1', true);
    sessions.open(closing, newSession({ principal: { kind: 'tower', towerId: 'T1', credentialId: 'c1' }, bucket: null, statusWill: true, deliveries: null }));
    expect(await publish(hooks, closing, will(topics.status('T1'), 'tower-T1'))).toBeInstanceOf(Error);
    expect(sink.messages).toEqual([]);
  });
});

describe('aclDenialReason', () => {
  it('labels denials for the counters', () => {
    const tower: MqttPrincipal = { kind: 'tower', towerId: 'T1', credentialId: 'c' };
    expect(aclDenialReason(undefined, 'x')).toBe('unauthenticated');
    expect(aclDenialReason(tower, '$SYS/#')).toBe('reserved_topic');
    expect(aclDenialReason({ kind: 'anonymous' }, 'tenants/#')).toBe('anonymous');
    expect(aclDenialReason(tower, '#')).toBe('root_wildcard');
    expect(aclDenialReason(tower, '+/T1/status')).toBe('root_wildcard');
    expect(aclDenialReason(tower, topics.usage('A', 'T2'))).toBe('not_granted');
  });
});
