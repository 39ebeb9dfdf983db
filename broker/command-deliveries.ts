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
 * PUBACK received on the connection, so it has none of these gaps. The bytes written are framed
 * by outbound-frames.ts, which hands over this tower's command PUBLISHes (`select`).
 */
import { parseTopic } from '../shared/mqtt/topics.js';
import type { PublishWatch } from './outbound-frames.js';

export interface CommandDelivery {
  tenant_id: string;
  tower_id: string;
  command_id: string;
}

const MAX_SAME_ID = 4;
const COMMANDS_TOPIC_END = Buffer.from('/commands');

/** A command PUBLISH is small; its payload is read only when it is one of this tower's commands. */
export class CommandDeliveries implements PublishWatch {
  readonly #towerId: string;
  /** A command PUBLISH's remaining length: topic (≤ 65,535 + 2), packet id (2), payload. */
  readonly maxRemainingLength: number;
  readonly topicEnd = COMMANDS_TOPIC_END;
  /**
   * Command per packet id; an id reused while in flight keeps both, first written first. Null
   * while none is in flight: an idle tower (most of them) holds no map.
   */
  #inFlight: Map<number, CommandDelivery[]> | null = null;

  constructor(towerId: string, maxPayloadBytes: number) {
    this.#towerId = towerId;
    this.maxRemainingLength = maxPayloadBytes + 65_539;
  }

  /** The tenant whose command for this tower a PUBLISH on `topic` carries, or null. */
  select(topic: string): string | null {
    const parsed = parseTopic(topic);
    return parsed?.kind === 'commands' && parsed.towerId === this.#towerId ? parsed.tenantId : null;
  }

  /** A command PUBLISH was written to the tower under `packetId`. Never throws on a payload it cannot read. */
  published(tenantId: string, packetId: number, payload: Buffer): void {
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
}
