/**
 * The agent's answers on stdout, bounded when nothing reads them. `process.stdout` on a pipe
 * accepts every write and queues what the reader has not taken: with a reader that stopped (a
 * stalled tower stack, a pipe nobody drains) every answer stayed in memory, 300 bytes an event,
 * for as long as input kept coming. Two bounds now:
 *
 * - Input waits for output. Once `pauseBytes` wait in the stream (well above one pipe buffer),
 *   the input loop reads no further line (`paced`) until the stream drains: stdin then stops
 *   being read, and the writer upstream blocks, as a pipe should.
 * - Answers still due while input waits are those of events already read (cloud decisions,
 *   local decisions at the deadline, rejections, `no_decision` at the end), at most the events
 *   in flight (--buffer-max-events and the events held for bundles). They are written, up to
 *   `maxBytes` queued in all; beyond that an answer is dropped and counted (`dropped`, and
 *   `onDrop` logs it), never held. Dropping breaks "one answer per line" for those lines, but
 *   only for a reader that has taken nothing while megabytes of answers were due; the events
 *   themselves are still sent and decided in the cloud (and journalled with --state-dir), so
 *   only the notice on stdout is lost. Holding every answer would tie the agent's memory to
 *   however many events are in flight, with no cap of its own; blocking on the write would
 *   stall the uplink and remediation with it.
 */
import type { Writable } from 'node:stream';

/** Input pauses once this much waits in stdout: 4 × a Linux pipe's buffer, ~800 answers. */
export const OUTPUT_PAUSE_BYTES = 256 * 1024;
/**
 * The most that may wait in stdout: the answers of 50,000 events in flight (the default
 * --buffer-max-events) at ~300 bytes each fit, with room.
 */
export const OUTPUT_MAX_BYTES = 32 * 1024 * 1024;

export interface AnswerOutputOptions {
  pauseBytes?: number;
  maxBytes?: number;
  /** An answer was dropped (`dropped` is the total so far): the caller logs it. */
  onDrop?: (dropped: number) => void;
  /** Input paused (true) or resumed (false). */
  onPause?: (paused: boolean, queuedBytes: number) => void;
}

export class AnswerOutput {
  readonly #out: Writable;
  readonly #pauseBytes: number;
  readonly #maxBytes: number;
  readonly #onDrop: (dropped: number) => void;
  readonly #onPause: (paused: boolean, queuedBytes: number) => void;
  #dropped = 0;
  #closed = false;
  #waiting: Promise<void> | null = null;

  constructor(out: Writable, opts: AnswerOutputOptions = {}) {
    this.#out = out;
    // 'drain' comes only once the stream's own buffer empties from above its high-water mark.
    this.#pauseBytes = Math.max(opts.pauseBytes ?? OUTPUT_PAUSE_BYTES, out.writableHighWaterMark);
    this.#maxBytes = Math.max(opts.maxBytes ?? OUTPUT_MAX_BYTES, this.#pauseBytes);
    this.#onDrop = opts.onDrop ?? (() => {});
    this.#onPause = opts.onPause ?? (() => {});
    const closed = (): void => void (this.#closed = true);
    out.once('close', closed);
    out.once('error', closed);
  }

  /** Bytes written but not yet taken by the reader. */
  get queuedBytes(): number {
    return this.#out.writableLength;
  }

  /** Answers dropped because `maxBytes` were already waiting. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Input should wait: `pauseBytes` or more wait in the stream. */
  get full(): boolean {
    return !this.#closed && this.#out.writableLength >= this.#pauseBytes;
  }

  /** Writes one line, or drops it (false) when `maxBytes` wait already or the stream is gone. */
  write(line: string): boolean {
    if (this.#closed || this.#out.destroyed) return false;
    if (this.#out.writableLength + Buffer.byteLength(line) > this.#maxBytes) {
      this.#onDrop(++this.#dropped);
      return false;
    }
    this.#out.write(line);
    return true;
  }

  /** Resolves once the stream is below `pauseBytes` again (or gone). */
  whenWritable(): Promise<void> {
    if (!this.full) return Promise.resolve();
    return (this.#waiting ??= new Promise<void>((resolve) => {
      this.#onPause(true, this.#out.writableLength);
      const done = (): void => {
        if (this.full) return;
        this.#out.off('drain', done);
        this.#out.off('close', done);
        this.#out.off('error', done);
        this.#waiting = null;
        this.#onPause(false, this.#out.writableLength);
        resolve();
      };
      this.#out.on('drain', done);
      this.#out.on('close', done);
      this.#out.on('error', done);
    }));
  }

  /** `source`'s items, each taken only once the output has room: input waits for output. */
  async *paced<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
    for await (const item of source) {
      yield item;
      // Before the next item is pulled (and with it, maybe, more of stdin read).
      if (this.full) await this.whenWritable();
    }
  }
}
