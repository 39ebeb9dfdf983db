/**
 * What the measured servers did over one load step's window (bench b and d): the CPU their
 * processes used, and — where their /metrics can be read (embedded mode) — the control plane's
 * own time to accept a usage message and its event-loop delay. Opened when playback starts,
 * closed when the drain ends.
 */
import { cpuSeconds } from './control-plane.js';
import { bucketQuantile, bucketsDelta, gaugeValue, histogramBuckets, type HistogramBuckets } from './stats.js';

export interface ServerProbe {
  /** Processes whose CPU time counts (the control plane; a deployment's roles and Redis). */
  pids?: readonly number[];
  /** The control plane's /metrics exposition; null when it cannot be read. */
  metrics?: () => Promise<string | null>;
}

export interface ServerFigures {
  /**
   * CPU the measured processes used from playback start to the end of the drain, per event
   * decided and as cores busy: less noisy than latency on a VM whose speed moves (compare builds
   * by it). Absent where /proc is not there or no pids were given.
   */
  server_cpu?: { us_per_event: number; cores: number };
  /**
   * The control plane's own time to accept a usage message (decided, stored, answered; its
   * `ingest_duration_seconds{kind="usage"}` histogram over the window), p50 and p99 interpolated
   * in its buckets (0.5, 1, 2.5, 5, 10 ms …): the share of the tower's latency spent after the
   * message was read from the socket. What the tower measures beyond it is queueing before that
   * read, the network and the load generator. Embedded mode only.
   */
  accept_ms?: { p50: number; p99: number };
  /**
   * The control plane's event-loop delay over the window (prom-client's monitor, sampled every
   * 10 ms, read and reset by the scrapes at either end; the delay beyond that period), p99 and
   * max: a message that arrives while the loop is held waits at least that long to be read.
   * Embedded mode only.
   */
  server_delay_ms?: { p99: number; max: number };
}

const ACCEPT_HISTOGRAM = 'ingest_duration_seconds';
/** prom-client's event-loop monitor samples every 10 ms; its figures include that period. */
const LOOP_SAMPLE_S = 0.01;

/** Seconds to milliseconds, two decimals. */
const msOf = (s: number): number => Math.round(s * 1e5) / 100;

export class ServerWindow {
  readonly #probe: ServerProbe;
  #t0 = 0;
  #seconds = 0;
  #cpuStart: number | null = null;
  #cpuEnd: number | null = null;
  #before: Promise<string | null> = Promise.resolve(null);
  #after: Promise<string | null> = Promise.resolve(null);

  constructor(probe: ServerProbe = {}) {
    this.#probe = probe;
  }

  open(): void {
    this.#t0 = performance.now();
    this.#cpuStart = this.#cpu();
    // The scrape also resets prom-client's event-loop histogram: the one at close covers the window.
    this.#before = this.#scrape();
  }

  close(): void {
    this.#seconds = (performance.now() - this.#t0) / 1000;
    this.#cpuEnd = this.#cpu();
    this.#after = this.#scrape();
  }

  async figures(decided: number): Promise<ServerFigures> {
    const out: ServerFigures = {};
    if (this.#cpuStart !== null && this.#cpuEnd !== null && decided > 0 && this.#seconds > 0) {
      const used = this.#cpuEnd - this.#cpuStart;
      out.server_cpu = { us_per_event: Math.round((used / decided) * 1e7) / 10, cores: Math.round((used / this.#seconds) * 100) / 100 };
    }
    const [before, after] = await Promise.all([this.#before, this.#after]);
    if (before === null || after === null) return out;
    const accepts = (text: string): HistogramBuckets => histogramBuckets(text, ACCEPT_HISTOGRAM, ['kind="usage"']);
    const accepted = bucketsDelta(accepts(before), accepts(after));
    const [p50, p99] = [bucketQuantile(accepted, 0.5), bucketQuantile(accepted, 0.99)];
    if (p50 !== null && p99 !== null) out.accept_ms = { p50: msOf(p50), p99: msOf(p99) };
    const [lagP99, lagMax] = [gaugeValue(after, 'nodejs_eventloop_lag_p99_seconds'), gaugeValue(after, 'nodejs_eventloop_lag_max_seconds')];
    if (lagP99 !== null && lagMax !== null) out.server_delay_ms = { p99: msOf(Math.max(0, lagP99 - LOOP_SAMPLE_S)), max: msOf(Math.max(0, lagMax - LOOP_SAMPLE_S)) };
    return out;
  }

  #cpu(): number | null {
    const pids = this.#probe.pids ?? [];
    if (pids.length === 0) return null;
    let sum = 0;
    for (const pid of pids) {
      const s = cpuSeconds(pid);
      if (s === null) return null;
      sum += s;
    }
    return sum;
  }

  #scrape(): Promise<string | null> {
    return this.#probe.metrics ? this.#probe.metrics() : Promise.resolve(null);
  }
}
