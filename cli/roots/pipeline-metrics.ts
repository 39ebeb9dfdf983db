/**
 * The latency and size metrics of the ingest path, measured at the composition root so the
 * pipeline itself stays free of instrumentation: an UplinkSink wrapper times every uplink message
 * (ingest_duration_seconds, by kind), and the bus' `usage.decided` gives the batch size
 * (ingest_batch_events) and the time from the broker receiving a batch to its decisions being
 * stored and sent (decision_latency_seconds).
 */
import type { Bus } from '../../shared/bus.js';
import type { Counters } from '../../shared/metrics.js';
import type { UplinkMessage, UplinkSink } from '../../shared/mqtt/transport.js';

/** A sink that records how long `inner.accept` took for each message (failures included). */
export function timedSink(inner: UplinkSink, counters: Counters): UplinkSink {
  return {
    accept: async (msg: UplinkMessage) => {
      const t0 = performance.now();
      try {
        await inner.accept(msg);
      } finally {
        counters.observe('ingest_duration_seconds', { kind: msg.parsed.kind }, (performance.now() - t0) / 1000);
      }
    },
  };
}

export class DecisionMetrics {
  readonly #bus: Bus;
  readonly #counters: Counters;
  readonly #now: () => number;

  constructor(opts: { bus: Bus; counters: Counters; now: () => number }) {
    this.#bus = opts.bus;
    this.#counters = opts.counters;
    this.#now = opts.now;
  }

  start(): void {
    this.#bus.subscribe(
      'usage.decided',
      ({ records }) => {
        if (records.length === 0) return;
        this.#counters.observe('ingest_batch_events', undefined, records.length);
        let received = Infinity;
        for (const r of records) if (r.received_at < received) received = r.received_at;
        this.#counters.observe('decision_latency_seconds', undefined, Math.max(0, this.#now() - received) / 1000);
      },
      this,
    );
  }

  stop(): void {
    this.#bus.removeAllFor(this);
  }
}
