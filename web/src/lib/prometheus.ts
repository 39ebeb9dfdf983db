/**
 * Reads the Prometheus text exposition (`/metrics`) into samples, and turns two readings into
 * per-second rates: what the operator console charts for system health.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (\S+)/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      continue;
    }
    const m = LINE_RE.exec(line);
    if (!m) continue;
    const value = Number(m[4]);
    if (!Number.isFinite(value)) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(LABEL_RE)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1]!, labels, value });
  }
  return { samples, types };
}

/** Sum of every sample of `name` (all label sets). */
export function total(samples: Sample[], name: string): number {
  let sum = 0;
  for (const s of samples) if (s.name === name) sum += s.value;
  return sum;
}

/** Every metric name with its summed value. */
export function totalsByName(samples: Sample[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) out.set(s.name, (out.get(s.name) ?? 0) + s.value);
  return out;
}

/** Per-second increase between two readings; a counter that went down (a restart) counts from 0. */
export function ratePerSecond(before: number, after: number, seconds: number): number {
  if (seconds <= 0) return 0;
  const delta = after >= before ? after - before : after;
  return delta / seconds;
}

/**
 * A quantile from a cumulative histogram's `_bucket` samples (`le` labels), by linear
 * interpolation inside the bucket, as PromQL's histogram_quantile does. null without data.
 */
export function histogramQuantile(buckets: Array<{ le: number; count: number }>, q: number): number | null {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const totalCount = sorted.at(-1)?.count ?? 0;
  if (totalCount === 0) return null;
  const rank = q * totalCount;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of sorted) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return prevLe;
      const inBucket = b.count - prevCount;
      return inBucket === 0 ? b.le : prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}
