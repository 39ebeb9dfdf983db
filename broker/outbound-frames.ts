/**
 * Reads the frames the broker writes to one connection, once, for everything that needs to know
 * what was written to the client:
 * - the ack deadline (ack-deadline.ts): which packet ids the client owes an answer for, a QoS 1
 *   or 2 PUBLISH [MQTT-4.3.2] [MQTT-4.3.3] or a PUBREL;
 * - on a tower connection, the command deliveries (command-deliveries.ts): which command each
 *   packet id carries, for the PUBLISHes whose topic the watcher selects (their payload is
 *   collected only for those).
 * aedes writes a packet in pieces (mqtt-packet under cork) and several packets in one write, so
 * the reader keeps what it has not framed yet and never assumes a chunk holds a whole frame.
 * Everything not asked for (QoS 0 PUBLISHes, other packets, unselected payloads) is skipped
 * without being copied.
 */
import { ByteQueue } from './byte-queue.js';

const PUBLISH = 3;
const PUBREL = 6;

/** Which outbound QoS 1/2 PUBLISHes are handed over with their payload. */
export interface PublishWatch {
  /** PUBLISHes whose remaining length exceeds this are never selected (skipped unread). */
  readonly maxRemainingLength: number;
  /** Only topics ending in these bytes are offered to `select` (the others are skipped unread). */
  readonly topicEnd: Buffer;
  /** A tag (non-null) when the PUBLISH written on `topic` is wanted with its payload. */
  select(topic: string): string | null;
  /** A selected PUBLISH was written completely. */
  published(tag: string, packetId: number, payload: Buffer): void;
}

export interface OutboundObservers {
  /** A QoS 1/2 PUBLISH or a PUBREL with this packet id was written: the client owes an answer. */
  owed: ((packetId: number) => void) | null;
  watch: PublishWatch | null;
  /** The bytes could not be framed (aedes never writes such): nothing more will be reported. */
  lost(): void;
}

export class OutboundFrames {
  readonly #observers: OutboundObservers;
  readonly #queue = new ByteQueue();
  /** Bytes of the current frame still to skip. */
  #skip = 0;
  /** The payload of a selected PUBLISH still being written. */
  #payload: { length: number; tag: string; packetId: number } | null = null;
  #lost = false;

  constructor(observers: OutboundObservers) {
    this.#observers = observers;
  }

  /** Observes bytes written to the client, in order, however they are split. */
  written(chunk: Buffer): void {
    if (this.#lost) return;
    this.#queue.push(chunk);
    if (this.#scan()) return;
    this.#lost = true;
    this.#payload = null;
    this.#queue.drain();
    this.#observers.lost();
  }

  /** Stops observing (the connection ended). */
  stop(): void {
    this.#lost = true;
    this.#payload = null;
    this.#queue.drain();
  }

  /** Reads whole frame heads from the queue; false on framing it cannot read. */
  #scan(): boolean {
    const q = this.#queue;
    const { owed, watch } = this.#observers;
    for (;;) {
      const p = this.#payload;
      if (p) {
        if (q.length < p.length) return true;
        this.#payload = null;
        watch!.published(p.tag, p.packetId, q.take(p.length));
        continue;
      }
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, q.length);
        if (n === 0) return true;
        q.takeChunks(n);
        this.#skip -= n;
        continue;
      }
      if (q.length < 2) return true;
      let remaining = 0;
      let headerLength = 0;
      for (let i = 1, multiplier = 1; ; i++, multiplier *= 128) {
        if (i > 4) return false;
        if (q.length <= i) return true;
        const b = q.peek(i);
        remaining += (b & 0x7f) * multiplier;
        if ((b & 0x80) === 0) {
          headerLength = i + 1;
          break;
        }
      }
      const first = q.peek(0);
      const type = first >> 4;
      const total = headerLength + remaining;
      if (type === PUBLISH && ((first >> 1) & 3) > 0) {
        if (q.length < headerLength + 2) return true;
        const topicLength = (q.peek(headerLength) << 8) | q.peek(headerLength + 1);
        const idAt = headerLength + 2 + topicLength;
        if (idAt + 2 > total) return false;
        if (q.length < idAt + 2) return true;
        if (watch && remaining <= watch.maxRemainingLength && endsWith(q, idAt, watch.topicEnd)) {
          const head = q.take(idAt + 2);
          const packetId = head.readUInt16BE(idAt);
          owed?.(packetId);
          const tag = watch.select(head.toString('utf8', headerLength + 2, idAt));
          if (tag !== null) this.#payload = { length: total - idAt - 2, tag, packetId };
          else this.#skip = total - idAt - 2;
          continue;
        }
        owed?.((q.peek(idAt) << 8) | q.peek(idAt + 1));
      } else if (type === PUBREL && owed) {
        if (remaining < 2) return false;
        if (q.length < headerLength + 2) return true;
        owed((q.peek(headerLength) << 8) | q.peek(headerLength + 1));
      }
      this.#skip = total;
    }
  }
}

/** Whether the queued bytes just before `end` are `suffix`. */
function endsWith(q: ByteQueue, end: number, suffix: Buffer): boolean {
  const from = end - suffix.length;
  if (from < 0) return false;
  for (let i = 0; i < suffix.length; i++) if (q.peek(from + i) !== suffix[i]) return false;
  return true;
}
