/**
 * The agent against a broker that takes its command acks but never acknowledges them (PUBACK):
 * mqtt.js keeps every unacknowledged publish in memory, so each command grew the agent for
 * good. The broker is a minimal MQTT 3.1.1 server on a real socket (mqtt-packet), since a
 * well-behaved broker is the point of every other test. No sleeps: every wait is for a packet or
 * an event.
 */
import net, { type AddressInfo } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { SCHEMA_VERSION, type Command } from '../shared/mqtt/payloads.js';
import { topics } from '../shared/mqtt/topics.js';
import { MAX_ACKS_IN_FLIGHT } from './command-flow.js';
import { EdgeAgent } from './edge-agent.js';

const newId = createIdFactory();
const TOWER = 'tower-noack';
const TENANT = 'acme';

/** Answers CONNECT, SUBSCRIBE and PINGREQ, PUBACKs every publish except those on `hold`. */
async function startWithholdingBroker(hold: string): Promise<{
  url: string;
  heldIds: () => number[];
  /** The payloads of every publish on `hold`, in arrival order. */
  holdPayloads: () => Buffer[];
  /** Resolves once `n` publishes on `hold` have arrived. */
  holdCount: (n: number) => Promise<void>;
  /** Sends a QoS 1 publish to the connected client. */
  send: (topic: string, payload: Buffer) => void;
  /** PUBACKs what was held, and every later publish. */
  releaseAll: () => void;
  /** Resolves once a publish on `topic` arrives. */
  next: (topic: string) => Promise<void>;
  close: () => Promise<void>;
}> {
  const held: number[] = [];
  const payloads: Buffer[] = [];
  let counted: { n: number; resolve: () => void } | null = null;
  const waiting = new Map<string, () => void>();
  let socket: net.Socket | null = null;
  let releasing = false;
  let nextId = 1;
  const write = (p: Partial<Packet>): void => void socket?.write(mqttPacket.generate(p as Packet));
  const server = net.createServer((s) => {
    socket = s;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    s.on('data', (d) => parser.parse(d));
    s.on('error', () => undefined);
    parser.on('packet', (p) => {
      if (p.cmd === 'connect') write({ cmd: 'connack', returnCode: 0, sessionPresent: false });
      else if (p.cmd === 'subscribe') write({ cmd: 'suback', messageId: p.messageId, granted: p.subscriptions.map(() => 1) });
      else if (p.cmd === 'pingreq') write({ cmd: 'pingresp' });
      else if (p.cmd === 'publish') {
        if (p.topic === hold) payloads.push(Buffer.from(p.payload));
        if (p.topic === hold && !releasing) held.push(p.messageId!);
        else if (p.qos > 0) write({ cmd: 'puback', messageId: p.messageId });
        if (counted && payloads.length >= counted.n) counted.resolve();
        waiting.get(p.topic)?.();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    heldIds: () => [...held],
    holdPayloads: () => [...payloads],
    holdCount: (n) =>
      new Promise((resolve) => {
        counted = { n, resolve };
        if (payloads.length >= n) resolve();
      }),
    send: (topic, payload) => write({ cmd: 'publish', topic, payload, qos: 1, messageId: nextId++, retain: false, dup: false }),
    releaseAll: () => {
      releasing = true;
      for (const messageId of held.splice(0)) write({ cmd: 'puback', messageId });
    },
    next: (topic) => new Promise((resolve) => waiting.set(topic, resolve)),
    close: () =>
      new Promise((resolve) => {
        socket?.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('EdgeAgent against a broker that never acknowledges its command acks', () => {
  let agent: EdgeAgent | null = null;
  let close: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await agent?.stop();
    agent = null;
    await close?.();
  });

  it(`keeps at most ${MAX_ACKS_IN_FLIGHT} acks awaiting a PUBACK; the others are sent as PUBACKs come, each once`, async () => {
    const broker = await startWithholdingBroker(topics.acks(TENANT, TOWER));
    close = broker.close;
    const a = new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'pw', batchMaxEvents: 1, batchMaxDelayMs: 1, stopTimeoutMs: 200 });
    agent = a;
    a.on('error', () => undefined);
    const N = 3 * MAX_ACKS_IN_FLIGHT;
    let handled = 0;
    const allHandled = new Promise<void>((resolve) => a.on('command', () => ++handled === N && resolve()));
    await a.start();
    const now = Date.now();
    const command = (): Command => ({ v: SCHEMA_VERSION, id: newId(), type: 'notify', device_id: 'd1', issued_at: now, expires_at: now + 600_000 });
    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      const c = command();
      ids.push(c.id);
      broker.send(topics.commands(TENANT, TOWER), Buffer.from(JSON.stringify(c)));
    }
    await allHandled;
    // A usage batch sent after every command was answered: the socket is in order, so what the
    // broker holds when it arrives is every ack the agent published.
    const marker = broker.next(topics.usage(TENANT, TOWER));
    a.observe({ device_id: 'd1', app: 'mail', action: 'send', tenant_id: TENANT });
    await marker;
    expect(broker.heldIds()).toHaveLength(MAX_ACKS_IN_FLIGHT);
    expect(a.stats().acks_pending).toBe(N);

    // The broker acknowledges after all: the rest follow, each once.
    broker.releaseAll();
    await broker.holdCount(N);
    const acked = broker.holdPayloads().map((p) => (JSON.parse(p.toString()) as { command_id: string }).command_id);
    expect(acked).toEqual(ids);
    // One more command: the agent reads it after every PUBACK before it, so only its own ack is pending.
    const last = command();
    const answered = new Promise<void>((resolve) => a.once('command', () => resolve()));
    broker.send(topics.commands(TENANT, TOWER), Buffer.from(JSON.stringify(last)));
    await answered;
    expect(a.stats().acks_pending).toBe(1);
  });

  it('usage still goes while command acks await a PUBACK: maxInflight bounds the uplink\'s own publishes', async () => {
    const broker = await startWithholdingBroker(topics.acks(TENANT, TOWER));
    close = broker.close;
    const a = new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'pw', batchMaxEvents: 1, batchMaxDelayMs: 1, maxInflight: 2, stopTimeoutMs: 200 });
    agent = a;
    a.on('error', () => undefined);
    let handled = 0;
    const allHandled = new Promise<void>((resolve) => a.on('command', () => ++handled === 2 && resolve()));
    await a.start();
    const now = Date.now();
    for (let i = 0; i < 2; i++) {
      const c: Command = { v: SCHEMA_VERSION, id: newId(), type: 'notify', device_id: 'd1', issued_at: now, expires_at: now + 600_000 };
      broker.send(topics.commands(TENANT, TOWER), Buffer.from(JSON.stringify(c)));
    }
    await allHandled;
    const usage = broker.next(topics.usage(TENANT, TOWER));
    a.observe({ device_id: 'd1', app: 'mail', action: 'send', tenant_id: TENANT });
    await usage;
    expect(broker.heldIds()).toHaveLength(2);
  });
});
