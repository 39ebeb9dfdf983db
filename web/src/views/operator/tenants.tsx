/** Tenants, their plans, and their usage against the plan's limits (devices, events per second). */
import { Card, Empty, ErrorBanner, Pager } from '../../components/ui';
import { useConsole } from '../../lib/context';
import { fmtNum, fmtRate } from '../../lib/format';
import { usePaged } from '../../lib/hooks';
import type { Route } from '../../lib/router';
import type { TenantUsage } from '../../lib/types';

function Gauge(props: { value: number; max: number | null; format: (n: number) => string; testId?: string }) {
  if (props.max === null) return <span data-testid={props.testId}>{props.format(props.value)} <span class="muted">/ unlimited</span></span>;
  const ratio = props.max === 0 ? 1 : Math.min(1, props.value / props.max);
  const tone = ratio >= 0.9 ? 'deny' : ratio >= 0.7 ? 'warn' : 'ok';
  return (
    <div class="gauge" data-testid={props.testId} title={`${fmtNum(Math.round(ratio * 100))} % of the plan`}>
      <div class={`gauge-fill gauge-${tone}`} style={{ width: `${(ratio * 100).toFixed(1)}%` }} />
      <span class="gauge-text">
        {props.format(props.value)} / {props.format(props.max)}
      </span>
    </div>
  );
}

export function TenantsUsage(_props: { route: Route }) {
  const { api } = useConsole();
  const paged = usePaged(
    (cursor) =>
      api.get<{ tenants: TenantUsage[]; next_cursor: string | null }>('/api/v1/platform/tenant-usage', { limit: 50, cursor }).then((r) => ({ items: r.tenants, next_cursor: r.next_cursor })),
    [],
  );
  return (
    <div class="stack">
      <h1>Tenants &amp; plans</h1>
      <Card actions={<button type="button" onClick={paged.reload}>Refresh</button>}>
        <ErrorBanner error={paged.error} />
        {paged.items.length === 0 && !paged.loading ? (
          <Empty>No tenants.</Empty>
        ) : (
          <table class="table" data-testid="tenant-usage">
            <thead>
              <tr>
                <th>Tenant</th>
                <th>Plan</th>
                <th>Devices</th>
                <th>Events/s now</th>
                <th class="num">Events, last hour</th>
                <th class="num">Denied</th>
              </tr>
            </thead>
            <tbody>
              {paged.items.map((t) => (
                <tr key={t.tenant_id} data-testid="tenant-row" data-tenant={t.name}>
                  <td>
                    {t.name} <span class="muted mono">{t.tenant_id}</span>
                  </td>
                  <td>{t.plan_name ?? t.plan_id}</td>
                  <td>
                    <Gauge value={t.devices} max={t.max_devices} format={fmtNum} testId="devices-gauge" />
                  </td>
                  <td>
                    <Gauge value={t.events_per_s} max={t.max_events_per_s} format={fmtRate} />
                  </td>
                  <td class="num">{fmtNum(t.events_last_hour)}</td>
                  <td class="num">{fmtNum(t.denied_last_hour)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <Pager {...paged} />
      </Card>
    </div>
  );
}
