/**
 * Which command each packet id carries on one tower connection, read from the bytes the broker
 * writes to it, so a PUBACK read from the bytes the tower sends is the command's "delivered"
 * step [MQTT-4.3.2] whatever happens inside the session store.
 *
 * Why not aedes' 'ack' event: it reports the message its persistence finds under the PUBACK's
 * packet id (lib/handlers/puback.js → outgoingClearMessageId), and that lookup misses whenever
 * the store does not hold that id for that client at that moment:
 * - clean sessions are never stored, so their PUBACKs always report nothing (aedes #257);
 * - a queued message written twice on one connection (the queue replayed at CONNECT while a
 *   live delivery to the restored subscription is in flight, or two overlapping
 *   subscriptions: we deliver every copy, see backends.ts) is re-keyed to the second write's
 *   packet id, so the PUBACK of the first finds nothing, and if the connection ends before the
 *   second PUBACK the delivery is never recorded;
 * - a replayed message keeps the packet id of its first delivery while the new connection
 *   numbers fresh ones from a random start, so one id can be in flight twice and the id index
 *   of the LevelDB/Redis stores then names the other message.
 * How soon a client PUBACKs, and whether it resumes sessions, decides which of these it meets;
 * hence "sometimes, with some client libraries". The wire sees every PUBLISH written and every
 * PUBACK received on the connection, so it has none of these gaps.
 */
import { parseTopic } from '../shared/mqtt/topics.js';
import { ByteQueue } from './byte-queue.js';

export interface CommandDelivery {
  tenant_id: string;
  tower_id: string;
  command_id: string;
}

const PUBLISH = 3;
const MAX_SAME_ID = 4;

/** A command PUBLISH is small; its payload is read only when it is one of this tower's commands. */
export class CommandDeliveries {
  readonly #towerId: string;
  readonly #maxPayload: number;
  readonly #queue = new ByteQueue();
  /**
   * Command per packet id; an id reused while in flight keeps both, first written first. Null
   * while none is in flight: an idle tower (most of them) holds no map.
   */
  #inFlight: Map<number, CommandDelivery[]> | null = null;
  /** Bytes of the current frame still to skip (it is not one of this tower's commands). */
  #skip = 0;
  #lost = false;
  /** The payload of the command PUBLISH being written. */
  #payload: { length: number; tenantId: string; packetId: number } | null = null;

  constructor(towerId: string, maxPayloadBytes: number) {
    this.#towerId = towerId;
    this.#maxPayload = maxPayloadBytes;
  }

  /** Observes bytes written to the tower. Never throws on bytes it cannot read: it skips them. */
  written(chunk: Buffer): void {
    if (this.#lost) return;
    this.#queue.push(chunk);
    try {
      this.#scan();
    } catch {
      // Unreadable framing (it cannot happen with aedes' writes): stop following this
      // connection rather than misread it; its commands are resent and delivered later.
      this.#lost = true;
      this.#queue.drain();
    }
  }

  /** The tower PUBACKed `packetId`: the command it carried, if any. */
  acknowledged(packetId: number): CommandDelivery | null {
    const inFlight = this.#inFlight;
    const list = inFlight?.get(packetId);
    if (!inFlight || !list) return null;
    const first = list.shift()!;
    if (list.length === 0) inFlight.delete(packetId);
    if (inFlight.size === 0) this.#inFlight = null;
    return first;
  }

  #scan(): void {
    const q = this.#queue;
    for (;;) {
      if (this.#payload) {
        const p = this.#payload;
        if (q.length < p.length) return;
        this.#payload = null;
        this.#record(p.tenantId, p.packetId, q.take(p.length));
        continue;
      }
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, q.length);
        q.takeChunks(n);
        this.#skip -= n;
        if (this.#skip > 0) return;
      }
      if (q.length < 2) return;
      let remaining = 0;
      let multiplier = 1;
      let headerLength = 0;
      for (let i = 1; i <= 4 && i < q.length; i++) {
        const b = q.peek(i);
        remaining += (b & 0x7f) * multiplier;
        multiplier *= 128;
        if ((b & 0x80) === 0) {
          headerLength = i + 1;
          break;
        }
      }
      if (headerLength === 0) return; // the rest of the header is not written yet
      const first = q.peek(0);
      const qos = (first >> 1) & 3;
      const total = headerLength + remaining;
      if (first >> 4 !== PUBLISH || qos === 0 || remaining > this.#maxPayload + 65_542) {
        this.#skip = total;
        continue;
      }
      if (q.length < headerLength + 2) return;
      const topicLength = (q.peek(headerLength) << 8) | q.peek(headerLength + 1);
      const headLength = headerLength + 2 + topicLength + 2;
      if (headLength > total) {
        this.#skip = total;
        continue;
      }
      if (q.length < headLength) return;
      const head = q.take(headLength);
      const parsed = parseTopic(head.toString('utf8', headerLength + 2, headerLength + 2 + topicLength));
      if (parsed?.kind !== 'commands' || parsed.towerId !== this.#towerId) {
        this.#skip = total - headLength;
        continue;
      }
      this.#payload = { length: total - headLength, tenantId: parsed.tenantId, packetId: head.readUInt16BE(headerLength + 2 + topicLength) };
    }
  }

  #record(tenantId: string, packetId: number, payload: Buffer): void {
    let id: unknown;
    try {
      id = (JSON.parse(payload.toString('utf8')) as { id?: unknown }).id;
    } catch {
      return; // commands are built by the cloud; an unreadable one is not ours to report
    }
    if (typeof id !== 'string') return;
    const entry = { tenant_id: tenantId, tower_id: this.#towerId, command_id: id };
    const inFlight = (this.#inFlight ??= new Map());
    const list = inFlight.get(packetId);
    if (!list) inFlight.set(packetId, [entry]);
    // aedes reuses an id only for a replay (see above); a tower that never acknowledges must
    // not grow this without bound.
    else if (list.push(entry) > MAX_SAME_ID) list.shift();
  }

}
