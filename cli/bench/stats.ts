/** Order statistics the bench parts share. */

/** The element with the median key (the upper one of an even count); undefined when empty. */
export function medianBy<T>(xs: readonly T[], key: (x: T) => number): T | undefined {
  return [...xs].sort((a, b) => key(a) - key(b))[Math.floor(xs.length / 2)];
}

/** The median of `xs` (the upper one of an even count); 0 when empty. */
export const median = (xs: readonly number[]): number => medianBy(xs, (x) => x) ?? 0;

/** A Prometheus histogram's cumulative bucket counts, by upper bound (seconds; +Inf last). */
export type HistogramBuckets = Array<{ le: number; count: number }>;

/**
 * The cumulative buckets of histogram `name` in a Prometheus text exposition, summed over the
 * label sets that include every `labels` pair (e.g. `kind="usage"`); empty when absent.
 */
export function histogramBuckets(exposition: string, name: string, labels: readonly string[] = []): HistogramBuckets {
  const byLe = new Map<number, number>();
  const prefix = `${name}_bucket{`;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const close = line.indexOf('}');
    const labelText = line.slice(prefix.length, close);
    if (!labels.every((l) => labelText.split(',').includes(l))) continue;
    const le = /(?:^|,)le="([^"]+)"/.exec(labelText)?.[1];
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
    byLe.set(bound, (byLe.get(bound) ?? 0) + Number(line.slice(close + 1).trim()));
  }
  return [...byLe].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count }));
}

/** `after` minus `before`, bucket by bucket (the observations made in between). */
export function bucketsDelta(before: HistogramBuckets, after: HistogramBuckets): HistogramBuckets {
  const earlier = new Map(before.map((b) => [b.le, b.count]));
  return after.map((b) => ({ le: b.le, count: b.count - (earlier.get(b.le) ?? 0) }));
}

/**
 * The q-quantile of cumulative buckets, interpolated linearly inside its bucket as Prometheus'
 * histogram_quantile does (so only as fine as the buckets); the highest finite bound when it falls
 * in +Inf; null with no observations.
 */
export function bucketQuantile(buckets: HistogramBuckets, q: number): number | null {
  const total = buckets.at(-1)?.count ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const { le, count } of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return lowerBound;
      return count === lowerCount ? le : lowerBound + ((le - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
    }
    lowerBound = le;
    lowerCount = count;
  }
  return lowerBound;
}

/** The value of a metric without labels in a Prometheus text exposition; null when absent. */
export function gaugeValue(exposition: string, name: string): number | null {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(exposition);
  return m ? Number(m[1]) : null;
}
