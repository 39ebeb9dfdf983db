/**
 * Keep alive behind more than aedes reads, over real sockets. aedes reads nothing more from a
 * connection while packets it read together are unfinished (uplinks held by ingest), and the
 * WireGuard stopped reading the socket once its own buffer (16 KiB) was full: a PINGREQ sent
 * behind more than that went unseen, so a healthy client gave up waiting for its PINGRESP, and
 * the broker's keep-alive timer closed a connection whose bytes it had itself chosen not to read.
 * Now the guard reads on (and answers PINGREQs) for one frame of the largest size beyond its
 * buffer, holds the client by TCP flow control past that, and the broker's keep alive waits while
 * it does.
 */
import { once } from 'node:events';
import { createServer, connect as netConnect, Socket, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { maxFrameBytes } from './limits.js';
import { connectPacket, pubackPacket, publishPacket } from './mqtt-bytes.js';
import { closed, rawClient, startHarness, type Harness } from './test-support.js';
import { WireGuard } from './wire-guard.js';

const ulid = createIdFactory();
const PINGREQ = Buffer.from([0xc0, 0x00]);
const PINGRESP = Buffer.from([0xd0, 0x00]);
const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
/** The test harness's payload limit (test-support.ts). */
const MAX_PAYLOAD = 64 * 1024;
const usage = (bytes: number) => Buffer.from(JSON.stringify({ v: 1, id: ulid(), sent_at: Date.now(), events: [], pad: 'x'.repeat(bytes) }));

describe('WireGuard on a real socket whose reader (aedes) has stopped reading', () => {
  let server: Server | null = null;
  let client: Socket | null = null;
  afterEach(async () => {
    client?.destroy();
    client = null;
    if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = null;
  });

  /** A guard on the broker's side of a loopback connection, authenticated, its CONNACK sent; nothing reads it. */
  async function guarded(): Promise<{ guard: WireGuard; accepted: Socket; client: Socket; received: Buffer[]; readPaused: boolean[] }> {
    server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const accepting = once(server, 'connection') as Promise<[Socket]>;
    const c = netConnect((server.address() as AddressInfo).port, '127.0.0.1');
    client = c;
    const [accepted] = await accepting;
    const readPaused: boolean[] = [];
    const guard = new WireGuard(accepted, {
      maxFrameBytes: maxFrameBytes(MAX_PAYLOAD),
      maxConnectBytes: 64 * 1024,
      maxFiltersPerPacket: 8,
      onViolation: (v) => {
        throw new Error(`unexpected violation ${v.reason}`);
      },
      onReadPaused: (paused) => readPaused.push(paused),
    });
    const received: Buffer[] = [];
    c.on('data', (d: Buffer) => received.push(d));
    c.write(connectPacket({ clientId: 'c' }));
    await once(guard, 'readable');
    expect(guard.read()).toEqual(connectPacket({ clientId: 'c' }));
    guard.authenticate({ maxQos: () => 1, onPuback: () => undefined, watch: null });
    guard.write(CONNACK);
    await once(c, 'data');
    received.length = 0;
    return { guard, accepted, client: c, received, readPaused };
  }

  const publishes = (count: number, payloadBytes: number) =>
    Array.from({ length: count }, (_, i) => publishPacket('t/x', Buffer.alloc(payloadBytes, i), { qos: 1, packetId: i + 1 }));

  it('answers a PINGREQ sent behind more than its own buffer holds [MQTT-3.12.4-1]', async () => {
    const { guard, client: c, received } = await guarded();
    // 192 KiB of PUBLISHes nobody reads (twelve times the stream's buffer, three reads of the
    // socket), then a PINGREQ.
    const backlog = Buffer.concat(publishes(24, 8 * 1024));
    expect(backlog.length).toBeGreaterThan(12 * guard.readableHighWaterMark);
    const answered = once(c, 'data');
    c.write(Buffer.concat([backlog, PINGREQ]));
    await answered;
    expect(Buffer.concat(received).equals(PINGRESP)).toBe(true);
    // Everything else waits for aedes, in order, and the PINGREQ is not handed on.
    const forwarded: Buffer[] = [];
    for (let chunk = guard.read(); chunk !== null; chunk = guard.read()) forwarded.push(chunk);
    expect(Buffer.concat(forwarded).equals(backlog)).toBe(true);
  });

  it('stops reading a client that goes on publishing: what it holds stays bounded, nothing is lost, and reading resumes', async () => {
    const { guard, accepted, client: c, received, readPaused } = await guarded();
    // 4 MiB of PUBLISHes behind nothing read: far beyond the read-ahead.
    const sent = Buffer.concat(publishes(64, MAX_PAYLOAD));
    const paused = new Promise<void>((resolve) => {
      const pause = accepted.pause.bind(accepted);
      accepted.pause = () => {
        resolve();
        return pause();
      };
    });
    c.write(sent);
    await paused;
    expect(readPaused).toEqual([true]);
    // At most the stream's buffer, one frame of the largest size, and one read of the socket.
    const bound = guard.readableHighWaterMark + maxFrameBytes(MAX_PAYLOAD) + 64 * 1024;
    expect(guard.readableLength).toBeLessThanOrEqual(bound);
    // aedes reads again: every byte arrives once and in order, the client is no longer held.
    const forwarded: Buffer[] = [];
    let total = 0;
    while (total < sent.length) {
      const chunk = guard.read();
      if (chunk === null) {
        await once(guard, 'readable');
        continue;
      }
      expect(guard.readableLength).toBeLessThanOrEqual(bound);
      forwarded.push(chunk);
      total += chunk.length;
    }
    expect(Buffer.concat(forwarded).equals(sent)).toBe(true);
    expect(readPaused[readPaused.length - 1]).toBe(false);
    expect(received).toEqual([]);
  });
});

describe('keep alive of a tower whose uplinks are held, with more than 16 KiB behind them', () => {
  let h: Harness;
  afterEach(async () => {
    vi.useRealTimers();
    vi.restoreAllMocks();
    await h.close();
  });

  /** Holds every uplink in the sink until the returned release is called. */
  function holdIngest(): () => void {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    h.sink.impl = () => gate;
    return release;
  }

  it('raw client: a PINGREQ behind two held uplinks and 180 KiB more is answered [MQTT-3.12.4-1]', async () => {
    h = await startHarness();
    const login = await h.createTower('T1');
    const release = holdIngest();
    const raw = await rawClient(h.mqttPort);
    // keepalive 1 s: aedes closes a connection it heard nothing from for 1.5 s.
    raw.write(connectPacket({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: login.password, keepalive: 1 }));
    await raw.bytes(4);
    const ended = raw.closed.then(() => 'closed' as const);
    const topic = topics.usage('tenantA', 'T1');
    raw.write(Buffer.concat([1, 2].map((packetId) => publishPacket(topic, usage(100), { qos: 1, packetId }))));
    await expect.poll(() => h.sink.messages.length).toBe(2);
    // Six more uplinks of 30 KiB: aedes reads none of them while the first two are held.
    raw.write(Buffer.concat([3, 4, 5, 6, 7, 8].map((packetId) => publishPacket(topic, usage(30 * 1024), { qos: 1, packetId }))));
    raw.write(PINGREQ);
    expect(await Promise.race([raw.bytes(6).then(() => 'answered' as const), ended])).toBe('answered');
    expect(raw.received().subarray(4).equals(PINGRESP)).toBe(true);
    release();
    const pubacks = (await raw.bytes(6 + 8 * 4)).subarray(6);
    expect(pubacks.equals(Buffer.concat([1, 2, 3, 4, 5, 6, 7, 8].map((id) => pubackPacket(id))))).toBe(true);
    expect(h.sink.messages).toHaveLength(8);
    raw.destroy();
  });

  it('mqtt.js: pings are answered for three keep-alive periods while 48 KiB of uplinks wait behind two held ones', async () => {
    h = await startHarness();
    const login = await h.createTower('T1');
    const release = holdIngest();
    // keepalive 1 s: mqtt.js pings after 1 s without an answer and gives up 0.5 s later.
    const tower = await h.connectTower(login, { keepalive: 1 });
    const topic = topics.usage('tenantA', 'T1');
    const held = [1, 2].map(() => tower.publishAsync(topic, usage(100), { qos: 1 }));
    await expect.poll(() => h.sink.messages.length).toBe(2);
    // Sent once aedes read the first two, so it reads none of these while those are held.
    const published = Promise.all([...held, ...[1, 2, 3, 4, 5, 6].map(() => tower.publishAsync(topic, usage(8 * 1024), { qos: 1 }))]);
    for (let i = 0; i < 3; i++) {
      const ping = await Promise.race([
        new Promise<'answered'>((resolve) => {
          const onPacket = (p: { cmd: string }) => {
            if (p.cmd !== 'pingresp') return;
            tower.off('packetreceive', onPacket);
            resolve('answered');
          };
          tower.on('packetreceive', onPacket);
        }),
        closed(tower).then(() => 'closed' as const),
      ]);
      expect(ping).toBe('answered');
    }
    release();
    await published;
    expect(tower.connected).toBe(true);
    expect(h.sink.messages).toHaveLength(8);
  });

  it("the broker's keep alive waits while it does not read the connection, and runs again once it does [MQTT-3.1.2-24]", async () => {
    h = await startHarness();
    const login = await h.createTower('T1');
    const release = holdIngest();
    // The broker's side of the connection (it disables Nagle on each TCP socket it accepts).
    const accepted: Socket[] = [];
    const setNoDelay = Socket.prototype.setNoDelay;
    vi.spyOn(Socket.prototype, 'setNoDelay').mockImplementation(function (this: Socket, noDelay?: boolean) {
      if (this.localPort === h.mqttPort) accepted.push(this);
      return setNoDelay.call(this, noDelay);
    });
    // aedes arms its keep-alive timer at the CONNECT: fake from here on (sockets stay real).
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const raw = await rawClient(h.mqttPort);
    raw.write(connectPacket({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: login.password, keepalive: 1 }));
    await raw.bytes(4);
    expect(accepted).toHaveLength(1);
    const paused = new Promise<void>((resolve) => {
      const socket = accepted[0]!;
      const pause = socket.pause.bind(socket);
      socket.pause = () => {
        resolve();
        return pause();
      };
    });
    const ended = raw.closed.then(() => 'closed' as const);
    const topic = topics.usage('tenantA', 'T1');
    raw.write(Buffer.concat([1, 2].map((packetId) => publishPacket(topic, usage(100), { qos: 1, packetId }))));
    await expect.poll(() => h.sink.messages.length).toBe(2);
    // Twenty uplinks of 30 KiB behind the two held ones: more than the broker reads ahead.
    const more = Array.from({ length: 20 }, (_, i) => publishPacket(topic, usage(30 * 1024), { qos: 1, packetId: i + 3 }));
    raw.write(Buffer.concat(more));
    await paused;
    // Ten keep-alive periods without reading a byte of it: the connection stays.
    vi.advanceTimersByTime(15_000);
    release();
    const pubacks = await Promise.race([raw.bytes(4 + 22 * 4).then(() => 'acknowledged' as const), ended]);
    expect(pubacks).toBe('acknowledged');
    expect(h.sink.messages).toHaveLength(22);
    expect(h.broker.connectionCount).toBe(1);
    // Read again, and now silent: the keep alive closes it after 1.5 periods [MQTT-3.1.2-24].
    vi.advanceTimersByTime(1_600);
    expect(await ended).toBe('closed');
  });
});
