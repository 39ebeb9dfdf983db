/**
 * Where the broker keeps MQTT session state, and how a publish reaches every subscriber: the
 * port behind which aedes' persistence and emitter sit (DESIGN §2 "broker sessions").
 *
 * What aedes 1.2 does with them (node_modules/aedes, read for this port):
 * - `Aedes#listen` (aedes.js) takes `opts.persistence` or an in-memory one, refuses a `setup`
 *   that is not an AsyncFunction, and awaits `persistence.setup(broker)` before serving; every
 *   later call is promise-style (no callbacks). It never calls `persistence.destroy()`, and
 *   `Aedes#close` closes `opts.mq` itself: so `close()` here destroys the persistence only.
 * - CONNECT with clean=false (lib/handlers/connect.js `fetchSubs`/`restoreSubs`) reads the
 *   client's stored subscriptions and re-subscribes them BEFORE the CONNACK, then `emptyQueue`
 *   streams the QoS 1 messages queued for it (`outgoingStream`). A tower's resent uplinks are
 *   therefore answered on subscriptions that exist again, even before it re-SUBSCRIBEs.
 * - A QoS > 0 publish runs `storeRetained` → `enqueueOffline` → `emitPacket` (aedes.js
 *   `publishFuncsQoS`): it is written to the queue of every clean=false subscription matching
 *   the topic (`subscriptionsByTopic` + `outgoingEnqueueCombi`) before any delivery, and
 *   removed on the subscriber's PUBACK (`outgoingClearMessageId`, lib/handlers/puback.js). So a
 *   downlink survives a broker restart once `aedes.publish` has called back (with a store that
 *   answers those writes early, EdgeplaneAedes holds the callback until they are durable).
 * - Retained messages go through `storeRetained` (an empty payload deletes [MQTT-3.3.1-10])
 *   and are read back on SUBSCRIBE (`createRetainedStreamCombi`), never on a restored session
 *   [MQTT-3.1.2.4]; towers re-SUBSCRIBE on every connection for that reason.
 * - Wills are stored at CONNECT (`putWill`, tagged with the broker id) and, for a broker that
 *   stopped heart-beating, published later by a surviving broker (`_clearWills`).
 */
import aedesPersistenceModule from 'aedes-persistence';
import mqemitter from 'mqemitter';

/**
 * An aedes 1.x persistence, opaque to us beyond what aedes itself calls (see above) and
 * `destroy()`. Call it without a callback: aedes-persistence's callback layer
 * (callBackPersistence.js) parks callbacks until a 'ready' that only its legacy `broker`
 * setter emits, so with aedes 1.x a callback would never run; the promise form always settles.
 */
export interface SessionPersistence {
  setup(broker: unknown): Promise<unknown>;
  destroy(): Promise<unknown> | undefined;
  /** The retained messages matching any of `patterns` (aedes reads them on SUBSCRIBE). */
  createRetainedStreamCombi(patterns: string[]): AsyncIterable<unknown>;
}

export type MessageEmitter = mqemitter.MQEmitter;

/** See `BrokerBackends.durability`. */
export interface WriteDurability {
  /** Where the writes issued so far end. */
  mark(): number;
  /** Resolves once every write issued so far is durable; rejects if one issued after `mark` failed. */
  durable(mark: number): Promise<void>;
}

export interface BrokerBackends {
  /** 'memory' | 'level' | 'redis': for logs and readiness. */
  readonly kind: string;
  /** Opens the session store (this is where the I/O happens). Called once, by Broker.start(). */
  persistence(): Promise<SessionPersistence>;
  /** The emitter aedes publishes through; aedes closes it when it closes. */
  mq(): MessageEmitter;
  /** Closes the session store (after aedes closed). Idempotent. */
  close(): Promise<void>;
  /**
   * For a store that answers session-queue writes before they are durable (the LevelDB one,
   * write-behind-level.ts): `durable(mark())` taken around a publish resolves once everything it
   * wrote is. Absent: every write's promise already means durable.
   */
  durability?: WriteDurability;
  /**
   * Exact number of messages queued for a session, when the store can say it cheaply
   * (guarded-persistence.ts counts the session's queue otherwise).
   */
  queueLength?: (clientId: string) => Promise<number>;
}

// The package is CommonJS (`module.exports = factory`) while its typings declare an ES default
// export, so under NodeNext TypeScript places the factory one level deeper than it is.
const memoryPersistence = aedesPersistenceModule as unknown as () => SessionPersistence;

/** aedes' own defaults (aedes.js): mqemitter concurrency, and `#` matching its parent [MQTT-4.7.1-3]. */
export const EMITTER_CONCURRENCY = 100;

/**
 * Everything in process memory, as aedes does by default: sessions are lost on restart. For
 * unit tests and throwaway brokers only.
 */
export function memoryBackends(): BrokerBackends {
  let persistence: SessionPersistence | null = null;
  let emitter: MessageEmitter | null = null;
  return {
    kind: 'memory',
    async persistence() {
      persistence ??= memoryPersistence();
      return persistence;
    },
    mq() {
      emitter ??= mqemitter({ concurrency: EMITTER_CONCURRENCY, matchEmptyLevels: true });
      return emitter;
    },
    async close() {
      const p = persistence;
      persistence = null;
      await p?.destroy();
    },
  };
}

/**
 * `dedupe` reads `duplicates[brokerId]` and assigns it; a map that never keeps a value makes every
 * packet new. aedes' modules are strict mode, so a frozen object would throw instead. It keeps
 * nothing, so every client shares this one (one per client cost ~0.4 KB of heap per connection).
 */
const NO_DUPLICATE_FILTER: Record<string, number> = new Proxy(Object.create(null) as Record<string, number>, {
  get: () => undefined,
  set: () => true,
});

/**
 * Turns off aedes' per-client "duplicate" filter for `client`. aedes 1.2 (lib/client.js `dedupe`)
 * forwards a packet only if its brokerCounter is above the last one it forwarded to that client
 * from the same broker; it exists to send one copy when a client's subscriptions overlap. A
 * durable store completes writes out of order (LevelDB runs them on libuv's thread pool), so
 * concurrent publishes reach the emitter after `enqueueOffline` out of counter order, and the
 * older one was silently not delivered: left in the session queue until the client's next
 * CONNECT (measured: 37–44 of 1,000 concurrent downlinks to one tower on LevelDB; aedes
 * issues #955, #994).
 * MQTT allows one copy per matching subscription [MQTT-3.3.5-1] and every receiver of ours is
 * idempotent by message id, so delivering each packet is the safe side. Call before CONNECT
 * is processed (preConnect).
 */
export function deliverOutOfOrderPackets(client: object): void {
  (client as { duplicates: unknown }).duplicates = NO_DUPLICATE_FILTER;
}

/**
 * Lets go of the CONNECT packet once aedes has what it needs from it. mqtt-packet's parser keeps
 * the last CONNECT as its `settings` for the connection's life (it reads only `protocolVersion`
 * and `bridgeMode` from it), and with it the password, the will and the properties: Buffers
 * sliced from the socket read that carried the CONNECT, which the slices keep allocated. The
 * parser gets those two fields alone, and the will payload (kept by aedes as `client.will` until
 * the connection ends) is copied out of the read into memory of its own size: not Buffer.from,
 * whose small copies are slices of Node's shared 8 KB pool, so each tower's will would keep a
 * pool slab alive with whatever else was cut from it (bench j's heap snapshot: 1.4 KB of
 * ArrayBuffer data per idle tower). So a tower's password is not held in memory after its
 * CONNECT is authenticated (~0.3–0.4 KB of heap per idle tower less, bench j). Call from
 * preConnect: aedes takes the will from the packet after it.
 */
export function releaseConnectPacket(client: object, packet: { protocolVersion?: number; bridgeMode?: boolean; will?: { payload?: unknown } | null }): void {
  const parser = (client as { _parser?: { settings?: unknown } })._parser;
  if (parser) parser.settings = { protocolVersion: packet.protocolVersion, bridgeMode: packet.bridgeMode };
  const will = packet.will;
  if (will && Buffer.isBuffer(will.payload)) {
    const own = Buffer.allocUnsafeSlow(will.payload.length);
    will.payload.copy(own);
    will.payload = own;
  }
}
