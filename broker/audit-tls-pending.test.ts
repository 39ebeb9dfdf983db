/**
 * Audit: the pending-connection cap (`--mqtt-max-pending-connections`, README "Protocol and
 * caps") bounds every unauthenticated connection, including a TLS one (MQTT over TLS, WSS)
 * during its handshake. Those were counted only once the handshake was done, so a client could
 * open any number of TCP connections to the TLS port and never send a ClientHello; and Node's
 * handshake timeout only reported them ('tlsClientError'), it did not close them, and a byte now
 * and then reset it. Now they count from the TCP accept, are refused beyond the cap like the
 * same sockets on the MQTT and WebSocket ports, and are closed when the handshake has not
 * completed within the CONNECT timeout (10 s) of their accept.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { filters, mqttIdentity } from '../shared/mqtt/topics.js';
import { makeSelfSignedCertificate } from '../test/support/tls.js';
import { rawClient, startHarness, subscribeResult, type Harness, type RawClient, type TowerLogin } from './test-support.js';

const probeDir = await mkdtemp(join(tmpdir(), 'edgeplane-tls-probe-'));
const opensslAvailable = (await makeSelfSignedCertificate(probeDir)) !== null;
await rm(probeDir, { recursive: true, force: true });
if (!opensslAvailable) console.warn('broker/audit-tls-pending.test.ts skipped: openssl is not installed (apt-get install -y openssl)');

/** The first bytes of a ClientHello: a handshake record announcing 512 bytes, then 9 of them. */
const PARTIAL_CLIENT_HELLO = Buffer.from('160301020001000200030300000000000000', 'hex');

let dir: string;
let tls: { cert: Buffer; key: Buffer };
let h: Harness | null = null;
const opened: Array<{ destroy(): void }> = [];

beforeAll(async () => {
  if (!opensslAvailable) return;
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-tls-pending-'));
  const made = await makeSelfSignedCertificate(dir);
  if (!made) throw new Error('openssl is required under CI=true (apt-get install -y openssl)');
  tls = { cert: made.cert, key: await readFile(made.keyFile) };
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

afterEach(async () => {
  vi.useRealTimers();
  for (const c of opened.splice(0)) c.destroy();
  await h?.close();
  h = null;
});

function harness(): Harness {
  if (!h) throw new Error('no harness');
  return h;
}

/** A TCP connection to a TLS port that never starts its handshake. */
async function silent(port: number): Promise<RawClient> {
  const c = await rawClient(port);
  opened.push(c);
  return c;
}

/** A TCP connection to a TLS port that sends part of a ClientHello and stops. */
async function partialHello(port: number): Promise<RawClient> {
  const c = await silent(port);
  c.write(PARTIAL_CLIENT_HELLO);
  return c;
}

/** A TLS connection (handshake completed) that sends nothing over it. */
async function handshaken(port: number): Promise<TLSSocket> {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca: tls.cert, servername: 'localhost' });
  socket.on('error', () => undefined);
  opened.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('close', () => reject(new Error('TLS connection closed before its handshake completed')));
  });
  return socket;
}

function closedTls(socket: TLSSocket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** Once the broker sees what the client already did (no event tells the test). */
async function pendingBecomes(n: number): Promise<void> {
  await vi.waitFor(() => expect(harness().broker.pendingConnectionCount).toBe(n));
}

/** A tower with valid credentials connecting with the mqtt package over `mqtts://` or `wss://`. */
async function towerOverTls(url: string, login: TowerLogin): Promise<MqttClient> {
  const client = await connectAsync(
    url,
    {
      ca: tls.cert,
      clientId: mqttIdentity.towerClientId(login.towerId),
      username: login.towerId,
      password: login.password,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    },
    false,
  );
  client.on('error', () => undefined);
  opened.push({ destroy: () => void client.end(true) });
  return client;
}

const refusedTotal = () => harness().counters.get('mqtt_rejected_total', { reason: 'too_many_pending' });

describe.skipIf(!opensslAvailable && process.env.CI !== 'true')('TLS connections before their handshake completes', () => {
  it('count against the pending cap from their TCP accept: beyond it they are refused, and a tower still connects once they close', async () => {
    h = await startHarness({ tls, config: { mqtt_max_pending_connections: 5 } });
    const tlsPort = h.tlsPort!;
    const held = [await silent(tlsPort), await silent(tlsPort), await partialHello(tlsPort), await silent(h.wsPort), await partialHello(h.wsPort)];
    await pendingBecomes(5);

    // Beyond the cap, on either TLS port and on the plain MQTT port (one cap for all).
    const extra = [await silent(tlsPort), await partialHello(tlsPort), await silent(tlsPort), await silent(h.wsPort), await silent(h.mqttPort)];
    await Promise.all(extra.map((c) => c.closed));
    expect(refusedTotal()).toBe(5);
    expect(h.broker.pendingConnectionCount).toBe(5);

    for (const c of held) c.destroy();
    await Promise.all(held.map((c) => c.closed));
    await pendingBecomes(0);

    const login = await h.createTower('T1');
    const tower = await towerOverTls(`mqtts://127.0.0.1:${tlsPort}`, login);
    expect(await subscribeResult(tower, filters.towerDecisions('T1'))).toBe(1);
    expect(h.broker.pendingConnectionCount).toBe(0);
    expect(h.broker.connectionCount).toBe(1);
    const overWss = await towerOverTls(`wss://127.0.0.1:${h.wsPort}/mqtt`, await h.createTower('T2'));
    expect(await subscribeResult(overWss, filters.towerDecisions('T2'))).toBe(1);
    expect(h.broker.pendingConnectionCount).toBe(0);
    expect(refusedTotal()).toBe(5);
  });

  it('are closed when the handshake has not completed within the CONNECT timeout of their accept, however they trickle', async () => {
    h = await startHarness({ tls });
    // The broker's handshake deadline is armed at accept, on the faked clock.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const idle = await silent(h.tlsPort!);
    const trickling = await partialHello(h.tlsPort!);
    const wss = await silent(h.wsPort);
    await pendingBecomes(3);

    vi.advanceTimersByTime(6_000);
    // Activity resets Node's own (idle) handshake timeout; the deadline counts from the accept.
    trickling.write(Buffer.alloc(1));
    vi.advanceTimersByTime(4_000);
    await Promise.all([idle.closed, trickling.closed, wss.closed]);
    vi.useRealTimers();
    await pendingBecomes(0);
  });

  it('hold no count after many are opened, refused and closed (200 connections)', async () => {
    h = await startHarness({ tls, config: { mqtt_max_pending_connections: 5 } });
    const tlsPort = h.tlsPort!;
    const wsPort = h.wsPort;
    const rounds = 25;
    for (let round = 0; round < rounds; round++) {
      // Five counted: handshakes completed (then waiting for CONNECT or the upgrade), one
      // stopped in its ClientHello, one that never started.
      const secured = [await handshaken(tlsPort), await handshaken(tlsPort), await handshaken(wsPort)];
      const raw = [await partialHello(tlsPort), await silent(wsPort)];
      await pendingBecomes(5);
      const extra = [await silent(tlsPort), await partialHello(tlsPort), await silent(wsPort)];
      await Promise.all(extra.map((c) => c.closed));
      expect(refusedTotal()).toBe(3 * (round + 1));
      for (const c of [...secured, ...raw]) c.destroy();
      await Promise.all([...secured.map(closedTls), ...raw.map((c) => c.closed)]);
      await pendingBecomes(0);
      opened.splice(0);
    }
    expect(refusedTotal()).toBe(3 * rounds);

    const tower = await towerOverTls(`mqtts://127.0.0.1:${tlsPort}`, await h.createTower('T1'));
    expect(await subscribeResult(tower, filters.towerDecisions('T1'))).toBe(1);
    expect(h.broker.pendingConnectionCount).toBe(0);
    await tower.endAsync(true);
    await vi.waitFor(() => expect(harness().broker.connectionCount).toBe(0));
    expect(h.broker.pendingConnectionCount).toBe(0);
  });
});
