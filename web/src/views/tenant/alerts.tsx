/**
 * Alerts raised by deny decisions: the stored list (paged, filtered by status and device), kept
 * current by the alerts feed (a changed alert replaces its row; a new one joins the first page),
 * and an alert's detail with what can be done about it: send a remediation to the tower, and —
 * where this control plane's API offers them — acknowledge or resolve it.
 */
import { useCallback, useState } from 'preact/hooks';
import { ExportMenu } from '../../components/export-menu';
import { Badge, Card, Empty, ErrorBanner, Pager } from '../../components/ui';
import { useConsole, useLive, useNames } from '../../lib/context';
import { describeError } from '../../lib/errors';
import { fmtAgo, fmtNum, fmtTime } from '../../lib/format';
import { useAsync, usePaged } from '../../lib/hooks';
import { href, navigate, type Route } from '../../lib/router';
import type { Alert, CommandRecord } from '../../lib/types';
import { RemediationForm } from './remediation-form';
import { CommandList } from './remediations';

type StatusFilter = '' | Alert['status'];

function AlertDetail(props: { alert: Alert; onChanged: (a: Alert) => void }) {
  const { api, can, features } = useConsole();
  const names = useNames();
  const a = props.alert;
  const [error, setError] = useState<string | null>(null);
  const related = useAsync(
    () => api.get<{ remedial_actions: CommandRecord[] }>('/api/v1/remedial-actions', { device_id: a.device_id, limit: 20 }).then((r) => r.remedial_actions),
    [a.device_id, a.count, a.last_seen],
  );
  // Acknowledge/resolve are optional in the API: offered only when its OpenAPI document lists them.
  const workflow = useAsync(
    async () => ({
      acknowledge: await features.has('post', '/api/v1/dashboard/alerts/{id}/acknowledge'),
      resolve: await features.has('post', '/api/v1/dashboard/alerts/{id}/resolve'),
    }),
    [],
  );
  const transition = async (verb: 'acknowledge' | 'resolve') => {
    setError(null);
    try {
      const { alert } = await api.post<{ alert: Alert }>(`/api/v1/dashboard/alerts/${encodeURIComponent(a.id)}/${verb}`);
      props.onChanged(alert);
    } catch (err) {
      setError(describeError(err));
    }
  };
  const writer = can('remediation:write');

  return (
    <Card title="Alert" testId="alert-detail" actions={<a href={href('/alerts')}>close</a>}>
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <Badge kind={a.status}>{a.status}</Badge>
        </dd>
        <dt>Severity</dt>
        <dd>
          <Badge kind={a.severity}>{a.severity}</Badge>
        </dd>
        <dt>Device</dt>
        <dd class="mono">{a.device_id}</dd>
        <dt>User</dt>
        <dd>{names.user(a.user_id)}</dd>
        <dt>What</dt>
        <dd>
          {a.app} / {a.action}
        </dd>
        <dt>Policy · rule</dt>
        <dd>
          {names.policy(a.policy_id)} <span class="muted">{names.rule(a.rule_id)}</span>
        </dd>
        <dt>Tower</dt>
        <dd>{names.tower(a.tower_id)}</dd>
        <dt>Violations</dt>
        <dd data-testid="alert-count">{fmtNum(a.count)}</dd>
        <dt>First / last seen</dt>
        <dd>
          {fmtTime(a.first_seen)} / {fmtTime(a.last_seen)}
        </dd>
      </dl>
      {error !== null && <p class="banner banner-error">{error}</p>}
      {writer && workflow.data && (workflow.data.acknowledge || workflow.data.resolve) && (
        <div class="button-row">
          {workflow.data.acknowledge && a.status === 'open' && (
            <button type="button" onClick={() => void transition('acknowledge')} data-testid="acknowledge">
              Acknowledge
            </button>
          )}
          {workflow.data.resolve && a.status !== 'resolved' && (
            <button type="button" onClick={() => void transition('resolve')} data-testid="resolve">
              Resolve
            </button>
          )}
        </div>
      )}
      {writer && (
        <RemediationForm
          deviceId={a.device_id}
          app={a.app}
          reason={`alert ${a.id}: ${a.app}/${a.action}`}
          onIssued={(c) => navigate('/remediations', { id: c.id })}
        />
      )}
      <h3>Remediations of this device</h3>
      <ErrorBanner error={related.error} />
      {related.data && related.data.length > 0 ? <CommandList commands={related.data} /> : <Empty>None yet.</Empty>}
    </Card>
  );
}

export function Alerts(props: { route: Route }) {
  const { api } = useConsole();
  const names = useNames();
  const [status, setStatus] = useState<StatusFilter>('open');
  const [device, setDevice] = useState('');
  const selectedId = props.route.params.get('id');
  const query = { status, device_id: device.trim(), sort: '-last_seen' };
  const paged = usePaged(
    (cursor) =>
      api
        .get<{ alerts: Alert[]; next_cursor: string | null }>('/api/v1/dashboard/alerts', { ...query, limit: 50, cursor })
        .then((r) => ({ items: r.alerts, next_cursor: r.next_cursor })),
    [status, device],
  );
  const selected = useAsync(
    () => (selectedId ? api.get<{ alert: Alert }>(`/api/v1/dashboard/alerts/${encodeURIComponent(selectedId)}`).then((r) => r.alert) : Promise.resolve(null)),
    [selectedId],
  );
  const [fresh, setFresh] = useState<Map<string, Alert>>(new Map());

  useLive(
    useCallback(
      (changes) => {
        if (changes.resumed) paged.reload();
        if (changes.alerts.length === 0) return;
        const ok = (a: Alert) => (status === '' || a.status === status) && (device.trim() === '' || a.device_id === device.trim());
        paged.setItems((items) => {
          const byId = new Map(changes.alerts.map((a) => [a.id, a]));
          const updated = items.map((a) => byId.get(a.id) ?? a);
          const known = new Set(items.map((a) => a.id));
          const added = paged.page === 1 ? changes.alerts.filter((a) => !known.has(a.id) && ok(a)) : [];
          return [...added, ...updated].slice(0, 50);
        });
        setFresh((m) => {
          const next = new Map(m);
          for (const a of changes.alerts) next.set(a.id, a);
          return next;
        });
      },
      [status, device, paged.page],
    ),
  );
  const detail = selectedId ? (fresh.get(selectedId) ?? selected.data) : null;

  return (
    <div class="stack">
      <h1>Alerts</h1>
      <div class={detail ? 'split' : ''}>
        <Card
          actions={<ExportMenu path="/api/v1/dashboard/alerts" query={{ status, device_id: device.trim() }} name="alerts" />}
        >
          <div class="filters">
            <select value={status} onChange={(e) => setStatus(e.currentTarget.value as StatusFilter)} aria-label="status" data-testid="alert-status-filter">
              <option value="open">open</option>
              <option value="acknowledged">acknowledged</option>
              <option value="resolved">resolved</option>
              <option value="">all</option>
            </select>
            <input placeholder="device" value={device} onInput={(e) => setDevice(e.currentTarget.value)} aria-label="device" />
          </div>
          <ErrorBanner error={paged.error} />
          {paged.items.length === 0 && !paged.loading ? (
            <Empty>No alerts.</Empty>
          ) : (
            <table class="table" data-testid="alerts">
              <thead>
                <tr>
                  <th>Severity</th>
                  <th>Device</th>
                  <th>User</th>
                  <th>App / action</th>
                  <th>Policy</th>
                  <th class="num">Count</th>
                  <th>Last seen</th>
                  <th>Status</th>
                </tr>
              </thead>
              <tbody>
                {paged.items.map((a) => (
                  <tr key={a.id} class={`clickable ${a.id === selectedId ? 'selected' : ''}`} data-testid="alert-row" data-device={a.device_id} onClick={() => navigate('/alerts', { id: a.id })}>
                    <td>
                      <Badge kind={a.severity}>{a.severity}</Badge>
                    </td>
                    <td class="mono">{a.device_id}</td>
                    <td>{names.user(a.user_id)}</td>
                    <td>
                      {a.app} / {a.action}
                    </td>
                    <td>{names.policy(a.policy_id)}</td>
                    <td class="num">{fmtNum(a.count)}</td>
                    <td class="nowrap" title={fmtTime(a.last_seen)}>
                      {fmtAgo(a.last_seen)}
                    </td>
                    <td>
                      <Badge kind={a.status}>{a.status}</Badge>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <Pager {...paged} />
        </Card>
        {detail && <AlertDetail alert={detail} onChanged={(a) => setFresh((m) => new Map(m).set(a.id, a))} />}
      </div>
    </div>
  );
}
