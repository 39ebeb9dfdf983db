/**
 * A bounded map whose hits write nothing: entries live in a young and an old generation of at
 * most max/2 each. A hit in the young one is a plain Map lookup; a hit in the old one (`get`)
 * moves the entry to the young one; when the young one is full it becomes the old one, and what
 * the old one held, unused for a whole generation, is dropped whole. A least-recently-used Map
 * pays a delete and a re-insert on every hit, and dropping its oldest entry leaves holes that
 * each later scan from the front walks again. Used by the edge agent's device → tenant cache
 * (edge-agent/edge-policy.ts: resolve() 3.8 % of bench (b)'s load generator's CPU samples at
 * 10,000 events/s with LruMap, 1.6 % with this; perf, 2026-12-04) and by the in-process plan-grant
 * memory (shared/workflow/rate-budgets.ts: 40 µs a take with 200,000 grants behind an LRU), which
 * also starts a generation by age (`rotate`).
 */
export class GenerationalCache<K, V> {
  readonly #half: number;
  #young = new Map<K, V>();
  #old = new Map<K, V>();

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 2) throw new Error(`GenerationalCache size must be an integer of at least 2, got ${max}`);
    this.#half = Math.floor(max / 2);
  }

  get size(): number {
    return this.#young.size + this.#old.size;
  }

  /** The value in either generation, moving nothing (undefined: absent). */
  peek(key: K): V | undefined {
    const v = this.#young.get(key);
    return v !== undefined ? v : this.#old.get(key);
  }

  /** The value; a hit in the old generation moves it to the young one (it is in use). */
  get(key: K): V | undefined {
    const v = this.#young.get(key);
    if (v !== undefined) return v;
    const old = this.#old.get(key);
    if (old !== undefined) {
      this.#old.delete(key);
      this.#add(key, old);
    }
    return old;
  }

  /** Sets `key` in the young generation; true when that started a new generation (the young one was full). */
  set(key: K, value: V): boolean {
    this.#old.delete(key);
    if (this.#young.has(key)) {
      this.#young.set(key, value);
      return false;
    }
    return this.#add(key, value);
  }

  /** Starts a new generation now (e.g. on age): the old one is dropped, the young one becomes old. */
  rotate(): void {
    this.#old = this.#young;
    this.#young = new Map();
  }

  clear(): void {
    this.#young.clear();
    this.#old.clear();
  }

  #add(key: K, value: V): boolean {
    const rotated = this.#young.size >= this.#half;
    if (rotated) this.rotate();
    this.#young.set(key, value);
    return rotated;
  }
}
