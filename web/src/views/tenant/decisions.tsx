/**
 * The live decision feed, the seed's question in one row: which user, on which device, did what
 * with which app, at which tower, and what was decided by which policy and rule.
 *
 * Live: the newest decisions held by the hub (a bounded ring), filtered here, at most MAX_ROWS
 * rendered, redrawn at most every hub tick (250 ms) whatever the rate; "Pause" freezes the table
 * while counting goes on. History: the stored decisions, newest first, paged with the API's
 * cursors and filtered by the API.
 */
import { useCallback, useMemo, useState } from 'preact/hooks';
import { ExportMenu } from '../../components/export-menu';
import { Card, EffectBadge, ErrorBanner, Pager } from '../../components/ui';
import { useConsole, useLive, useNames } from '../../lib/context';
import { fmtNum, fmtTime } from '../../lib/format';
import { usePaged } from '../../lib/hooks';
import type { Route } from '../../lib/router';
import type { Effect, UsageRecord } from '../../lib/types';

export const MAX_ROWS = 200;

interface Filters {
  user: string;
  device: string;
  app: string;
  tower: string;
  effect: '' | Effect;
}

function matches(r: UsageRecord, f: Filters): boolean {
  return (
    (f.user === '' || r.user_id === f.user) &&
    (f.device === '' || r.device_id.includes(f.device)) &&
    (f.app === '' || r.app === f.app) &&
    (f.tower === '' || r.tower_id.includes(f.tower)) &&
    (f.effect === '' || r.effect === f.effect)
  );
}

function Row(props: { r: UsageRecord }) {
  const names = useNames();
  const { r } = props;
  return (
    <tr class={r.effect === 'deny' ? 'row-deny' : ''} data-testid="decision-row" data-device={r.device_id} data-effect={r.effect}>
      <td class="nowrap">{fmtTime(r.ts)}</td>
      <td>{names.user(r.user_id)}</td>
      <td class="mono">{r.device_id}</td>
      <td>{r.app}</td>
      <td>{r.action}</td>
      <td>{names.tower(r.tower_id)}</td>
      <td>
        <EffectBadge effect={r.effect} />
      </td>
      <td>
        {r.policy_id !== null ? (
          <>
            {names.policy(r.policy_id)} <span class="muted">{names.rule(r.rule_id)}</span>
          </>
        ) : (
          <span class="muted">{r.reason === 'unknown_device' ? 'unknown device' : r.reason === 'blocked' ? 'blocked at the tower' : 'tenant default'}</span>
        )}
      </td>
    </tr>
  );
}

function DecisionTable(props: { rows: UsageRecord[] }) {
  return (
    <table class="table" data-testid="decisions">
      <thead>
        <tr>
          <th>Time</th>
          <th>User</th>
          <th>Device</th>
          <th>App</th>
          <th>Action</th>
          <th>Tower</th>
          <th>Decision</th>
          <th>Policy · rule</th>
        </tr>
      </thead>
      <tbody>
        {props.rows.map((r) => (
          <Row r={r} key={r.id} />
        ))}
      </tbody>
    </table>
  );
}

function LiveRows(props: { filters: Filters }) {
  const { live } = useConsole();
  const [paused, setPaused] = useState(false);
  const [, setTick] = useState(0);
  useLive(useCallback(() => !paused && setTick((t) => t + 1), [paused]));
  if (!live) return <p class="empty">This account has no live feed.</p>;
  const held = live.decisions.values();
  const matching = held.filter((r) => matches(r, props.filters));
  const rows = matching.sort((a, b) => b.received_at - a.received_at || (a.id < b.id ? 1 : -1)).slice(0, MAX_ROWS);
  const counts = live.counts();
  return (
    <>
      <p class="muted small" data-testid="live-counts" data-received={counts.received} data-held={held.length} data-rendered={rows.length}>
        {fmtNum(counts.received)} decisions received since sign-in · {fmtNum(held.length)} held · showing the newest {rows.length} of{' '}
        {fmtNum(matching.length)} matching{' '}
        <button type="button" class="link" data-testid="pause" onClick={() => setPaused((p) => !p)}>
          {paused ? 'Resume' : 'Pause'}
        </button>
      </p>
      <DecisionTable rows={rows} />
    </>
  );
}

function HistoryRows(props: { filters: Filters }) {
  const { api } = useConsole();
  const f = props.filters;
  const query = { user_id: f.user, device_id: f.device, tower_id: f.tower, effect: f.effect };
  const paged = usePaged(
    (cursor) => api.get<{ usage: UsageRecord[]; next_cursor: string | null }>('/api/v1/app-usage', { ...query, limit: 100, cursor }).then((r) => ({ items: r.usage, next_cursor: r.next_cursor })),
    [f.user, f.device, f.tower, f.effect],
  );
  const rows = paged.items.filter((r) => f.app === '' || r.app === f.app);
  return (
    <>
      <ErrorBanner error={paged.error} />
      <div class="row-between">
        <Pager {...paged} />
        <ExportMenu path="/api/v1/app-usage" query={query} name="decisions" />
      </div>
      {f.app !== '' && <p class="muted small">The app filter applies to the rows of this page.</p>}
      <DecisionTable rows={rows} />
    </>
  );
}

export function Decisions(props: { route: Route }) {
  const names = useNames();
  const [mode, setMode] = useState<'live' | 'history'>('live');
  const [filters, setFilters] = useState<Filters>({
    user: props.route.params.get('user') ?? '',
    device: props.route.params.get('device') ?? '',
    app: props.route.params.get('app') ?? '',
    tower: props.route.params.get('tower') ?? '',
    effect: (props.route.params.get('effect') as Effect | null) ?? '',
  });
  const set = (k: keyof Filters) => (e: Event) => setFilters({ ...filters, [k]: (e.currentTarget as HTMLInputElement).value });
  const users = useMemo(() => [...names.names.users.values()].sort((a, b) => a.name.localeCompare(b.name)), [names.names]);

  return (
    <div class="stack">
      <h1>Decisions</h1>
      <Card
        actions={
          <div class="tabs">
            <button type="button" class={mode === 'live' ? 'tab active' : 'tab'} onClick={() => setMode('live')} data-testid="mode-live">
              Live
            </button>
            <button type="button" class={mode === 'history' ? 'tab active' : 'tab'} onClick={() => setMode('history')} data-testid="mode-history">
              History
            </button>
          </div>
        }
      >
        <div class="filters">
          <select value={filters.user} onChange={set('user')} aria-label="user">
            <option value="">any user</option>
            {users.map((u) => (
              <option value={u.id} key={u.id}>
                {u.name}
              </option>
            ))}
          </select>
          <input placeholder="device" value={filters.device} onInput={set('device')} aria-label="device" data-testid="filter-device" />
          <input placeholder="app" value={filters.app} onInput={set('app')} aria-label="app" />
          <input placeholder="tower" value={filters.tower} onInput={set('tower')} aria-label="tower" />
          <select value={filters.effect} onChange={set('effect')} aria-label="decision" data-testid="filter-effect">
            <option value="">allow and deny</option>
            <option value="allow">allowed</option>
            <option value="deny">denied</option>
          </select>
        </div>
        {mode === 'live' ? <LiveRows filters={filters} /> : <HistoryRows filters={filters} />}
      </Card>
    </div>
  );
}
