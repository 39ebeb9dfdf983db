/**
 * Bytes received but not yet handed on, as the chunks they arrived in. Reads peek across chunk
 * boundaries and takes slice the chunks (no copy) unless a take spans two of them.
 */
export class ByteQueue {
  readonly #chunks: Buffer[] = [];
  /** Offset into #chunks[0] of the first byte not yet taken. */
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The byte at `offset` from the front; the caller checks `offset < length`. */
  peek(offset: number): number {
    let at = offset + this.#head;
    for (const c of this.#chunks) {
      if (at < c.length) return c[at]!;
      at -= c.length;
    }
    throw new RangeError('peek beyond the queued bytes');
  }

  /** The next `n` bytes as one buffer (a slice when they lie in one chunk, else a copy). */
  take(n: number): Buffer {
    const first = this.#chunks[0];
    if (first && first.length - this.#head >= n) return this.#advance(first, n);
    const parts = this.takeChunks(n);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** The next `n` bytes as slices of the chunks they arrived in. */
  takeChunks(n: number): Buffer[] {
    if (n > this.#length) throw new RangeError('take beyond the queued bytes');
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const first = this.#chunks[0]!;
      const k = Math.min(left, first.length - this.#head);
      out.push(this.#advance(first, k));
      left -= k;
    }
    return out;
  }

  /** Everything queued, as slices; the queue is empty afterwards. */
  drain(): Buffer[] {
    return this.takeChunks(this.#length);
  }

  #advance(first: Buffer, n: number): Buffer {
    const slice = first.subarray(this.#head, this.#head + n);
    this.#head += n;
    this.#length -= n;
    if (this.#head === first.length) {
      this.#chunks.shift();
      this.#head = 0;
    }
    return slice;
  }
}
