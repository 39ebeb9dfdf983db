/**
 * A tower its carrier retires over MQTT loses its live session at once, not only its next CONNECT
 * (real broker, real store, real MQTT clients): a retired tower's agent must not keep publishing
 * usage on a session opened before the retirement. Upserting the tower again lets it back in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { topics } from '../shared/mqtt/topics.js';
import { closed, startHarness, type Harness } from './test-support.js';

const newId = createIdFactory();
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

const feed = (records: unknown[]) => Buffer.from(JSON.stringify({ v: 1, id: newId(), records }));

describe('carrier feed retirement over MQTT', () => {
  it("closes the retired tower's open session; upserting it again lets it connect", async () => {
    const a = await h.createCarrier('A');
    const carrier = await h.connectCarrier(a);
    await carrier.publishAsync(topics.carrierTowers(a.carrierId), feed([{ op: 'upsert', tower_id: 'ret-live', name: 'Live' }]), { qos: 1 });
    const login = await h.createTower('ret-live');
    const tower = await h.connectTower(login, { reconnectPeriod: 0 });
    // Another tower of the same carrier stays connected.
    await carrier.publishAsync(topics.carrierTowers(a.carrierId), feed([{ op: 'upsert', tower_id: 'ret-other', name: 'Other' }]), { qos: 1 });
    const other = await h.connectTower(await h.createTower('ret-other'), { reconnectPeriod: 0 });
    const gone = closed(tower);

    await carrier.publishAsync(topics.carrierTowers(a.carrierId), feed([{ op: 'retire', tower_id: 'ret-live' }]), { qos: 1 });
    await gone;
    expect(other.connected).toBe(true);

    await carrier.publishAsync(topics.carrierTowers(a.carrierId), feed([{ op: 'upsert', tower_id: 'ret-live', name: 'Live again' }]), { qos: 1 });
    const back = await h.connectTower(login, { reconnectPeriod: 0 });
    expect(back.connected).toBe(true);
    await Promise.all([back.endAsync(), other.endAsync(), carrier.endAsync()]);
  });
});
