/**
 * Limits and hostile input over real sockets: payload size, frame size, publish rate, topic
 * depth, and bytes that are not MQTT at all. Every case also proves the broker keeps serving.
 */
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { connect as netConnect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createLogger } from '../shared/logger.js';
import { topics } from '../shared/mqtt/topics.js';
import { closed, startHarness, subscribeResult, type Harness, type TowerLogin } from './test-support.js';

const MAX_PAYLOAD = 1024;

/** A UTF-8 string with its 2-byte length prefix [MQTT-1.5.3]. */
function mqttString(s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

/** MQTT 3.1.1 CONNECT (clean session, username + password) built by hand for raw-socket tests. */
function connectPacket(clientId: string, username: string, password: string): Buffer {
  const body = Buffer.concat([
    mqttString('MQTT'),
    Buffer.from([4, 0x80 | 0x40 | 0x02, 0x00, 0x3c]),
    mqttString(clientId),
    mqttString(username),
    mqttString(password),
  ]);
  const len: number[] = [];
  let x = body.length;
  do {
    len.push((x % 128) | (x >= 128 ? 0x80 : 0));
    x = Math.floor(x / 128);
  } while (x > 0);
  return Buffer.concat([Buffer.from([0x10, ...len]), body]);
}

describe('broker limits', () => {
  let h: Harness;
  let t1: TowerLogin;
  let t2: TowerLogin;

  beforeEach(async () => {
    h = await startHarness({
      config: { mqtt_max_payload_bytes: MAX_PAYLOAD, mqtt_publish_rate: 5, mqtt_publish_burst: 3, mqtt_max_topic_levels: 8 },
    });
    t1 = await h.createTower('T1');
    t2 = await h.createTower('T2');
  });
  afterEach(async () => {
    await h.close();
  });

  it('drops a client whose payload exceeds the limit, while others keep working', async () => {
    const c1 = await h.connectTower(t1);
    const c2 = await h.connectTower(t2);
    const gone = closed(c1);
    c1.publish(topics.status('T1'), Buffer.alloc(MAX_PAYLOAD + 1), { qos: 1 }, () => undefined);
    await gone;
    expect(h.counters.get('mqtt_rejected_total', { reason: 'payload_too_large' })).toBe(1);

    await c2.publishAsync(topics.status('T2'), Buffer.alloc(MAX_PAYLOAD), { qos: 1 });
    expect(h.sink.topics()).toEqual([topics.status('T2')]);
  });

  it('drops a frame far beyond the limit as soon as its header arrives, without waiting for the body', async () => {
    const socket = netConnect(h.mqttPort, '127.0.0.1');
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    socket.write(connectPacket('tower-T1', 'T1', t1.password));
    const [connack] = (await once(socket, 'data')) as [Buffer];
    expect([...connack]).toEqual([0x20, 0x02, 0x00, 0x00]); // CONNACK, accepted
    const gone = once(socket, 'close');
    // PUBLISH QoS 1 declaring 268 MB; the body is never sent, so only the guard can end this.
    socket.write(Buffer.from([0x32, 0xff, 0xff, 0xff, 0x7f]));
    await gone;
    expect(h.counters.get('mqtt_rejected_total', { reason: 'payload_too_large' })).toBe(1);
    expect(h.sink.messages).toEqual([]);
    const again = await h.connectTower(t1);
    await again.publishAsync(topics.status('T1'), Buffer.from('{}'), { qos: 1 });
  });

  it('drops a client that publishes faster than its rate allows (injected clock)', async () => {
    const c = await h.connectTower(t1);
    for (let i = 0; i < 3; i++) await c.publishAsync(topics.status('T1'), Buffer.from('{}'), { qos: 1 }); // the burst
    h.clock.now += 200; // 5/s: exactly one more token
    await c.publishAsync(topics.status('T1'), Buffer.from('{}'), { qos: 1 });
    const gone = closed(c);
    c.publish(topics.status('T1'), Buffer.from('{}'), { qos: 1 }, () => undefined);
    await gone;
    expect(h.counters.get('mqtt_rejected_total', { reason: 'rate_limited' })).toBe(1);
    expect(h.sink.messages).toHaveLength(4);

    // Other clients have their own bucket.
    const other = await h.connectTower(t2);
    await other.publishAsync(topics.status('T2'), Buffer.from('{}'), { qos: 1 });
  });

  it('does not give a tower a fresh burst for reconnecting: its connections share one bucket', async () => {
    const c = await h.connectTower(t1);
    for (let i = 0; i < 3; i++) await c.publishAsync(topics.status('T1'), Buffer.from('{}'), { qos: 1 }); // the burst
    const gone = closed(c);
    c.publish(topics.status('T1'), Buffer.from('{}'), { qos: 1 }, () => undefined);
    await gone;
    // At once again: the bucket is still empty, so the first PUBLISH closes the new connection too.
    const again = await h.connectTower(t1);
    const goneAgain = closed(again);
    again.publish(topics.status('T1'), Buffer.from('{}'), { qos: 1 }, () => undefined);
    await goneAgain;
    expect(h.counters.get('mqtt_rejected_total', { reason: 'rate_limited' })).toBe(2);
    expect(h.sink.messages).toHaveLength(3);
    // Another tower's bucket is its own, however T1 spends.
    const other = await h.connectTower(t2);
    for (let i = 0; i < 3; i++) await other.publishAsync(topics.status('T2'), Buffer.from('{}'), { qos: 1 });
    // Time refills T1's bucket (5/s, burst 3), and no further than the burst.
    h.clock.now += 10_000;
    const later = await h.connectTower(t1);
    for (let i = 0; i < 3; i++) await later.publishAsync(topics.status('T1'), Buffer.from('{}'), { qos: 1 });
    const goneLater = closed(later);
    later.publish(topics.status('T1'), Buffer.from('{}'), { qos: 1 }, () => undefined);
    await goneLater;
    expect(h.counters.get('mqtt_rejected_total', { reason: 'rate_limited' })).toBe(3);
  });

  it('logs rate-limit refusals once per client and interval, with their count', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    });
    const logged = await startHarness({ config: { mqtt_publish_rate: 5, mqtt_publish_burst: 3 }, logger: createLogger('info', sink) });
    const t = await logged.createTower('T1');
    for (let i = 0; i < 40; i++) {
      // A second later the tower's bucket has refilled to its burst of 3; the 4th PUBLISH is
      // refused and closes the connection.
      logged.clock.now += 1_000;
      const c = await logged.connectTower(t);
      for (let k = 0; k < 3; k++) await c.publishAsync(topics.status('T1'), Buffer.from('{}'), { qos: 1 });
      const gone = closed(c);
      c.publish(topics.status('T1'), Buffer.from('{}'), { qos: 1 }, () => undefined);
      await gone;
    }
    expect(logged.counters.get('mqtt_rejected_total', { reason: 'rate_limited' })).toBe(40);
    const rateLines = () => lines.filter((l) => l['reason'] === 'rate_limited');
    expect(rateLines()).toHaveLength(1); // the first; the others wait for the end of the interval
    await logged.close(); // ends the interval
    expect(rateLines().map((l) => l['count'] ?? 1)).toEqual([1, 39]);
  });

  it('refuses topics deeper than mqtt_max_topic_levels', async () => {
    const deep = 'towers/T1/a/b/c/d/e/f/g'; // 9 levels
    const pub = await h.connectService();
    const gonePub = closed(pub);
    pub.publish(deep, Buffer.from('x'), { qos: 1 }, () => undefined);
    await gonePub;

    const sub = await h.connectService();
    const goneSub = closed(sub);
    sub.subscribe(`${deep}/#`, { qos: 1 }, () => undefined);
    await goneSub;
    expect(h.counters.get('mqtt_rejected_total', { reason: 'topic_too_deep' })).toBe(2);

    const ok = await h.connectService();
    expect(await subscribeResult(ok, 'towers/T1/a/b/c/d/e/#')).toBe(1); // 8 levels: allowed
  });
});

/** Writes bytes to a fresh raw TCP connection; resolves with what the broker sent once it closed it. */
async function rawExchange(port: number, bytes: Buffer, opts: { end?: boolean } = {}): Promise<Buffer> {
  const socket = netConnect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const received: Buffer[] = [];
  socket.on('data', (d: Buffer) => received.push(d));
  await once(socket, 'connect');
  const done = once(socket, 'close');
  if (opts.end) socket.end(bytes);
  else socket.write(bytes);
  await done;
  return Buffer.concat(received);
}


describe('broker under malformed input', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  const cases: Array<{ name: string; bytes: () => Buffer; end?: boolean; answer?: number[] }> = [
    { name: 'random bytes', bytes: () => Buffer.from([0xff, 0x00, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef]) },
    { name: 'an HTTP request', bytes: () => Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n') },
    // [MQTT-3.1.0-1] the first packet must be CONNECT
    { name: 'a PUBLISH before CONNECT', bytes: () => Buffer.concat([Buffer.from([0x30, 0x06]), mqttString('ab'), Buffer.from('hi')]) },
    {
      name: 'a CONNECT with protocol level 9',
      bytes: () => {
        const body = Buffer.concat([mqttString('MQTT'), Buffer.from([9, 0x02, 0x00, 0x3c]), mqttString('x')]);
        return Buffer.concat([Buffer.from([0x10, body.length]), body]);
      },
      // [MQTT-3.1.2-2] CONNACK 0x01 (unacceptable protocol level), then the close.
      answer: [0x20, 0x02, 0x00, 0x01],
    },
    // [MQTT-2.2.3] at most four Remaining Length bytes
    { name: 'a five-byte remaining length', bytes: () => Buffer.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x01]) },
    { name: 'a truncated CONNECT then FIN', bytes: () => Buffer.concat([Buffer.from([0x10, 0x20]), mqttString('MQTT')]), end: true },
  ];

  it.each(cases)('closes a connection that sends $name and keeps serving', async ({ bytes, end, answer }) => {
    expect([...(await rawExchange(h.mqttPort, bytes(), { end: end ?? false }))]).toEqual(answer ?? []);
    const login = await h.createTower('T1');
    const c = await h.connectTower(login);
    await c.publishAsync(topics.status('T1'), Buffer.from('{}'), { qos: 1 });
    expect(h.sink.topics()).toEqual([topics.status('T1')]);
  });

  it('closes a WebSocket that sends garbage and keeps serving', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${h.wsPort}/mqtt`, 'mqtt');
    ws.on('error', () => undefined);
    await once(ws, 'open');
    const done = once(ws, 'close');
    ws.send(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
    await done;
    const dash = await h.connectConsole('tenantA', { ws: true });
    expect(await subscribeResult(dash, 'tenants/tenantA/#')).toBe(0);
  });
});
