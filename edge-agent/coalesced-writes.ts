/**
 * Whole-file rewrites of a state that changes in bursts (the enforcer's blocks, the unsent acks):
 * a change made while a write is in flight is written by the next one, together with every other
 * change made meanwhile. One write per change made a burst of N changes queue N full rewrites
 * (each with an fsync), and every caller waited for all those queued before its own.
 */
export class CoalescedWrites {
  readonly #write: () => Promise<void>;
  /** The write loop in progress, if any; `#dirty`: a change it has not written yet. */
  #writing: Promise<void> | null = null;
  #dirty = false;

  /** `write` writes the state as it is when called. */
  constructor(write: () => Promise<void>) {
    this.#write = write;
  }

  /** Resolves once a write that started after this call has completed (the callers see its error). */
  request(): Promise<void> {
    this.#dirty = true;
    this.#writing ??= this.#loop();
    return this.#writing;
  }

  /** Resolves when every write requested so far is done (its errors are the requesters'). */
  settled(): Promise<void> {
    return (this.#writing ?? Promise.resolve()).catch(() => undefined);
  }

  async #loop(): Promise<void> {
    try {
      while (this.#dirty) {
        this.#dirty = false;
        await this.#write();
      }
    } finally {
      // Synchronous with the last `#dirty` check: a change after it starts a new loop.
      this.#writing = null;
    }
  }
}
