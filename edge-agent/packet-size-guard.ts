/**
 * Reads the fixed header of every MQTT packet the broker sends and reports one that declares a
 * Remaining Length above a bound. On MQTT 3.1.1 mqtt.js accepts any length the spec allows
 * (up to 256 MB) and buffers the whole packet before parsing it, so a hostile or broken broker
 * could make the agent hold ~256 MB per connection. The length is known from a packet's first
 * bytes: the caller closes the connection there, before the body arrives.
 */
export class PacketSizeGuard {
  readonly #maxBytes: number;
  /** Body bytes of the current packet still to pass over. */
  #skip = 0;
  /** Fixed header bytes read of the next packet (the type byte, then the length's bytes). */
  #headerBytes = 0;
  #length = 0;
  #multiplier = 1;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /**
   * The next bytes from the broker. Null, or the first packet over the bound: its declared
   * Remaining Length (at least), and where it starts in `chunk` (0 when it began in an earlier one).
   */
  push(chunk: Uint8Array): { length: number; start: number } | null {
    let start = 0;
    let i = 0;
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        continue;
      }
      if (this.#headerBytes === 0) start = i;
      const byte = chunk[i++]!;
      if (this.#headerBytes++ === 0) continue; // packet type and flags
      this.#length += (byte & 0x7f) * this.#multiplier;
      this.#multiplier *= 128;
      // Later length bytes only add: a partial sum already over the bound is over it. A length
      // encoded in more than 4 bytes (malformed) grows past any bound here too.
      if (this.#length > this.#maxBytes) return { length: this.#length, start };
      if (byte & 0x80) continue;
      this.#skip = this.#length;
      this.#headerBytes = 0;
      this.#length = 0;
      this.#multiplier = 1;
    }
    return null;
  }
}
