/**
 * When the agent may hand its next uplink batch to the connection. The broker drops a client
 * that publishes faster than its per-client limit (default 1,000 PUBLISH/s, burst 2,000), and
 * with the connection go the PUBACKs of everything in flight: after an outage, replaying the
 * offline buffer at full speed tripped that limit, every cut batch was resent and decided again
 * (issue #7). Two bounds keep the agent well inside it:
 * - a token bucket: at most `ratePerS` publishes per second, `burst` at once;
 * - at most `maxInflight` publishes awaiting their PUBACK. mqtt.js resends those one by one on
 *   reconnect before anything new (MqttClient#_onConnect), so this also bounds how long a
 *   reconnect takes before the agent is online again.
 * The clock is injected (fake timers drive it in tests); the caller owns the timer.
 */

export interface PacerOptions {
  ratePerS: number;
  burst: number;
  maxInflight: number;
  now: () => number;
}

/** Agent defaults: half the broker's default rate, a tenth of its burst. */
export const DEFAULT_PUBLISH_RATE_PER_S = 500;
export const DEFAULT_PUBLISH_BURST = 200;
export const DEFAULT_MAX_INFLIGHT = 100;

export type PaceVerdict =
  /** Publish now: a token was taken. */
  | { go: true }
  /** Wait `ms` for the next token (then ask again). */
  | { go: false; retryInMs: number }
  /** Too many awaiting PUBACK: ask again when one completes. */
  | { go: false; retryInMs: null };

export class PublishPacer {
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxInflight: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(opts: PacerOptions) {
    if (!(opts.ratePerS > 0) || !Number.isFinite(opts.ratePerS)) throw new Error(`publishRatePerS must be a positive number, got ${opts.ratePerS}`);
    if (!Number.isInteger(opts.burst) || opts.burst < 1) throw new Error(`publishBurst must be a positive integer, got ${opts.burst}`);
    if (!Number.isInteger(opts.maxInflight) || opts.maxInflight < 1) throw new Error(`maxInflight must be a positive integer, got ${opts.maxInflight}`);
    this.#rate = opts.ratePerS;
    this.#burst = opts.burst;
    this.#maxInflight = opts.maxInflight;
    this.#now = opts.now;
    this.#tokens = opts.burst;
    this.#last = opts.now();
  }

  /** May one more publish go, with `inflight` publishes awaiting their PUBACK? */
  acquire(inflight: number): PaceVerdict {
    if (inflight >= this.#maxInflight) return { go: false, retryInMs: null };
    this.#refill();
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return { go: true };
    }
    // At least 1 ms, so a caller's timer never spins at the same instant.
    return { go: false, retryInMs: Math.max(1, Math.ceil(((1 - this.#tokens) * 1000) / this.#rate)) };
  }

  #refill(): void {
    const now = this.#now();
    // A clock that steps backwards must neither mint nor drain tokens.
    const elapsed = Math.max(0, now - this.#last);
    this.#last = Math.max(this.#last, now);
    this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.#rate) / 1000);
  }
}
