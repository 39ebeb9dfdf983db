/**
 * Observations the agent cannot route yet: their device is in no policy bundle and the retained
 * bundles have not all arrived since the agent subscribed (they follow the SUBACK, so an event
 * read right after connecting would otherwise be taken for an unknown device, reported for
 * discovery and left undecided). Held in arrival order, bounded in count (the oldest give way)
 * and in time (each waits at most `waitMs`, then is handed to `onExpired`).
 */
import type { ObservedUsage } from './agent-types.js';

export interface HeldEvent {
  id: string;
  ts: number;
  usage: ObservedUsage;
  /** Wall clock (Date.now) when it was held, for the record: deadlines run on a monotonic clock. */
  heldAt: number;
}

/**
 * Deadlines are measured on the monotonic clock: with the wall clock, a clock stepped back (NTP,
 * GPS time at a tower) by an hour held events an hour longer, and one stepped forward expired
 * them at once.
 */
const monotonic = (): number => performance.now();

export interface HeldEventsOptions {
  max: number;
  waitMs: number;
  onExpired: (events: HeldEvent[]) => void;
  onOverflow: (event: HeldEvent) => void;
}

export class HeldEvents {
  readonly #o: HeldEventsOptions;
  /** Oldest first, each with when it was held (monotonic ms). */
  #events: Array<{ event: HeldEvent; at: number }> = [];
  #timer: NodeJS.Timeout | null = null;

  constructor(opts: HeldEventsOptions) {
    this.#o = opts;
  }

  get size(): number {
    return this.#events.length;
  }

  hold(event: HeldEvent): void {
    this.#events.push({ event, at: monotonic() });
    if (this.#events.length > this.#o.max) this.#o.onOverflow(this.#events.shift()!.event);
    this.#arm();
  }

  /** Removes and returns, in arrival order, the held events `routable` accepts. */
  take(routable: (e: HeldEvent) => boolean): HeldEvent[] {
    const taken: HeldEvent[] = [];
    const kept: Array<{ event: HeldEvent; at: number }> = [];
    for (const h of this.#events) {
      if (routable(h.event)) taken.push(h.event);
      else kept.push(h);
    }
    this.#events = kept;
    if (kept.length === 0) this.#disarm();
    return taken;
  }

  /** Removes and returns everything (stop). */
  drain(): HeldEvent[] {
    this.#disarm();
    return this.#events.splice(0).map((h) => h.event);
  }

  #arm(): void {
    if (this.#timer || this.#events.length === 0) return;
    const due = this.#events[0]!.at + this.#o.waitMs;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const now = monotonic();
      let n = 0;
      while (n < this.#events.length && this.#events[n]!.at + this.#o.waitMs <= now) n++;
      const expired = this.#events.splice(0, n).map((h) => h.event);
      this.#arm();
      if (expired.length > 0) this.#o.onExpired(expired);
    }, Math.max(0, due - monotonic()));
  }

  #disarm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
