/** Carriers and their towers as the towers report themselves (state, agent version, last status). */
import { Badge, Card, Empty, ErrorBanner, Pager, Stat } from '../../components/ui';
import { useConsole } from '../../lib/context';
import { fmtAgo, fmtNum } from '../../lib/format';
import { useAsync, usePaged } from '../../lib/hooks';
import { href, type Route } from '../../lib/router';
import type { Carrier, Tower } from '../../lib/types';

interface Performance {
  carrier_id: string;
  summary: { towers: number; online: number; offline: number; unknown: number };
  towers: Array<{ tower_id: string; name: string; state: Tower['state']; agent_version: string | null; last_seen: number | null }>;
}

function CarrierDetail(props: { carrier: Carrier }) {
  const { api } = useConsole();
  const perf = useAsync(() => api.get<Performance>(`/api/v1/carriers/${encodeURIComponent(props.carrier.id)}/performance`), [props.carrier.id]);
  const p = perf.data;
  return (
    <Card title={props.carrier.name} testId="carrier-detail" actions={<a href={href('/carriers')}>close</a>}>
      <ErrorBanner error={perf.error} />
      {p && (
        <>
          <div class="stats">
            <Stat label="towers" value={fmtNum(p.summary.towers)} />
            <Stat label="online" value={fmtNum(p.summary.online)} tone="ok" />
            <Stat label="offline" value={fmtNum(p.summary.offline)} tone={p.summary.offline > 0 ? 'deny' : 'ok'} />
          </div>
          {p.towers.length === 0 ? (
            <Empty>No towers linked.</Empty>
          ) : (
            <table class="table">
              <thead>
                <tr>
                  <th>Tower</th>
                  <th>State</th>
                  <th>Agent</th>
                  <th>Last seen</th>
                </tr>
              </thead>
              <tbody>
                {p.towers.map((t) => (
                  <tr key={t.tower_id}>
                    <td>
                      {t.name} <span class="muted mono">{t.tower_id}</span>
                    </td>
                    <td>
                      <Badge kind={t.state}>{t.state}</Badge>
                    </td>
                    <td>{t.agent_version ?? '—'}</td>
                    <td>{fmtAgo(t.last_seen)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </Card>
  );
}

export function Carriers(props: { route: Route }) {
  const { api } = useConsole();
  const paged = usePaged(
    (cursor) => api.get<{ carriers: Carrier[]; next_cursor: string | null }>('/api/v1/carriers', { limit: 50, cursor }).then((r) => ({ items: r.carriers, next_cursor: r.next_cursor })),
    [],
  );
  const selectedId = props.route.params.get('id');
  const selected = paged.items.find((c) => c.id === selectedId) ?? null;
  return (
    <div class="stack">
      <h1>Carriers</h1>
      <div class={selected ? 'split' : ''}>
        <Card>
          <ErrorBanner error={paged.error} />
          {paged.items.length === 0 && !paged.loading ? (
            <Empty>No carriers.</Empty>
          ) : (
            <ul class="list" data-testid="carriers">
              {paged.items.map((c) => (
                <li key={c.id} class={c.id === selectedId ? 'selected' : ''}>
                  <a href={href('/carriers', { id: c.id })}>{c.name}</a> <span class="muted">{c.mcc_mnc ?? ''}</span>
                </li>
              ))}
            </ul>
          )}
          <Pager {...paged} />
        </Card>
        {selected && <CarrierDetail carrier={selected} />}
      </div>
    </div>
  );
}
