/**
 * System health from the control plane's own counters: /metrics (Prometheus text) read every
 * POLL_MS and turned into rates in the browser — decided events/s, dropped and rejected uplinks,
 * refused MQTT clients, dropped feed clients — plus any latency histogram the deployment exposes,
 * and the platform traffic of the last hour with the uplink delay (/platform/overview).
 * Readings live only in this page's memory (the last MAX_READINGS).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { TimeChart } from '../../components/chart';
import { Card, ErrorBanner, Stat } from '../../components/ui';
import { useConsole } from '../../lib/context';
import { fmtNum, fmtRate, fmtTime } from '../../lib/format';
import { usePoll } from '../../lib/hooks';
import { histogramQuantile, parsePrometheus, ratePerSecond, totalsByName, type Sample } from '../../lib/prometheus';
import type { Route } from '../../lib/router';
import type { PlatformOverview } from '../../lib/types';

const POLL_MS = 10_000;
const MAX_READINGS = 90;

interface Reading {
  at: number;
  totals: Map<string, number>;
  samples: Sample[];
  denied: number;
}

interface Point {
  t: number;
  rates: Map<string, number>;
  deniedRate: number;
  quantiles: Map<string, { p50: number | null; p99: number | null }>;
}

/** Histogram families (`<name>_bucket{le=…}`) with the cumulative count per bound, summed over other labels. */
function histograms(samples: Sample[]): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  for (const s of samples) {
    if (!s.name.endsWith('_bucket') || s.labels.le === undefined) continue;
    const family = s.name.slice(0, -'_bucket'.length);
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    const buckets = out.get(family) ?? new Map<number, number>();
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
    out.set(family, buckets);
  }
  return out;
}

function pointBetween(a: Reading, b: Reading): Point {
  const seconds = (b.at - a.at) / 1000;
  const rates = new Map<string, number>();
  for (const [name, value] of b.totals) rates.set(name, ratePerSecond(a.totals.get(name) ?? 0, value, seconds));
  const quantiles = new Map<string, { p50: number | null; p99: number | null }>();
  const before = histograms(a.samples);
  for (const [family, buckets] of histograms(b.samples)) {
    const prev = before.get(family);
    const delta = [...buckets].map(([le, count]) => ({ le, count: Math.max(0, count - (prev?.get(le) ?? 0)) }));
    quantiles.set(family, { p50: histogramQuantile(delta, 0.5), p99: histogramQuantile(delta, 0.99) });
  }
  return { t: b.at, rates, deniedRate: ratePerSecond(a.denied, b.denied, seconds), quantiles };
}

const INGEST = 'decisions_sent_total';
const TROUBLE: Array<[string, string, string]> = [
  ['uplink_dropped_total', 'dropped uplinks', '#d8453b'],
  ['usage_events_rejected_total', 'rejected events', '#e0a100'],
  ['mqtt_rejected_total', 'refused MQTT packets', '#7b4fd8'],
  ['feed_clients_dropped_total', 'dropped feed clients', '#3bb0d8'],
];

export function Health(_props: { route: Route }) {
  const { api } = useConsole();
  const readings = useRef<Reading[]>([]);
  const [points, setPoints] = useState<Point[]>([]);
  // Each reading is a new object, so identical texts (nothing moved) still count as a reading.
  const metrics = usePoll(async () => ({ text: await api.text('/metrics'), at: Date.now() }), POLL_MS, [], { secondAfterMs: 2_000 });
  const platform = usePoll(() => api.get<{ overview: PlatformOverview }>('/api/v1/platform/overview').then((r) => r.overview), 30_000, []);

  useEffect(() => {
    if (metrics.data === null) return;
    const { samples } = parsePrometheus(metrics.data.text);
    const denied = samples.filter((s) => s.name === INGEST && s.labels.effect === 'deny').reduce((n, s) => n + s.value, 0);
    const reading: Reading = { at: metrics.data.at, totals: totalsByName(samples), samples, denied };
    const list = [...readings.current, reading].slice(-MAX_READINGS);
    readings.current = list;
    setPoints(list.slice(1).map((r, i) => pointBetween(list[i]!, r)));
  }, [metrics.data]);

  const last = points.at(-1);
  const latest = readings.current.at(-1);
  const times = points.map((p) => p.t);
  const families = last ? [...last.quantiles.keys()] : [];
  const o = platform.data;

  return (
    <div class="stack">
      <h1>System health</h1>
      <ErrorBanner error={metrics.error ?? platform.error} />
      <div class="stats">
        <Stat label="decided events/s" value={last ? fmtRate(last.rates.get(INGEST) ?? 0) : '—'} testId="health-ingest" />
        <Stat label="denied/s" value={last ? fmtRate(last.deniedRate) : '—'} tone="deny" />
        <Stat label="dropped uplinks/s" value={last ? fmtRate(last.rates.get('uplink_dropped_total') ?? 0) : '—'} />
        <Stat label="active tenants (1 h)" value={o ? fmtNum(o.tenants_active) : '—'} />
      </div>
      <Card title={`Ingest (every ${POLL_MS / 1000} s)`}>
        {points.length === 0 ? (
          <p class="muted">Collecting: rates appear after the second reading.</p>
        ) : (
          <TimeChart
            testId="health-ingest-chart"
            times={times}
            unit="events/s"
            series={[
              { label: 'decided/s', color: '#3b6fd8', values: points.map((p) => p.rates.get(INGEST) ?? 0) },
              { label: 'denied/s', color: '#d8453b', values: points.map((p) => p.deniedRate) },
            ]}
          />
        )}
      </Card>
      <Card title="Dropped and rejected">
        {points.length > 0 && (
          <TimeChart
            times={times}
            unit="per second"
            series={TROUBLE.map(([name, label, color]) => ({ label, color, values: points.map((p) => p.rates.get(name) ?? 0) }))}
          />
        )}
      </Card>
      <Card title="Latency">
        {o && (
          <>
            <p class="muted small">Uplink delay per minute (event observed at the tower → received by the cloud, including the agent's batching), counted since {fmtTime(o.since)}.</p>
            <TimeChart
              times={o.series.map((p) => p.t)}
              unit="events/min"
              rightUnit="ms"
              series={[
                { label: 'events/min', color: '#3b6fd8', values: o.series.map((p) => p.events) },
                { label: 'delay p50 ms', color: '#1f9d55', values: o.series.map((p) => p.delay_p50_ms), right: true },
                { label: 'delay p99 ms', color: '#e0a100', values: o.series.map((p) => p.delay_p99_ms), right: true },
              ]}
            />
          </>
        )}
        {families.map((family) => (
          <div key={family}>
            <h3>{family}</h3>
            <TimeChart
              times={times}
              unit="p50 / p99"
              series={[
                { label: 'p50', color: '#1f9d55', values: points.map((p) => p.quantiles.get(family)?.p50 ?? null) },
                { label: 'p99', color: '#e0a100', values: points.map((p) => p.quantiles.get(family)?.p99 ?? null) },
              ]}
            />
          </div>
        ))}
      </Card>
      <Card title="Every counter">
        <table class="table compact" data-testid="counters">
          <thead>
            <tr>
              <th>Counter</th>
              <th class="num">Total</th>
              <th class="num">Per second</th>
            </tr>
          </thead>
          <tbody>
            {[...(latest?.totals ?? new Map<string, number>())]
              .filter(([name]) => !name.endsWith('_bucket'))
              .sort(([a], [b]) => a.localeCompare(b))
              .map(([name, value]) => (
                <tr key={name}>
                  <td class="mono">{name}</td>
                  <td class="num">{fmtNum(value)}</td>
                  <td class="num">{last ? fmtRate(last.rates.get(name) ?? 0) : '—'}</td>
                </tr>
              ))}
          </tbody>
        </table>
      </Card>
    </div>
  );
}
