/**
 * aedes with two changes to its PUBLISH path (aedes 1.2, lib/handlers/publish.js):
 *
 * - A PUBLISH the authorizePublish hook marked as consumed (a tower uplink already handed to
 *   ingest, a carrier feed applied; see authorize.ts) is acknowledged but not published, so it
 *   is not stored as retained, queued for any session, nor delivered to any subscriber.
 * - Every other QoS 1 PUBLISH from a client is published BEFORE its PUBACK. aedes writes the
 *   QoS 1 PUBACK first and then publishes (retained store, session queues, the emitter), so a
 *   node killed in between had acknowledged a message it never queued or never emitted to the
 *   other nodes: a worker's decision sat in the tower's session queue, undelivered until the
 *   tower's next CONNECT (seen in the two-node kill -9 test). Published here, inside the
 *   authorizePublish step that aedes awaits before the PUBACK, the acknowledgement means the
 *   message is in every matching persistent session's queue and on the emitter; a failure
 *   refuses it (no PUBACK, the connection closes) and the publisher sends it again, to this
 *   node or another.
 *
 * - A QoS 1 publish calls back only once the session-queue writes it issued are durable, when
 *   the session store answers those early (BrokerBackends.durability; the LevelDB one does, so
 *   that a message reaches an online subscriber's socket without waiting for its enqueue to be
 *   written). Every caller — the PUBACK above, the in-process downlink, a will — keeps the
 *   meaning "queued on disk" of a publish that called back.
 *
 * - A PUBLISH that came with DUP set (its publisher's resend) goes on without it
 *   [MQTT-3.3.1-3]: aedes copied the flag into what it delivered and retained, so subscribers
 *   got a first delivery marked as a resend (and a QoS 0 delivery with DUP set, which
 *   [MQTT-3.3.1-2] forbids). A resend to a subscriber is marked by its session queue
 *   (guarded-persistence.ts).
 *
 * - A QoS 2 PUBLISH whose packet id the session already holds (a retransmission, DUP set or not,
 *   before its PUBREL [MQTT-4.3.3-2]) is not authorized again. aedes asks the authorizePublish
 *   hook first and its store whether the id is known only after, so each copy of a tower's
 *   QoS 2 uplink (or a carrier's feed) was handed to ingest again: the message was processed
 *   once per copy. A known id is now acknowledged (PUBREC) and nothing more; a copy that arrives
 *   while the first is still on its way to the store (both in one read, or resent on a new
 *   connection of the same persistent session while ingest still holds the first on the old
 *   one) waits for it, and is handed on only if the first was refused.
 *
 * aedes' PUBLISH handler calls `broker.publish(packet, client, done)` after the hook with the
 * same packet object, and writes the PUBACK around it (QoS 1: before; QoS 2: the PUBREC after,
 * which already follows the publish), so skipping the publish keeps the acknowledgement flow
 * intact. Wills (published by aedes from Client#close) keep aedes' own path.
 */
import { Aedes, type AedesOptions, type Client, type PublishPacket } from 'aedes';
// Before any packet is written: no 65,536-entry number cache (~7 MB) in this process.
import '../shared/mqtt/number-cache.js';
import type { WriteDurability } from './backends.js';

type Done = (error?: Error) => void;
type AuthorizePublish = NonNullable<AedesOptions['authorizePublish']>;
type Callback = Parameters<AuthorizePublish>[2];
/** The part of aedes' session store asked here (every backend rejects for an unknown id). */
interface IncomingPackets {
  incomingGetPacket(client: Client, packet: PublishPacket): Promise<unknown>;
  incomingStorePacket?(client: Client, packet: PublishPacket): Promise<unknown>;
}

const basePublish = Aedes.prototype.publish as unknown as (this: Aedes, packet: PublishPacket, client: unknown, done: unknown) => void;

export class EdgeplaneAedes extends Aedes {
  readonly #consumed: WeakSet<object>;
  readonly #durability: WriteDurability | null;
  /** Releases the claim of a client's QoS 2 packet id once aedes stored the packet (see `publish`). */
  readonly #stored: WeakMap<object, () => void>;

  constructor(opts: AedesOptions, consumed: WeakSet<object>, durability: WriteDurability | null = null) {
    const holder: { broker: EdgeplaneAedes | null } = { broker: null };
    const authorize = opts.authorizePublish;
    const persistence = opts.persistence as IncomingPackets | undefined;
    const stored = new WeakMap<object, () => void>();
    /**
     * Per session: the QoS 2 packet ids whose first copy is between this hook and the store. A
     * persistent session's ids outlive its connection [MQTT-4.3.3-2]: its client id is the key, so
     * a copy resent on the next connection waits for the first (ingest's event-id dedup was all
     * that caught it: the tower's events were decided twice, and its plan's rate budget spent
     * twice). A clean session's ids are its connection's alone [MQTT-3.1.2-6].
     */
    const receiving = new Map<Client | string, Map<number, Promise<boolean>>>();
    // aedes reports a failed store only to its client (which closes): the claim goes with it.
    const storeIncoming = persistence?.incomingStorePacket?.bind(persistence);
    if (persistence && storeIncoming) {
      persistence.incomingStorePacket = (client, packet) =>
        storeIncoming(client, packet).catch((err: unknown) => {
          const release = stored.get(packet);
          stored.delete(packet);
          release?.();
          throw err;
        });
    }

    const authorizeFirst = (client: Client | null, packet: PublishPacket, callback: Callback) => {
      const authorized = (err?: Error | null) => {
        const broker = holder.broker;
        if (err || !broker || !publishesBeforeAck(client, packet) || consumed.has(packet)) return callback(err ?? null);
        broker.publish(packet, client, (publishErr?: Error) => {
          if (publishErr) return callback(publishErr);
          consumed.add(packet);
          callback(null);
        });
      };
      if (authorize) authorize.call(holder.broker, client, packet, authorized);
      else authorized(null);
    };

    const receiveQos2 = (client: Client, store: IncomingPackets, packet: PublishPacket & { messageId: number }, callback: Callback): void => {
      const key = client.clean === false && client.id ? client.id : client;
      const ids = receiving.get(key) ?? new Map<number, Promise<boolean>>();
      receiving.set(key, ids);
      const id = packet.messageId;
      const earlier = ids.get(id);
      if (earlier) {
        void earlier.then((processed) => {
          if (!processed) return receiveQos2(client, store, packet, callback);
          // The first copy was handed on and consumed (a tower's uplink, a carrier's feed): this
          // one is acknowledged, not handed on again, whether or not the first is stored yet.
          consumed.add(packet);
          callback(null);
        });
        return;
      }
      let done!: (processed: boolean) => void;
      const claim = new Promise<boolean>((resolve) => (done = resolve));
      ids.set(id, claim);
      let released = false;
      let detach: (() => void) | null = null;
      const release = (processed: boolean) => {
        if (released) return;
        released = true;
        detach?.();
        stored.delete(packet);
        if (ids.get(id) === claim) ids.delete(id);
        if (ids.size === 0 && receiving.get(key) === ids) receiving.delete(key);
        done(processed);
      };
      store.incomingGetPacket(client, packet).then(
        () => {
          // A retransmission: aedes finds the id too and answers PUBREC without publishing.
          consumed.add(packet);
          release(false);
          callback(null);
        },
        () => {
          stored.set(packet, () => release(false));
          authorizeFirst(client, packet, (err) => {
            if (err) release(false);
            else if (consumed.has(packet)) release(true);
            // Published once stored (see `publish`); a copy then finds the id. Should aedes store
            // nothing (its inbound window full, which closes the connection), the claim ends
            // with the connection: a later copy is not held for good.
            else if (client.conn.destroyed) release(false);
            else {
              const conn = client.conn;
              const onClose = () => release(false);
              conn.once('close', onClose);
              detach = () => conn.off('close', onClose);
            }
            callback(err);
          });
        },
      );
    };

    const authorizePublish: AuthorizePublish = (client, packet, callback) => {
      if (client === null || client.closed || packet.qos !== 2 || typeof packet.messageId !== 'number' || !persistence) {
        return authorizeFirst(client, packet, callback);
      }
      receiveQos2(client, persistence, packet as PublishPacket & { messageId: number }, callback);
    };
    super({ ...opts, authorizePublish });
    holder.broker = this;
    this.#consumed = consumed;
    this.#durability = durability;
    this.#stored = stored;
  }

  /** aedes' own signature is `publish(packet, [client], done)`; its typings omit the client. */
  override publish(packet: PublishPacket, clientOrDone?: unknown, done?: unknown): void {
    // Whether this copy is a resend is the publisher's business, not the subscribers' (see above).
    if (packet.dup) packet.dup = false;
    // aedes publishes a client's QoS 2 PUBLISH once it stored its id: a copy may now be recognised.
    const stored = this.#stored.get(packet);
    if (stored) {
      this.#stored.delete(packet);
      stored();
    }
    if (this.#consumed.has(packet)) {
      const cb = (typeof clientOrDone === 'function' ? clientOrDone : done) as Done | undefined;
      cb?.();
      return;
    }
    const client = typeof clientOrDone === 'function' ? null : clientOrDone;
    const cb = (typeof clientOrDone === 'function' ? clientOrDone : done) as Done | undefined;
    const durability = this.#durability;
    if (!durability || !cb || packet.qos === 0) return basePublish.call(this, packet, client, cb);
    const mark = durability.mark();
    basePublish.call(this, packet, client, (err?: Error) => {
      if (err) return cb(err);
      durability.durable(mark).then(
        () => cb(),
        (durableErr: unknown) => cb(durableErr instanceof Error ? durableErr : new Error(String(durableErr))),
      );
    });
  }
}

/** A client's own QoS 1 PUBLISH (not a will, which aedes publishes after the client closed). */
function publishesBeforeAck(client: Client | null, packet: PublishPacket): client is Client {
  return client !== null && !client.closed && packet.qos === 1;
}
