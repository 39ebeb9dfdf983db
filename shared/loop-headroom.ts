/**
 * Whether this process's event loop has time to spare: its utilisation (the share of time it was
 * running callbacks rather than waiting for I/O, Node's `eventLoopUtilization`) over the last
 * window, with hysteresis so that a load near one threshold does not flip the answer every window.
 *
 * Used to spend CPU on latency only while there is CPU to spend: the usage pipeline answers a
 * tower before its batch is committed (one more write per batch) while the loop has headroom,
 * and goes back to one write after the commit when it gets busy (workers/usage-processor.ts).
 * Measured in bench (b): answering first took p50 at 2,000 events/s from 0.74–0.83 to 0.47–0.49
 * ms, but always doing so, at 20,000 events/s, where the control plane's loop was ~90 % busy, the
 * extra writes took it to saturation (p50 2.18 → 6.66 ms).
 *
 * Read lazily: the utilisation is sampled when asked, at most once per window, so an idle process
 * pays nothing and a busy one one sample per window.
 */
import { performance } from 'node:perf_hooks';

export interface Headroom {
  /** True while the loop has time to spare. */
  spare(): boolean;
}

/** Cumulative milliseconds the loop spent waiting (`idle`) and running (`active`). */
export interface LoopTime {
  idle: number;
  active: number;
}

export interface LoopHeadroomOptions {
  /** Utilisation at or above which the loop is busy. Default 0.75. */
  busyAt?: number;
  /** Utilisation below which a busy loop has headroom again. Default 0.6. */
  spareBelow?: number;
  /** Length of the window the utilisation is taken over, ms. Default 250. */
  windowMs?: number;
  /** Injected for tests: the loop's cumulative times, and a monotonic clock in ms. */
  loopTime?: () => LoopTime;
  now?: () => number;
}

export class LoopHeadroom implements Headroom {
  readonly #busyAt: number;
  readonly #spareBelow: number;
  readonly #windowMs: number;
  readonly #loopTime: () => LoopTime;
  readonly #now: () => number;
  #last: LoopTime;
  #windowStart: number;
  #spare = true;

  constructor(opts: LoopHeadroomOptions = {}) {
    this.#busyAt = opts.busyAt ?? 0.75;
    this.#spareBelow = opts.spareBelow ?? 0.6;
    this.#windowMs = opts.windowMs ?? 250;
    if (!(this.#spareBelow > 0 && this.#spareBelow <= this.#busyAt && this.#busyAt <= 1)) {
      throw new Error(`loop headroom needs 0 < spareBelow <= busyAt <= 1, got ${this.#spareBelow} and ${this.#busyAt}`);
    }
    this.#loopTime = opts.loopTime ?? (() => performance.eventLoopUtilization());
    this.#now = opts.now ?? (() => performance.now());
    this.#last = this.#loopTime();
    this.#windowStart = this.#now();
  }

  spare(): boolean {
    const now = this.#now();
    if (now - this.#windowStart < this.#windowMs) return this.#spare;
    const cur = this.#loopTime();
    const active = cur.active - this.#last.active;
    const total = active + (cur.idle - this.#last.idle);
    this.#last = cur;
    this.#windowStart = now;
    if (total > 0) {
      const utilization = active / total;
      if (this.#spare ? utilization >= this.#busyAt : utilization < this.#spareBelow) this.#spare = !this.#spare;
    }
    return this.#spare;
  }
}
