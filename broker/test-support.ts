/**
 * Test harness for the broker's integration tests: a real Broker on 127.0.0.1 port 0, a real
 * SQLite store in a temp dir, real JWTs, real mqtt.js clients. Only the UplinkSink (the port's
 * boundary) is a recording stand-in. Everything it opens, `close()` closes.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as mqttConnect, connectAsync, ErrorWithSubackPacket, type IClientOptions, type MqttClient } from 'mqtt';
import { KeyRing, TokenService } from '../shared/auth/tokens.js';
import { formatTowerPassword, randomSecret, sha256 } from '../shared/auth/secrets.js';
import { InProcessBus } from '../shared/bus.js';
import { ConfigSchema } from '../shared/config.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { Counters } from '../shared/metrics.js';
import { mqttIdentity } from '../shared/mqtt/topics.js';
import type { UplinkMessage, UplinkSink } from '../shared/mqtt/transport.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { formatCarrierKey } from '../shared/auth/carrier-keys.js';
import { CarrierFeedIngest } from './carrier-feed-ingest.js';
import type { BrokerBackends } from './backends.js';
import { Broker, type BrokerConfig, type BrokerDeps } from './broker.js';

export const TEST_SERVICE_SECRET = 'test-service-secret-0123456789abcdef';

/** A broker config for tests: the shipped defaults, on 127.0.0.1 port 0, with `overrides`. */
export function testBrokerConfig(overrides: Partial<BrokerConfig> = {}): BrokerConfig {
  const d = ConfigSchema.parse({});
  return {
    mqtt_host: '127.0.0.1',
    mqtt_port: 0,
    mqtt_ws_port: 0,
    allow_anonymous: false,
    mqtt_max_payload_bytes: 64 * 1024,
    mqtt_max_topic_levels: 8,
    mqtt_publish_rate: 1000,
    mqtt_publish_burst: 2000,
    mqtt_drain_timeout_ms: 5000,
    mqtt_ack_timeout_s: 60,
    mqtt_max_connect_bytes: d.mqtt_max_connect_bytes,
    mqtt_max_pending_connections: d.mqtt_max_pending_connections,
    mqtt_max_filters_per_subscribe: d.mqtt_max_filters_per_subscribe,
    mqtt_max_subscriptions_per_client: d.mqtt_max_subscriptions_per_client,
    mqtt_max_persistent_sessions_per_user: d.mqtt_max_persistent_sessions_per_user,
    mqtt_max_queued_per_session: d.mqtt_max_queued_per_session,
    mqtt_max_retained_bytes_per_client: d.mqtt_max_retained_bytes_per_client,
    mqtt_max_retained_messages: d.mqtt_max_retained_messages,
    mqtt_max_retained_bytes: d.mqtt_max_retained_bytes,
    access_token_ttl_s: d.access_token_ttl_s,
    service_secret: TEST_SERVICE_SECRET,
    ...overrides,
  };
}

/** Records every accepted uplink; `accept` can be swapped to simulate slow or failing ingest. */
export class RecordingSink implements UplinkSink {
  readonly messages: UplinkMessage[] = [];
  impl: (msg: UplinkMessage) => Promise<void> = async () => undefined;
  readonly #waiters: Array<{ match: (m: UplinkMessage) => boolean; resolve: (m: UplinkMessage) => void }> = [];

  async accept(msg: UplinkMessage): Promise<void> {
    this.messages.push(msg);
    for (const w of [...this.#waiters]) {
      if (w.match(msg)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(msg);
      }
    }
    await this.impl(msg);
  }

  /** Resolves with the first message (already received or future) that matches. */
  waitFor(match: (m: UplinkMessage) => boolean): Promise<UplinkMessage> {
    const seen = this.messages.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  topics(): string[] {
    return this.messages.map((m) => m.topic);
  }
}

export interface TowerLogin {
  towerId: string;
  credentialId: string;
  password: string;
}

export interface CarrierLogin {
  carrierId: string;
  credentialId: string;
  key: string;
}

export interface HarnessOptions {
  config?: Partial<BrokerConfig>;
  /** null starts the broker without a sink. */
  sink?: RecordingSink | null;
  /** Default: silent. */
  logger?: Logger;
  /** Lifetime of the console tokens `consoleToken`/`connectConsole` sign (default 900 s). */
  tokenTtlS?: number;
  consoleUsers?: BrokerDeps['consoleUsers'];
  /** Session backends (default: in memory). */
  backends?: BrokerBackends;
  /** The broker's bus (default: a fresh in-process one). */
  bus?: InProcessBus;
  /** PEM certificate and key: MQTT over TLS on `tlsPort`, and WSS instead of WS on `wsPort`. */
  tls?: BrokerDeps['tls'];
  refusalLogIntervalMs?: number;
}

/** A command delivery the broker reported (deps.onCommandDelivered). */
export interface ReportedDelivery {
  tenant_id: string;
  tower_id: string;
  command_id: string;
  at: number;
}

export interface Harness {
  broker: Broker;
  mqttPort: number;
  wsPort: number;
  /** MQTT over TLS; null without `tls`. */
  tlsPort: number | null;
  store: SqliteStore;
  bus: InProcessBus;
  counters: Counters;
  sink: RecordingSink;
  /** Every command delivery the broker reported, in order. */
  deliveries: ReportedDelivery[];
  ring: KeyRing;
  tokens: TokenService;
  /** The broker's clock (rate limiting, received_at); tests move it by hand. */
  clock: { now: number };
  createTower(towerId: string): Promise<TowerLogin>;
  /** A carrier and a feed credential for it (carrier feeds are applied to this store). */
  createCarrier(name: string): Promise<CarrierLogin>;
  connectCarrier(login: CarrierLogin, opts?: IClientOptions): Promise<MqttClient>;
  consoleToken(tenantId: string | null, userId?: string): Promise<string>;
  /** Resolves once the broker reported the delivery of `commandId`. */
  delivered(commandId: string): Promise<ReportedDelivery>;
  /** Connects over TCP (or WebSocket with `ws: true`); the client is ended by `close()`. */
  connect(opts: IClientOptions & { ws?: boolean }): Promise<MqttClient>;
  /** Like `connect` but returns at once, so listeners can be attached before CONNACK arrives. */
  connectNow(opts: IClientOptions & { ws?: boolean }): MqttClient;
  connectTower(login: TowerLogin, opts?: IClientOptions & { ws?: boolean }): Promise<MqttClient>;
  connectConsole(tenantId: string, opts?: IClientOptions & { ws?: boolean }): Promise<MqttClient>;
  connectService(name?: string): Promise<MqttClient>;
  /** Connects expecting a refusal; resolves with the CONNACK return code. */
  refusedWith(opts: IClientOptions & { ws?: boolean }): Promise<number>;
  close(): Promise<void>;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeplane-broker-'));
  const store = new SqliteStore({ file: join(dir, 'store.db') });
  await store.init();
  const ring = await KeyRing.open(null);
  const clock = { now: Date.now() };
  // The same clock as the broker's, so tests can move both past a token's expiry.
  const tokens = new TokenService(ring, opts.tokenTtlS ?? 900, () => clock.now);
  const bus = opts.bus ?? new InProcessBus();
  const counters = new Counters();
  const sink = opts.sink ?? new RecordingSink();
  const deliveries: ReportedDelivery[] = [];
  const deliveryWaiters: Array<{ id: string; resolve: (d: ReportedDelivery) => void }> = [];
  const broker: Broker = new Broker({
    config: testBrokerConfig({ ...(opts.tls ? { mqtt_tls_port: 0 } : {}), ...opts.config }),
    logger: opts.logger ?? silentLogger(),
    onCommandDelivered: async (d) => {
      deliveries.push(d);
      for (const w of deliveryWaiters.filter((x) => x.id === d.command_id)) {
        deliveryWaiters.splice(deliveryWaiters.indexOf(w), 1);
        w.resolve(d);
      }
    },
    ...(opts.consoleUsers ? { consoleUsers: opts.consoleUsers } : {}),
    ...(opts.backends ? { backends: opts.backends } : {}),
    ...(opts.tls ? { tls: opts.tls } : {}),
    ...(opts.refusalLogIntervalMs !== undefined ? { refusalLogIntervalMs: opts.refusalLogIntervalMs } : {}),
    counters,
    bus,
    towerCredentials: store.towerCredentials,
    towers: store.towers,
    carrierCredentials: store.carrierCredentials,
    carrierFeeds: new CarrierFeedIngest({
      store,
      publish: (topic, payload) => broker.downlink.publish(topic, payload),
      bus,
      counters,
      logger: silentLogger(),
      now: () => clock.now,
    }),
    tokens,
    sink: opts.sink === null ? null : sink,
    now: () => clock.now,
  });
  const { mqttPort, wsPort, tlsPort } = await broker.start();
  const clients = new Set<MqttClient>();

  const urlOf = (ws: boolean | undefined) => (ws ? `ws://127.0.0.1:${wsPort}/mqtt` : `mqtt://127.0.0.1:${mqttPort}`);
  const clientDefaults: IClientOptions = { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 };

  async function connect(o: IClientOptions & { ws?: boolean }): Promise<MqttClient> {
    const { ws, ...rest } = o;
    const client = await connectAsync(urlOf(ws), { ...clientDefaults, ...rest }, false);
    // mqtt.js emits 'error' for socket resets when the broker drops a client on purpose.
    client.on('error', () => undefined);
    clients.add(client);
    return client;
  }

  function connectNow(o: IClientOptions & { ws?: boolean }): MqttClient {
    const { ws, ...rest } = o;
    const client = mqttConnect(urlOf(ws), { ...clientDefaults, ...rest });
    client.on('error', () => undefined);
    clients.add(client);
    return client;
  }

  async function createTower(towerId: string): Promise<TowerLogin> {
    if (!(await store.towers.get(towerId))) await store.towers.create({ id: towerId, name: towerId.toLowerCase() });
    const credentialId = `cred-${towerId}-${randomSecret(6)}`;
    const secret = randomSecret();
    await store.towerCredentials.create({ id: credentialId, tower_id: towerId, secret_hash: sha256(secret) });
    return { towerId, credentialId, password: formatTowerPassword(credentialId, secret) };
  }

  async function createCarrier(name: string): Promise<CarrierLogin> {
    const carrier = await store.carriers.create({ name });
    const credentialId = `cred-${randomSecret(6)}`;
    const secret = randomSecret();
    await store.carrierCredentials.create({ id: credentialId, carrier_id: carrier.id, secret_hash: sha256(secret) });
    return { carrierId: carrier.id, credentialId, key: formatCarrierKey(credentialId, secret) };
  }

  return {
    broker,
    mqttPort,
    wsPort,
    tlsPort,
    store,
    bus,
    counters,
    sink,
    deliveries,
    delivered: (id) => {
      const seen = deliveries.find((d) => d.command_id === id);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => deliveryWaiters.push({ id, resolve }));
    },
    ring,
    tokens,
    clock,
    createTower,
    createCarrier,
    connectCarrier: (login, o = {}) =>
      connect({ clientId: mqttIdentity.carrierClientId(login.carrierId), username: mqttIdentity.carrierUsername(login.carrierId), password: login.key, ...o }),
    consoleToken: (tenantId, userId = 'user-1') => tokens.sign({ sub: userId, tenant_id: tenantId, role: 'viewer' }),
    connect,
    connectNow,
    connectTower: (login, o = {}) =>
      connect({ clientId: mqttIdentity.towerClientId(login.towerId), username: login.towerId, password: login.password, ...o }),
    connectConsole: async (tenantId, o = {}) =>
      connect({
        // One dashboard among possibly several of the same user: `console-<userId>.<session>`.
        clientId: mqttIdentity.consoleClientId(`u-${tenantId}`, randomSecret(6)),
        username: mqttIdentity.consoleUsername,
        password: await tokens.sign({ sub: `u-${tenantId}`, tenant_id: tenantId, role: 'viewer' }),
        ...o,
      }),
    connectService: (name = 'worker') =>
      connect({ clientId: `service-${name}-${randomSecret(4)}`, username: mqttIdentity.serviceUsername(name), password: TEST_SERVICE_SECRET }),
    async refusedWith(o) {
      try {
        const c = await connect(o);
        await c.endAsync(true);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (typeof code === 'number') return code;
        throw err;
      }
      throw new Error('connection was accepted');
    },
    async close() {
      await Promise.all([...clients].map((c) => c.endAsync(true).catch(() => undefined)));
      await broker.stop();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves when the client's connection closes (never rejects on the 'error' that may precede it). */
export function closed(client: MqttClient): Promise<void> {
  if (client.disconnected) return Promise.resolve();
  return new Promise((resolve) => client.once('close', () => resolve()));
}

/** SUBACK granted QoS for one filter; 128 (0x80) when the broker refused it. */
export async function subscribeResult(client: MqttClient, filter: string): Promise<number> {
  try {
    const granted = await client.subscribeAsync(filter, { qos: 1 });
    return granted[0]?.qos ?? -1;
  } catch (err) {
    // mqtt.js rejects a SUBACK carrying 0x80 and attaches the packet to the error.
    if (err instanceof ErrorWithSubackPacket) {
      const granted = (err.packet as { granted?: Array<number | object> }).granted?.[0];
      if (typeof granted === 'number') return granted;
    }
    throw err;
  }
}

/** Collects messages received by a client. */
export function inbox(client: MqttClient): {
  messages: Array<{ topic: string; payload: Buffer; retain: boolean }>;
  next: (match: (topic: string) => boolean) => Promise<{ topic: string; payload: Buffer; retain: boolean }>;
} {
  const messages: Array<{ topic: string; payload: Buffer; retain: boolean }> = [];
  const waiters: Array<{ match: (t: string) => boolean; resolve: (m: (typeof messages)[number]) => void }> = [];
  client.on('message', (topic, payload, packet) => {
    const m = { topic, payload, retain: packet.retain };
    messages.push(m);
    for (const w of [...waiters]) {
      if (w.match(topic)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  return {
    messages,
    next: (match) => {
      const seen = messages.find((m) => match(m.topic));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
  };
}

/** A raw TCP connection for tests that send bytes no client library would. */
export interface RawClient {
  write(bytes: Buffer): void;
  /** Everything received so far. */
  received(): Buffer;
  /** Resolves once at least `n` bytes arrived (or the connection closed first). */
  bytes(n: number): Promise<Buffer>;
  /** Resolves with everything received once the broker closed the connection. */
  closed: Promise<Buffer>;
  destroy(): void;
}

export async function rawClient(port: number): Promise<RawClient> {
  const socket = netConnect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const chunks: Buffer[] = [];
  let waiters: Array<() => void> = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  socket.on('data', (d: Buffer) => {
    chunks.push(d);
    wake();
  });
  const closedPromise = new Promise<Buffer>((resolve) =>
    socket.once('close', () => {
      wake();
      resolve(Buffer.concat(chunks));
    }),
  );
  await once(socket, 'connect');
  const received = () => Buffer.concat(chunks);
  return {
    write: (b) => void socket.write(b),
    received,
    async bytes(n) {
      while (received().length < n && !socket.destroyed) await new Promise<void>((r) => waiters.push(r));
      return received();
    },
    closed: closedPromise,
    destroy: () => socket.destroy(),
  };
}

let collectGarbage: (() => void) | null = null;

/** A full garbage collection (V8's gc, exposed for memory assertions in tests). */
export function gc(): void {
  if (!collectGarbage) {
    setFlagsFromString('--expose-gc');
    collectGarbage = runInNewContext('gc') as () => void;
  }
  collectGarbage();
}

/**
 * How much memory `attack` costs this process, in MB above the level before it: `peakMb`, the
 * resident set's peak (sampled every 20 ms); `heldMb`, what JavaScript still holds after it
 * and a full GC (heap plus buffers; the resident set itself stays up after a burst because
 * the allocator keeps freed pages, so it cannot show what is retained).
 *
 * `heldMb` is the lowest of readings taken after a full GC, one every 50 ms for up to a second
 * (fewer once one is under 2 MB): connections the attack opened release their last buffers as
 * their teardown finishes, which a loaded machine can delay past the attack's end (a reading of
 * 13.4 MB, 200 x 64 KiB, then 0.5 MB moments later). Memory kept for good stays in every reading.
 */
export async function memoryGrowth<T>(attack: () => Promise<T>): Promise<{ result: T; peakMb: number; heldMb: number }> {
  const held = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  gc();
  const rssBefore = process.memoryUsage().rss;
  const heldBefore = held();
  let peak = rssBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const result = await attack();
    peak = Math.max(peak, process.memoryUsage().rss);
    let heldAfter = Number.POSITIVE_INFINITY;
    for (let reading = 0; reading < 20; reading++) {
      if (reading > 0) await new Promise<void>((r) => setTimeout(r, 50));
      gc();
      heldAfter = Math.min(heldAfter, held());
      if (heldAfter - heldBefore < 2e6) break;
    }
    return { result, peakMb: (peak - rssBefore) / 1e6, heldMb: (heldAfter - heldBefore) / 1e6 };
  } finally {
    clearInterval(sampler);
  }
}
