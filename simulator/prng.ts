/**
 * A small seeded PRNG (mulberry32) so a scenario plays the same event sequence every run:
 * same devices, apps, actions, violation times and arrival gaps for the same seed.
 * Not for anything security-related.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Prng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  /** Exponentially distributed gap for a Poisson process of `rate` per unit time. */
  exponential(rate: number): number;
}

export function createPrng(seed: number): Prng {
  const next = mulberry32(seed);
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    pick<T>(items: readonly T[]): T {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[int(items.length)]!;
    },
    exponential(rate: number): number {
      // 1 - u is in (0, 1], so the log is finite.
      return -Math.log(1 - next()) / rate;
    },
  };
}

/** Picks items with probability proportional to their weight (binary search over cumulative weights). */
export function weightedPicker<T>(items: readonly T[], weight: (item: T) => number, prng: Prng): () => T {
  if (items.length === 0) throw new Error('weightedPicker needs at least one item');
  const cumulative: number[] = [];
  let total = 0;
  for (const item of items) {
    const w = weight(item);
    if (!(w > 0)) throw new Error(`weights must be positive, got ${w}`);
    total += w;
    cumulative.push(total);
  }
  return () => {
    const x = prng.next() * total;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return items[lo]!;
  };
}
