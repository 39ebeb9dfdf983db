/**
 * Per-connection limits that aedes does not enforce itself: a publish-rate token bucket, and the
 * largest frame a client may announce (enforced on the fixed header by frame-inspector.ts,
 * before the MQTT parser buffers an oversized packet).
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
