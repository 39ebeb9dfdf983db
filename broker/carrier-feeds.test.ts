/**
 * Carrier feeds over MQTT, against a real broker and store: a carrier logs in with its feed key,
 * publishes tower and device metadata on its own feed topics (applied record by record before the
 * PUBACK) and reads the result on its own results topic. It cannot log in as another carrier,
 * publish on another carrier's feed, read another carrier's results, or write another carrier's
 * towers; revoking its credential drops its session; a tower its carrier retired may not connect.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import type { FeedResult } from '../shared/mqtt/carrier-payloads.js';
import { mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { closed, inbox, startHarness, subscribeResult, type CarrierLogin, type Harness } from './test-support.js';

const newId = createIdFactory();
let h: Harness;
let a: CarrierLogin;
let b: CarrierLogin;

beforeAll(async () => {
  h = await startHarness();
  a = await h.createCarrier('A');
  b = await h.createCarrier('B');
});
afterAll(async () => {
  await h.close();
});

const feed = (records: unknown[]) => Buffer.from(JSON.stringify({ v: 1, id: newId(), records }));

describe('carrier feeds over MQTT', () => {
  it('applies a tower feed before the PUBACK and answers on the results topic, refusing a bad record alone', async () => {
    const client = await h.connectCarrier(a);
    const box = inbox(client);
    expect(await subscribeResult(client, topics.carrierResults(a.carrierId))).toBe(1);
    const records = [
      { op: 'upsert', tower_id: 'mq-t1', name: 'One', lat: 1, lon: 2, carriers: [a.carrierId] },
      { op: 'upsert', tower_id: 'mq-t2' },
      { op: 'upsert', tower_id: 'mq-t3', name: 'Three', coverage: { radius_m: 500 } },
    ];
    await client.publishAsync(topics.carrierTowers(a.carrierId), feed(records), { qos: 1 });
    // PUBACK received: the feed is applied.
    expect(await h.store.towers.get('mq-t1')).toMatchObject({ name: 'One', managed_by: a.carrierId });
    expect(await h.store.towers.get('mq-t3')).toMatchObject({ radius_m: 500 });
    expect(await h.store.towers.get('mq-t2')).toBeNull();
    const msg = await box.next((t) => t === topics.carrierResults(a.carrierId));
    const result = JSON.parse(msg.payload.toString()) as FeedResult;
    expect(result.results.map((r) => r.outcome)).toEqual(['created', 'refused', 'created']);
    expect(result.results[1]?.reason).toMatch(/^name: /);

    await client.publishAsync(topics.carrierDevices(a.carrierId), feed([{ device_id: 'mq-dev', os: 'android' }]), { qos: 1 });
    expect(await h.store.deviceMetadata.forDevices(['mq-dev'])).toEqual([expect.objectContaining({ carrier_id: a.carrierId, os: 'android' })]);

    // Not a feed at all: dropped and counted, the session goes on.
    await client.publishAsync(topics.carrierTowers(a.carrierId), Buffer.from('not json'), { qos: 1 });
    expect(h.counters.get('carrier_feeds_dropped_total', { carrier: a.carrierId, kind: 'towers', reason: 'invalid_envelope' })).toBe(1);
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it("refuses another carrier's feed topic and results, and never writes its towers", async () => {
    const client = await h.connectCarrier(b);
    expect(await subscribeResult(client, topics.carrierResults(a.carrierId))).toBe(128);
    expect(await subscribeResult(client, 'carriers/#')).toBe(128);
    const gone = closed(client);
    client.publish(topics.carrierTowers(a.carrierId), feed([{ op: 'retire', tower_id: 'mq-t1' }]), { qos: 1 }, () => undefined);
    await gone;
    expect((await h.store.towers.get('mq-t1'))?.retired_at).toBeNull();

    const own = await h.connectCarrier(b);
    const box = inbox(own);
    await subscribeResult(own, topics.carrierResults(b.carrierId));
    await own.publishAsync(topics.carrierTowers(b.carrierId), feed([{ op: 'upsert', tower_id: 'mq-t1', name: 'hijack' }]), { qos: 1 });
    const result = JSON.parse((await box.next((t) => t === topics.carrierResults(b.carrierId))).payload.toString()) as FeedResult;
    expect(result.results[0]).toMatchObject({ outcome: 'refused' });
    expect((await h.store.towers.get('mq-t1'))?.name).toBe('One');
    await own.endAsync();
  });

  it("refuses a carrier's key under another carrier's name, a wrong key and a foreign client id", async () => {
    const as = (login: CarrierLogin, username: string, clientId = mqttIdentity.carrierClientId(login.carrierId)) =>
      h.refusedWith({ clientId, username, password: login.key });
    expect(await as(a, mqttIdentity.carrierUsername(b.carrierId), mqttIdentity.carrierClientId(b.carrierId))).toBe(4);
    expect(await h.refusedWith({ clientId: mqttIdentity.carrierClientId(a.carrierId), username: mqttIdentity.carrierUsername(a.carrierId), password: `${a.key}x` })).toBe(4);
    expect(await as(a, mqttIdentity.carrierUsername(a.carrierId), 'my-own-id')).toBe(2);
    // Nobody else may use a carrier's reserved client id.
    const tower = await h.createTower('T-reserved');
    expect(await h.refusedWith({ clientId: mqttIdentity.carrierClientId(a.carrierId), username: tower.towerId, password: tower.password })).toBe(2);
  });

  it('drops the session when the credential is revoked, and refuses it from then on', async () => {
    const c = await h.createCarrier('C');
    const client = await h.connectCarrier(c);
    const gone = closed(client);
    await h.store.carrierCredentials.revoke(c.credentialId, h.clock.now);
    h.bus.publish('carrier-credential.revoked', { carrier_id: c.carrierId, credential_id: c.credentialId });
    await gone;
    expect(await h.refusedWith({ clientId: mqttIdentity.carrierClientId(c.carrierId), username: mqttIdentity.carrierUsername(c.carrierId), password: c.key })).toBe(5);
  });

  it('refuses a tower its carrier retired', async () => {
    const client = await h.connectCarrier(a);
    await client.publishAsync(topics.carrierTowers(a.carrierId), feed([{ op: 'upsert', tower_id: 'mq-old', name: 'Old' }]), { qos: 1 });
    const tower = await h.createTower('mq-old');
    (await h.connectTower(tower)).end(true);
    await client.publishAsync(topics.carrierTowers(a.carrierId), feed([{ op: 'retire', tower_id: 'mq-old' }]), { qos: 1 });
    expect(await h.refusedWith({ clientId: mqttIdentity.towerClientId('mq-old'), username: 'mq-old', password: tower.password })).toBe(5);
    expect(h.counters.get('mqtt_auth_failures_total', { reason: 'tower_retired' })).toBe(1);
    await client.endAsync();
  });
});
