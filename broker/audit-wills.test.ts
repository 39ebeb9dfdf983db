/**
 * Audit: a will [MQTT-3.1.2-8] is a PUBLISH the broker makes for the client when it drops, so it
 * must pass the client's own publish ACL. A tower that declares a retained QoS 1 will aimed at
 * another tower's or tenant's downlinks, the directory, `$SYS` or a wildcard, then drops, gets
 * nothing delivered, nothing retained and nothing handed to ingest; a will on its own usage
 * topic reaches ingest only (an uplink: never retained, never relayed), like any PUBLISH.
 * (broker.test.ts covers another tower's status topic.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filters, topics } from '../shared/mqtt/topics.js';
import { inbox, startHarness, subscribeResult, type Harness, type TowerLogin } from './test-support.js';

const A = 'tenantA';
const B = 'tenantB';

let h: Harness;
let t1: TowerLogin;
beforeAll(async () => {
  h = await startHarness();
  t1 = await h.createTower('T1');
  await h.createTower('T2');
});
afterAll(async () => h.close());

/** T1 connects with a retained QoS 1 will on `topic` and loses its connection without DISCONNECT. */
async function dropWithWill(topic: string, payload: Buffer): Promise<void> {
  const c = await h.connectTower(t1, { will: { topic, payload, qos: 1, retain: true } });
  c.stream.destroy();
}

const denied = () => h.counters.get('mqtt_acl_denied_total', { action: 'publish', reason: 'not_granted' }) + h.counters.get('mqtt_acl_denied_total', { action: 'publish', reason: 'reserved_topic' });

describe("a tower's will", () => {
  it.each([
    topics.decisions(B, 'T2'),
    topics.commands(A, 'T2'),
    topics.commands(A, 'T1'), // its own downlink: only the cloud publishes there
    topics.policy(B, 'T2'),
    topics.policyPart(A, 'T1', 0),
    topics.directory('tok'),
    topics.legacyPolicy(B),
    topics.usage(B, 'T2'),
    topics.discovery('T2'),
    topics.sessions('T2'),
    '$SYS/broker/clients',
    'tenants/B/towers/T2/decisions/extra',
  ])('on %s is refused: nothing delivered, retained or ingested', async (topic) => {
    const t2 = await h.connectTower(await h.createTower('T2'));
    const seenByT2 = inbox(t2);
    for (const f of [filters.towerDecisions('T2'), filters.towerCommands('T2'), filters.towerPolicies('T2'), filters.directory]) await subscribeResult(t2, f);
    const svc = await h.connectService();
    const seenBySvc = inbox(svc);
    expect(await subscribeResult(svc, 'tenants/#')).toBe(1);
    expect(await subscribeResult(svc, 'towers/#')).toBe(1);
    expect(await subscribeResult(svc, filters.directory)).toBe(1);
    const ingested = h.sink.messages.length;
    const before = denied();

    await dropWithWill(topic, Buffer.from('{"will":"hostile"}'));
    await expect.poll(denied).toBe(before + 1);

    // Anything the will had published would have reached them before this marker.
    await h.broker.downlink.publish(topics.decisions(A, 'T2'), Buffer.from('{"marker":true}'));
    await seenByT2.next((t) => t === topics.decisions(A, 'T2'));
    await seenBySvc.next((t) => t === topics.decisions(A, 'T2'));
    // (Retained messages of earlier cases come on SUBSCRIBE; only what was published live counts.)
    const live = (box: typeof seenByT2) => box.messages.filter((m) => !m.retain).map((m) => m.topic);
    expect(live(seenByT2)).toEqual([topics.decisions(A, 'T2')]);
    expect(live(seenBySvc)).toEqual([topics.decisions(A, 'T2')]);
    expect(h.sink.messages.length).toBe(ingested);

    // Nor retained: a new subscriber to everything gets only a retained marker of its own.
    const late = await h.connectService();
    const seenLate = inbox(late);
    for (const f of ['tenants/#', 'towers/#', filters.directory]) expect(await subscribeResult(late, f)).toBe(1);
    await h.broker.downlink.publish(topics.policy(A, 'T9'), Buffer.from('{"marker":true}'), { retain: true });
    await seenLate.next((t) => t === topics.policy(A, 'T9'));
    expect(seenLate.messages.filter((m) => m.payload.toString().includes('hostile'))).toEqual([]);
    await Promise.all([t2.endAsync(), svc.endAsync(), late.endAsync()]);
  });

  it('on its own usage topic reaches ingest only: not retained, not relayed', async () => {
    const svc = await h.connectService();
    const seen = inbox(svc);
    expect(await subscribeResult(svc, 'tenants/#')).toBe(1);
    const usage = topics.usage(B, 'T1'); // a claim about any tenant: the cloud checks its devices
    await dropWithWill(usage, Buffer.from('{"will":"usage"}'));
    const will = await h.sink.waitFor((m) => m.payload.toString() === '{"will":"usage"}');
    expect(will).toMatchObject({ topic: usage, tower_id: 'T1' });
    await h.broker.downlink.publish(topics.decisions(A, 'T1'), Buffer.from('{"marker":true}'), { retain: true });
    await seen.next((t) => t === topics.decisions(A, 'T1'));
    expect(seen.messages.filter((m) => !m.retain).map((m) => m.topic)).toEqual([topics.decisions(A, 'T1')]);
    const late = await h.connectService();
    const seenLate = inbox(late);
    expect(await subscribeResult(late, 'tenants/#')).toBe(1);
    await seenLate.next((t) => t === topics.decisions(A, 'T1'));
    expect(seenLate.messages.filter((m) => m.topic === usage)).toEqual([]);
  });
});
