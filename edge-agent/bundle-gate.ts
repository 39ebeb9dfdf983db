/**
 * When the agent may route an event whose device no bundle maps. The retained policy bundles
 * follow the SUBACK, and MQTT 3.1.1 marks no end to them: they count as arrived once none has
 * come for `settleMs` since the first connection and no document whose head has come still
 * misses a part (`assembling`), at most `waitMs` after the first connection. A quiet period alone
 * was not enough: a large directory slice (3 MB in 32 parts) can pause longer than `settleMs`
 * between parts on a busy link, and an event of a device in its missing parts was then taken for
 * an unknown device, so its tenant never learned the tower served it (bench k). Until then such
 * events are held (held-events.ts); a bundle that maps a held event's device releases it at once.
 *
 * A document can still miss parts when the gate opens at `waitMs` (a 3 MB directory to 100 towers
 * at once on a slow link took longer): then an event of a device the directory does not map yet
 * is still held — the device may be in a missing part — until a part maps it, the document
 * completes, or its own `waitMs` passes; only then is it taken for an unknown device. A document
 * that stays incomplete (a part refused as invalid, waiting for the next version) holds events
 * for at most `waitMs` from when the open gate first found it incomplete, not for ever.
 */
import { HeldEvents, type HeldEvent } from './held-events.js';

// Times here are monotonic (performance.now): a wall clock stepped forward opened the gate before
// the bundles had arrived, and one stepped back held it shut for as long as the step.

export interface BundleGateOptions {
  settleMs: number;
  waitMs: number;
  maxHeld: number;
  /** A held event may be routed now (its device is mapped, or the bundles have all arrived). */
  onRelease: (event: HeldEvent) => void;
  /** Held events whose waitMs passed (the gate may be open by then: see `ready`). */
  onExpired: (events: HeldEvent[]) => void;
  onOverflow: (event: HeldEvent) => void;
  /** The bundles have arrived. */
  onReady: () => void;
  /** A document whose head has come still misses parts: the gate stays shut (up to waitMs). */
  assembling?: () => boolean;
}

export class BundleGate {
  readonly #o: BundleGateOptions;
  readonly #held: HeldEvents;
  #ready = false;
  #closed = false;
  #firstUpAt: number | null = null;
  /** When the open gate first found a document missing parts (reset once none does). */
  #assemblingSince: number | null = null;
  #timer: NodeJS.Timeout | null = null;
  readonly #waiters = new Set<() => void>();

  constructor(opts: BundleGateOptions) {
    this.#o = opts;
    this.#held = new HeldEvents({ max: opts.maxHeld, waitMs: opts.waitMs, onExpired: opts.onExpired, onOverflow: opts.onOverflow });
  }

  get ready(): boolean {
    return this.#ready;
  }

  get held(): number {
    return this.#held.size;
  }

  /** An event of a device no bundle maps must wait: the bundles are on their way, or a document misses parts. */
  get holding(): boolean {
    return !this.#ready || this.#stillAssembling();
  }

  hold(event: HeldEvent): void {
    this.#held.hold(event);
  }

  /** Subscribed (first connection or a reconnect): the retained bundles are on their way. */
  connected(): void {
    this.#firstUpAt ??= performance.now();
    this.#arm();
  }

  /** A bundle arrived: release what it maps, and restart the quiet period. */
  bundleArrived(mapped: (event: HeldEvent) => boolean): void {
    if (this.#held.size > 0) {
      const all = this.#ready && !this.#stillAssembling();
      for (const h of this.#held.take(all ? () => true : mapped)) this.#o.onRelease(h);
    }
    this.#arm();
  }

  /** Resolves when the bundles have arrived, or the gate is closed. */
  whenReady(): Promise<void> {
    if (this.#ready || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.add(resolve));
  }

  /** Lets whoever awaits whenReady() go (stop() began). */
  release(): void {
    for (const w of this.#waiters) w();
    this.#waiters.clear();
  }

  /** Stops the timers; returns the events still held, for the caller to answer. */
  close(): HeldEvent[] {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.release();
    return this.#held.drain();
  }

  #arm(): void {
    if (this.#ready || this.#closed || this.#firstUpAt === null) return;
    if (this.#timer) clearTimeout(this.#timer);
    const capMs = this.#firstUpAt + this.#o.waitMs - performance.now();
    this.#timer = setTimeout(() => this.#open(), Math.max(0, Math.min(this.#o.settleMs, capMs)));
  }

  #assembling(): boolean {
    return this.#o.assembling?.() ?? false;
  }

  /** A document misses parts, and has not for longer than waitMs since the open gate first saw it. */
  #stillAssembling(): boolean {
    if (!this.#assembling()) {
      this.#assemblingSince = null;
      return false;
    }
    const now = performance.now();
    this.#assemblingSince ??= now;
    return now - this.#assemblingSince < this.#o.waitMs;
  }

  #open(): void {
    this.#timer = null;
    const assembling = this.#assembling();
    if (assembling && this.#firstUpAt !== null && performance.now() < this.#firstUpAt + this.#o.waitMs) {
      this.#arm();
      return;
    }
    this.#ready = true;
    // Still assembling at waitMs: the held events wait on (see above).
    if (!assembling) for (const h of this.#held.take(() => true)) this.#o.onRelease(h);
    this.#o.onReady();
    this.release();
  }
}
