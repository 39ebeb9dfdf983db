/**
 * Per-client limits that aedes does not enforce itself: a publish-rate token bucket per publisher, and the
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
 * A broker process's publish buckets: one per publisher (a tower, a console user, a carrier), not
 * per connection. The PUBLISH over the rate closes its connection, so with a bucket per
 * connection a client that reconnected at once had a fresh burst each time — the limit was
 * `burst` per reconnect. A publisher's connections share its bucket, and the bucket outlives the
 * last of them until it would have refilled (burst / rate seconds), then is dropped: a fresh
 * bucket is then no fuller than the kept one would be. Principals without a key (anonymous
 * development clients, which may publish nothing) get a bucket of their own.
 */
export class PublishBuckets {
  readonly #held = new Map<string, { bucket: TokenBucket; connections: number; idle: NodeJS.Timeout | null }>();
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;

  constructor(ratePerSecond: number, burst: number, now: () => number) {
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#now = now;
  }

  /** `key`'s bucket (null: one of its own), and what to call once, when the connection ends. */
  acquire(key: string | null): { bucket: TokenBucket; release: () => void } {
    if (key === null) return { bucket: new TokenBucket(this.#rate, this.#burst, this.#now), release: () => undefined };
    let held = this.#held.get(key);
    if (!held) this.#held.set(key, (held = { bucket: new TokenBucket(this.#rate, this.#burst, this.#now), connections: 0, idle: null }));
    if (held.idle) clearTimeout(held.idle);
    held.idle = null;
    held.connections++;
    const entry = held;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (--entry.connections > 0) return;
      entry.idle = setTimeout(() => {
        if (entry.connections === 0 && this.#held.get(key) === entry) this.#held.delete(key);
      }, Math.ceil((1000 * this.#burst) / this.#rate));
      entry.idle.unref();
    };
    return { bucket: entry.bucket, release };
  }

  /** Publishers with a bucket (connected, or disconnected and not yet refilled). */
  get size(): number {
    return this.#held.size;
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
