/**
 * A dead peer with something of ours unacknowledged, over real sockets. TCP keepalive probes
 * idle sockets only, and a few small deliveries never fill the socket's buffer, so aedes' drain
 * timeout never starts: a keep-alive-0 tower that stopped answering just as a QoS 1 message was
 * written to it stayed connected (its tower online, the message unacknowledged) until the
 * kernel gave up, ~15 minutes on. Now a client that owes an answer and says nothing for the ack
 * timeout (60 s) is closed as dead; one that answers, or is owed nothing, is never judged.
 * The peer here is a raw socket on 127.0.0.1 that stops reading and sending.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { filters, mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { AckDeadline } from './ack-deadline.js';
import { OutboundFrames } from './outbound-frames.js';
import { connectPacket, pubackPacket, publishPacket, subscribePacket } from './mqtt-bytes.js';
import { rawClient, startHarness, type Harness, type RawClient } from './test-support.js';

const PINGREQ = Buffer.from([0xc0, 0x00]);
const ACK_TIMEOUT_MS = 60_000;

let h: Harness | null = null;
afterEach(async () => {
  vi.useRealTimers();
  await h?.close();
  h = null;
});

/** Tower T1 with MQTT keep alive 0, subscribed to its decisions (QoS 1); resolves with the bytes received so far. */
async function silentTower(harness: Harness): Promise<{ raw: RawClient; seen: number }> {
  const login = await harness.createTower('T1');
  await harness.store.towers.setStatus('T1', { state: 'online', agent_version: '1.0.0', at: harness.clock.now });
  const raw = await rawClient(harness.mqttPort);
  raw.write(connectPacket({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: login.password, keepalive: 0 }));
  await raw.bytes(4);
  raw.write(subscribePacket(1, [[filters.towerDecisions('T1'), 1]]));
  const suback = await raw.bytes(9);
  expect(suback[4]).toBe(0x90);
  return { raw, seen: 9 };
}

/** Resolves with 'open' once a PINGREQ is answered, or 'closed' if the connection ends first. */
async function stillOpen(raw: RawClient, seen: number): Promise<'open' | 'closed'> {
  raw.write(PINGREQ);
  return Promise.race([raw.bytes(seen + 2).then(() => 'open' as const), raw.closed.then(() => 'closed' as const)]);
}

describe('a keep-alive-0 tower that owes a PUBACK and falls silent', () => {
  it('is closed after the ack timeout, counted, and marked offline', async () => {
    h = await startHarness();
    const { raw, seen } = await silentTower(h);
    // The broker's timers are fake from here on (sockets stay real).
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const offline = new Promise<string>((resolve) => h!.bus.subscribe('tower.status', (e) => resolve(e.tower.state)));
    const payload = Buffer.from('{"decision":1}');
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T1'), payload, { qos: 1 });
    // The QoS 1 PUBLISH reached the tower's socket; the tower never answers it.
    const delivered = await raw.bytes(seen + 1);
    expect(delivered[seen]! >> 4).toBe(3);
    const ended = raw.closed.then(() => 'closed' as const);
    vi.advanceTimersByTime(ACK_TIMEOUT_MS - 1_000);
    expect(h.broker.connectionCount).toBe(1);
    vi.advanceTimersByTime(1_000);
    expect(await ended).toBe('closed');
    expect(await offline).toBe('offline');
    expect(h.counters.get('mqtt_rejected_total', { reason: 'ack_timeout' })).toBe(1);
    expect(h.broker.connectionCount).toBe(0);
  });

  it('is closed after the configured --mqtt-ack-timeout-s instead', async () => {
    h = await startHarness({ config: { mqtt_ack_timeout_s: 5 } });
    const { raw, seen } = await silentTower(h);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T1'), Buffer.from('{"decision":1}'), { qos: 1 });
    await raw.bytes(seen + 1);
    const ended = raw.closed.then(() => 'closed' as const);
    vi.advanceTimersByTime(4_999);
    expect(h.broker.connectionCount).toBe(1);
    vi.advanceTimersByTime(1);
    expect(await ended).toBe('closed');
    expect(h.counters.get('mqtt_rejected_total', { reason: 'ack_timeout' })).toBe(1);
  });

  it('stays connected once it answered, and when it is owed nothing (QoS 0) [MQTT-3.1.2-23]', async () => {
    h = await startHarness();
    const { raw, seen } = await silentTower(h);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T1'), Buffer.from('{"decision":1}'), { qos: 1 });
    const got = await raw.bytes(seen + 1);
    // The PUBLISH's packet id: after its fixed header (one length byte here) and topic.
    const topicLength = got.readUInt16BE(seen + 2);
    const packetId = got.readUInt16BE(seen + 4 + topicLength);
    raw.write(pubackPacket(packetId));
    const afterAck = (await raw.bytes(seen + 2 + got[seen + 1]!)).length;
    expect(await stillOpen(raw, afterAck)).toBe('open');
    vi.advanceTimersByTime(10 * ACK_TIMEOUT_MS);
    expect(await stillOpen(raw, afterAck + 2)).toBe('open');
    // A QoS 0 message asks for no answer: silence after it is no sign of death.
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T1'), Buffer.from('{"decision":2}'), { qos: 0 });
    const afterQos0 = (await raw.bytes(afterAck + 5)).length;
    vi.advanceTimersByTime(10 * ACK_TIMEOUT_MS);
    expect(await stillOpen(raw, afterQos0)).toBe('open');
    expect(h.counters.get('mqtt_rejected_total', { reason: 'ack_timeout' })).toBe(0);
    raw.destroy();
  });
});

describe('AckDeadline', () => {
  afterEach(() => vi.useRealTimers());
  const qos2 = (id: number) => publishPacket('t/x', Buffer.alloc(300), { qos: 2, packetId: id });
  const pubrel = (id: number) => Buffer.from([0x62, 0x02, id >> 8, id & 0xff]);
  /** The deadline as the wire guard feeds it: through the one reader of what is written. */
  const readFor = (d: AckDeadline) => new OutboundFrames({ owed: (id) => d.owe(id), watch: null, lost: () => d.lost() });

  it.each([1, 2, 7, 1000])('follows what it owes across any split of the writes (%i bytes at a time)', (size) => {
    vi.useFakeTimers();
    let expired = 0;
    const d = new AckDeadline(1000, () => expired++);
    const frames = readFor(d);
    const out = Buffer.concat([publishPacket('t/q0', Buffer.alloc(200)), qos2(5), publishPacket('t/q1', Buffer.alloc(10), { qos: 1, packetId: 6 })]);
    for (let i = 0; i < out.length; i += size) frames.written(out.subarray(i, i + size));
    expect(d.owed).toBe(2);
    d.answered(5); // PUBREC
    d.heard();
    frames.written(pubrel(5)); // the PUBREL is owed its PUBCOMP
    d.answered(6);
    d.heard();
    expect(d.owed).toBe(1);
    vi.advanceTimersByTime(999);
    expect(expired).toBe(0);
    d.answered(5); // PUBCOMP
    d.heard();
    vi.advanceTimersByTime(10_000);
    expect(expired).toBe(0);
    d.stop();
  });

  it('waits while the broker does not read the connection, and starts a full period once it does', () => {
    vi.useFakeTimers();
    let expired = 0;
    const d = new AckDeadline(1000, () => expired++);
    readFor(d).written(qos2(1));
    vi.advanceTimersByTime(900);
    d.paused(true);
    vi.advanceTimersByTime(60_000);
    expect(expired).toBe(0);
    d.paused(false);
    vi.advanceTimersByTime(999);
    expect(expired).toBe(0);
    vi.advanceTimersByTime(1);
    expect(expired).toBe(1);
    d.stop();
  });
});
