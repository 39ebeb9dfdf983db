/**
 * Remediation commands and their lifecycle: the list (paged, by status and device), kept current by
 * the alerts feed's `remediation` messages, and one command's steps (pending → delivered →
 * applied | failed, or expired, with each resend), refreshed whenever the command moves.
 */
import { useCallback, useState } from 'preact/hooks';
import { Badge, Card, Empty, ErrorBanner, Pager } from '../../components/ui';
import { useConsole, useLive } from '../../lib/context';
import { fmtAgo, fmtDuration, fmtTime } from '../../lib/format';
import { useAsync, usePaged } from '../../lib/hooks';
import { href, navigate, type Route } from '../../lib/router';
import type { CommandEvent, CommandRecord, CommandStatus } from '../../lib/types';
import { RemediationForm } from './remediation-form';

export function CommandList(props: { commands: CommandRecord[]; selectedId?: string | null }) {
  return (
    <table class="table" data-testid="commands">
      <thead>
        <tr>
          <th>Action</th>
          <th>Device</th>
          <th>Tower</th>
          <th>Source</th>
          <th>Status</th>
          <th>Updated</th>
        </tr>
      </thead>
      <tbody>
        {props.commands.map((c) => (
          <tr key={c.id} class={`clickable ${c.id === props.selectedId ? 'selected' : ''}`} onClick={() => navigate('/remediations', { id: c.id })} data-testid="command-row" data-command={c.id}>
            <td>
              {c.type.replace('_', ' ')}
              {c.app !== null && <span class="muted"> {c.app}</span>}
              {c.duration_s !== null && <span class="muted"> · {fmtDuration(c.duration_s)}</span>}
            </td>
            <td class="mono">{c.device_id}</td>
            <td>{c.tower_id}</td>
            <td>{c.source}</td>
            <td>
              <Badge kind={c.status} testId="command-row-status">
                {c.status}
              </Badge>
            </td>
            <td class="nowrap" title={fmtTime(c.updated_at)}>
              {fmtAgo(c.updated_at)}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function CommandDetail(props: { id: string; version: number }) {
  const { api } = useConsole();
  const detail = useAsync(
    () => api.get<{ command: CommandRecord; events: CommandEvent[] }>(`/api/v1/commands/${encodeURIComponent(props.id)}`),
    [props.id, props.version],
  );
  const c = detail.data?.command;
  return (
    <Card title="Command" testId="command-detail" actions={<a href={href('/remediations')}>close</a>}>
      <ErrorBanner error={detail.error} />
      {c && (
        <>
          <dl class="facts">
            <dt>Status</dt>
            <dd>
              <Badge kind={c.status} testId="command-status">
                {c.status}
              </Badge>
            </dd>
            <dt>Action</dt>
            <dd>
              {c.type} {c.app ?? ''} {c.duration_s !== null ? `for ${fmtDuration(c.duration_s)}` : ''}
            </dd>
            <dt>Device</dt>
            <dd class="mono">{c.device_id}</dd>
            <dt>Tower</dt>
            <dd>{c.tower_id}</dd>
            <dt>Source</dt>
            <dd>{c.source}</dd>
            <dt>Attempts</dt>
            <dd>{c.attempts}</dd>
            <dt>Expires</dt>
            <dd>{fmtTime(c.expires_at)}</dd>
            {c.reason !== null && (
              <>
                <dt>Reason</dt>
                <dd>{c.reason}</dd>
              </>
            )}
            {c.ack_reason !== null && (
              <>
                <dt>Tower said</dt>
                <dd>{c.ack_reason}</dd>
              </>
            )}
          </dl>
          <h3>Lifecycle</h3>
          <ol class="timeline" data-testid="command-steps">
            {(detail.data?.events ?? []).map((e) => (
              <li key={e.id} class={`step step-${e.kind}`}>
                <Badge kind={e.kind}>{e.kind}</Badge> <span class="nowrap">{fmtTime(e.at)}</span> {e.detail !== null && <span class="muted">{e.detail}</span>}
              </li>
            ))}
          </ol>
        </>
      )}
    </Card>
  );
}

export function Remediations(props: { route: Route }) {
  const { api, can } = useConsole();
  const [status, setStatus] = useState<'' | CommandStatus>('');
  const [device, setDevice] = useState('');
  const [creating, setCreating] = useState(false);
  const selectedId = props.route.params.get('id');
  const [version, setVersion] = useState(0);
  const paged = usePaged(
    (cursor) =>
      api
        .get<{ remedial_actions: CommandRecord[]; next_cursor: string | null }>('/api/v1/remedial-actions', {
          status,
          device_id: device.trim(),
          sort: '-created_at',
          limit: 50,
          cursor,
        })
        .then((r) => ({ items: r.remedial_actions, next_cursor: r.next_cursor })),
    [status, device],
  );

  useLive(
    useCallback(
      (changes) => {
        if (changes.resumed) {
          paged.reload();
          setVersion((v) => v + 1);
        }
        if (changes.remediations.length === 0) return;
        const byId = new Map(changes.remediations.map((c) => [c.id, c]));
        paged.setItems((items) => {
          const known = new Set(items.map((c) => c.id));
          const added =
            paged.page === 1
              ? changes.remediations.filter((c) => !known.has(c.id) && (status === '' || c.status === status) && (device.trim() === '' || c.device_id === device.trim()))
              : [];
          return [...added, ...items.map((c) => byId.get(c.id) ?? c)].slice(0, 50);
        });
        if (selectedId !== null && byId.has(selectedId)) setVersion((v) => v + 1);
      },
      [status, device, paged.page, selectedId],
    ),
  );

  return (
    <div class="stack">
      <h1>Remediations</h1>
      <div class={selectedId ? 'split' : ''}>
        <Card
          actions={
            can('remediation:write') && (
              <button type="button" onClick={() => setCreating((c) => !c)} data-testid="new-remediation">
                {creating ? 'Cancel' : 'New remediation'}
              </button>
            )
          }
        >
          {creating && (
            <RemediationForm
              onIssued={(c) => {
                setCreating(false);
                paged.reload();
                navigate('/remediations', { id: c.id });
              }}
            />
          )}
          <div class="filters">
            <select value={status} onChange={(e) => setStatus(e.currentTarget.value as '' | CommandStatus)} aria-label="status">
              <option value="">any status</option>
              {(['pending', 'delivered', 'applied', 'failed', 'expired'] as const).map((s) => (
                <option value={s} key={s}>
                  {s}
                </option>
              ))}
            </select>
            <input placeholder="device" value={device} onInput={(e) => setDevice(e.currentTarget.value)} aria-label="device" />
          </div>
          <ErrorBanner error={paged.error} />
          {paged.items.length === 0 && !paged.loading ? <Empty>No remediations.</Empty> : <CommandList commands={paged.items} selectedId={selectedId} />}
          <Pager {...paged} />
        </Card>
        {selectedId && <CommandDetail id={selectedId} version={version} />}
      </div>
    </div>
  );
}
