/**
 * Wraps the session store aedes writes to (any backend) to close two gaps of aedes 1.2's
 * subscribe and publish paths, and to cap what one session may make it store:
 *
 * - Subscriptions, once per SUBSCRIBE and only the granted ones. aedes stores a SUBSCRIBE by
 *   calling `addSubscriptions(client, allFiltersOfThePacket)` once PER granted filter
 *   (lib/handlers/subscribe.js `storeSubscriptions`): quadratic in the packet's filters (one
 *   SUBSCRIBE of 5,000 granted filters stalled the process for 30–54 s and kept ~130 MB), and
 *   refused filters are stored too: aedes-persistence puts every stored filter in the trie it
 *   matches publishes against, so a tower whose SUBSCRIBE mixed `tenants/#` (refused, SUBACK
 *   0x80) with one granted filter had every message under `tenants/` queued for its session.
 *   aedes authorizes all filters of a packet synchronously before any store completes, so
 *   deferring the store by one microtask sees every verdict: one store per packet, of the
 *   granted filters only (`refused` is filled by authorizeSubscribe).
 * - Queued messages per session. A QoS 1 message is queued for every persistent session that
 *   subscribes to it (`outgoingEnqueueCombi`) until that client PUBACKs it; past
 *   `maxQueuedPerSession` a session's queue takes no more, and each message not queued is
 *   counted. This process's count is an estimate (another broker node may enqueue or clear the
 *   same session in distributed mode): it is read from the store the first time a session is
 *   seen, and re-read from the store before anything is dropped.
 * - Writes in flight when the broker stops: `settled()` waits for them, so closing the store
 *   does not cut a PUBACK's removal of its message in half (it would be replayed after a
 *   restart although the tower had acknowledged it).
 * - Retained-message streams. aedes pipes the stream it opens for a SUBSCRIBE's retained
 *   messages without an 'error' listener (lib/handlers/subscribe.js `deliverRetained`): a store
 *   closed while a stream still reads (a stop during a reconnect storm: LevelDB's
 *   LEVEL_ITERATOR_NOT_OPEN) or a store error took the whole process down as an unhandled
 *   'error'. Each stream now ends at an error, which is reported to `onRetainedStreamError`.
 * - Inbound QoS 2 messages awaiting their PUBREL. aedes 1.2 publishes a QoS 2 PUBLISH at once
 *   (before its PUBREC, lib/handlers/publish.js) and keeps a copy under its packet id only to
 *   recognise a retransmission [MQTT-4.3.3-2] (`incomingGetPacket` is only asked whether the id
 *   is known). The copy kept the whole payload, for as long as the session lived: a client that
 *   never sent PUBREL held 1,000 payloads per connection (aedes' `maxInflightInbound`), and on a
 *   persistent session it reconnected and held 1,000 more, up to 65,535 (16 GiB at the 256 KiB
 *   payload limit). The copy is now stored without its payload.
 * - Redeliveries carry DUP [MQTT-3.3.1-1]. aedes 1.2 resends a session's unacknowledged QoS 1/2
 *   messages on reconnect with the flag as the message was first published (0): a client could
 *   not tell a resend from a new message. A queued message that already has a packet id was
 *   handed to the connection before (aedes stores the id it assigns as it sends,
 *   `outgoingUpdate`; a message queued while the client was away has none until then), so it
 *   comes out of `outgoingStream` with DUP set; one never sent keeps DUP 0.
 */
import type { SessionPersistence } from './backends.js';

interface ClientRef {
  id: string;
}

interface SubscriptionRecord {
  topic: string;
}

interface QueueOps {
  incomingStorePacket(client: ClientRef, packet: { payload?: unknown }): Promise<unknown>;
  addSubscriptions(client: ClientRef, subs: SubscriptionRecord[]): Promise<unknown>;
  outgoingEnqueue(sub: { clientId: string }, packet: unknown): Promise<unknown>;
  outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: unknown): Promise<unknown>;
  outgoingClearMessageId(client: ClientRef, packet: unknown): Promise<unknown>;
  outgoingStream(client: ClientRef): AsyncIterable<unknown>;
}

/** What aedes 1.2 calls on a SUBSCRIBE: every backend returns a Readable it can pipe. */
interface RetainedStreams {
  createRetainedStreamCombi(patterns: string[]): NodeJS.ReadableStream;
}

export interface GuardedPersistenceOptions {
  maxQueuedPerSession: number;
  /** Subscription objects authorizeSubscribe refused (never stored). */
  refused: WeakSet<object>;
  /** Exact length of a session's queue in the store; defaults to counting `outgoingStream`. */
  queueLength?: (clientId: string) => Promise<number>;
  /** A message was not queued for `clientId`: its queue is full. */
  onQueueFull: (clientId: string) => void;
  /** A retained-message stream failed; the subscriber got the messages read before it. */
  onRetainedStreamError?: (err: Error) => void;
  now: () => number;
}

/** How long a full queue is trusted before the store is asked again. */
const RECOUNT_INTERVAL_MS = 1000;

export interface GuardedPersistence extends SessionPersistence {
  /** Resolves once every write started through the wrapped methods has completed. */
  settled(): Promise<void>;
}

export function guardPersistence(persistence: SessionPersistence, opts: GuardedPersistenceOptions): GuardedPersistence {
  const store = persistence as GuardedPersistence & QueueOps;
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    const tracked = p.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    return tracked;
  };
  store.settled = async () => {
    while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
  };
  const addSubscriptions = store.addSubscriptions.bind(store);
  const incomingStore = store.incomingStorePacket.bind(store);
  // Only the packet id matters once the message is published (see the header).
  store.incomingStorePacket = (client, packet) => incomingStore(client, { ...packet, payload: Buffer.alloc(0) });
  const enqueueCombi = store.outgoingEnqueueCombi.bind(store);
  const clearMessageId = store.outgoingClearMessageId.bind(store);
  const outgoingStream = store.outgoingStream.bind(store);
  const streams = store as unknown as RetainedStreams;
  const retainedStream = streams.createRetainedStreamCombi.bind(store);
  streams.createRetainedStreamCombi = (patterns) => {
    const stream = retainedStream(patterns);
    stream.on('error', (err: Error) => opts.onRetainedStreamError?.(err));
    return stream;
  };

  const byPacket = new WeakMap<SubscriptionRecord[], Promise<unknown>>();
  store.addSubscriptions = (client, subs) => {
    let pending = byPacket.get(subs);
    if (!pending) {
      pending = track(
        Promise.resolve().then(() => {
          const granted = subs.filter((s) => !opts.refused.has(s));
          return granted.length > 0 ? addSubscriptions(client, granted) : undefined;
        }),
      );
      byPacket.set(subs, pending);
    }
    return pending;
  };

  const queueLength =
    opts.queueLength ??
    (async (clientId: string) => {
      let n = 0;
      for await (const _ of outgoingStream({ id: clientId })) n++;
      return n;
    });
  /** Estimated queue length per client id; absent until read from the store. */
  const queued = new Map<string, number>();
  const reading = new Map<string, Promise<number>>();
  const fullSince = new Map<string, number>();

  const read = (clientId: string): Promise<number> => {
    let p = reading.get(clientId);
    if (!p) {
      p = queueLength(clientId).finally(() => reading.delete(clientId));
      reading.set(clientId, p);
    }
    return p;
  };

  /** Whether one more message may be queued for `clientId` (and counts it if so). */
  const admit = async (clientId: string): Promise<boolean> => {
    if (!queued.has(clientId)) {
      const n = await read(clientId);
      if (!queued.has(clientId)) queued.set(clientId, n);
    }
    if (queued.get(clientId)! >= opts.maxQueuedPerSession) {
      const since = fullSince.get(clientId);
      if (since === undefined || opts.now() - since >= RECOUNT_INTERVAL_MS) {
        const n = await read(clientId);
        queued.set(clientId, n);
        if (n >= opts.maxQueuedPerSession) fullSince.set(clientId, opts.now());
        else fullSince.delete(clientId);
      }
      if (queued.get(clientId)! >= opts.maxQueuedPerSession) return false;
    }
    queued.set(clientId, queued.get(clientId)! + 1);
    return true;
  };

  const enqueue = async (subs: Array<{ clientId: string }>, packet: unknown): Promise<void> => {
    // The common case (every session known and below the cap) stays synchronous.
    let admitted = subs;
    if (!subs.every((s) => (queued.get(s.clientId) ?? Infinity) < opts.maxQueuedPerSession)) {
      const verdicts = await Promise.all(subs.map((s) => admit(s.clientId)));
      admitted = subs.filter((s, i) => {
        if (!verdicts[i]) opts.onQueueFull(s.clientId);
        return verdicts[i];
      });
    } else {
      for (const s of subs) queued.set(s.clientId, queued.get(s.clientId)! + 1);
    }
    if (admitted.length > 0) await enqueueCombi(admitted, packet);
  };
  store.outgoingEnqueueCombi = (subs, packet) => track(enqueue(subs, packet));
  store.outgoingEnqueue = (sub, packet) => track(enqueue([sub], packet));

  store.outgoingStream = (client) => markResends(outgoingStream(client));

  store.outgoingClearMessageId = (client, packet) =>
    track(
      clearMessageId(client, packet).then((cleared) => {
        const n = queued.get(client.id);
        if (cleared && n !== undefined && n > 0) queued.set(client.id, n - 1);
        return cleared;
      }),
    );
  return store;
}

interface QueuedPacket {
  cmd?: string;
  qos?: number;
  messageId?: number | null;
  dup?: boolean;
}

/** Sets DUP on each queued message that was sent before (it has a packet id): see the header. */
async function* markResends(queue: AsyncIterable<unknown>): AsyncIterable<unknown> {
  for await (const item of queue) {
    const packet = item as QueuedPacket;
    const sentBefore = (packet.cmd === undefined || packet.cmd === 'publish') && (packet.qos ?? 0) > 0 && typeof packet.messageId === 'number' && packet.messageId > 0;
    // A copy: an in-memory store may hand out the object it keeps.
    yield sentBefore && packet.dup !== true ? { ...packet, dup: true } : packet;
  }
}
