/**
 * In-process counters with labels, read by the API's metrics endpoints. Bad input is "dropped
 * and counted": these counters are where it is counted.
 */
export type Labels = Record<string, string>;

function keyOf(name: string, labels: Labels | undefined): string {
  if (!labels) return name;
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`);
  return `${name}{${parts.join(',')}}`;
}

export class Counters {
  readonly #values = new Map<string, { name: string; labels: Labels; value: number }>();

  inc(name: string, labels?: Labels, by = 1): void {
    const k = keyOf(name, labels);
    const cur = this.#values.get(k);
    if (cur) cur.value += by;
    else this.#values.set(k, { name, labels: labels ?? {}, value: by });
  }

  get(name: string, labels?: Labels): number {
    return this.#values.get(keyOf(name, labels))?.value ?? 0;
  }

  /** Sum over every label set of a counter. */
  total(name: string): number {
    let sum = 0;
    for (const v of this.#values.values()) if (v.name === name) sum += v.value;
    return sum;
  }

  snapshot(): Array<{ name: string; labels: Labels; value: number }> {
    return [...this.#values.values()].map((v) => ({ ...v, labels: { ...v.labels } }));
  }

  /** Prometheus text exposition format. */
  toPrometheus(): string {
    const lines: string[] = [];
    const seen = new Set<string>();
    for (const [k, v] of this.#values) {
      if (!seen.has(v.name)) {
        lines.push(`# TYPE ${v.name} counter`);
        seen.add(v.name);
      }
      lines.push(`${k} ${v.value}`);
    }
    return lines.join('\n') + '\n';
  }
}
