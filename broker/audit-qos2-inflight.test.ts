/**
 * Audit: a client that sends QoS 2 PUBLISHes and never their PUBREL [MQTT-4.3.3] must not make the
 * broker hold their payloads. aedes publishes a QoS 2 message at once and keeps a copy under its
 * packet id only to recognise a retransmission (guarded-persistence.ts); that copy kept the whole
 * payload for the life of the session: 1,000 per connection (aedes' maxInflightInbound) and, on a
 * persistent session, 1,000 more after every reconnect, up to 65,535 ids (16 GiB at the default
 * 256 KiB payload limit), in memory or in the LevelDB session store.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { filters, mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { levelBackends } from './backends-level.js';
import { connectPacket, publishPacket } from './mqtt-bytes.js';
import { gc, inbox, rawClient, startHarness, subscribeResult, TEST_SERVICE_SECRET, type Harness, type TowerLogin } from './test-support.js';

const PAYLOAD_BYTES = 60 * 1024;
const PERSISTENT = 0x80 | 0x40; // username and password, clean session 0
const PUBREC = 0x50;
const PUBCOMP = 0x70;

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

/**
 * One persistent-session connection of tower T1 that publishes QoS 2 usage with packet ids
 * `from`..`to` and sends no PUBREL; resolves once every PUBREC came back (each id is then in the
 * store), and closes the connection without DISCONNECT.
 */
async function withholdPubrel(harness: Harness, login: TowerLogin, from: number, to: number): Promise<void> {
  const c = await rawClient(harness.mqttPort);
  c.write(connectPacket({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: login.password, flags: PERSISTENT }));
  expect([...(await c.bytes(4))].slice(0, 2)).toEqual([0x20, 0x02]);
  const topic = topics.usage('tenantA', 'T1');
  for (let id = from; id <= to; id++) c.write(publishPacket(topic, Buffer.alloc(PAYLOAD_BYTES, id & 0xff), { qos: 2, packetId: id }));
  const got = await c.bytes(4 + (to - from + 1) * 4);
  expect(got[4]).toBe(PUBREC);
  expect(got.length).toBe(4 + (to - from + 1) * 4);
  // The recording sink keeps what it was handed; this test is about what the broker keeps.
  harness.sink.messages.length = 0;
  c.destroy();
  await c.closed;
  // Until the broker has seen the close, the connection's own buffers are still alive.
  await vi.waitFor(() => expect(harness.broker.connectionCount).toBe(0));
}

/** The QoS 2 flow of an id stored by an earlier connection still completes (PUBREL → PUBCOMP). */
async function pubrelCompletes(harness: Harness, login: TowerLogin, id: number): Promise<void> {
  const c = await rawClient(harness.mqttPort);
  c.write(connectPacket({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: login.password, flags: PERSISTENT }));
  await c.bytes(4);
  c.write(Buffer.from([0x62, 0x02, id >> 8, id & 0xff]));
  expect([...(await c.bytes(8)).subarray(4, 8)]).toEqual([PUBCOMP, 0x02, id >> 8, id & 0xff]);
  c.destroy();
  await c.closed;
}

/**
 * MB that JavaScript holds (heap and buffers) after full collections. V8 frees the memory of
 * collected buffers on a background thread, and Node counts it until then; a collection a
 * turn later waits for that sweep (one collection right away let a test read 70 MB of freed
 * payloads now and then).
 */
async function heldAfterGc(): Promise<number> {
  gc();
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  const m = process.memoryUsage();
  return (m.heapUsed + m.arrayBuffers) / 1e6;
}

describe('QoS 2 PUBLISHes whose PUBREL never comes', () => {
  it('hold no payloads across reconnects of a persistent session; the ids are kept and other towers are served', async () => {
    h = await startHarness();
    const t1 = await h.createTower('T1');
    const before = await heldAfterGc();
    // Two connections of 500 each: 60 MB of payloads if they were kept.
    await withholdPubrel(h, t1, 1, 500);
    await withholdPubrel(h, t1, 501, 1000);
    expect((await heldAfterGc()) - before).toBeLessThan(10);
    await pubrelCompletes(h, t1, 42);

    const t2 = await h.createTower('T2');
    const other = await h.connectTower(t2);
    const box = inbox(other);
    expect(await subscribeResult(other, filters.towerDecisions('T2'))).toBe(1);
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T2'), Buffer.from('{"still":"served"}'));
    await box.next(() => true);
  });

  it('keep only their ids in the LevelDB session store, not their payloads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-qos2-'));
    try {
      const location = join(dir, 'sessions');
      h = await startHarness({ backends: levelBackends({ location }) });
      const t1 = await h.createTower('T1');
      await withholdPubrel(h, t1, 1, 100);
      await h.close();
      h = null;

      const db = new ClassicLevel<string, Buffer>(location, { valueEncoding: 'buffer' });
      let entries = 0;
      let bytes = 0;
      for await (const [key, value] of db.iterator({ gte: 'incoming:', lt: 'incoming;' })) {
        entries++;
        bytes += key.length + value.length;
      }
      await db.close();
      expect(entries).toBe(100); // each id is still known [MQTT-4.3.3-2]
      expect(bytes).toBeLessThan(100 * 1024); // 6 MB of payloads if they were kept
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('still recognise a retransmission by its id: a DUP before the PUBREL is acknowledged, not published again [MQTT-4.3.3-2]', async () => {
    h = await startHarness();
    const tower = await h.connectTower(await h.createTower('T1'));
    const box = inbox(tower);
    expect(await subscribeResult(tower, filters.towerDecisions('T1'))).toBe(1);
    const svc = await rawClient(h.mqttPort);
    svc.write(connectPacket({ clientId: 'service-audit', username: 'service:audit', password: TEST_SERVICE_SECRET }));
    await svc.bytes(4);
    const decision = publishPacket(topics.decisions('tenantA', 'T1'), Buffer.from('{"once":true}'), { qos: 2, packetId: 7 });
    svc.write(decision);
    await svc.bytes(8);
    const dup = Buffer.from(decision);
    dup[0]! |= 0x08;
    svc.write(dup);
    svc.write(Buffer.from([0x62, 0x02, 0x00, 0x07]));
    expect([...(await svc.bytes(16)).subarray(4)]).toEqual([PUBREC, 2, 0, 7, PUBREC, 2, 0, 7, PUBCOMP, 2, 0, 7]);
    // Published after both: once it arrives, a second copy would have arrived before it.
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T1'), Buffer.from('{"marker":true}'));
    await box.next((t) => t === topics.decisions('tenantA', 'T1') && box.messages.length >= 2);
    expect(box.messages.map((m) => m.payload.toString())).toEqual(['{"once":true}', '{"marker":true}']);
    svc.destroy();
  });

  it("hand a tower's uplink to ingest once, however often it is retransmitted before its PUBREL: on its connection, in one read, after a reconnect [MQTT-4.3.3-2]", async () => {
    h = await startHarness();
    const t1 = await h.createTower('T1');
    const topic = topics.usage('tenantA', 'T1');
    const connect = connectPacket({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: t1.password, flags: PERSISTENT });
    const resent = (packet: Buffer) => Buffer.concat([Buffer.from([packet[0]! | 0x08]), packet.subarray(1)]);
    const first = publishPacket(topic, Buffer.from('{"n":1}'), { qos: 2, packetId: 1 });
    const second = publishPacket(topic, Buffer.from('{"n":2}'), { qos: 2, packetId: 2 });
    const third = publishPacket(topic, Buffer.from('{"n":3}'), { qos: 2, packetId: 3 });

    const c = await rawClient(h.mqttPort);
    c.write(connect);
    await c.bytes(4);
    // Its PUBREC answered, then the same message again (a tower that missed the PUBREC).
    c.write(first);
    await c.bytes(8);
    c.write(resent(first));
    // The first copy and its retransmission in one read: the second waits for the first.
    c.write(Buffer.concat([second, resent(second)]));
    c.write(third);
    const acks = await c.bytes(4 + 5 * 4);
    expect([...acks.subarray(4)].filter((_, i) => i % 4 === 0)).toEqual([PUBREC, PUBREC, PUBREC, PUBREC, PUBREC]);
    c.destroy();
    await c.closed;
    await vi.waitFor(() => expect(h!.broker.connectionCount).toBe(0));

    // The persistent session resends what it has no PUBREC for on its next connection; then PUBREL.
    const again = await rawClient(h.mqttPort);
    again.write(connect);
    await again.bytes(4);
    again.write(Buffer.concat([resent(third), resent(first)]));
    await again.bytes(12);
    again.write(Buffer.from([0x62, 0x02, 0x00, 0x03]));
    expect([...(await again.bytes(16)).subarray(12)]).toEqual([PUBCOMP, 2, 0, 3]);
    again.destroy();

    expect(h.sink.messages.map((m) => m.payload.toString())).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
  });
});

describe('a QoS 2 uplink resent on a new connection while ingest still holds the first copy', () => {
  /** Holds every uplink in the sink until the returned release is called (or fails them). */
  function holdIngest(harness: Harness): { release: () => void; fail: () => void } {
    let settle!: (ok: boolean) => void;
    const gate = new Promise<boolean>((r) => (settle = r));
    harness.sink.impl = async () => {
      if (!(await gate)) throw new Error('ingest failed');
    };
    return { release: () => settle(true), fail: () => settle(false) };
  }

  /** Tower T1's persistent session: the first copy of QoS 2 usage id 1 on one connection, held by ingest; then a new connection. */
  async function resendWhileHeld(harness: Harness, login: TowerLogin) {
    const connect = connectPacket({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: login.password, flags: PERSISTENT });
    const publish = publishPacket(topics.usage('tenantA', 'T1'), Buffer.from('{"n":1}'), { qos: 2, packetId: 1 });
    const first = await rawClient(harness.mqttPort);
    first.write(connect);
    await first.bytes(4);
    first.write(publish);
    await expect.poll(() => harness.sink.messages.length).toBe(1);
    // The tower gave up on that connection and connects again: the broker closes the old one
    // [MQTT-3.1.4-2]; the session resends what it has no PUBREC for, DUP set [MQTT-4.4.0-1].
    const again = await rawClient(harness.mqttPort);
    again.write(connect);
    expect([...(await again.bytes(4))].slice(0, 2)).toEqual([0x20, 0x02]);
    expect(again.received()[3]).toBe(0);
    await first.closed;
    again.write(Buffer.concat([Buffer.from([publish[0]! | 0x08]), publish.subarray(1)]));
    return again;
  }

  it('is handed to ingest once, acknowledged once the first copy is processed, and its flow completes [MQTT-4.3.3-2]', async () => {
    h = await startHarness();
    const login = await h.createTower('T1');
    const ingest = holdIngest(h);
    const again = await resendWhileHeld(h, login);
    // Let the resend reach the broker (a PINGREQ behind it is answered once it was read).
    again.write(Buffer.from([0xc0, 0x00]));
    expect([...(await again.bytes(6)).subarray(4)]).toEqual([0xd0, 0x00]);
    ingest.release();
    expect([...(await again.bytes(10)).subarray(6)]).toEqual([PUBREC, 2, 0, 1]);
    again.write(Buffer.from([0x62, 0x02, 0x00, 0x01]));
    expect([...(await again.bytes(14)).subarray(10)]).toEqual([PUBCOMP, 2, 0, 1]);
    again.destroy();
    expect(h.sink.messages.map((m) => m.payload.toString())).toEqual(['{"n":1}']);
  });

  it('is handed to ingest itself when the first copy was refused', async () => {
    h = await startHarness();
    const login = await h.createTower('T1');
    const ingest = holdIngest(h);
    const again = await resendWhileHeld(h, login);
    again.write(Buffer.from([0xc0, 0x00]));
    await again.bytes(6);
    h.sink.impl = async () => undefined;
    ingest.fail();
    expect([...(await again.bytes(10)).subarray(6)]).toEqual([PUBREC, 2, 0, 1]);
    again.destroy();
    expect(h.sink.messages.map((m) => m.payload.toString())).toEqual(['{"n":1}', '{"n":1}']);
  });
});
