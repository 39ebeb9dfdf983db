/** Order statistics the bench parts share. */

/** The element with the median key (the upper one of an even count); undefined when empty. */
export function medianBy<T>(xs: readonly T[], key: (x: T) => number): T | undefined {
  return [...xs].sort((a, b) => key(a) - key(b))[Math.floor(xs.length / 2)];
}

/** The median of `xs` (the upper one of an even count); 0 when empty. */
export const median = (xs: readonly number[]): number => medianBy(xs, (x) => x) ?? 0;
