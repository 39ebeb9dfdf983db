/**
 * The byte-level inspector on its own: framing across any chunking, holding what follows a
 * CONNECT until authentication, and the verdicts that the conformance tests then prove over
 * real sockets (broker/conformance.test.ts); and the WireGuard's own PINGREQ answer (over real
 * sockets: broker/audit-keepalive.test.ts).
 */
import { once } from 'node:events';
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CommandDeliveries } from './command-deliveries.js';
import { FrameInspector, type InspectorHooks } from './frame-inspector.js';
import { OutboundFrames } from './outbound-frames.js';
import { connectPacket, frame, publishPacket, pubackPacket, subscribePacket } from './mqtt-bytes.js';
import { WireGuard } from './wire-guard.js';

const LIMITS = { maxFrameBytes: 10_000, maxConnectBytes: 512, maxFiltersPerPacket: 4 };

function hooks(pubacks: number[] = [], maxQos = 2): InspectorHooks {
  return { maxQos: () => maxQos, onPuback: (id) => pubacks.push(id) };
}

/** Feeds `bytes` in chunks of `size`; returns everything forwarded and the first violation. */
function run(inspector: FrameInspector, bytes: Buffer, size: number) {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) {
    const r = inspector.feed(bytes.subarray(i, i + size));
    out.push(...r.forward);
    if (r.violation) return { forwarded: Buffer.concat(out), violation: r.violation };
  }
  return { forwarded: Buffer.concat(out), violation: null };
}

describe('FrameInspector', () => {
  const session = Buffer.concat([
    publishPacket('tenants/A/towers/T1/usage', Buffer.alloc(300, 7), { qos: 1, packetId: 9 }),
    pubackPacket(17),
    subscribePacket(3, [['tenants/+/towers/T1/commands', 1]]),
    publishPacket('towers/T1/status', Buffer.from('{}')),
    Buffer.from([0xc0, 0x00]), // PINGREQ
    frame(0xa2, Buffer.concat([Buffer.from([0, 4]), Buffer.from([0, 3]), Buffer.from('a/b')])), // UNSUBSCRIBE
    Buffer.from([0xe0, 0x00]), // DISCONNECT
  ]);

  it.each([1, 2, 3, 7, 64, 100_000])('passes a valid session unchanged whatever the chunk size (%i)', (size) => {
    const inspector = new FrameInspector(LIMITS);
    const connect = connectPacket({ clientId: 'tower-T1', username: 'T1', password: 'secret' });
    const pubacks: number[] = [];
    // Nothing after the CONNECT passes before authentication...
    const first = run(inspector, Buffer.concat([connect, session]), size);
    expect(first).toEqual({ forwarded: connect, violation: null });
    expect(inspector.buffered).toBe(session.length);
    // ...and everything does after it.
    inspector.authenticated(hooks(pubacks));
    const rest = inspector.feed(Buffer.alloc(0));
    expect(Buffer.concat(rest.forward)).toEqual(session);
    expect(pubacks).toEqual([17]);
  });

  it('refuses a frame larger than the limit on its header, before its body arrives', () => {
    const inspector = new FrameInspector(LIMITS);
    inspector.feed(connectPacket({ clientId: 'c' }));
    inspector.authenticated(hooks());
    expect(inspector.feed(Buffer.from([0x30, 0xff, 0xff, 0x03])).violation?.reason).toBe('payload_too_large');
  });

  it('refuses a CONNECT larger than mqtt_max_connect_bytes on its header', () => {
    const r = new FrameInspector(LIMITS).feed(Buffer.from([0x10, 0x81, 0x04])); // 513 bytes announced
    expect(r).toEqual({ forward: [], violation: { reason: 'connect_too_large', rule: 'mqtt_max_connect_bytes' } });
  });

  it('refuses a remaining length longer than four bytes [MQTT-2.2.3]', () => {
    expect(new FrameInspector(LIMITS).feed(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])).violation?.reason).toBe('malformed_frame');
  });

  it('lowers a requested QoS to what the principal is granted, in the bytes aedes parses', () => {
    const inspector = new FrameInspector(LIMITS);
    inspector.feed(connectPacket({ clientId: 'c' }));
    inspector.authenticated(hooks([], 0));
    const { forward } = inspector.feed(subscribePacket(1, [['a/b', 1], ['c/d', 2]]));
    expect(Buffer.concat(forward)).toEqual(subscribePacket(1, [['a/b', 0], ['c/d', 0]]));
  });

  it('does not hand on a PINGREQ the caller answered, and reports every packet received', () => {
    const inspector = new FrameInspector(LIMITS);
    inspector.feed(connectPacket({ clientId: 'c' }));
    let received = 0;
    let answer = true;
    inspector.authenticated({ ...hooks(), received: () => received++, pingreq: () => answer });
    const publish = publishPacket('a/b', Buffer.alloc(50), { qos: 1, packetId: 1 });
    const ping = Buffer.from([0xc0, 0x00]);
    expect(Buffer.concat(inspector.feed(Buffer.concat([publish, ping, ping])).forward)).toEqual(publish);
    expect(received).toBe(3);
    // Not answered (the connection is backed up): aedes gets it.
    answer = false;
    expect(Buffer.concat(inspector.feed(ping).forward)).toEqual(ping);
    expect(received).toBe(4);
  });

  it('counts filters against the per-packet cap', () => {
    const inspector = new FrameInspector(LIMITS);
    inspector.feed(connectPacket({ clientId: 'c' }));
    inspector.authenticated(hooks());
    const five = Array.from({ length: 5 }, (_, i): [string, number] => [`f/${i}`, 1]);
    expect(inspector.feed(subscribePacket(1, five)).violation?.reason).toBe('too_many_filters');
  });
});

describe('WireGuard', () => {
  const PINGREQ = Buffer.from([0xc0, 0x00]);
  /** Pushes `bytes` as the client's and resolves once the guard (listening first) has read them. */
  const receive = (inner: Duplex, bytes: Buffer) => {
    const read = once(inner, 'data');
    inner.push(bytes);
    return read;
  };

  const guarded = async () => {
    const written: Buffer[] = [];
    const pending: { flush: (() => void) | null } = { flush: null };
    const flush = () => pending.flush?.();
    // The client's side of the socket: it takes what is written only when the test flushes it.
    const inner = new Duplex({
      read: () => undefined,
      write: (chunk: Buffer, _enc, cb) => {
        written.push(chunk);
        pending.flush = () => cb();
      },
      highWaterMark: 1,
    });
    const guard = new WireGuard(inner, { ...LIMITS, onViolation: () => undefined });
    await receive(inner, connectPacket({ clientId: 'c' }));
    guard.authenticate({ ...hooks(), watch: null });
    // aedes' CONNACK, taken by the client: a PINGRESP may follow it.
    guard.write(Buffer.from([0x20, 0x02, 0x00, 0x00]));
    const drained = once(inner, 'drain');
    flush();
    await drained;
    written.length = 0;
    return { inner, guard, written, flush };
  };

  it('answers a PINGREQ itself, without handing it to aedes [MQTT-3.12.4-1]', async () => {
    const { inner, guard, written } = await guarded();
    await receive(inner, PINGREQ);
    expect(guard.read()).toEqual(connectPacket({ clientId: 'c' }));
    expect(written).toEqual([Buffer.from([0xd0, 0x00])]);
    expect(guard.read()).toBeNull();
  });

  it('hands a PINGREQ to aedes while what was written has not drained', async () => {
    const { inner, guard, written, flush } = await guarded();
    guard.write(Buffer.alloc(100));
    await receive(inner, PINGREQ);
    expect(written).toHaveLength(1);
    expect(guard.read()).toEqual(Buffer.concat([connectPacket({ clientId: 'c' }), PINGREQ]));
    flush();
  });
});

describe('CommandDeliveries', () => {
  const command = (tenant: string, tower: string, id: string, packetId: number) =>
    publishPacket(`tenants/${tenant}/towers/${tower}/commands`, Buffer.from(JSON.stringify({ v: 1, id })), { qos: 1, packetId });

  it.each([1, 3, 11, 100_000])('maps packet ids to the commands written, across any chunking (%i)', (size) => {
    const d = new CommandDeliveries('T1', 1024);
    const frames = new OutboundFrames({ owed: null, watch: d, lost: () => undefined });
    const written = Buffer.concat([
      Buffer.from([0x20, 0x02, 0x00, 0x00]), // CONNACK
      publishPacket('tenants/A/towers/T1/decisions', Buffer.alloc(500), { qos: 1, packetId: 1 }),
      command('A', 'T1', 'cmd-1', 2),
      publishPacket('tenants/A/policy', Buffer.from('{}'), { qos: 0 }),
      command('B', 'T1', 'cmd-2', 3),
      command('A', 'T2', 'not-mine', 4), // cannot happen on T1's connection; ignored if it did
    ]);
    for (let i = 0; i < written.length; i += size) frames.written(written.subarray(i, i + size));
    expect([1, 2, 3, 4, 5].map((id) => d.acknowledged(id)?.command_id ?? null)).toEqual([null, 'cmd-1', 'cmd-2', null, null]);
    expect(d.acknowledged(3)).toBeNull(); // each PUBACK counts once
  });

  it('keeps both commands when a packet id is in flight twice (a replayed message)', () => {
    const d = new CommandDeliveries('T1', 1024);
    new OutboundFrames({ owed: null, watch: d, lost: () => undefined }).written(Buffer.concat([command('A', 'T1', 'replayed', 7), command('A', 'T1', 'live', 7)]));
    expect([d.acknowledged(7)?.command_id, d.acknowledged(7)?.command_id]).toEqual(['replayed', 'live']);
  });
});
