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
  /** Wall clock (Date.now) when it was held: deadlines are timers, not timestamps. */
  heldAt: number;
}

export interface HeldEventsOptions {
  max: number;
  waitMs: number;
  onExpired: (events: HeldEvent[]) => void;
  onOverflow: (event: HeldEvent) => void;
}

export class HeldEvents {
  readonly #o: HeldEventsOptions;
  #events: HeldEvent[] = [];
  #timer: NodeJS.Timeout | null = null;

  constructor(opts: HeldEventsOptions) {
    this.#o = opts;
  }

  get size(): number {
    return this.#events.length;
  }

  hold(event: HeldEvent): void {
    this.#events.push(event);
    if (this.#events.length > this.#o.max) this.#o.onOverflow(this.#events.shift()!);
    this.#arm();
  }

  /** Removes and returns, in arrival order, the held events `routable` accepts. */
  take(routable: (e: HeldEvent) => boolean): HeldEvent[] {
    const taken: HeldEvent[] = [];
    const kept: HeldEvent[] = [];
    for (const e of this.#events) (routable(e) ? taken : kept).push(e);
    this.#events = kept;
    if (kept.length === 0) this.#disarm();
    return taken;
  }

  /** Removes and returns everything (stop). */
  drain(): HeldEvent[] {
    this.#disarm();
    return this.#events.splice(0);
  }

  #arm(): void {
    if (this.#timer || this.#events.length === 0) return;
    const due = this.#events[0]!.heldAt + this.#o.waitMs;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const now = Date.now();
      let n = 0;
      while (n < this.#events.length && this.#events[n]!.heldAt + this.#o.waitMs <= now) n++;
      const expired = this.#events.splice(0, n);
      this.#arm();
      if (expired.length > 0) this.#o.onExpired(expired);
    }, Math.max(0, due - Date.now()));
  }

  #disarm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
