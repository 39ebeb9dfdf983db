/**
 * Deterministic command ids. A remediation triggered by a violation gets an id derived from the
 * violating event and the kind of remediation, so processing the same event again (a QoS 1
 * redelivery, a queue job re-run after a worker died, a second worker) issues the same command,
 * which the store creates once. The id keeps the ULID shape the Command payload requires: the
 * event's 48-bit time prefix, then 80 bits of a SHA-256 over (event, kind).
 */
import { createHash } from 'node:crypto';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export function derivedCommandId(eventUlid: string, kind: string): string {
  const digest = createHash('sha256').update(`${eventUlid}\u0000${kind}`).digest();
  let out = eventUlid.slice(0, 10).toUpperCase();
  // 16 base-32 characters = 80 bits, read 5 bits at a time from the digest.
  let bits = 0;
  let value = 0;
  let i = 0;
  while (out.length < 26) {
    if (bits < 5) {
      value = ((value << 8) | digest[i++]!) & 0xffff;
      bits += 8;
    }
    bits -= 5;
    out += CROCKFORD[(value >> bits) & 31];
  }
  return out;
}
