/**
 * One SUBACK return code per filter of a SUBSCRIBE, also when the packet names a filter twice
 * [MQTT-3.8.4-5] [MQTT-3.9.3-1]. aedes 1.2 (lib/handlers/subscribe.js `_dedupe`) keeps the last
 * copy of a repeated filter and answers only for the filters it kept, so a SUBSCRIBE of
 * `a, a, b` got two return codes: mqtt.js rejected the SUBACK ("suback granted 2 reason code(s)
 * for 3 subscription(s)") and paho and mosquitto_sub paired the codes with the wrong filters.
 *
 * Such a SUBSCRIBE reaches aedes without its packet id, so aedes subscribes as before but writes
 * no SUBACK; once it has (its 'subscribe' event, the granted QoS or 0x80 set on each filter it
 * kept), the SUBACK is written here with a code for every filter in request order, each copy of
 * a filter answered as its last one, the subscription in force [MQTT-3.8.4-3]. A SUBSCRIBE
 * without a repeated filter is left entirely to aedes.
 */
import type { Client, Subscription } from 'aedes';
import { writeToStream } from 'mqtt-packet';

/** What the SUBACK of a SUBSCRIBE with a repeated filter must answer. */
interface Owed {
  messageId: number;
  /** The filters in request order, repeats included. */
  filters: string[];
}

interface ParsedSubscribe {
  cmd: string;
  messageId?: number;
  subscriptions?: Array<{ topic: string }>;
}

/** SUBACK failure return code (MQTT 3.1.1 §3.9.3). */
const FAILURE = 0x80;

export class SubackPerFilter {
  /** Keyed by the subscription objects of the packet, which aedes hands back in its 'subscribe' event. */
  readonly #owed = new WeakMap<object, Owed>();

  /** Watches the packets aedes parses for `client`; call before any SUBSCRIBE (preConnect). */
  watch(client: Client): void {
    const parser = (client as unknown as { _parser?: { prependListener(event: 'packet', fn: (p: ParsedSubscribe) => void): void } })._parser;
    // Ahead of aedes' own listener, which hands the packet to its handlers; one function for
    // every client, so an idle connection holds no closure of its own.
    parser?.prependListener('packet', this.#onPacket);
  }

  /** aedes' 'subscribe' event: writes the SUBACK owed for these subscriptions, if any. */
  subscribed(subs: Subscription[], client: Client): void {
    const first = subs[0];
    const owed = first ? this.#owed.get(first) : undefined;
    if (!owed || client.closed) return;
    const granted = new Map(subs.map((s) => [s.topic, s.qos as number]));
    const suback = { cmd: 'suback' as const, messageId: owed.messageId, granted: owed.filters.map((f) => granted.get(f) ?? FAILURE) };
    writeToStream(suback, client.conn);
  }

  readonly #onPacket = (packet: ParsedSubscribe): void => {
    const subs = packet.subscriptions;
    if (packet.cmd !== 'subscribe' || packet.messageId === undefined || !subs || subs.length < 2) return;
    const filters = subs.map((s) => s.topic);
    if (new Set(filters).size === filters.length) return;
    const owed = { messageId: packet.messageId, filters };
    for (const s of subs) this.#owed.set(s, owed);
    // aedes writes a SUBACK only for a SUBSCRIBE with a packet id (completeSubscribe).
    delete packet.messageId;
  };
}
