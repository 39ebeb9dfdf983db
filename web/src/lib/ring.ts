/**
 * A bounded buffer of records keyed by id: the newest `capacity` are kept, older ones are evicted
 * as new ones arrive, and an id already held is not added twice (a resumed feed backfilled over
 * REST overlaps what the socket delivered). Memory stays fixed whatever the feed's rate.
 */
export class Ring<T extends { id: string }> {
  readonly #items: Array<T | undefined>;
  readonly #ids = new Set<string>();
  #next = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    this.#items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.#size;
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  /** Adds the record unless its id is held; returns whether it was added. */
  push(item: T): boolean {
    if (this.#ids.has(item.id)) return false;
    const evicted = this.#items[this.#next];
    if (evicted !== undefined) this.#ids.delete(evicted.id);
    this.#items[this.#next] = item;
    this.#ids.add(item.id);
    this.#next = (this.#next + 1) % this.capacity;
    this.#size = Math.min(this.capacity, this.#size + 1);
    return true;
  }

  /** Held records, most recently added first. */
  values(): T[] {
    const out: T[] = [];
    for (let i = 1; i <= this.#size; i++) {
      const item = this.#items[(this.#next - i + this.capacity) % this.capacity];
      if (item !== undefined) out.push(item);
    }
    return out;
  }

  clear(): void {
    this.#items.fill(undefined);
    this.#ids.clear();
    this.#next = 0;
    this.#size = 0;
  }
}

/** Events per second over a sliding window of whole seconds, counted as they arrive. */
export class RateMeter {
  readonly #counts: Float64Array;
  readonly #stamps: Float64Array;

  constructor(readonly windowS = 5) {
    this.#counts = new Float64Array(windowS + 1);
    this.#stamps = new Float64Array(windowS + 1).fill(-1);
  }

  add(n: number, now = Date.now()): void {
    const second = Math.floor(now / 1000);
    const i = second % this.#counts.length;
    if (this.#stamps[i] !== second) {
      this.#stamps[i] = second;
      this.#counts[i] = 0;
    }
    this.#counts[i]! += n;
  }

  /** Mean over the last `windowS` complete seconds. */
  rate(now = Date.now()): number {
    const second = Math.floor(now / 1000);
    let sum = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      const s = this.#stamps[i]!;
      if (s < second && s >= second - this.windowS) sum += this.#counts[i]!;
    }
    return sum / this.windowS;
  }
}
