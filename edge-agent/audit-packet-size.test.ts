/**
 * The agent against a broker that sends packets larger than any legitimate downlink: on MQTT
 * 3.1.1 mqtt.js buffers a whole packet of any declared length (up to 256 MB) before parsing it.
 * The broker is a minimal MQTT 3.1.1 server on a real socket (mqtt-packet), since a well-behaved
 * broker never sends such a packet. No sleeps: every wait is for a packet or a socket event.
 */
import net, { type AddressInfo } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { SCHEMA_VERSION, type Command } from '../shared/mqtt/payloads.js';
import { topics } from '../shared/mqtt/topics.js';
import { EdgeAgent } from './edge-agent.js';
import { PacketSizeGuard } from './packet-size-guard.js';
import { DEFAULT_MAX_PACKET_BYTES } from './tower-session.js';

const newId = createIdFactory();
const TOWER = 'tower-big';
const TENANT = 'acme';

interface Conn {
  socket: net.Socket;
  /** Resolves once the agent has subscribed (the session is up). */
  subscribed: Promise<void>;
  /** Resolves with 'closed' when the socket closes, or 'ack' when a command ack arrives first (after this call). */
  outcome: () => Promise<'closed' | 'ack'>;
}

/** Answers CONNECT, SUBSCRIBE, PINGREQ and PUBACKs publishes; hands out each connection. */
async function startRawBroker(): Promise<{ url: string; nextConnection: () => Promise<Conn>; close: () => Promise<void> }> {
  const pending: Conn[] = [];
  const waiting: Array<(c: Conn) => void> = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const write = (p: Partial<Packet>): void => void socket.write(mqttPacket.generate(p as Packet));
    let subscribed!: () => void;
    let closed = false;
    let settle: ((o: 'closed' | 'ack') => void) | null = null;
    const conn: Conn = {
      socket,
      subscribed: new Promise((r) => (subscribed = r)),
      outcome: () => new Promise((r) => (closed ? r('closed') : (settle = r))),
    };
    socket.on('data', (d) => parser.parse(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      settle?.('closed');
    });
    parser.on('packet', (p) => {
      if (p.cmd === 'connect') write({ cmd: 'connack', returnCode: 0, sessionPresent: false });
      else if (p.cmd === 'subscribe') {
        write({ cmd: 'suback', messageId: p.messageId, granted: p.subscriptions.map(() => 1) });
        subscribed();
      } else if (p.cmd === 'pingreq') write({ cmd: 'pingresp' });
      else if (p.cmd === 'publish') {
        if (p.qos > 0) write({ cmd: 'puback', messageId: p.messageId });
        if (p.topic === topics.acks(TENANT, TOWER)) settle?.('ack');
      }
    });
    const take = waiting.shift();
    if (take) take(conn);
    else pending.push(conn);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    nextConnection: () => new Promise((resolve) => (pending.length > 0 ? resolve(pending.shift()!) : waiting.push(resolve))),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function commandPublish(payload: Buffer): Buffer {
  return mqttPacket.generate({ cmd: 'publish', topic: topics.commands(TENANT, TOWER), payload, qos: 1, messageId: 1, retain: false, dup: false });
}

/** A valid notify command; `pad` (a field the schema ignores) makes it as large as needed. */
function notify(pad = ''): Buffer {
  const now = Date.now();
  const c: Command = { v: SCHEMA_VERSION, id: newId(), type: 'notify', device_id: 'd1', issued_at: now, expires_at: now + 600_000 };
  return Buffer.from(JSON.stringify({ ...c, pad }));
}

describe('EdgeAgent against a broker that sends oversized packets', () => {
  let agent: EdgeAgent | null = null;
  let close: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await agent?.stop();
    agent = null;
    await close?.();
  });

  async function startAgent(maxPacketBytes?: number): Promise<{ a: EdgeAgent; broker: Awaited<ReturnType<typeof startRawBroker>>; errors: Error[] }> {
    const broker = await startRawBroker();
    close = broker.close;
    const a = new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'pw', stopTimeoutMs: 200, reconnectMinMs: 1, reconnectMaxMs: 5, ...(maxPacketBytes ? { maxPacketBytes } : {}) });
    agent = a;
    const errors: Error[] = [];
    a.on('error', (err) => errors.push(err));
    await a.start();
    return { a, broker, errors };
  }

  it('closes the connection on a packet over maxPacketBytes, counts and reports it, and reconnects; smaller packets pass', async () => {
    const { a, broker, errors } = await startAgent(4096);
    const first = await broker.nextConnection();
    await first.subscribed;
    // Under the bound: applied and acked.
    const acked = first.outcome();
    first.socket.write(commandPublish(notify()));
    expect(await acked).toBe('ack');
    // Over it: a well-formed command, but never read.
    let handled = 0;
    a.on('command', () => handled++);
    const outcome = first.outcome();
    first.socket.write(commandPublish(notify('x'.repeat(5000))));
    expect(await outcome).toBe('closed');
    expect(handled).toBe(0);
    expect(a.stats().oversized_packets).toBe(1);
    expect(errors.map((e) => e.message)).toContainEqual(expect.stringMatching(/^broker sent a packet of \d+ bytes or more, above the 4096 allowed/));
    // The agent comes back on a new connection.
    await (await broker.nextConnection()).subscribed;
  });

  it('closes the connection as soon as a header declares more than the default bound, before the body arrives', async () => {
    const { a, broker } = await startAgent();
    const first = await broker.nextConnection();
    await first.subscribed;
    // A PUBLISH header declaring 200 MB, then only its topic: the body never comes.
    const declared = 200 * 1024 * 1024;
    expect(declared).toBeGreaterThan(DEFAULT_MAX_PACKET_BYTES);
    const remaining: number[] = [];
    for (let n = declared; n > 0; n = Math.floor(n / 128)) remaining.push((n % 128) | (n >= 128 ? 0x80 : 0));
    const outcome = first.outcome();
    first.socket.write(Buffer.from([0x32, ...remaining, 0x00, 0x03, 0x61, 0x2f, 0x62]));
    expect(await outcome).toBe('closed');
    expect(a.stats().oversized_packets).toBe(1);
  });
});

describe('PacketSizeGuard', () => {
  it('follows packets across chunk boundaries and reports the first one over the bound', () => {
    const guard = new PacketSizeGuard(200);
    const ok = mqttPacket.generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.alloc(190), qos: 0, retain: false, dup: false });
    const big = mqttPacket.generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.alloc(300), qos: 0, retain: false, dup: false });
    const stream = Buffer.concat([ok, mqttPacket.generate({ cmd: 'pingresp' }), ok, big]);
    // One byte at a time: every header and body split at every point.
    let at = 0;
    let verdict = guard.push(stream.subarray(0, 1));
    while (verdict === null && ++at < stream.length) verdict = guard.push(stream.subarray(at, at + 1));
    // On the header's second length byte (305 = 0xb1 0x02; 0x31 alone is under the bound).
    expect(verdict).toEqual({ length: big.length - 3, start: 0 });
    expect(at).toBe(2 * ok.length + 2 + 2);
  });

  it('says where in a chunk the packet over the bound starts', () => {
    const guard = new PacketSizeGuard(200);
    const ok = mqttPacket.generate({ cmd: 'puback', messageId: 7 });
    const big = mqttPacket.generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.alloc(300), qos: 0, retain: false, dup: false });
    expect(guard.push(Buffer.concat([ok, ok, big]))).toEqual({ length: big.length - 3, start: 2 * ok.length });
  });
});
