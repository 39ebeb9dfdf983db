/**
 * Per-connection limits that aedes does not enforce itself: a publish-rate token bucket and a
 * frame-size guard that stops a client before the MQTT parser buffers an oversized packet.
 */

/**
 * Classic token bucket: holds at most `burst` tokens, refills at `ratePerSecond`. One PUBLISH
 * takes one token. The clock is injected so tests drive it without timers.
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(ratePerSecond: number, burst: number, now: () => number) {
    if (!(ratePerSecond > 0) || !(burst >= 1)) throw new Error('token bucket needs rate > 0 and burst >= 1');
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#last = now();
  }

  /** Takes one token; false when the bucket is empty (the caller is over its rate). */
  take(): boolean {
    const now = this.#now();
    // A clock that steps backwards must not mint tokens, nor drain them.
    const elapsed = Math.max(0, now - this.#last);
    this.#last = Math.max(this.#last, now);
    this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.#rate) / 1000);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/**
 * Bytes a packet may carry besides a PUBLISH payload. A CONNECT holds up to five length-prefixed
 * strings/binaries (client id, will topic, will message, username, password), each at most
 * 65,535 bytes plus a 2-byte length [MQTT-1.5.3], and a PUBLISH holds a topic of the same bound
 * plus a packet id. Anything larger than payload + this headroom cannot be a packet we accept.
 */
export const FRAME_HEADROOM_BYTES = 5 * (2 + 65_535) + 16;

export function maxFrameBytes(maxPayloadBytes: number): number {
  return maxPayloadBytes + FRAME_HEADROOM_BYTES;
}

export type FrameVerdict = 'ok' | 'too_large' | 'malformed';

/**
 * Follows MQTT fixed headers across a byte stream (MQTT 3.1.1 §2.2: one type byte, then the
 * Remaining Length as a 1–4 byte varint [MQTT-2.2.3]) and reports a frame that declares more
 * than `maxRemainingLength` bytes as soon as its header is read: mqtt-packet would otherwise
 * buffer up to 256 MB before aedes ever sees the PUBLISH. It never copies data, it only counts.
 */
export class FrameSizeGuard {
  readonly #max: number;
  #state: 'type' | 'length' | 'body' | 'failed' = 'type';
  #length = 0;
  #multiplier = 1;
  #lengthBytes = 0;
  #remaining = 0;

  constructor(maxRemainingLength: number) {
    this.#max = maxRemainingLength;
  }

  feed(chunk: Uint8Array): FrameVerdict {
    if (this.#state === 'failed') return 'ok';
    let i = 0;
    while (i < chunk.length) {
      switch (this.#state) {
        case 'type':
          i++;
          this.#state = 'length';
          this.#length = 0;
          this.#multiplier = 1;
          this.#lengthBytes = 0;
          break;
        case 'length': {
          const b = chunk[i++]!;
          this.#length += (b & 0x7f) * this.#multiplier;
          this.#multiplier *= 128;
          this.#lengthBytes++;
          if (this.#length > this.#max) return this.#fail('too_large');
          if (b & 0x80) {
            if (this.#lengthBytes === 4) return this.#fail('malformed');
            break;
          }
          this.#remaining = this.#length;
          this.#state = this.#remaining === 0 ? 'type' : 'body';
          break;
        }
        case 'body': {
          const n = Math.min(this.#remaining, chunk.length - i);
          i += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#state = 'type';
          break;
        }
      }
    }
    return 'ok';
  }

  #fail(verdict: Exclude<FrameVerdict, 'ok'>): FrameVerdict {
    this.#state = 'failed';
    return verdict;
  }
}
