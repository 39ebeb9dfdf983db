/**
 * Whether the credential behind long-lived work (a carrier feed being applied, a live feed) still
 * holds, asked at every step of that work. Two sources, because neither is enough alone:
 * - the bus: a revocation announced on it (`revoke()`) is seen at the very next step. In the
 *   process that revoked, the announcement is delivered before the revocation is answered, so no
 *   step starts after that answer; but pub/sub between processes is at most once.
 * - the store, re-read at most every `intervalMs` (by the injected clock) or every `everySteps`
 *   steps, whichever comes first: what another process revoked, even with its announcement lost,
 *   stops the work within that bound. Reading on every step would double the store round trips
 *   of a 5,000-record feed.
 */
export interface BoundedRecheckOptions {
  /** Reads the credential from the store: false when it is revoked, expired or gone. */
  read: () => Promise<boolean>;
  now: () => number;
  /** Longest time (ms) between two store reads while steps are taken. */
  intervalMs: number;
  /** Most steps between two store reads. */
  everySteps: number;
  /** When the credential was last read (authentication just did): the first re-read is due from there. */
  readAt: number;
}

export const DEFAULT_RECHECK = { intervalMs: 1_000, everySteps: 250 } as const;

export class BoundedRecheck {
  readonly #o: BoundedRecheckOptions;
  #lastReadAt: number;
  #steps = 0;
  #revoked = false;

  constructor(options: BoundedRecheckOptions) {
    this.#o = options;
    this.#lastReadAt = options.readAt;
  }

  /** The credential was revoked (the bus said so, or a read found it): every later step is refused. */
  revoke(): void {
    this.#revoked = true;
  }

  /** Synchronous: what is known now, without reading. Ask it right before the step's effect. */
  get revoked(): boolean {
    return this.#revoked;
  }

  /** One step: re-reads the store when a read is due. A failed read throws (the caller refuses the step). */
  async stillValid(): Promise<boolean> {
    if (this.#revoked) return false;
    this.#steps++;
    const now = this.#o.now();
    if (this.#steps >= this.#o.everySteps || now - this.#lastReadAt >= this.#o.intervalMs) {
      this.#steps = 0;
      this.#lastReadAt = now;
      if (!(await this.#o.read())) this.#revoked = true;
    }
    return !this.#revoked;
  }
}
