/**
 * RADIUS packets as RFC 2866 (Accounting) uses them, on top of RFC 2865's format: decode an
 * Accounting-Request, verify its Request Authenticator, encode the Accounting-Response.
 *
 * Written here rather than taken from npm: the `radius` package (1.1.4, the only maintained-looking
 * one) keeps its state on a module-level object (decode() stores the authenticator and secret on
 * it, so two packets in flight share them), compares authenticators with `toString()` (UTF-8
 * decoding maps different invalid byte sequences to the same U+FFFD, so distinct digests can
 * compare equal; and it is not constant-time), mutates the caller's buffer while checking, uses
 * the deprecated `new Buffer()`, and reads its dictionaries from disk synchronously on first
 * use. Accounting needs ~15 attributes and two MD5s, which is this file.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { SocketAddress } from 'node:net';

export const CODE = { ACCOUNTING_REQUEST: 4, ACCOUNTING_RESPONSE: 5, STATUS_SERVER: 12 } as const;

/** Attribute types used by accounting (RFC 2865 §5, RFC 2866 §5, RFC 2869 §5). */
export const ATTR = {
  USER_NAME: 1,
  NAS_IP_ADDRESS: 4,
  CALLED_STATION_ID: 30,
  CALLING_STATION_ID: 31,
  NAS_IDENTIFIER: 32,
  ACCT_STATUS_TYPE: 40,
  ACCT_DELAY_TIME: 41,
  ACCT_INPUT_OCTETS: 42,
  ACCT_OUTPUT_OCTETS: 43,
  ACCT_SESSION_ID: 44,
  ACCT_SESSION_TIME: 46,
  ACCT_TERMINATE_CAUSE: 49,
  ACCT_INPUT_GIGAWORDS: 52,
  ACCT_OUTPUT_GIGAWORDS: 53,
  EVENT_TIMESTAMP: 55,
  MESSAGE_AUTHENTICATOR: 80,
  NAS_IPV6_ADDRESS: 95,
} as const;

/** Acct-Status-Type values [RFC 2866 §5.1]. */
export const STATUS_TYPE = { START: 1, STOP: 2, INTERIM_UPDATE: 3, ACCOUNTING_ON: 7, ACCOUNTING_OFF: 8 } as const;

/** Acct-Terminate-Cause values [RFC 2866 §5.10], for readable session records. */
const TERMINATE_CAUSES: Record<number, string> = {
  1: 'User-Request', 2: 'Lost-Carrier', 3: 'Lost-Service', 4: 'Idle-Timeout', 5: 'Session-Timeout', 6: 'Admin-Reset',
  7: 'Admin-Reboot', 8: 'Port-Error', 9: 'NAS-Error', 10: 'NAS-Request', 11: 'NAS-Reboot', 12: 'Port-Unneeded',
  13: 'Port-Preempted', 14: 'Port-Suspended', 15: 'Service-Unavailable', 16: 'Callback', 17: 'User-Error', 18: 'Host-Request',
};

export function terminateCauseName(value: number): string {
  return TERMINATE_CAUSES[value] ?? `cause-${value}`;
}

const HEADER = 20;
/** [RFC 2865 §3] Length is 20..4096. */
export const MAX_PACKET = 4096;

export interface RadiusPacket {
  code: number;
  identifier: number;
  authenticator: Buffer;
  /** Attributes in order, each value a copy of its octets. */
  attributes: Array<{ type: number; value: Buffer }>;
  /** The packet's Length octets (anything after them in the datagram is padding [RFC 2865 §3]). */
  raw: Buffer;
}

export class MalformedPacket extends Error {}

/** Decodes the framing; throws MalformedPacket for anything RFC 2865 §3 says to silently discard. */
export function decodePacket(datagram: Buffer): RadiusPacket {
  if (datagram.length < HEADER) throw new MalformedPacket('shorter than a header');
  const length = datagram.readUInt16BE(2);
  if (length < HEADER || length > MAX_PACKET) throw new MalformedPacket(`length ${length} out of range`);
  if (datagram.length < length) throw new MalformedPacket('shorter than its Length');
  const raw = Buffer.from(datagram.subarray(0, length));
  const attributes: RadiusPacket['attributes'] = [];
  for (let at = HEADER; at < length; ) {
    if (at + 2 > length) throw new MalformedPacket('truncated attribute header');
    const type = raw[at]!;
    const len = raw[at + 1]!;
    if (len < 2 || at + len > length) throw new MalformedPacket(`attribute ${type} has length ${len}`);
    attributes.push({ type, value: Buffer.from(raw.subarray(at + 2, at + len)) });
    at += len;
  }
  return { code: raw[0]!, identifier: raw[1]!, authenticator: Buffer.from(raw.subarray(4, HEADER)), attributes, raw };
}

/**
 * [RFC 2866 §3] Request Authenticator = MD5(Code + Identifier + Length + 16 zero octets +
 * request attributes + shared secret). Compared in constant time.
 */
export function verifyRequestAuthenticator(packet: RadiusPacket, secret: Buffer): boolean {
  const zeroed = Buffer.from(packet.raw);
  zeroed.fill(0, 4, HEADER);
  const expected = createHash('md5').update(zeroed).update(secret).digest();
  return timingSafeEqual(expected, packet.authenticator);
}

/**
 * [RFC 3579 §3.2] A packet carrying a Message-Authenticator "MUST" be silently discarded when it
 * does not verify: exactly one, 16 octets, equal to HMAC-MD5(secret) over the packet with that
 * value zeroed. In an Accounting-Request the Request Authenticator field is zeroed too (it is a
 * digest computed after the HMAC, over it), as FreeRADIUS' radclient computes it. A packet without
 * one is fine (RFC 2866 does not require it). Expects a packet decodePacket accepted; constant time.
 */
export function verifyMessageAuthenticator(packet: RadiusPacket, secret: Buffer): boolean {
  const offset = messageAuthenticatorAt(packet);
  if (offset === -1) return true;
  return offset >= 0 && hmacMatches(packet, secret, offset, true);
}

/**
 * [RFC 5997 §3] A Status-Server (a NAS or proxy asking whether we are alive) "MUST" carry a
 * Message-Authenticator; its Request Authenticator is random, so the HMAC covers it as sent.
 */
export function verifyStatusServer(packet: RadiusPacket, secret: Buffer): boolean {
  const offset = messageAuthenticatorAt(packet);
  return offset >= 0 && hmacMatches(packet, secret, offset, false);
}

/** Offset of the one Message-Authenticator's value; -1 when there is none, -2 when malformed. */
function messageAuthenticatorAt(packet: RadiusPacket): number {
  let offset = -1;
  for (let at = HEADER; at < packet.raw.length; at += packet.raw[at + 1]!) {
    if (packet.raw[at] !== ATTR.MESSAGE_AUTHENTICATOR) continue;
    if (offset >= 0 || packet.raw[at + 1] !== 18) return -2;
    offset = at + 2;
  }
  return offset;
}

function hmacMatches(packet: RadiusPacket, secret: Buffer, offset: number, zeroAuthenticator: boolean): boolean {
  const zeroed = Buffer.from(packet.raw);
  if (zeroAuthenticator) zeroed.fill(0, 4, HEADER);
  zeroed.fill(0, offset, offset + 16);
  const expected = createHmac('md5', secret).update(zeroed).digest();
  return timingSafeEqual(expected, packet.raw.subarray(offset, offset + 16));
}

/**
 * [RFC 2866 §3] An Accounting-Response: same Identifier, no attributes required, its
 * Response Authenticator = MD5(Code + Identifier + Length + Request Authenticator + attributes + secret).
 * The answer to a Status-Server carries a Message-Authenticator [RFC 5997 §3], the HMAC computed
 * over the response with the request's authenticator in place [RFC 3579 §3.2], before that MD5.
 */
export function encodeAccountingResponse(request: RadiusPacket, secret: Buffer, opts: { messageAuthenticator?: boolean } = {}): Buffer {
  const length = HEADER + (opts.messageAuthenticator ? 18 : 0);
  const out = Buffer.alloc(length);
  out[0] = CODE.ACCOUNTING_RESPONSE;
  out[1] = request.identifier;
  out.writeUInt16BE(length, 2);
  request.authenticator.copy(out, 4);
  if (opts.messageAuthenticator) {
    out[HEADER] = ATTR.MESSAGE_AUTHENTICATOR;
    out[HEADER + 1] = 18;
    createHmac('md5', secret).update(out).digest().copy(out, HEADER + 2);
  }
  const auth = createHash('md5').update(out).update(secret).digest();
  auth.copy(out, 4);
  return out;
}

/** Test and example clients: an Accounting-Request with its authenticator computed. */
export function encodeAccountingRequest(identifier: number, attributes: Array<{ type: number; value: Buffer }>, secret: Buffer): Buffer {
  const body = Buffer.concat(attributes.map((a) => Buffer.concat([Buffer.from([a.type, a.value.length + 2]), a.value])));
  const out = Buffer.alloc(HEADER + body.length);
  out[0] = CODE.ACCOUNTING_REQUEST;
  out[1] = identifier;
  out.writeUInt16BE(out.length, 2);
  body.copy(out, HEADER);
  createHash('md5').update(out).update(secret).digest().copy(out, 4);
  return out;
}

/** Typed reads of the first occurrence of an attribute. */
export function attrText(p: RadiusPacket, type: number): string | undefined {
  const a = p.attributes.find((x) => x.type === type);
  return a === undefined ? undefined : a.value.toString('utf8');
}

/**
 * The address in a NAS-IP-Address (4 octets, dotted quad) or NAS-IPv6-Address (16 octets,
 * RFC 5952 text as Node writes it) attribute; undefined when absent or not of that length.
 */
export function attrAddress(p: RadiusPacket, type: number): string | undefined {
  const a = p.attributes.find((x) => x.type === type);
  if (a === undefined) return undefined;
  if (a.value.length === 4) return [...a.value].join('.');
  if (a.value.length === 16) return new SocketAddress({ address: ipv6Text(a.value), family: 'ipv6' }).address;
  return undefined;
}

function ipv6Text(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':');
}

export function attrInt(p: RadiusPacket, type: number): number | undefined {
  const a = p.attributes.find((x) => x.type === type);
  if (a === undefined) return undefined;
  if (a.value.length !== 4) throw new MalformedPacket(`attribute ${type} is not a 4-octet integer`);
  return a.value.readUInt32BE(0);
}

export const intValue = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};
