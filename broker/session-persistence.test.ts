/**
 * Broker sessions over real sockets: the real Broker (authentication, ACL) on 127.0.0.1:0 with
 * each session backend, real mqtt.js clients (MQTT 3.1.1, clean=false, QoS 1), a real SQLite
 * store for the tower credentials, LevelDB in a temp dir, and the run's real redis-server with
 * a unique prefix per test. A "restart" is a new Broker with new backends on the same
 * directory / Redis prefix; the store is kept, as the data dir keeps it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { formatTowerPassword, randomSecret, sha256 } from '../shared/auth/secrets.js';
import { KeyRing, TokenService } from '../shared/auth/tokens.js';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { InProcessBus } from '../shared/bus.js';
import { silentLogger } from '../shared/logger.js';
import { Counters } from '../shared/metrics.js';
import { SCHEMA_VERSION } from '../shared/mqtt/payloads.js';
import { filters, mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { describeWithRedis, redisUrl, uniquePrefix } from '../test/support/redis.js';
import { memoryBackends, type BrokerBackends, type SessionPersistence } from './backends.js';
import { levelBackends } from './backends-level.js';
import { redisBackends } from './backends-redis.js';
import { Broker } from './broker.js';
import { RecordingSink, TEST_SERVICE_SECRET, testBrokerConfig } from './test-support.js';

const TENANT = 'tenant-a';
const TOWER = 'tower-1';

interface Node {
  broker: Broker;
  bus: InProcessBus;
  /** What the node handed to ingest (tower uplinks and status wills). */
  sink: RecordingSink;
  counters: Counters;
  /** Command PUBACKs the broker reported. */
  delivered: EventEmitter;
  url: string;
}

interface Received {
  topic: string;
  payload: string;
  retain: boolean;
  /** The PUBLISH's DUP flag: set on a redelivery [MQTT-3.3.1-1]. */
  dup: boolean;
}

/** A tower's MQTT connection, with every message it received (listening from before CONNACK). */
interface TowerConn {
  client: MqttClient;
  connack: IConnackPacket;
  inbox: Received[];
  next(match: (m: Received) => boolean): Promise<Received>;
  /** Resolves once `count` messages arrived, or after `timeoutMs` (then the caller names what is missing). */
  settle(count: number, timeoutMs: number): Promise<void>;
}

let dir: string;
let store: SqliteStore;
let tokens: TokenService;
let password: string;
const nodes: Node[] = [];
const clients: MqttClient[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-sessions-'));
  store = new SqliteStore({ file: join(dir, 'store.db') });
  await store.init();
  tokens = new TokenService(await KeyRing.open(null), 900);
  await store.towers.create({ id: TOWER, name: 'tower one' });
  const credentialId = `cred-${randomSecret(6)}`;
  const secret = randomSecret();
  await store.towerCredentials.create({ id: credentialId, tower_id: TOWER, secret_hash: sha256(secret) });
  password = formatTowerPassword(credentialId, secret);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
  for (const n of nodes.splice(0)) await n.broker.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function startNode(backends: BrokerBackends, counters = new Counters()): Promise<Node> {
  const bus = new InProcessBus();
  const sink = new RecordingSink();
  const delivered = new EventEmitter();
  const broker = new Broker({
    config: testBrokerConfig(),
    logger: silentLogger(),
    counters,
    bus,
    towerCredentials: store.towerCredentials,
    towers: store.towers,
    tokens,
    sink,
    backends,
    onCommandDelivered: async (e) => void delivered.emit('delivered', e),
  });
  const { mqttPort } = await broker.start();
  const node = { broker, bus, sink, counters, delivered, url: `mqtt://127.0.0.1:${mqttPort}` };
  nodes.push(node);
  return node;
}

async function stopNode(node: Node): Promise<void> {
  nodes.splice(nodes.indexOf(node), 1);
  await node.broker.stop();
}

/**
 * Connects as the tower with a persistent session; subscribes only when asked to. With
 * `withholdAcks` the tower reads its QoS 1 messages but never PUBACKs them (mqtt.js sends the
 * PUBACK once `handleMessage` calls back).
 */
async function connectTower(node: Node, subscribe: string[] = [], opts: { withholdAcks?: boolean; will?: IClientOptions['will'] } = {}): Promise<TowerConn> {
  const client = connect(node.url, {
    ...(opts.will && { will: opts.will }),
    clientId: mqttIdentity.towerClientId(TOWER),
    username: TOWER,
    password,
    protocolVersion: 4,
    clean: false,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  clients.push(client);
  client.on('error', () => undefined);
  if (opts.withholdAcks) client.handleMessage = () => undefined;
  const inbox: Received[] = [];
  const waiters: Array<{ match: (m: Received) => boolean; resolve: (m: Received) => void }> = [];
  client.on('message', (topic, payload, packet) => {
    const m = { topic, payload: payload.toString('utf8'), retain: packet.retain, dup: packet.dup };
    inbox.push(m);
    for (const w of [...waiters]) if (w.match(m)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(m);
    }
  });
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('close', () => reject(new Error('connection closed before CONNACK')));
  });
  if (subscribe.length > 0) await client.subscribeAsync(subscribe, { qos: 1 });
  return {
    client,
    connack,
    inbox,
    next: (match) => {
      const seen = inbox.find(match);
      return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ match, resolve }));
    },
    settle: (count, timeoutMs) =>
      new Promise((resolve) => {
        const timer = setTimeout(done, timeoutMs);
        const onMessage = (): void => {
          if (inbox.length >= count) done();
        };
        function done(): void {
          clearTimeout(timer);
          client.off('message', onMessage);
          resolve();
        }
        client.on('message', onMessage);
        onMessage();
      }),
  };
}

/** The socket dies as on a power loss: no DISCONNECT, so the broker keeps the session as it was. */
function dropWithoutDisconnect(client: MqttClient): Promise<void> {
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  client.stream.destroy();
  return closed;
}

const COMMANDS = topics.commands(TENANT, TOWER);
const DECISIONS = topics.decisions(TENANT, TOWER);
const POLICY = topics.policy(TENANT, TOWER);
const TOWER_FILTERS = [filters.towerDecisions(TOWER), filters.towerCommands(TOWER)];

/** Backends that reopen the same store each time `next()` is called. */
interface DurableFactory {
  name: string;
  next(): BrokerBackends;
}

function durableCases(): DurableFactory[] {
  const cases: DurableFactory[] = [{ name: 'LevelDB', next: () => levelBackends({ location: join(dir, 'broker-sessions') }) }];
  const url = redisUrl();
  if (url) {
    let prefix = '';
    cases.push({
      name: 'Redis',
      next: () => {
        // One prefix per test, shared by the restarts within it.
        prefix ||= uniquePrefix();
        return redisBackends({ url, prefix });
      },
    });
  }
  return cases;
}

describe.each(['LevelDB', 'Redis'])('durable sessions (%s) survive a broker restart', (kind) => {
  let factory: DurableFactory;
  beforeEach((ctx) => {
    const found = durableCases().find((c) => c.name === kind);
    if (!found) ctx.skip();
    factory = found!;
  });

  it('keeps the subscriptions and delivers QoS 1 messages published while the tower was offline', async () => {
    const first = await startNode(factory.next());
    const tower = await connectTower(first, TOWER_FILTERS);
    await tower.client.endAsync();
    await first.broker.downlink.publish(COMMANDS, Buffer.from('{"id":"queued-before-restart"}'));
    await stopNode(first);

    const second = await startNode(factory.next());
    await second.broker.downlink.publish(DECISIONS, Buffer.from('{"id":"queued-after-restart"}'));
    const back = await connectTower(second);
    expect(back.connack.sessionPresent).toBe(true);
    // Both queued messages arrive without a new SUBSCRIBE, and so does a fresh one.
    await back.next((m) => m.payload.includes('queued-before-restart'));
    await back.next((m) => m.payload.includes('queued-after-restart'));
    await second.broker.downlink.publish(DECISIONS, Buffer.from('{"id":"live"}'));
    const live = await back.next((m) => m.payload.includes('"live"'));
    expect(live.topic).toBe(DECISIONS);
    // Each exactly once; the two queued ones in either order (the store orders them by packet id).
    expect([...back.inbox.map((m) => m.payload)].sort()).toEqual(['{"id":"live"}', '{"id":"queued-after-restart"}', '{"id":"queued-before-restart"}']);
  });

  it('a tower that dropped without DISCONNECT gets what was queued for it, after the restart', async () => {
    const first = await startNode(factory.next());
    const tower = await connectTower(first, TOWER_FILTERS);
    // The tower goes away without DISCONNECT; the broker keeps the session and queues for it.
    await dropWithoutDisconnect(tower.client);
    await first.broker.downlink.publish(COMMANDS, Buffer.from('{"id":"c1"}'));
    await stopNode(first);
    const second = await startNode(factory.next());
    const back = await connectTower(second);
    expect((await back.next(() => true)).payload).toBe('{"id":"c1"}');
  });

  it('replays what several runs queued in the order it was queued (a block before its unblock)', async () => {
    const first = await startNode(factory.next());
    const tower = await connectTower(first, TOWER_FILTERS);
    await tower.client.endAsync();
    await stopNode(first);
    const queued = ['c1-block', 'c2-unblock', 'c3-block', 'c4-unblock'];
    for (const id of queued) {
      const node = await startNode(factory.next());
      await node.broker.downlink.publish(COMMANDS, Buffer.from(JSON.stringify({ id })));
      await stopNode(node);
    }
    const last = await startNode(factory.next());
    const back = await connectTower(last);
    await back.settle(queued.length, 10_000);
    expect(back.inbox.map((m) => (JSON.parse(m.payload) as { id: string }).id)).toEqual(queued);
  });

  it('keeps retained messages', async () => {
    const first = await startNode(factory.next());
    await first.broker.downlink.publish(POLICY, Buffer.from('{"bundle":1}'), { retain: true });
    await stopNode(first);
    const second = await startNode(factory.next());
    const tower = await connectTower(second, [filters.towerPolicies(TOWER)]);
    const m = await tower.next((r) => r.topic === POLICY);
    expect(m).toEqual({ topic: POLICY, payload: '{"bundle":1}', retain: true, dup: false });
  });

  it('keeps the last of many retained messages published at once on one topic', async () => {
    const node = await startNode(factory.next());
    const versions = Array.from({ length: 200 }, (_, i) => i + 1);
    await Promise.all(versions.map((v) => node.broker.downlink.publish(POLICY, Buffer.from(JSON.stringify({ version: v })), { retain: true })));
    await stopNode(node);
    const again = await startNode(factory.next());
    const tower = await connectTower(again, [filters.towerPolicies(TOWER)]);
    const m = await tower.next((r) => r.topic === POLICY);
    expect(JSON.parse(m.payload)).toEqual({ version: 200 });
  });

  it('an acknowledged message is not delivered again after the restart', async () => {
    const first = await startNode(factory.next());
    const tower = await connectTower(first, TOWER_FILTERS);
    // The broker reports a command's PUBACK as it reads it; stop() lets the store finish removing
    // the acknowledged message before it closes (guarded-persistence.ts `settled`).
    const delivered = new Promise<void>((resolve) => first.delivered.once('delivered', () => resolve()));
    await first.broker.downlink.publish(COMMANDS, Buffer.from('{"id":"acked"}'));
    await delivered;
    await tower.client.endAsync();
    await stopNode(first);
    const second = await startNode(factory.next());
    const back = await connectTower(second);
    await second.broker.downlink.publish(COMMANDS, Buffer.from('{"id":"after"}'));
    await back.next((m) => m.payload.includes('after'));
    expect(back.inbox.map((m) => m.payload)).toEqual(['{"id":"after"}']);
  });
});

describe.each(['memory', 'LevelDB', 'Redis'])('a redelivered QoS 1 message carries DUP [MQTT-3.3.1-1] (%s sessions)', (kind) => {
  it('one sent but not acknowledged comes again with DUP set; one queued while the tower was away comes without; neither a third time', async (ctx) => {
    const factory = kind === 'memory' ? null : durableCases().find((c) => c.name === kind);
    if (factory === undefined) return ctx.skip();
    const backends = (): BrokerBackends => (factory === null ? memoryBackends() : factory.next());
    let node = await startNode(backends());
    // Messages are queued once the broker knows the tower is gone: one published while it still
    // writes to the dead socket was handed to the connection, and comes again with DUP (rightly).
    const dropped = async (client: MqttClient): Promise<void> => {
      // As a tower's status message would have (the broker reports only a change to offline).
      await store.towers.setStatus(TOWER, { state: 'online', agent_version: null, at: Date.now() });
      const bus = node.bus;
      const offline = new Promise<void>((resolve) => {
        const off = bus.subscribe('tower.status', ({ tower: t }) => {
          if (t.id === TOWER && t.state === 'offline') {
            off();
            resolve();
          }
        });
      });
      await dropWithoutDisconnect(client);
      await offline;
    };
    const acked = (n: number): Promise<void> =>
      new Promise((resolve) => {
        let left = n;
        const on = (): void => {
          if (--left > 0) return;
          node.delivered.off('delivered', on);
          resolve();
        };
        node.delivered.on('delivered', on);
      });

    const tower = await connectTower(node, TOWER_FILTERS, { withholdAcks: true });
    await node.broker.downlink.publish(COMMANDS, Buffer.from('{"id":"sent-once"}'));
    expect((await tower.next((m) => m.payload.includes('sent-once'))).dup).toBe(false);
    await dropped(tower.client);
    await node.broker.downlink.publish(COMMANDS, Buffer.from('{"id":"queued-while-away"}'));
    // A durable store keeps the packet id it recorded as it sent, across a restart.
    if (factory !== null) {
      await stopNode(node);
      node = await startNode(backends());
    }
    const bothAcked = acked(2);
    const back = await connectTower(node);
    expect(back.connack.sessionPresent).toBe(true);
    await back.next((m) => m.payload.includes('sent-once'));
    await back.next((m) => m.payload.includes('queued-while-away'));
    expect(back.inbox.map((m) => [m.payload, m.dup]).sort()).toEqual([
      ['{"id":"queued-while-away"}', false],
      ['{"id":"sent-once"}', true],
    ]);
    // Both acknowledged this time: the next connection gets only what was queued since.
    await bothAcked;
    await dropped(back.client);
    await node.broker.downlink.publish(COMMANDS, Buffer.from('{"id":"later"}'));
    const again = await connectTower(node);
    await again.next((m) => m.payload.includes('later'));
    expect(again.inbox.map((m) => [m.payload, m.dup])).toEqual([['{"id":"later"}', false]]);
  });
});

describe('a PUBLISH that came with DUP set (its publisher resent it)', () => {
  it('reaches subscribers, and its retained copy new subscribers, without DUP [MQTT-3.3.1-3]', async () => {
    const node = await startNode(memoryBackends());
    const tower = await connectTower(node, TOWER_FILTERS);
    const service = connect(node.url, { clientId: 'service-dup', username: mqttIdentity.serviceUsername('dup'), password: TEST_SERVICE_SECRET, protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(service);
    service.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      service.once('connect', () => resolve());
      service.once('close', () => reject(new Error('service connection closed before CONNACK')));
    });
    await service.publishAsync(COMMANDS, '{"id":"resent"}', { qos: 1, dup: true });
    expect(await tower.next((m) => m.payload.includes('resent'))).toMatchObject({ topic: COMMANDS, dup: false });
    await service.publishAsync(POLICY, '{"bundle":2}', { qos: 1, retain: true, dup: true });
    await tower.client.subscribeAsync([filters.towerPolicies(TOWER)], { qos: 1 });
    const retained = await tower.next((m) => m.topic === POLICY && m.retain);
    expect(retained).toEqual({ topic: POLICY, payload: '{"bundle":2}', retain: true, dup: false });
  });
});

describe.each(['memory', 'LevelDB', 'Redis'])('many concurrent downlinks to one tower (%s sessions)', (kind) => {
  it('are all delivered, whatever order the store completes its writes in', async (ctx) => {
    const backends = kind === 'memory' ? memoryBackends() : durableCases().find((c) => c.name === kind)?.next();
    if (!backends) return ctx.skip();
    const node = await startNode(backends);
    const tower = await connectTower(node, TOWER_FILTERS);
    const ids = Array.from({ length: 1000 }, (_, i) => `d${i}`);
    await Promise.all(ids.map((id) => node.broker.downlink.publish(DECISIONS, Buffer.from(JSON.stringify({ id })))));
    // A packet aedes drops as "older" never comes: bound the wait to name what is missing.
    await tower.settle(ids.length, 10_000);
    const received = new Set(tower.inbox.map((m) => (JSON.parse(m.payload) as { id: string }).id));
    expect(ids.filter((id) => !received.has(id))).toEqual([]);
  });
});

describe('in-memory sessions (the former default) do not survive a restart', () => {
  it('loses the subscriptions and the queued message', async () => {
    const first = await startNode(memoryBackends());
    const tower = await connectTower(first, TOWER_FILTERS);
    await tower.client.endAsync();
    await first.broker.downlink.publish(COMMANDS, Buffer.from('{"id":"lost"}'));
    await stopNode(first);
    const second = await startNode(memoryBackends());
    const back = await connectTower(second);
    expect(back.connack.sessionPresent).toBe(false);
    // Without the session, a decision published now has no subscriber: the resend race of issue #7.
    await second.broker.downlink.publish(DECISIONS, Buffer.from('{"id":"nobody"}'));
    await back.client.subscribeAsync(TOWER_FILTERS, { qos: 1 });
    await second.broker.downlink.publish(DECISIONS, Buffer.from('{"id":"subscribed"}'));
    await back.next((m) => m.payload.includes('subscribed'));
    expect(back.inbox.map((m) => m.payload)).toEqual(['{"id":"subscribed"}']);
  });
});

describeWithRedis('two broker nodes on one Redis', (url) => {
  let prefix: string;
  beforeEach(() => {
    prefix = uniquePrefix();
  });

  it('a publish on node A reaches a subscriber on node B', async () => {
    const a = await startNode(redisBackends({ url, prefix }));
    const b = await startNode(redisBackends({ url, prefix }));
    const tower = await connectTower(b, TOWER_FILTERS);
    await a.broker.downlink.publish(DECISIONS, Buffer.from('{"id":"via-redis"}'));
    expect((await tower.next(() => true)).payload).toBe('{"id":"via-redis"}');
  });

  it('a tower that moves from node A to node B receives what was queued while it was away', async () => {
    const a = await startNode(redisBackends({ url, prefix }));
    const b = await startNode(redisBackends({ url, prefix }));
    const tower = await connectTower(a, TOWER_FILTERS);
    await dropWithoutDisconnect(tower.client);
    await a.broker.downlink.publish(COMMANDS, Buffer.from('{"id":"queued-on-a"}'));
    await b.broker.downlink.publish(COMMANDS, Buffer.from('{"id":"queued-on-b"}'));
    // Node A dies; the tower comes back on B.
    await stopNode(a);
    const moved = await connectTower(b);
    expect(moved.connack.sessionPresent).toBe(true);
    await moved.next((m) => m.payload.includes('queued-on-b'));
    await moved.next((m) => m.payload.includes('queued-on-a'));
    await b.broker.downlink.publish(COMMANDS, Buffer.from('{"id":"live-on-b"}'));
    await moved.next((m) => m.payload.includes('live-on-b'));
    expect(moved.inbox).toHaveLength(3);
  });

  it('a tower that connects to node B while node A still holds its connection: A closes it and does not mark the tower offline', async () => {
    const a = await startNode(redisBackends({ url, prefix }));
    const b = await startNode(redisBackends({ url, prefix }));
    // No status will, as a third-party client: node A marks such a tower offline when its connection ends.
    const first = await connectTower(a, TOWER_FILTERS);
    await store.towers.setStatus(TOWER, { state: 'online', agent_version: null, at: Date.now() });
    const takenOver = new Promise<void>((resolve) => first.client.once('close', () => resolve()));
    const moved = await connectTower(b);
    await takenOver;
    // A's side of the connection is gone too: whatever A does about it has been started.
    await vi.waitFor(() => expect(a.broker.connectionCount).toBe(0));
    expect(moved.client.connected).toBe(true);
    expect((await store.towers.get(TOWER))?.state).toBe('online');
    // A tower that just drops is still marked offline.
    await dropWithoutDisconnect(moved.client);
    await vi.waitFor(async () => expect((await store.towers.get(TOWER))?.state).toBe('offline'));
  });

  it("a tower with a status will that connects to node B: node A neither publishes nor ingests its 'offline' will", async () => {
    const a = await startNode(redisBackends({ url, prefix }));
    const b = await startNode(redisBackends({ url, prefix }));
    // As the edge agent connects: a retained QoS 1 "offline" status as its last will.
    const offline = JSON.stringify({ v: SCHEMA_VERSION, id: '01J00000000000000000000001', state: 'offline', ts: Date.now() });
    const will = { topic: topics.status(TOWER), payload: Buffer.from(offline), qos: 1 as const, retain: true };
    const first = await connectTower(a, TOWER_FILTERS, { will });
    const takenOver = new Promise<void>((resolve) => first.client.once('close', () => resolve()));
    const moved = await connectTower(b, [], { will });
    await takenOver;
    // Node A decided about the will when it closed the connection: suppressed, not published.
    await vi.waitFor(() => expect(a.counters.get('mqtt_wills_suppressed_total', { reason: 'moved_away' })).toBe(1));
    expect(a.sink.messages.filter((m) => m.topic === topics.status(TOWER))).toEqual([]);
    expect(moved.client.connected).toBe(true);
    // A tower that just drops is still reported offline by its will, by the node it was on.
    await dropWithoutDisconnect(moved.client);
    const reported = await b.sink.waitFor((m) => m.topic === topics.status(TOWER));
    expect(reported.payload.toString()).toBe(offline);
  });

  it('brokers with different prefixes share nothing: sessions, retained messages, publishes', async () => {
    const mine = await startNode(redisBackends({ url, prefix }));
    const theirs = await startNode(redisBackends({ url, prefix: uniquePrefix() }));
    const tower = await connectTower(mine, TOWER_FILTERS);
    await theirs.broker.downlink.publish(POLICY, Buffer.from('{"theirs":true}'), { retain: true });
    await theirs.broker.downlink.publish(DECISIONS, Buffer.from('{"theirs":true}'));
    await mine.broker.downlink.publish(DECISIONS, Buffer.from('{"mine":true}'));
    await tower.next((m) => m.payload.includes('mine'));
    await tower.client.subscribeAsync(filters.towerPolicies(TOWER), { qos: 1 });
    await tower.client.endAsync();
    const elsewhere = await connectTower(theirs);
    expect(elsewhere.connack.sessionPresent).toBe(false);
    await mine.broker.downlink.publish(POLICY, Buffer.from('{"mine":true}'), { retain: true });
    const back = await connectTower(mine, [filters.towerPolicies(TOWER)]);
    await back.next((m) => m.topic === POLICY);
    expect(tower.inbox.map((m) => m.payload)).toEqual(['{"mine":true}']);
    expect(back.inbox.filter((m) => m.topic === POLICY).map((m) => m.payload)).toEqual(['{"mine":true}']);
  });
});

describe("a service's QoS 1 PUBLISH is acknowledged once it is queued and emitted", () => {
  it('no PUBACK while the session store has not queued it for the tower; then the PUBACK and the delivery', async () => {
    // A memory store whose queueing waits on a gate: the window in which a node killed after
    // its PUBACK would have lost the message.
    const inner = memoryBackends();
    let openGate: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    let reachedQueue: () => void = () => undefined;
    const queueing = new Promise<void>((resolve) => (reachedQueue = resolve));
    const backends: BrokerBackends = {
      ...inner,
      async persistence() {
        const p = (await inner.persistence()) as SessionPersistence & { outgoingEnqueueCombi(subs: unknown, packet: unknown): Promise<unknown> };
        const enqueue = p.outgoingEnqueueCombi.bind(p);
        p.outgoingEnqueueCombi = async (subs, packet) => {
          reachedQueue();
          await gate;
          return enqueue(subs, packet);
        };
        return p;
      },
    };
    const node = await startNode(backends);
    const tower = await connectTower(node, TOWER_FILTERS);
    const service = connect(node.url, {
      clientId: mqttIdentity.serviceClientId('worker-test'),
      username: mqttIdentity.serviceUsername('worker-test'),
      password: TEST_SERVICE_SECRET,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    clients.push(service);
    await new Promise((resolve) => service.once('connect', resolve));
    let acked = false;
    const published = service.publishAsync(DECISIONS, '{"id":"gated"}', { qos: 1 }).then(() => (acked = true));
    await queueing;
    // A round trip on the same connection after the store was reached: a PUBACK written before
    // the queueing (aedes' own order) would have arrived before this SUBACK.
    await service.subscribeAsync(`$edgeplane-none/${randomSecret(4)}`, { qos: 0 }).catch(() => undefined);
    expect(acked).toBe(false);
    expect(tower.inbox).toEqual([]);
    openGate();
    await published;
    expect((await tower.next((m) => m.payload.includes('gated'))).topic).toBe(DECISIONS);
  });
});

describe('a failing read of retained messages', () => {
  it('is counted and ends that stream; the process and the connection carry on', async () => {
    // The store fails under a subscription's retained stream (as LevelDB does when it is closed
    // while the stream reads: LEVEL_ITERATOR_NOT_OPEN). aedes pipes that stream without an
    // 'error' listener: unguarded, this was an uncaught exception that ended the process.
    const dirLevel = join(dir, 'broken-retained');
    const inner = levelBackends({ location: dirLevel });
    const backends: BrokerBackends = {
      ...inner,
      async persistence() {
        const p = await inner.persistence();
        const streams = p as unknown as { createRetainedStreamCombi(patterns: string[]): Readable };
        const real = streams.createRetainedStreamCombi.bind(p);
        // The broker's own read at start (pattern '#') works; subscriptions' reads fail.
        streams.createRetainedStreamCombi = (patterns) =>
          patterns.includes('#') ? real(patterns) : new Readable({
            objectMode: true,
            read() {
              this.destroy(Object.assign(new Error('Iterator is not open'), { code: 'LEVEL_ITERATOR_NOT_OPEN' }));
            },
          });
        return p;
      },
    };
    const counters = new Counters();
    const node = await startNode(backends, counters);
    const tower = await connectTower(node, [...TOWER_FILTERS, filters.towerPolicies(TOWER)]);
    await node.broker.downlink.publish(DECISIONS, Buffer.from('{"after":"error"}'));
    expect((await tower.next((m) => m.payload.includes('after'))).topic).toBe(DECISIONS);
    expect(counters.get('mqtt_store_errors_total', { op: 'retained_stream' })).toBeGreaterThan(0);
    expect(tower.client.connected).toBe(true);
  });
});
