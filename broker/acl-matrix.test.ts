/**
 * The ACL of DESIGN §3 driven as a table over real sockets: every topic kind of TOPIC_SPECS and a
 * set of wildcard filters, for every kind of principal, for PUBLISH and SUBSCRIBE. Expectations
 * are written out by hand (not derived from topics.ts) so the table checks the rules themselves.
 *
 * A refused SUBSCRIBE shows as SUBACK 0x80; a refused PUBLISH as the connection being closed
 * without a PUBACK [MQTT-3.3.5-2] and the sink never seeing the message. A granted SUBSCRIBE
 * shows the QoS granted: 0 where nothing should be queued for an offline session (a tower's
 * policy bundles and the device directory, console users' live views), 1 otherwise.
 *
 * Bundles are per tower (issue #11): a tower subscribes to its own bundles only, never another
 * tower's nor the shared bundles older releases used; every tower reads the device directory.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filters, TOPIC_SPECS, topics, type TopicKind } from '../shared/mqtt/topics.js';
import { closed, inbox, startHarness, subscribeResult, type CarrierLogin, type Harness, type TowerLogin } from './test-support.js';

const A = 'tenantA';
const B = 'tenantB';

/** Carrier ids are minted by the store; known once beforeAll has created carrier A. */
const carrier = { A: '' };

/** One concrete topic per kind, all about tenant A, tower T1 and carrier A. */
const TOPIC: Record<TopicKind, () => string> = {
  usage: () => topics.usage(A, 'T1'),
  discovery: () => topics.discovery('T1'),
  status: () => topics.status('T1'),
  decisions: () => topics.decisions(A, 'T1'),
  commands: () => topics.commands(A, 'T1'),
  acks: () => topics.acks(A, 'T1'),
  policy: () => topics.policy(A, 'T1'),
  policyPart: () => topics.policyPart(A, 'T1', 0),
  directory: () => topics.directory('tokA'),
  directoryPart: () => topics.directoryPart('tokA', 0),
  legacyPolicy: () => topics.legacyPolicy(A),
  sessions: () => topics.sessions('T1'),
  carrierTowers: () => topics.carrierTowers(carrier.A),
  carrierDevices: () => topics.carrierDevices(carrier.A),
  carrierResults: () => topics.carrierResults(carrier.A),
};
const CARRIER_KINDS: TopicKind[] = ['carrierTowers', 'carrierDevices', 'carrierResults'];
const KINDS = Object.keys(TOPIC_SPECS) as TopicKind[];

const FILTERS = {
  root: '#',
  rootPlus: '+/T1/status',
  rootPlusDeep: '+/+/+/+/usage',
  allTenants: 'tenants/#',
  allDecisions: 'tenants/+/towers/+/decisions',
  sys: '$SYS/#',
  sysPlus: '$SYS/+/heartbeat',
  t1Decisions: filters.towerDecisions('T1'),
  t1Commands: filters.towerCommands('T1'),
  t1Policies: filters.towerPolicies('T1'),
  t2Policies: filters.towerPolicies('T2'),
  everyTowersPolicies: 'tenants/+/towers/+/policy/#',
  legacyPolicies: 'tenants/+/policy',
  tenantAPolicies: `tenants/${A}/towers/T1/policy/#`,
  directory: filters.directory,
  directoryPlus: 'directory/+',
  tenantA: `tenants/${A}/#`,
  tenantB: `tenants/${B}/#`,
  allTowers: 'towers/#',
  allStatus: filters.allStatus,
  allCarriers: 'carriers/#',
  allCarrierResults: 'carriers/+/feeds/results',
} as const;
type FilterName = keyof typeof FILTERS;

type PrincipalName = 'ownTower' | 'otherTower' | 'consoleA' | 'consoleB' | 'ownCarrier' | 'otherCarrier' | 'anonymous' | 'service';

interface Expectation {
  publish: TopicKind[];
  subscribeTopics: TopicKind[];
  subscribeFilters: FilterName[];
}

const ALLOWED: Record<PrincipalName, Expectation> = {
  // Uplinks about itself only; exactly the four filters of its agent, not one per tenant id.
  ownTower: {
    publish: ['usage', 'discovery', 'status', 'acks', 'sessions'],
    subscribeTopics: [],
    subscribeFilters: ['t1Decisions', 't1Commands', 't1Policies', 'directory'],
  },
  // Nothing about T1: its own bundles and the directory only.
  otherTower: { publish: [], subscribeTopics: [], subscribeFilters: ['t2Policies', 'directory'] },
  // Read-only, under its own tenant prefix (its bundles for every tower included).
  consoleA: {
    publish: [],
    subscribeTopics: ['usage', 'decisions', 'commands', 'acks', 'policy', 'policyPart', 'legacyPolicy'],
    subscribeFilters: ['tenantA', 'tenantAPolicies'],
  },
  consoleB: { publish: [], subscribeTopics: [], subscribeFilters: ['tenantB'] },
  // Its own two feeds and its own results: no tower, tenant or other carrier topic, no wildcard.
  ownCarrier: { publish: ['carrierTowers', 'carrierDevices'], subscribeTopics: ['carrierResults'], subscribeFilters: [] },
  otherCarrier: { publish: [], subscribeTopics: [], subscribeFilters: [] },
  anonymous: { publish: [], subscribeTopics: [], subscribeFilters: [] },
  // Everything under tenants/ and towers/, but never the root '#', a root '+' or $SYS.
  service: {
    publish: KINDS.filter((k) => !CARRIER_KINDS.includes(k)),
    subscribeTopics: KINDS.filter((k) => !CARRIER_KINDS.includes(k)),
    subscribeFilters: [
      'allTenants',
      'allDecisions',
      't1Decisions',
      't1Commands',
      't1Policies',
      't2Policies',
      'everyTowersPolicies',
      'legacyPolicies',
      'tenantAPolicies',
      'directory',
      'directoryPlus',
      'tenantA',
      'tenantB',
      'allTowers',
      'allStatus',
    ],
  },
};
const PRINCIPALS = Object.keys(ALLOWED) as PrincipalName[];

describe('ACL matrix over real sockets', () => {
  let h: Harness;
  let t1: TowerLogin;
  let t2: TowerLogin;
  let cA: CarrierLogin;
  let cB: CarrierLogin;

  beforeAll(async () => {
    h = await startHarness({ config: { allow_anonymous: true } });
    t1 = await h.createTower('T1');
    t2 = await h.createTower('T2');
    cA = await h.createCarrier('Carrier A');
    cB = await h.createCarrier('Carrier B');
    carrier.A = cA.carrierId;
  });
  afterAll(async () => {
    await h.close();
  });

  function connectAs(p: PrincipalName): Promise<MqttClient> {
    switch (p) {
      case 'ownTower':
        return h.connectTower(t1);
      case 'otherTower':
        return h.connectTower(t2);
      case 'consoleA':
        return h.connectConsole(A);
      case 'consoleB':
        return h.connectConsole(B, { ws: true }); // dashboards use MQTT over WebSocket
      case 'ownCarrier':
        return h.connectCarrier(cA);
      case 'otherCarrier':
        return h.connectCarrier(cB);
      case 'anonymous':
        return h.connect({});
      case 'service':
        return h.connectService();
    }
  }

  const publishCases = PRINCIPALS.flatMap((principal) =>
    KINDS.map((kind) => ({ principal, kind, allowed: ALLOWED[principal].publish.includes(kind) })),
  );

  it.each(publishCases)('$principal publish $kind → allowed: $allowed', async ({ principal, kind, allowed }) => {
    const topic = TOPIC[kind]();
    const client = await connectAs(principal);
    const before = h.sink.messages.length;
    const payload = Buffer.from(`${principal}:${kind}`);
    if (allowed) {
      await client.publishAsync(topic, payload, { qos: 1 });
      const uplink = principal === 'ownTower'; // only a tower's uplinks go to ingest
      const handed = h.sink.messages.slice(before).filter((m) => m.payload.equals(payload));
      expect(handed).toHaveLength(uplink ? 1 : 0);
      await client.endAsync();
    } else {
      const gone = closed(client);
      client.publish(topic, payload, { qos: 1 }, () => undefined);
      await gone;
      expect(h.sink.messages.some((m) => m.payload.equals(payload))).toBe(false);
    }
  });

  /** The QoS a granted filter gets (see the header). */
  const grantedQos = (principal: PrincipalName, filter: string) =>
    principal === 'consoleA' || principal === 'consoleB' || (principal.endsWith('Tower') && (filter.includes('/policy/') || filter.startsWith('directory/'))) ? 0 : 1;

  const subscribeCases = PRINCIPALS.flatMap((principal) => [
    ...KINDS.map((kind) => ({ principal, filter: TOPIC[kind], allowed: ALLOWED[principal].subscribeTopics.includes(kind) })),
    ...(Object.keys(FILTERS) as FilterName[]).map((name) => ({
      principal,
      filter: FILTERS[name],
      allowed: ALLOWED[principal].subscribeFilters.includes(name),
    })),
  ]);

  it.each(PRINCIPALS)('%s: SUBACK grants exactly the allowed filters', async (principal) => {
    const client = await connectAs(principal);
    const cases = subscribeCases.filter((c) => c.principal === principal);
    for (const c of cases) {
      // Refusing one filter must not cost the connection: each filter gets its own SUBSCRIBE.
      const filter = typeof c.filter === 'function' ? c.filter() : c.filter;
      expect({ filter, granted: await subscribeResult(client, filter) }).toEqual({
        filter,
        granted: c.allowed ? grantedQos(principal, filter) : 128,
      });
    }
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it('counts denials by action and reason', () => {
    expect(h.counters.get('mqtt_acl_denied_total', { action: 'subscribe', reason: 'reserved_topic' })).toBeGreaterThan(0);
    expect(h.counters.get('mqtt_acl_denied_total', { action: 'subscribe', reason: 'root_wildcard' })).toBeGreaterThan(0);
    expect(h.counters.get('mqtt_acl_denied_total', { action: 'subscribe', reason: 'anonymous' })).toBeGreaterThan(0);
    expect(h.counters.get('mqtt_acl_denied_total', { action: 'subscribe', reason: 'not_granted' })).toBeGreaterThan(0);
    expect(h.counters.get('mqtt_acl_denied_total', { action: 'publish', reason: 'not_granted' })).toBeGreaterThan(0);
    expect(h.counters.get('mqtt_acl_denied_total', { action: 'publish', reason: 'anonymous' })).toBe(KINDS.length);
  });

  it("never delivers tenant A's messages to tenant B's console", async () => {
    const consoleA = await h.connectConsole(A);
    const consoleB = await h.connectConsole(B, { ws: true });
    const boxA = inbox(consoleA);
    const boxB = inbox(consoleB);
    expect(await subscribeResult(consoleA, FILTERS.tenantA)).toBe(0);
    expect(await subscribeResult(consoleB, FILTERS.tenantB)).toBe(0);

    // Tenant A traffic from every direction: tower uplinks (which reach ingest, never a console:
    // the cloud has not checked them yet) and cloud downlinks.
    const tower = await h.connectTower(t1);
    await tower.publishAsync(TOPIC.usage(), Buffer.from('usage'), { qos: 1 });
    await tower.publishAsync(TOPIC.acks(), Buffer.from('ack'), { qos: 1 });
    await h.broker.downlink.publish(TOPIC.decisions(), Buffer.from('decision'));
    await h.broker.downlink.publish(TOPIC.commands(), Buffer.from('command'));
    await h.broker.downlink.publish(TOPIC.policy(), Buffer.from('policy'), { retain: true });
    await h.broker.downlink.publish(TOPIC.directory(), Buffer.from('directory'), { retain: true });
    for (const kind of ['decisions', 'commands', 'policy'] as const) await boxA.next((t) => t === TOPIC[kind]());

    // A message for B, then a marker for A: had anything of B's leaked to A (or A's to B),
    // it would have arrived before these, since each connection delivers in order.
    await h.broker.downlink.publish(topics.policy(B, 'T1'), Buffer.from('policy-b'), { retain: true });
    await boxB.next((t) => t === topics.policy(B, 'T1'));
    await h.broker.downlink.publish(topics.decisions(A, 'T2'), Buffer.from('marker'));
    await boxA.next((t) => t === topics.decisions(A, 'T2'));

    expect(boxB.messages.map((m) => m.topic)).toEqual([topics.policy(B, 'T1')]);
    expect(boxA.messages.every((m) => m.topic.startsWith(`tenants/${A}/`))).toBe(true);
    expect(boxA.messages.map((m) => m.topic)).not.toContain(TOPIC.usage());
    expect(boxA.messages.map((m) => m.topic)).not.toContain(TOPIC.acks());
    expect(h.sink.topics()).toEqual(expect.arrayContaining([TOPIC.usage(), TOPIC.acks()]));
    await h.broker.downlink.publish(topics.policy(A, 'T1'), Buffer.alloc(0), { retain: true }); // clear retained
    await h.broker.downlink.publish(topics.policy(B, 'T1'), Buffer.alloc(0), { retain: true });
    await h.broker.downlink.publish(TOPIC.directory(), Buffer.alloc(0), { retain: true });
  });

  it("delivers a tower its own bundles and the directory, never another tower's bundles", async () => {
    const tower1 = await h.connectTower(t1);
    const tower2 = await h.connectTower(t2);
    const box1 = inbox(tower1);
    const box2 = inbox(tower2);
    for (const [c, t] of [[tower1, 'T1'], [tower2, 'T2']] as const) {
      expect(await subscribeResult(c, filters.towerPolicies(t))).toBe(0);
      expect(await subscribeResult(c, filters.directory)).toBe(0);
    }
    await h.broker.downlink.publish(topics.policyPart(A, 'T1', 0), Buffer.from('a-part'), { retain: true });
    await h.broker.downlink.publish(topics.policy(A, 'T1'), Buffer.from('a-head'), { retain: true });
    await h.broker.downlink.publish(topics.policy(B, 'T2'), Buffer.from('b-head'), { retain: true });
    await h.broker.downlink.publish(topics.directoryPart('tokA', 0), Buffer.from('slice'), { retain: true });
    await box1.next((t) => t === topics.directoryPart('tokA', 0));
    await box2.next((t) => t === topics.directoryPart('tokA', 0));
    expect(box1.messages.map((m) => m.topic)).toEqual([topics.policyPart(A, 'T1', 0), topics.policy(A, 'T1'), topics.directoryPart('tokA', 0)]);
    expect(box2.messages.map((m) => m.topic)).toEqual([topics.policy(B, 'T2'), topics.directoryPart('tokA', 0)]);
    for (const topic of [topics.policyPart(A, 'T1', 0), topics.policy(A, 'T1'), topics.policy(B, 'T2'), topics.directoryPart('tokA', 0)]) {
      await h.broker.downlink.publish(topic, Buffer.alloc(0), { retain: true });
    }
  });
});

describe('anonymous clients without the development flag', () => {
  it('are refused with 5 (not authorized)', async () => {
    const h = await startHarness({ config: { allow_anonymous: false } });
    try {
      expect(await h.refusedWith({})).toBe(5);
      expect(await h.refusedWith({ clientId: 'dev-dashboard' })).toBe(5);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'anonymous_refused' })).toBe(2);
    } finally {
      await h.close();
    }
  });
});
