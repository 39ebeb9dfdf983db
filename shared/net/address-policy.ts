/**
 * Which network addresses an outbound request on a tenant's behalf (a webhook) may reach. A tenant
 * chooses the URL, so without this it could make the platform call its own loopback services, the
 * cloud metadata endpoint (169.254.169.254) or anything on the private network behind it.
 *
 * Only globally routable unicast addresses are public. Refused: loopback, private (RFC 1918),
 * shared/CGNAT (100.64/10), link-local (169.254/16, fe80::/10), unique-local (fc00::/7),
 * "this network" (0/8), unspecified, multicast, reserved and documentation ranges, IPv4-mapped and
 * IPv4-compatible IPv6, Teredo; NAT64 and 6to4 addresses are judged by the IPv4 address they embed.
 *
 * Hosts are read the way a resolver would: `parseHostAddress` accepts every numeric IPv4 notation
 * inet_aton does (2130706433, 0x7f000001, 0177.0.0.1, 127.1), so such tricks are caught before
 * any DNS. Names are checked for local suffixes here and resolved at connection time by the caller
 * (workers/webhooks/webhook-transport.ts), which connects only to the addresses it checked.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type AddressClass =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link_local'
  | 'unique_local'
  | 'multicast'
  | 'reserved'
  | 'documentation'
  | 'ipv4_mapped';

type Bytes = readonly number[];

function inPrefix(bytes: Bytes, prefix: Bytes, bits: number): boolean {
  for (let i = 0; i < bits; i += 8) {
    const take = Math.min(8, bits - i);
    const mask = (0xff << (8 - take)) & 0xff;
    if (((bytes[i / 8] ?? 0) & mask) !== ((prefix[i / 8] ?? 0) & mask)) return false;
  }
  return true;
}

const V4_RANGES: ReadonlyArray<[Bytes, number, AddressClass]> = [
  [[0, 0, 0, 0], 8, 'unspecified'],
  [[10, 0, 0, 0], 8, 'private'],
  [[100, 64, 0, 0], 10, 'shared'],
  [[127, 0, 0, 0], 8, 'loopback'],
  [[169, 254, 0, 0], 16, 'link_local'],
  [[172, 16, 0, 0], 12, 'private'],
  [[192, 0, 0, 0], 24, 'reserved'],
  [[192, 0, 2, 0], 24, 'documentation'],
  [[192, 88, 99, 0], 24, 'reserved'],
  [[192, 168, 0, 0], 16, 'private'],
  [[198, 18, 0, 0], 15, 'reserved'],
  [[198, 51, 100, 0], 24, 'documentation'],
  [[203, 0, 113, 0], 24, 'documentation'],
  [[224, 0, 0, 0], 4, 'multicast'],
  [[240, 0, 0, 0], 4, 'reserved'],
];

function classifyV4(bytes: Bytes): AddressClass {
  for (const [prefix, bits, cls] of V4_RANGES) if (inPrefix(bytes, prefix, bits)) return cls;
  return 'public';
}

const hex = (...words: number[]): number[] => words.flatMap((w) => [w >> 8, w & 0xff]);

function classifyV6(bytes: Bytes): AddressClass {
  if (bytes.every((b) => b === 0)) return 'unspecified';
  if (bytes.slice(0, 15).every((b) => b === 0) && bytes[15] === 1) return 'loopback';
  if (inPrefix(bytes, hex(0, 0, 0, 0, 0, 0xffff), 96)) return 'ipv4_mapped';
  // NAT64 (well-known and local-use prefixes) and 6to4 reach the IPv4 address they embed.
  if (inPrefix(bytes, hex(0x64, 0xff9b, 0, 0, 0, 0), 96) || inPrefix(bytes, hex(0x64, 0xff9b, 1), 48)) {
    return classifyV4(bytes.slice(12));
  }
  // IPv4-compatible (deprecated) and the rest of ::/8.
  if (inPrefix(bytes, [0], 8)) return 'reserved';
  if (inPrefix(bytes, hex(0x2002), 16)) return classifyV4(bytes.slice(2, 6));
  if (inPrefix(bytes, hex(0x100, 0, 0, 0), 64)) return 'reserved';
  if (inPrefix(bytes, hex(0x2001, 0xdb8), 32)) return 'documentation';
  // Teredo tunnels to an (obfuscated) IPv4 address.
  if (inPrefix(bytes, hex(0x2001, 0), 32)) return 'reserved';
  if (inPrefix(bytes, [0xfc], 7)) return 'unique_local';
  if (inPrefix(bytes, [0xfe, 0x80], 10)) return 'link_local';
  if (inPrefix(bytes, [0xfe, 0xc0], 10)) return 'reserved';
  if (inPrefix(bytes, [0xff], 8)) return 'multicast';
  return 'public';
}

function v4Bytes(address: string): number[] {
  return address.split('.').map(Number);
}

/** 16 bytes of an IPv6 address (already known valid), embedded IPv4 tail included. */
function v6Bytes(address: string): number[] {
  let text = address.split('%')[0]!;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tail.push(...v4Bytes(text.slice(lastColon + 1)));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, null];
  const words = (s: string | undefined) => (s ? s.split(':').filter((w) => w !== '').map((w) => parseInt(w, 16)) : []);
  const front = words(head);
  const back = rest === null ? [] : words(rest);
  const all = [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
  const bytes = hex(...all);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** The class of an IP address in text form; null when it is not one. */
export function classifyAddress(address: string): AddressClass | null {
  if (isIPv4(address)) return classifyV4(v4Bytes(address));
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  if (isIPv6(bare)) return classifyV6(v6Bytes(bare));
  return null;
}

export function isPublicAddress(address: string): boolean {
  return classifyAddress(address) === 'public';
}

/** One inet_aton part: decimal, 0x hex or 0-leading octal. */
function parsePart(part: string): number | null {
  if (/^0x[0-9a-f]*$/i.test(part)) return part.length === 2 ? 0 : parseInt(part.slice(2), 16);
  if (/^0[0-7]*$/.test(part)) return parseInt(part, 8);
  if (/^[1-9][0-9]*$/.test(part)) return parseInt(part, 10);
  return null;
}

/**
 * The address a host names when it is numeric, in canonical form (dotted IPv4, or IPv6 without
 * brackets); null for a name. IPv4 follows inet_aton: 1 to 4 parts, the last one filling the
 * remaining bytes (127.1 = 127.0.0.1, 2130706433 = 127.0.0.1).
 */
export function parseHostAddress(host: string): string | null {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIPv6(bare)) return bare.toLowerCase();
  const parts = bare.replace(/\.$/, '').split('.');
  if (parts.length > 4) return null;
  const values = parts.map(parsePart);
  if (values.some((v) => v === null)) return null;
  const nums = values as number[];
  const last = nums[nums.length - 1]!;
  const leading = nums.slice(0, -1);
  if (leading.some((v) => v > 255) || last >= 256 ** (5 - nums.length)) return null;
  let value = last;
  leading.forEach((v, i) => (value += v * 256 ** (3 - i)));
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff].join('.');
}

/** Names that only mean something on a local network (or this host). */
const LOCAL_NAME_RE = /(^|\.)(localhost|local|localdomain|internal|intranet|lan|home\.arpa)\.?$/i;

/**
 * Why a webhook URL may not be called, or null. `allowPrivate` (an operator flag for on-premises
 * receivers) lifts every address rule. Names are judged here only by their suffix; their DNS
 * answers are checked when connecting.
 */
export function targetProblem(url: string, allowPrivate: boolean): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'not a URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return 'must be an http or https URL';
  if (allowPrivate) return null;
  const host = parsed.hostname;
  const address = parseHostAddress(host);
  if (address !== null) {
    const cls = classifyAddress(address);
    if (cls === 'public') return null;
    const kind = (cls ?? 'reserved').replace('_', '-');
    return `${address} is ${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind} address`;
  }
  if (LOCAL_NAME_RE.test(host) || !host.replace(/\.$/, '').includes('.')) return `${host} is a local name`;
  return null;
}
