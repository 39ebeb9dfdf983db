/**
 * The audit trail: who changed what, when and from where, every refused attempt and every command
 * step. Tenant owners and admins see their tenant's; operators the platform's.
 */
import { useState } from 'preact/hooks';
import { ExportMenu } from '../../components/export-menu';
import { Card, Empty, ErrorBanner, Pager } from '../../components/ui';
import { useConsole } from '../../lib/context';
import { fmtTime } from '../../lib/format';
import { usePaged } from '../../lib/hooks';
import type { Route } from '../../lib/router';
import type { AuditRecord } from '../../lib/types';

export function Audit(_props: { route: Route }) {
  const { api } = useConsole();
  const [action, setAction] = useState('');
  const [resourceType, setResourceType] = useState('');
  const query = { action: action.trim(), resource_type: resourceType.trim() };
  const paged = usePaged(
    (cursor) =>
      api.get<{ records: AuditRecord[]; next_cursor: string | null }>('/api/v1/audit', { ...query, limit: 50, cursor }).then((r) => ({ items: r.records, next_cursor: r.next_cursor })),
    [action, resourceType],
  );
  return (
    <div class="stack">
      <h1>Audit log</h1>
      <Card actions={<ExportMenu path="/api/v1/audit" query={query} name="audit" />}>
        <div class="filters">
          <input placeholder="action (e.g. devices.create)" value={action} onInput={(e) => setAction(e.currentTarget.value)} aria-label="action" />
          <input placeholder="resource type" value={resourceType} onInput={(e) => setResourceType(e.currentTarget.value)} aria-label="resource type" />
        </div>
        <ErrorBanner error={paged.error} />
        {paged.items.length === 0 && !paged.loading ? (
          <Empty>No records.</Empty>
        ) : (
          <table class="table" data-testid="audit">
            <thead>
              <tr>
                <th>When</th>
                <th>Who</th>
                <th>Action</th>
                <th>Resource</th>
                <th>Status</th>
                <th>From</th>
              </tr>
            </thead>
            <tbody>
              {paged.items.map((r) => (
                <tr key={r.id} class={r.status_code !== null && r.status_code >= 400 ? 'row-deny' : ''}>
                  <td class="nowrap">{fmtTime(r.at)}</td>
                  <td>{r.actor_label ?? r.actor_kind}</td>
                  <td class="mono">{r.action}</td>
                  <td>
                    {r.resource_type} <span class="muted mono">{r.resource_id ?? ''}</span>
                  </td>
                  <td>{r.status_code ?? '—'}</td>
                  <td class="mono">{r.ip ?? '—'}</td>
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
