/**
 * MQTT 3.1.1 packets built byte by byte, for tests that must send what a real client library
 * would refuse to (conformance and hostile-input tests). Test support only.
 */

/** A UTF-8 string (or raw bytes) with its 2-byte length prefix [MQTT-1.5.3]. */
export function mqttString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

/** The Remaining Length varint [MQTT-2.2.3]. */
export function remainingLength(n: number): Buffer {
  const out: number[] = [];
  let x = n;
  do {
    let b = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) b |= 0x80;
    out.push(b);
  } while (x > 0);
  return Buffer.from(out);
}

/** A frame: first byte (type << 4 | flags), remaining length, body. */
export function frame(first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first]), remainingLength(body.length), body]);
}

export interface ConnectFields {
  protocol?: string;
  level?: number;
  /** Flags byte; by default: clean session, and username/password flags when given. */
  flags?: number;
  keepalive?: number;
  clientId?: string | Buffer;
  will?: { topic: string | Buffer; message: Buffer };
  username?: string;
  password?: string;
  /** Bytes appended after the last field. */
  trailing?: Buffer;
}

export function connectPacket(f: ConnectFields = {}): Buffer {
  const flags =
    f.flags ?? (0x02 | (f.will ? 0x04 | 0x08 : 0) | (f.username !== undefined ? 0x80 : 0) | (f.password !== undefined ? 0x40 : 0));
  const keepalive = f.keepalive ?? 60;
  const parts = [
    mqttString(f.protocol ?? 'MQTT'),
    Buffer.from([f.level ?? 4, flags, keepalive >> 8, keepalive & 0xff]),
    mqttString(f.clientId ?? ''),
  ];
  if (f.will) parts.push(mqttString(f.will.topic), mqttString(f.will.message));
  if (f.username !== undefined) parts.push(mqttString(f.username));
  if (f.password !== undefined) parts.push(mqttString(f.password));
  if (f.trailing) parts.push(f.trailing);
  return frame(0x10, Buffer.concat(parts));
}

/** SUBSCRIBE with (filter, requested QoS) pairs; filters may be raw bytes. */
export function subscribePacket(packetId: number, subs: Array<[string | Buffer, number]>): Buffer {
  const body = [Buffer.from([packetId >> 8, packetId & 0xff]), ...subs.flatMap(([f, q]) => [mqttString(f), Buffer.from([q])])];
  return frame(0x82, Buffer.concat(body));
}

export function publishPacket(topic: string | Buffer, payload: Buffer, opts: { qos?: number; packetId?: number; retain?: boolean } = {}): Buffer {
  const qos = opts.qos ?? 0;
  const parts = [mqttString(topic)];
  if (qos > 0) parts.push(Buffer.from([(opts.packetId ?? 1) >> 8, (opts.packetId ?? 1) & 0xff]));
  parts.push(payload);
  return frame(0x30 | (qos << 1) | (opts.retain ? 1 : 0), Buffer.concat(parts));
}

export function pubackPacket(packetId: number): Buffer {
  return Buffer.from([0x40, 0x02, packetId >> 8, packetId & 0xff]);
}
