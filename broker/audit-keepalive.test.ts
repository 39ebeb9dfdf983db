/**
 * Keep-alive audit, over real sockets. A tower whose uplinks are held by ingest (the pipeline's
 * backpressure: their PUBACKs wait) stays connected while it pings, with mqtt.js and with a raw
 * client: aedes reads nothing more from a connection while two or more packets it read together
 * are unfinished, so their PINGREQs went unanswered. Accepted connections carry TCP keepalive
 * (checked in the kernel's socket table with ss), so a tower with MQTT keep alive 0 whose link
 * dies silently is found dead by the kernel and marked offline.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { connectAsync, type MqttClient } from 'mqtt';
import { makeSelfSignedCertificate } from '../test/support/tls.js';
import { createIdFactory } from '../shared/ids.js';
import { mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { connectPacket, pubackPacket, publishPacket } from './mqtt-bytes.js';
import { closed, rawClient, startHarness, type Harness } from './test-support.js';

const ulid = createIdFactory();
const usagePayload = () => Buffer.from(JSON.stringify({ v: 1, id: ulid(), sent_at: Date.now(), events: [] }));
const PINGREQ = Buffer.from([0xc0, 0x00]);
const PINGRESP = Buffer.from([0xd0, 0x00]);

let h: Harness;
afterEach(async () => {
  vi.restoreAllMocks();
  await h.close();
});

const certDir = await mkdtemp(join(tmpdir(), 'edgeplane-keepalive-'));
const cert = await makeSelfSignedCertificate(certDir);
const tls = cert ? { cert: cert.cert, key: await readFile(cert.keyFile) } : null;
await rm(certDir, { recursive: true, force: true });
if (!tls) console.warn('broker/audit-keepalive.test.ts: TLS listeners not checked, openssl is not installed (apt-get install -y openssl)');

const SS = spawnSync('ss', ['-V'], { stdio: 'ignore' }).status === 0;
// Under CI=true a missing tool fails these tests (.ci/run installs both) instead of skipping them.
const REQUIRED = process.env['CI'] === 'true';
if (!SS) console.warn('broker/audit-keepalive.test.ts: TCP keepalive not checked: ss is not installed (apt-get install -y iproute2)');

/** The kernel's view (ss) of the established sockets the broker accepted on `port`. */
function acceptedSockets(port: number): string[] {
  const out = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.trim() !== '');
}

/** Holds every uplink in the sink until the returned release is called. */
function holdIngest(): () => void {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  h.sink.impl = () => gate;
  return release;
}

/** Resolves with 'answered' at the client's next PINGRESP, or 'closed' if the connection ends first. */
function nextPing(client: MqttClient): Promise<'answered' | 'closed'> {
  return Promise.race([
    new Promise<'answered'>((resolve) => {
      const onPacket = (p: { cmd: string }) => {
        if (p.cmd !== 'pingresp') return;
        client.off('packetreceive', onPacket);
        resolve('answered');
      };
      client.on('packetreceive', onPacket);
    }),
    closed(client).then(() => 'closed' as const),
  ]);
}

describe('keep alive while an uplink is held by ingest', () => {
  it('mqtt.js: PINGREQs are answered and the connection stays up until the PUBACK', async () => {
    h = await startHarness();
    const login = await h.createTower('T1');
    const release = holdIngest();
    // keepalive 1 s: mqtt.js pings after 1 s of silence and gives up 0.5 s later without a
    // PINGRESP; aedes closes a connection it heard nothing from for 1.5 s.
    const tower = await h.connectTower(login, { keepalive: 1 });
    // Two uplinks in flight, as an agent with a backlog sends them: aedes, counting packets it
    // has not finished, stopped reading the connection.
    const published = Promise.all([1, 2].map(() => tower.publishAsync(topics.usage('tenantA', 'T1'), usagePayload(), { qos: 1 })));
    await expect.poll(() => h.sink.messages.length).toBe(2);
    // Three keep-alive periods while the uplinks are held: each ping answered, nothing closed.
    for (let i = 0; i < 3; i++) expect(await nextPing(tower)).toBe('answered');
    release();
    await published; // mqtt.js resolves on the PUBACK
    expect(tower.connected).toBe(true);
    expect(h.sink.messages).toHaveLength(2);
  });

  it('raw client: a PINGREQ sent behind two held PUBLISHes is answered at once [MQTT-3.12.4-1]', async () => {
    h = await startHarness();
    const login = await h.createTower('T1');
    const release = holdIngest();
    const raw = await rawClient(h.mqttPort);
    // keepalive 1 s: aedes closes a connection it heard nothing from for 1.5 s.
    raw.write(connectPacket({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: login.password, keepalive: 1 }));
    await raw.bytes(4); // CONNACK
    const ended = raw.closed.then(() => 'closed' as const);
    const usage = topics.usage('tenantA', 'T1');
    raw.write(Buffer.concat([1, 2].map((packetId) => publishPacket(usage, usagePayload(), { qos: 1, packetId }))));
    await expect.poll(() => h.sink.messages.length).toBe(2);
    raw.write(PINGREQ);
    expect(await Promise.race([raw.bytes(6).then(() => 'answered' as const), ended])).toBe('answered');
    expect(raw.received().subarray(4).equals(PINGRESP)).toBe(true);
    release();
    const pubacks = (await raw.bytes(14)).subarray(6);
    expect(pubacks.equals(Buffer.concat([pubackPacket(1), pubackPacket(2)]))).toBe(true);
    raw.destroy();
  });
});

describe('PINGREQ answered by the broker', () => {
  it('a PINGREQ sent along with the CONNECT is answered after the CONNACK [MQTT-3.2.0-1]', async () => {
    h = await startHarness();
    const login = await h.createTower('T1');
    const raw = await rawClient(h.mqttPort);
    raw.write(Buffer.concat([connectPacket({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: login.password }), PINGREQ]));
    expect((await raw.bytes(6)).equals(Buffer.concat([Buffer.from([0x20, 0x02, 0x00, 0x00]), PINGRESP]))).toBe(true);
    raw.destroy();
  });
});

describe('TCP keepalive on accepted connections', () => {
  /** Every socket the broker accepted on `ports` has SO_KEEPALIVE: ss shows its timer, counting down from 60 s. */
  const expectKeepalive = (ports: number[]) => {
    for (const port of ports) {
      const sockets = acceptedSockets(port);
      expect(sockets.length, `port ${port}`).toBeGreaterThan(0);
      for (const line of sockets) expect(line, `port ${port}`).toMatch(/timer:\(keepalive,(\d+sec|1min),/);
    }
  };

  it.skipIf(!SS && !REQUIRED)('is set on every accepted MQTT and WebSocket socket', async () => {
    h = await startHarness();
    await h.connectTower(await h.createTower('T1'), { keepalive: 0 });
    await h.connectTower(await h.createTower('T2'), { ws: true, keepalive: 0 });
    expectKeepalive([h.mqttPort, h.wsPort]);
  });

  it.skipIf((!SS || !tls) && !REQUIRED)('is set on every accepted MQTT over TLS and WSS socket', async () => {
    h = await startHarness({ tls });
    const clients: MqttClient[] = [];
    try {
      for (const [url, towerId] of [
        [`mqtts://127.0.0.1:${h.tlsPort}`, 'T1'],
        [`wss://127.0.0.1:${h.wsPort}/mqtt`, 'T2'],
      ] as const) {
        const login = await h.createTower(towerId);
        const options = { ca: tls!.cert, clientId: mqttIdentity.towerClientId(towerId), username: towerId, password: login.password };
        clients.push(await connectAsync(url, { ...options, protocolVersion: 4, reconnectPeriod: 0, keepalive: 0 }, false));
      }
      expectKeepalive([h.tlsPort!, h.wsPort]);
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true)));
    }
  });

  it('a keepalive-0 tower whose socket the kernel gives up on is marked offline', async () => {
    h = await startHarness();
    const login = await h.createTower('T1');
    await h.store.towers.setStatus('T1', { state: 'online', agent_version: '1.0.0', at: h.clock.now });
    // The broker's side of the connection (it disables Nagle on each TCP socket it accepts).
    const accepted: Socket[] = [];
    const setNoDelay = Socket.prototype.setNoDelay;
    vi.spyOn(Socket.prototype, 'setNoDelay').mockImplementation(function (this: Socket, noDelay?: boolean) {
      if (this.localPort === h.mqttPort) accepted.push(this);
      return setNoDelay.call(this, noDelay);
    });
    await h.connectTower(login, { keepalive: 0 });
    expect(accepted).toHaveLength(1);
    const offline = new Promise<string>((resolve) => h.bus.subscribe('tower.status', (e) => resolve(e.tower.state)));
    // What the kernel reports once its keepalive probes went unanswered: the peer is gone.
    accepted[0]!.destroy(Object.assign(new Error('read ETIMEDOUT'), { code: 'ETIMEDOUT' }));
    expect(await offline).toBe('offline');
    expect((await h.store.towers.get('T1'))?.state).toBe('offline');
    expect(h.broker.connectionCount).toBe(0);
  });
});
