/**
 * Checks every inbound MQTT 3.1.1 frame at the byte level BEFORE aedes' parser sees it, and
 * decides what may pass. mqtt-packet is lenient where the spec is not (it reads a protocol level
 * of 0x84 as 4, keeps a CONNECT's trailing bytes, decodes invalid UTF-8 into U+FFFD, accepts a
 * Will QoS of 3 and a packet id of 0), and aedes buffers whatever it is sent before it
 * authenticates anyone; both are closed here, where the raw bytes still exist.
 *
 * Frames are held only as long as a verdict needs them, bounded by the limits: a CONNECT
 * (`maxConnectBytes`), a SUBSCRIBE/UNSUBSCRIBE (`maxFiltersPerPacket` filters), a PUBLISH's
 * variable header (its topic and packet id; the payload streams through). A frame that breaks a
 * rule is never handed on, so aedes never acts on it; the caller closes the connection. A PINGREQ
 * the caller answered itself (hooks.pingreq) is not handed on either.
 */
import { isUtf8 } from 'node:buffer';
import { ByteQueue } from './byte-queue.js';

export type ViolationReason =
  | 'payload_too_large'
  | 'malformed_frame'
  | 'connect_expected'
  | 'connect_too_large'
  | 'second_connect'
  | 'protocol_name'
  | 'protocol_level'
  | 'malformed_connect'
  | 'will_qos'
  | 'empty_client_id'
  | 'client_id_too_long'
  | 'invalid_utf8'
  | 'null_character'
  | 'empty_topic'
  | 'wildcard_in_topic'
  | 'reserved_flags'
  | 'unexpected_packet'
  | 'publish_qos'
  | 'packet_id_zero'
  | 'malformed_subscribe'
  | 'subscribe_too_large'
  | 'too_many_filters';

export interface Violation {
  reason: ViolationReason;
  /** The spec clause (or our cap) the frame broke, for logs. */
  rule: string;
  /** A CONNACK return code the spec requires before closing (only for a CONNECT). */
  connack?: 1 | 2;
  /** What the refused frame asked for, for the log (a CONNECT's protocol level and client id). */
  detail?: { protocol: string; protocol_level: number; client_id: string | null };
}

export interface InspectorLimits {
  /** Largest Remaining Length of any frame (the PUBLISH payload limit plus headroom). */
  maxFrameBytes: number;
  /** Largest CONNECT, checked on its fixed header. */
  maxConnectBytes: number;
  /** Topic filters in one SUBSCRIBE or UNSUBSCRIBE. */
  maxFiltersPerPacket: number;
}

export interface InspectorHooks {
  /** Highest QoS to request for `filter` on the client's behalf (see subscriptionMaxQos). */
  maxQos(filter: string): number;
  /** The client acknowledged the PUBLISH with this packet id. */
  onPuback(packetId: number): void;
  /** The client answered what the broker wrote under this packet id (PUBACK, PUBREC or PUBCOMP). */
  answered?(packetId: number): void;
  /**
   * A control packet arrived from the client (a PUBLISH once its head did), whether or not
   * aedes reads it yet: what the server's keep alive counts [MQTT-3.1.2-24].
   */
  received?(): void;
  /** A PINGREQ arrived: true when it was answered, so it is not handed on. */
  pingreq?(): boolean;
}

export interface InspectResult {
  /** Bytes that passed, in order, to hand to the MQTT parser. */
  forward: Buffer[];
  /** Set when a frame broke a rule: nothing from that frame on was forwarded. */
  violation: Violation | null;
}

/**
 * The longest client id a CONNECT may carry, in bytes. MQTT 3.1.1 lets a server accept ids longer
 * than 23 characters or refuse them with CONNACK 0x02 [MQTT-3.1.3-5] [MQTT-3.1.3-9]; ours are at
 * most `console-<64>.<32>` (105 bytes). aedes applies its own `maxClientsIdLength` to MQTT 3.1 only.
 */
export const MAX_CLIENT_ID_BYTES = 128;

/** The longest filter a SUBSCRIBE may carry; our ACLs never grant one a tenth as long. */
export const MAX_FILTER_BYTES = 1024;

const CONNECT = 1;
const PUBLISH = 3;
const PUBACK = 4;
const PUBREC = 5;
const PUBREL = 6;
const PUBCOMP = 7;
const SUBSCRIBE = 8;
const UNSUBSCRIBE = 10;
const PINGREQ = 12;
const DISCONNECT = 14;

interface Header {
  type: number;
  flags: number;
  remaining: number;
  headerLength: number;
}

const violation = (reason: ViolationReason, rule: string, connack?: 1 | 2): Violation => (connack ? { reason, rule, connack } : { reason, rule });

export class FrameInspector {
  readonly #limits: InspectorLimits;
  #hooks: InspectorHooks | null = null;
  readonly #queue = new ByteQueue();
  /** Payload bytes of the current PUBLISH still to stream through. */
  #streaming = 0;
  #connectSeen = false;
  #failed = false;

  constructor(limits: InspectorLimits) {
    this.#limits = limits;
  }

  /** Bytes received and held, awaiting a verdict or the end of authentication. */
  get buffered(): number {
    return this.#queue.length;
  }

  /**
   * Called once the CONNECT was authenticated; until then nothing after the CONNECT passes
   * (the caller stops reading when `buffered` grows), so an unauthenticated client cannot make
   * the broker parse or queue its packets.
   */
  authenticated(hooks: InspectorHooks): void {
    this.#hooks = hooks;
  }

  feed(chunk: Buffer): InspectResult {
    const forward: Buffer[] = [];
    if (this.#failed) return { forward, violation: null };
    this.#queue.push(chunk);
    const v = this.#run(forward);
    if (v) {
      this.#failed = true;
      this.#queue.drain();
    }
    return { forward, violation: v };
  }

  #run(out: Buffer[]): Violation | null {
    const q = this.#queue;
    for (;;) {
      if (this.#streaming > 0) {
        const n = Math.min(this.#streaming, q.length);
        if (n === 0) return null;
        out.push(...q.takeChunks(n));
        this.#streaming -= n;
        continue;
      }
      // After the CONNECT, wait for authentication before looking at anything else.
      if (this.#connectSeen && !this.#hooks) return null;
      const h = this.#header();
      if (h === null) return null;
      if ('reason' in h) return h;
      const v = this.#checkHeader(h);
      if (v) return v;
      const total = h.headerLength + h.remaining;
      if (h.type === PUBLISH) {
        // The variable header: topic length, topic, and a packet id when QoS > 0 [MQTT-3.3.2].
        if (q.length < h.headerLength + 2) return null;
        const topicLength = (q.peek(h.headerLength) << 8) | q.peek(h.headerLength + 1);
        const qos = (h.flags >> 1) & 3;
        const headLength = h.headerLength + 2 + topicLength + (qos > 0 ? 2 : 0);
        if (headLength > total) return violation('malformed_frame', '[MQTT-3.3.2] topic longer than the packet');
        if (q.length < headLength) return null;
        const head = q.take(headLength);
        const pv = checkPublishHead(head, h, topicLength, qos);
        if (pv) return pv;
        this.#hooks?.received?.();
        out.push(head);
        this.#streaming = total - headLength;
        continue;
      }
      if (q.length < total) return null;
      const frame = q.take(total);
      const fv = this.#checkFrame(h, frame);
      if (fv) return fv;
      this.#hooks?.received?.();
      if (h.type === PINGREQ && this.#hooks?.pingreq?.()) continue;
      out.push(frame);
    }
  }

  /** The fixed header at the front of the queue: null until complete [MQTT-2.2]. */
  #header(): Header | Violation | null {
    const q = this.#queue;
    if (q.length < 2) return null;
    const first = q.peek(0);
    let remaining = 0;
    let multiplier = 1;
    for (let i = 1; i <= 4; i++) {
      if (q.length <= i) return null;
      const b = q.peek(i);
      remaining += (b & 0x7f) * multiplier;
      if ((b & 0x80) === 0) return { type: first >> 4, flags: first & 0x0f, remaining, headerLength: i + 1 };
      multiplier *= 128;
    }
    // [MQTT-2.2.3] the Remaining Length takes at most four bytes.
    return violation('malformed_frame', '[MQTT-2.2.3] remaining length longer than four bytes');
  }

  #checkHeader(h: Header): Violation | null {
    if (!this.#connectSeen) {
      // [MQTT-3.1.0-1] the first packet from the client must be a CONNECT.
      if (h.type !== CONNECT) return violation('connect_expected', '[MQTT-3.1.0-1]');
      if (h.remaining > this.#limits.maxConnectBytes) return violation('connect_too_large', 'mqtt_max_connect_bytes');
    } else if (h.type === CONNECT) {
      return violation('second_connect', '[MQTT-3.1.0-2]');
    }
    if (h.remaining > this.#limits.maxFrameBytes) return violation('payload_too_large', 'mqtt_max_payload_bytes');
    switch (h.type) {
      case CONNECT:
      case PUBACK:
      case PUBREC:
      case PUBCOMP:
      case PINGREQ:
      case DISCONNECT:
        // [MQTT-2.2.2-2] reserved flags must be as the spec lists them.
        return h.flags === 0 ? null : violation('reserved_flags', '[MQTT-2.2.2-2]');
      case PUBREL:
      case SUBSCRIBE:
      case UNSUBSCRIBE:
        // [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]
        if (h.flags !== 0b0010) return violation('reserved_flags', '[MQTT-2.2.2-2]');
        if (h.type !== PUBREL && h.remaining > 2 + this.#limits.maxFiltersPerPacket * (3 + MAX_FILTER_BYTES)) {
          return violation('subscribe_too_large', 'mqtt_max_filters_per_subscribe');
        }
        return null;
      case PUBLISH:
        return null;
      default:
        // Server-to-client packets (CONNACK, SUBACK, UNSUBACK, PINGRESP) and reserved types.
        return violation('unexpected_packet', '[MQTT-4.8.0-1]');
    }
  }

  #checkFrame(h: Header, frame: Buffer): Violation | null {
    const body = frame.subarray(h.headerLength);
    switch (h.type) {
      case CONNECT: {
        const v = checkConnect(body);
        if (!v) this.#connectSeen = true;
        return v;
      }
      case PUBACK:
      case PUBREC:
      case PUBREL:
      case PUBCOMP: {
        if (body.length !== 2) return violation('malformed_frame', '[MQTT-3.4.1] remaining length of an acknowledgement is 2');
        const id = body.readUInt16BE(0);
        if (id === 0) return violation('packet_id_zero', '[MQTT-2.3.1-1]');
        if (h.type === PUBACK) this.#hooks?.onPuback(id);
        if (h.type !== PUBREL) this.#hooks?.answered?.(id);
        return null;
      }
      case PINGREQ:
      case DISCONNECT:
        return body.length === 0 ? null : violation('malformed_frame', '[MQTT-3.12.1] [MQTT-3.14.1] no variable header');
      case SUBSCRIBE:
        return this.#checkSubscribe(body, true);
      case UNSUBSCRIBE:
        return this.#checkSubscribe(body, false);
      default:
        return null;
    }
  }

  /**
   * SUBSCRIBE [MQTT-3.8.3] / UNSUBSCRIBE [MQTT-3.10.3]: a packet id, then one or more filters
   * (each followed, in a SUBSCRIBE, by its requested QoS). A requested QoS above what the
   * principal is granted is lowered in place, so the SUBACK aedes writes states the QoS the
   * subscription really has [MQTT-3.9.3].
   */
  #checkSubscribe(body: Buffer, subscribe: boolean): Violation | null {
    if (body.length < 2) return violation('malformed_subscribe', '[MQTT-3.8.2] packet id missing');
    if (body.readUInt16BE(0) === 0) return violation('packet_id_zero', '[MQTT-2.3.1-1]');
    let off = 2;
    let count = 0;
    while (off < body.length) {
      if (++count > this.#limits.maxFiltersPerPacket) return violation('too_many_filters', 'mqtt_max_filters_per_subscribe');
      if (off + 2 > body.length) return violation('malformed_subscribe', '[MQTT-1.5.3] truncated filter length');
      const len = body.readUInt16BE(off);
      off += 2;
      if (off + len > body.length) return violation('malformed_subscribe', '[MQTT-1.5.3] truncated filter');
      const bytes = body.subarray(off, off + len);
      off += len;
      const sv = checkString(bytes);
      if (sv) return sv;
      // [MQTT-4.7.3-1] topic filters are at least one character long.
      if (len === 0) return violation('empty_topic', '[MQTT-4.7.3-1]');
      if (!subscribe) continue;
      if (off >= body.length) return violation('malformed_subscribe', '[MQTT-3.8.3] requested QoS missing');
      const requested = body[off]!;
      // [MQTT-3-8.3-4] reserved bits must be zero and the QoS 0, 1 or 2.
      if (requested > 2) return violation('malformed_subscribe', '[MQTT-3-8.3-4]');
      const max = this.#hooks?.maxQos(bytes.toString('utf8')) ?? requested;
      if (requested > max) body[off] = max;
      off += 1;
    }
    // [MQTT-3.8.3-3] [MQTT-3.10.3-2] at least one filter.
    if (count === 0) return violation('malformed_subscribe', subscribe ? '[MQTT-3.8.3-3]' : '[MQTT-3.10.3-2]');
    return null;
  }
}

/** [MQTT-1.5.3-1] well-formed UTF-8 (no surrogates, no overlong forms); [MQTT-1.5.3-2] no U+0000. */
function checkString(bytes: Buffer): Violation | null {
  if (!isUtf8(bytes)) return violation('invalid_utf8', '[MQTT-1.5.3-1]');
  if (bytes.includes(0)) return violation('null_character', '[MQTT-1.5.3-2]');
  return null;
}

function checkPublishHead(head: Buffer, h: Header, topicLength: number, qos: number): Violation | null {
  // [MQTT-3.3.1-4] a PUBLISH must not have both QoS bits set.
  if (qos === 3) return violation('publish_qos', '[MQTT-3.3.1-4]');
  // [MQTT-3.3.1-2] the DUP flag must be 0 for QoS 0 messages.
  if (qos === 0 && (h.flags & 0b1000) !== 0) return violation('reserved_flags', '[MQTT-3.3.1-2]');
  const topic = head.subarray(h.headerLength + 2, h.headerLength + 2 + topicLength);
  const sv = checkString(topic);
  if (sv) return sv;
  if (topicLength === 0) return violation('empty_topic', '[MQTT-4.7.3-1]');
  // [MQTT-3.3.2-2] a topic name carries no wildcards.
  if (topic.includes(0x23) || topic.includes(0x2b)) return violation('wildcard_in_topic', '[MQTT-3.3.2-2]');
  // [MQTT-2.3.1-1] a QoS 1 or 2 PUBLISH carries a non-zero packet id.
  if (qos > 0 && head.readUInt16BE(h.headerLength + 2 + topicLength) === 0) return violation('packet_id_zero', '[MQTT-2.3.1-1]');
  return null;
}

/**
 * CONNECT [MQTT-3.1]: variable header (protocol name, level, flags, keep alive), then the
 * payload fields the flags announce, and nothing after them.
 */
function checkConnect(body: Buffer): Violation | null {
  const malformed = (rule: string) => violation('malformed_connect', rule);
  let off = 0;
  const field = (): Buffer | null => {
    if (off + 2 > body.length) return null;
    const len = body.readUInt16BE(off);
    if (off + 2 + len > body.length) return null;
    const bytes = body.subarray(off + 2, off + 2 + len);
    off += 2 + len;
    return bytes;
  };
  const name = field();
  if (name === null) return malformed('[MQTT-3.1.2.1] protocol name');
  const protocol = name.toString('latin1');
  // [MQTT-3.1.2-1] MQTT 3.1.1 says "MQTT"; MQTT 3.1 (level 3, which aedes also speaks) "MQIsdp".
  if (protocol !== 'MQTT' && protocol !== 'MQIsdp') return violation('protocol_name', '[MQTT-3.1.2-1]');
  if (off + 4 > body.length) return malformed('[MQTT-3.1.2] variable header');
  const level = body[off]!;
  const flags = body[off + 1]!;
  off += 4;
  // [MQTT-3.1.2-2] any other level (5, or 0x84: a bridge bit on 4) gets CONNACK 0x01, then close.
  // The client learns only "unacceptable protocol version"; the log names the level it asked for
  // and, where it can be read, its client id, so an operator can tell which device speaks MQTT 5.
  if (!((protocol === 'MQTT' && level === 4) || (protocol === 'MQIsdp' && level === 3))) {
    return { ...violation('protocol_level', '[MQTT-3.1.2-2]', 1), detail: { protocol, protocol_level: level, client_id: clientIdAt(body, off, level) } };
  }
  // [MQTT-3.1.2-3] the reserved flag is zero.
  if (flags & 0x01) return violation('reserved_flags', '[MQTT-3.1.2-3]');
  const clean = (flags & 0x02) !== 0;
  const will = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 0x03;
  const willRetain = (flags & 0x20) !== 0;
  const hasPassword = (flags & 0x40) !== 0;
  const hasUsername = (flags & 0x80) !== 0;
  // [MQTT-3.1.2-14] a Will QoS of 3 is not allowed.
  if (willQos === 3) return violation('will_qos', '[MQTT-3.1.2-14]');
  // [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] without a will, its QoS and retain are zero.
  if (!will && (willQos !== 0 || willRetain)) return malformed('[MQTT-3.1.2-13] [MQTT-3.1.2-15]');
  // [MQTT-3.1.2-22] a password needs a username.
  if (hasPassword && !hasUsername) return malformed('[MQTT-3.1.2-22]');

  const clientId = field();
  if (clientId === null) return malformed('[MQTT-3.1.3-3] client identifier');
  const cv = checkString(clientId);
  if (cv) return cv;
  // [MQTT-3.1.3-8] an empty client id needs a clean session: CONNACK 0x02, then close.
  if (clientId.length === 0 && !clean) return violation('empty_client_id', '[MQTT-3.1.3-8]', 2);
  // [MQTT-3.1.3-9] an id the server does not accept: CONNACK 0x02, then close.
  if (clientId.length > MAX_CLIENT_ID_BYTES) return violation('client_id_too_long', '[MQTT-3.1.3-5] client ids of at most 128 bytes', 2);
  if (will) {
    const topic = field();
    if (topic === null) return malformed('[MQTT-3.1.3-10] will topic');
    const tv = checkString(topic);
    if (tv) return tv;
    if (field() === null) return malformed('[MQTT-3.1.3] will message');
  }
  if (hasUsername) {
    const username = field();
    if (username === null) return malformed('[MQTT-3.1.3-11] user name');
    const uv = checkString(username);
    if (uv) return uv;
  }
  if (hasPassword && field() === null) return malformed('[MQTT-3.1.3] password');
  // [MQTT-4.8.0-1] bytes after the last field make the packet malformed: close.
  if (off !== body.length) return malformed('[MQTT-4.8.0-1] trailing bytes after the last field');
  return null;
}

/**
 * The client id of a CONNECT whose variable header ends at `off`, or null when it cannot be read.
 * MQTT 5 puts the CONNECT's properties (a variable byte length, then the properties) before it.
 */
function clientIdAt(body: Buffer, off: number, level: number): string | null {
  if (level === 5) {
    let length = 0;
    for (let i = 0, multiplier = 1; ; i++, multiplier *= 128) {
      if (i === 4 || off >= body.length) return null;
      const b = body[off++]!;
      length += (b & 0x7f) * multiplier;
      if ((b & 0x80) === 0) break;
    }
    off += length;
  }
  if (off + 2 > body.length) return null;
  const idLength = body.readUInt16BE(off);
  const id = body.subarray(off + 2, off + 2 + idLength);
  return id.length === idLength && isUtf8(id) ? id.toString('utf8') : null;
}
