/**
 * Distributed mode's broker sessions: aedes-persistence-redis 12 + mqemitter-redis 7 on one
 * Redis, so any broker node can serve any tower. A publish on node A reaches subscribers on
 * node B through Redis pub/sub; a clean=false session (subscriptions, queued QoS 1 messages),
 * retained messages and wills live in Redis and survive the death of the node that held them.
 *
 * Versions: aedes 1.2 declares `aedes-persistence-redis ^11` as an optional peer; we run 12
 * (package.json override). Checked against the sources: 12 keeps the 11 interface and adds
 * `cleanIncoming`, which aedes 1.2 feature-detects (lib/handlers/connect.js `cleanIncoming`);
 * its only schema change is the QoS 2 incoming store (UPGRADE.md), which we do not use. Both
 * packages run aedes-persistence's abstract suite in broker/persistence-contract.test.ts.
 *
 * Namespacing: every key goes through an ioredis `keyPrefix` (`<prefix>mqtt:`), which also
 * covers the values aedes-persistence-redis stores as key names (they are re-read through the
 * same connection). Pub/sub channels are not keys and ignore both keyPrefix and the DB number,
 * so the emitter is mqemitter-redis' `MQEmitterRedisPrefix` with `<prefix>mqtt/` as the first
 * topic level: a whole level, so `#` and `+` keep their MQTT meaning after it.
 *
 * Retained messages are found through an index of their topics by tower (retained-redis.ts):
 * the library scans every retained message per SUBSCRIBE.
 *
 * Two upstream gaps are closed here (both found reading aedes 1.2 against these packages):
 * - aedes stores a SUBSCRIBE's filters by calling `addSubscriptions(client, allFilters)` once
 *   PER filter, concurrently (lib/handlers/subscribe.js `storeSubscriptions` under
 *   `runParallel`). aedes-persistence's BroadcastPersistence (used by the Redis persistence)
 *   makes each call wait for its own `$SYS/sub/add` echo under a key of client id + first
 *   topic, one waiter per key: with two or more filters every call but one waited forever and
 *   the SUBACK never came (a tower subscribes to three filters at once). We run one store per
 *   SUBSCRIBE packet and serialize a client's subscription changes.
 * - At CONNECT aedes deletes the client's previous will with
 * `delWill(client)` (connect.js `storeWill`), passing the Client object, which has no
 * `brokerId`; aedes-persistence-redis keys wills by `will:<brokerId>:<clientId>`, so the will
 * a dead node left behind survived the tower's reconnect to another node and was published
 * by a surviving node minutes later (aedes.js `_clearWills`), marking a connected tower
 * offline. We record which broker holds each client's will and delete that one.
 */
import { Redis } from 'ioredis';
import redisPersistence from 'aedes-persistence-redis';
import mqemitterRedis from 'mqemitter-redis';
import { EMITTER_CONCURRENCY, type BrokerBackends, type MessageEmitter, type SessionPersistence } from './backends.js';
import { redactUrl } from '../shared/redact-url.js';
import { indexRetainedRedis, type RetainedLookupStats } from './retained-redis.js';

export interface RedisBackendsOptions {
  /** redis://[user:password@]host:port[/db] */
  url: string;
  /** Namespace of every key and channel (default `edgeplane:`); brokers of one cluster share it. */
  prefix?: string;
  /**
   * Queued messages one CONNECT may deliver (aedes-persistence-redis reads the first N of the
   * queue; the rest wait for the next CONNECT). Default 10,000: a tower's queue is its pending
   * decisions and commands.
   */
  maxSessionDelivery?: number;
  /** Counts retained lookups answered from the index and by a scan (retained-redis.ts). */
  retainedStats?: RetainedLookupStats;
  /** Connection errors of the Redis clients (they reconnect by themselves). */
  onError?: (err: Error) => void;
}

const DEFAULT_PREFIX = 'edgeplane:';
const DEFAULT_MAX_SESSION_DELIVERY = 10_000;
/** aedes-persistence-redis' key of a session's queue, before the encoded client id. */
const OUTGOING_LIST_PREFIX = 'outgoing:';
/** Hash: client id → id of the broker holding its will (see the header). */
const WILL_OWNERS_KEY = 'will-owners';
const DELETE_IF_EQUAL = `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0`;

interface MQEmitterRedisPrefixCtor {
  new (prefix: string, opts: { pubConn: Redis; subConn: Redis; concurrency: number; matchEmptyLevels: boolean }): MessageEmitter & {
    state: { on(event: 'error', listener: (err: Error) => void): void };
  };
}

interface WillHolder {
  id: string;
  brokerId?: string | undefined;
}

interface SubscriptionStore {
  addSubscriptions(client: WillHolder, subs: object[]): Promise<unknown>;
  removeSubscriptions(client: WillHolder, topics: string[]): Promise<unknown>;
}

interface WillStore {
  putWill(client: WillHolder, packet: { brokerId?: string }): Promise<unknown>;
  delWill(client: WillHolder): Promise<unknown>;
}

/** The key prefix of the session store's keys (retained messages and their index among them) under `prefix`. */
export function sessionKeyPrefix(prefix = DEFAULT_PREFIX): string {
  return `${prefix}mqtt:`;
}

export function redisBackends(opts: RedisBackendsOptions): BrokerBackends {
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  const onError = opts.onError ?? (() => {});
  const connections: Redis[] = [];
  let opening: Promise<SessionPersistence> | null = null;
  let emitter: MessageEmitter | null = null;
  let closed = false;
  let store: Redis | null = null;

  function connection(keyPrefix?: string): Redis {
    const conn = new Redis(opts.url, { lazyConnect: true, ...(keyPrefix ? { keyPrefix } : {}) });
    conn.on('error', (err: Error) => onError(err));
    connections.push(conn);
    return conn;
  }

  async function open(): Promise<SessionPersistence> {
    const conn = connection(sessionKeyPrefix(prefix));
    store = conn;
    // Fail the start with a clear error rather than serve without a session store.
    await conn.connect().catch((err: unknown) => {
      conn.disconnect();
      throw new Error(`broker session store: cannot reach Redis at ${redactUrl(opts.url)}`, { cause: err });
    });
    const persistence = redisPersistence({ conn, maxSessionDelivery: opts.maxSessionDelivery ?? DEFAULT_MAX_SESSION_DELIVERY });
    // Retained lookups by bucket instead of a scan of every retained message (retained-redis.ts).
    return withWillOwners(withSerialSubscriptions(await indexRetainedRedis(persistence, conn, opts.retainedStats)), conn);
  }

  return {
    kind: 'redis',
    persistence() {
      if (closed) return Promise.reject(new Error('broker session store is closed'));
      opening ??= open();
      return opening;
    },
    mq() {
      if (emitter) return emitter;
      const Prefixed = (mqemitterRedis as unknown as { MQEmitterRedisPrefix: MQEmitterRedisPrefixCtor }).MQEmitterRedisPrefix;
      const created = new Prefixed(`${prefix}mqtt/`, {
        pubConn: connection(),
        subConn: connection(),
        concurrency: EMITTER_CONCURRENCY,
        matchEmptyLevels: true, // [MQTT-4.7.1-3], as aedes' default emitter
      });
      // mqemitter-redis re-emits connection errors here; an EventEmitter 'error' without a
      // listener would throw.
      created.state.on('error', onError);
      emitter = created;
      return created;
    },
    // aedes-persistence-redis keeps a session's queue as the list `outgoing:<client id>`.
    async queueLength(clientId) {
      if (!store) throw new Error('broker session store is not open');
      return store.llen(`${OUTGOING_LIST_PREFIX}${encodeURIComponent(clientId)}`);
    },
    async close() {
      if (closed) return;
      closed = true;
      const persistence = await opening?.catch(() => null);
      // Unsubscribes its broadcast topic and disconnects its connection; it throws when aedes
      // never set it up (a start that failed), and the connections below are closed anyway.
      await Promise.resolve()
        .then(() => persistence?.destroy())
        .catch((err: unknown) => onError(err instanceof Error ? err : new Error(String(err))));
      // aedes closed the emitter (QUIT); anything left (a start that failed) goes now.
      for (const conn of connections) if (conn.status !== 'end') conn.disconnect();
    },
  };
}

/**
 * One `addSubscriptions` per SUBSCRIBE packet (aedes passes the packet's own filter array to
 * each of its per-filter calls, so the array identifies the packet), and one subscription
 * change at a time per client, so no two BroadcastPersistence waiters share a key.
 */
function withSerialSubscriptions(persistence: SessionPersistence): SessionPersistence {
  const store = persistence as SessionPersistence & SubscriptionStore;
  const add = store.addSubscriptions.bind(store);
  const remove = store.removeSubscriptions.bind(store);
  const byPacket = new WeakMap<object[], Promise<unknown>>();
  const tails = new Map<string, Promise<unknown>>();
  const serial = (clientId: string, task: () => Promise<unknown>): Promise<unknown> => {
    const run = (tails.get(clientId) ?? Promise.resolve()).then(task, task);
    const tail = run.catch(() => undefined);
    tails.set(clientId, tail);
    void tail.then(() => {
      if (tails.get(clientId) === tail) tails.delete(clientId);
    });
    return run;
  };
  store.addSubscriptions = (client, subs) => {
    const pending = byPacket.get(subs);
    if (pending) return pending;
    const run = serial(client.id, () => add(client, subs));
    byPacket.set(subs, run);
    void run.catch(() => undefined).then(() => byPacket.delete(subs));
    return run;
  };
  store.removeSubscriptions = (client, topics) => serial(client.id, () => remove(client, topics));
  return store;
}

/** Wraps putWill/delWill so a CONNECT removes the client's will wherever it was stored. */
function withWillOwners(persistence: SessionPersistence, conn: Redis): SessionPersistence {
  const store = persistence as SessionPersistence & WillStore;
  const putWill = store.putWill.bind(store);
  const delWill = store.delWill.bind(store);
  // Promise form only, as aedes 1.x calls them (see SessionPersistence).
  store.putWill = async (client, packet) => {
    const result = await putWill(client, packet);
    if (packet.brokerId) await conn.hset(WILL_OWNERS_KEY, client.id, packet.brokerId);
    return result;
  };
  store.delWill = async (client) => {
    const brokerId = client.brokerId ?? (await conn.hget(WILL_OWNERS_KEY, client.id)) ?? undefined;
    const will = await delWill({ id: client.id, brokerId });
    if (brokerId !== undefined) await conn.eval(DELETE_IF_EQUAL, 1, WILL_OWNERS_KEY, client.id, brokerId);
    return will;
  };
  return store;
}
