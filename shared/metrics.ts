/**
 * Process metrics behind one small facade. Call sites count with `counters.inc(name, labels, by)`
 * (bad input is "dropped and counted": these counters are where it is counted), gauges and
 * histograms use `set`/`gauge`/`observe`; the families, their HELP text and label names come
 * from one table (shared/metric-definitions.ts). Exposition is prom-client's, on a registry owned
 * by this instance (no global registry: two control planes in one test process stay apart).
 *
 * Counters are kept in a plain map and copied into prom-client only when scraped: `inc` is on
 * the ingest path, a scrape happens every few seconds at most.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { METRIC_DEFINITIONS, type MetricDefinition } from './metric-definitions.js';

export type Labels = Record<string, string>;

type GaugeSample = number | Array<{ labels: Labels; value: number }>;
type GaugeSource = () => GaugeSample | Promise<GaugeSample>;

function keyOf(name: string, labels: Labels | undefined): string {
  if (!labels) return name;
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`);
  return `${name}{${parts.join(',')}}`;
}

/** Keeps only the declared label names: prom-client throws on any other, and a scrape must not. */
function declared(labels: Labels | undefined, names: readonly string[]): Labels {
  const out: Labels = {};
  if (!labels) return out;
  for (const n of names) if (labels[n] !== undefined) out[n] = labels[n];
  return out;
}

const UNDOCUMENTED = 'Undocumented metric: add it to shared/metric-definitions.ts';

export class Counters {
  readonly registry = new Registry();
  readonly #definitions: Record<string, MetricDefinition>;
  readonly #values = new Map<string, { name: string; labels: Labels; value: number }>();
  /** Counter families registered for exposition (declared ones up front, others on first use). */
  readonly #counterFamilies = new Map<string, readonly string[]>();
  readonly #gauges = new Map<string, Gauge>();
  readonly #gaugeSources = new Map<string, GaugeSource>();
  readonly #histograms = new Map<string, Histogram>();
  #processMetrics = false;

  constructor(definitions: Record<string, MetricDefinition> = METRIC_DEFINITIONS) {
    this.#definitions = definitions;
    for (const [name, d] of Object.entries(definitions)) {
      if (d.type === 'counter') this.#registerCounter(name, d.help, d.labels);
    }
  }

  /** Adds `by` to a counter (or a gauge declared as such). Never throws. */
  inc(name: string, labels?: Labels, by = 1): void {
    const def = this.#definitions[name];
    if (def && def.type !== 'counter') {
      if (def.type === 'gauge') this.#gauge(name)?.inc(declared(labels, def.labels), by);
      return;
    }
    const k = keyOf(name, labels);
    const cur = this.#values.get(k);
    if (cur) cur.value += by;
    else {
      this.#values.set(k, { name, labels: labels ?? {}, value: by });
      if (!this.#counterFamilies.has(name)) this.#registerCounter(name, UNDOCUMENTED, Object.keys(labels ?? {}));
    }
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

  /** Sets a declared gauge. */
  set(name: string, labels: Labels | undefined, value: number): void {
    const def = this.#definitions[name];
    if (def?.type !== 'gauge') return;
    this.#gauge(name)?.set(declared(labels, def.labels), value);
  }

  /**
   * Reads a declared gauge from `source` at every scrape (connections, queue depth): the value
   * is always current and nothing has to be updated on the hot path. A later source replaces an
   * earlier one; the returned function removes it.
   */
  gauge(name: string, source: GaugeSource): () => void {
    if (this.#definitions[name]?.type !== 'gauge') throw new Error(`${name} is not a gauge in shared/metric-definitions.ts`);
    this.#gauge(name);
    this.#gaugeSources.set(name, source);
    return () => {
      if (this.#gaugeSources.get(name) === source) this.#gaugeSources.delete(name);
    };
  }

  /** Records one observation of a declared histogram. */
  observe(name: string, labels: Labels | undefined, value: number): void {
    const def = this.#definitions[name];
    if (def?.type !== 'histogram' || !Number.isFinite(value)) return;
    let h = this.#histograms.get(name);
    if (!h) {
      h = new Histogram({ name, help: def.help, labelNames: [...def.labels], buckets: [...(def.buckets ?? [])], registers: [this.registry] });
      this.#histograms.set(name, h);
    }
    h.observe(declared(labels, def.labels), value);
  }

  /**
   * Adds prom-client's process and Node.js runtime families (CPU, memory, file descriptors,
   * event-loop lag and utilisation, GC). Once per instance; composition roots call it.
   */
  collectProcessMetrics(): void {
    if (this.#processMetrics) return;
    this.#processMetrics = true;
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters (promtool objects); their per-type families stay.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
  }

  /** The Prometheus text exposition format (version 0.0.4). */
  async metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  #registerCounter(name: string, help: string, labelNames: readonly string[]): void {
    this.#counterFamilies.set(name, labelNames);
    const values = this.#values;
    new Counter({
      name,
      help,
      labelNames: [...labelNames],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const v of values.values()) if (v.name === name) this.inc(declared(v.labels, labelNames), v.value);
      },
    });
  }

  #gauge(name: string): Gauge | undefined {
    const def = this.#definitions[name];
    if (def?.type !== 'gauge') return undefined;
    let g = this.#gauges.get(name);
    if (!g) {
      const sources = this.#gaugeSources;
      const labelNames = def.labels;
      g = new Gauge({
        name,
        help: def.help,
        labelNames: [...labelNames],
        registers: [this.registry],
        async collect() {
          const source = sources.get(name);
          if (!source) return;
          this.reset();
          let sample: GaugeSample;
          try {
            sample = await source();
          } catch {
            // A source that cannot answer (a queue whose Redis is down) reads NaN, "unknown" in
            // Prometheus, rather than failing the whole scrape or passing for a real 0.
            if (labelNames.length === 0) this.set(NaN);
            return;
          }
          if (typeof sample === 'number') this.set(sample);
          else for (const s of sample) this.set(declared(s.labels, labelNames), s.value);
        },
      });
      this.#gauges.set(name, g);
    }
    return g;
  }
}
