/**
 * The tenant's overview: the live rate (counted in the browser from the decision feed), the deny
 * rate, the top apps and violators and the last hour per minute (from /dashboard/overview), and
 * the stored totals (/dashboard/metrics).
 */
import { useCallback, useState } from 'preact/hooks';
import { TimeChart } from '../../components/chart';
import { Card, ErrorBanner, Stat } from '../../components/ui';
import { useConsole, useLive, useNames } from '../../lib/context';
import { fmtNum, fmtPct, fmtRate, fmtTime } from '../../lib/format';
import { usePoll } from '../../lib/hooks';
import { href } from '../../lib/router';
import type { DashboardMetrics, TenantOverview } from '../../lib/types';

/** Polls are spaced to stay far below the API's per-user rate limit (100 requests/min by default). */
const OVERVIEW_POLL_MS = 15_000;
const METRICS_POLL_MS = 30_000;

export function Overview() {
  const { api, live } = useConsole();
  const names = useNames();
  const overview = usePoll(() => api.get<{ overview: TenantOverview }>('/api/v1/dashboard/overview').then((r) => r.overview), OVERVIEW_POLL_MS, []);
  const metrics = usePoll(() => api.get<{ metrics: DashboardMetrics }>('/api/v1/dashboard/metrics').then((r) => r.metrics), METRICS_POLL_MS, []);
  const [, setTick] = useState(0);
  useLive(useCallback(() => setTick((t) => t + 1), []));
  const counts = live?.counts();
  const o = overview.data;
  const m = metrics.data;

  return (
    <div class="stack">
      <h1>Overview</h1>
      <ErrorBanner error={overview.error ?? metrics.error} />
      <div class="stats">
        <Stat label="events/s (live)" value={counts ? fmtRate(counts.perSecond) : '—'} testId="stat-rate" hint={counts ? `${fmtNum(counts.received)} since sign-in` : undefined} />
        <Stat label="denied/s (live)" value={counts ? fmtRate(counts.deniedPerSecond) : '—'} tone="deny" />
        <Stat label="deny rate, last hour" value={o ? fmtPct(o.deny_rate) : '—'} testId="stat-deny-rate" />
        <Stat label="events, last hour" value={o ? fmtNum(o.totals.events) : '—'} />
        <Stat label="open alerts" value={m ? fmtNum(m.alerts_open) : '—'} tone={m && m.alerts_open > 0 ? 'deny' : 'ok'} testId="stat-open-alerts" />
        <Stat label="devices" value={m ? fmtNum(m.devices) : '—'} hint={m ? `${fmtNum(m.discovered_devices)} discovered` : undefined} />
      </div>
      <Card title="Last hour, per minute" actions={o && <span class="muted small">counting since {fmtTime(o.since)}</span>}>
        {o ? (
          <TimeChart
            testId="overview-chart"
            times={o.series.map((p) => p.t)}
            unit="events/min"
            series={[
              { label: 'events', color: '#3b6fd8', values: o.series.map((p) => p.events) },
              { label: 'denied', color: '#d8453b', values: o.series.map((p) => p.denied) },
            ]}
          />
        ) : (
          <p class="muted">Loading…</p>
        )}
      </Card>
      <div class="grid3">
        <Card title="Top apps">
          <table class="table compact">
            <thead>
              <tr>
                <th>App</th>
                <th class="num">events</th>
                <th class="num">denied</th>
              </tr>
            </thead>
            <tbody>
              {(o?.top_apps ?? []).map((a) => (
                <tr key={a.app}>
                  <td>{a.app}</td>
                  <td class="num">{fmtNum(a.events)}</td>
                  <td class="num">{fmtNum(a.denied)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
        <Card title="Top violating users">
          <table class="table compact" data-testid="top-users">
            <tbody>
              {(o?.top_violating_users ?? []).map((u) => (
                <tr key={u.user_id}>
                  <td>{names.user(u.user_id)}</td>
                  <td class="num">{fmtNum(u.denied)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
        <Card title="Top violating devices">
          <table class="table compact" data-testid="top-devices">
            <tbody>
              {(o?.top_violating_devices ?? []).map((d) => (
                <tr key={d.device_id}>
                  <td>
                    <a href={href('/decisions', { device: d.device_id })}>{d.device_id}</a>
                  </td>
                  <td class="num">{fmtNum(d.denied)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
      </div>
      {o?.truncated && <p class="muted small">More distinct apps, users or devices were seen than are ranked per minute; rankings cover the most frequent.</p>}
    </div>
  );
}
