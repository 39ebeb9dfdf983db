/**
 * The realtime sink port: what a dashboard mirror (Firebase Realtime Database today) must offer.
 * One call is one atomic multi-path update, so a sink can batch a burst of bus events into a
 * single round trip. Paths are slash-separated and relative to the database root.
 */

/**
 * Server-side increment, in the Realtime Database wire format. Written as plain data so callers
 * (and tests) never touch firebase-admin; the Firebase adapter maps it to `ServerValue.increment`.
 */
export interface IncrementSentinel {
  '.sv': { increment: number };
}

export function INCREMENT(n: number): IncrementSentinel {
  return { '.sv': { increment: n } };
}

export function isIncrement(value: unknown): value is IncrementSentinel {
  if (typeof value !== 'object' || value === null || !Object.hasOwn(value, '.sv')) return false;
  const sv = (value as { '.sv': unknown })['.sv'];
  return (
    typeof sv === 'object' &&
    sv !== null &&
    typeof (sv as { increment?: unknown }).increment === 'number'
  );
}

export interface RealtimeWriter {
  /** Writes every path → value at once (a null value deletes the path). */
  update(values: Record<string, unknown>): Promise<void>;
  /** Releases connections; no update may follow. */
  close(): Promise<void>;
}
