/**
 * Devices: the registered ones (and whose they are), and the ones towers saw on the tenant's
 * traffic that no registration claims. Approving a discovered device registers it under its
 * reported id, optionally for a user; from then on its usage is decided by that user's policies.
 */
import { Fragment } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { ExportMenu } from '../../components/export-menu';
import { Card, Empty, ErrorBanner, Field, Pager } from '../../components/ui';
import { useConsole, useNames } from '../../lib/context';
import { describeError } from '../../lib/errors';
import { fmtAgo, fmtNum, fmtTime } from '../../lib/format';
import { usePaged } from '../../lib/hooks';
import type { Route } from '../../lib/router';
import type { Device, DiscoveredDevice, User } from '../../lib/types';

function UserSelect(props: { value: string; onChange: (id: string) => void; name?: string }) {
  const names = useNames();
  const users = useMemo(() => [...names.names.users.values()].sort((a: User, b: User) => a.name.localeCompare(b.name)), [names.names]);
  return (
    <select value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)} name={props.name ?? 'user_id'}>
      <option value="">no user</option>
      {users.map((u) => (
        <option value={u.id} key={u.id}>
          {u.name}
        </option>
      ))}
    </select>
  );
}

function ApproveForm(props: { device: DiscoveredDevice; onDone: () => void; onCancel: () => void }) {
  const { api } = useConsole();
  const [name, setName] = useState(props.device.device_id);
  const [userId, setUserId] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await api.post('/api/v1/devices', { id: props.device.device_id, name: name.trim(), ...(userId !== '' && { user_id: userId }) });
      props.onDone();
    } catch (err) {
      setError(describeError(err));
    }
  };
  return (
    <form class="inline-form" onSubmit={(e) => void submit(e)} data-testid="approve-form">
      <Field label="Name">
        <input required value={name} onInput={(e) => setName(e.currentTarget.value)} name="name" />
      </Field>
      <Field label="Assign to">
        <UserSelect value={userId} onChange={setUserId} />
      </Field>
      {error !== null && <p class="banner banner-error">{error}</p>}
      <div class="button-row">
        <button type="submit" class="primary" data-testid="approve-submit">
          Register device
        </button>
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function Discovered(props: { onApproved: () => void }) {
  const { api, can } = useConsole();
  const [approving, setApproving] = useState<string | null>(null);
  const paged = usePaged(
    (cursor) =>
      api
        .get<{ devices: DiscoveredDevice[]; next_cursor: string | null }>('/api/v1/devices/discovered', { limit: 50, cursor })
        .then((r) => ({ items: r.devices, next_cursor: r.next_cursor })),
    [],
  );
  const writer = can('devices:write');
  return (
    <Card title="Discovered on your traffic" testId="discovered" actions={<button type="button" onClick={paged.reload}>Refresh</button>}>
      <ErrorBanner error={paged.error} />
      {paged.items.length === 0 && !paged.loading ? (
        <Empty>No unregistered devices seen.</Empty>
      ) : (
        <table class="table">
          <thead>
            <tr>
              <th>Device id</th>
              <th>Tower</th>
              <th>First seen</th>
              <th>Last seen</th>
              <th class="num">Events</th>
              {writer && <th />}
            </tr>
          </thead>
          <tbody>
            {paged.items.map((d) => (
              <Fragment key={d.id}>
                <tr data-testid="discovered-row" data-device={d.device_id}>
                  <td class="mono">{d.device_id}</td>
                  <td>{d.tower_id}</td>
                  <td>{fmtTime(d.first_seen)}</td>
                  <td>{fmtAgo(d.last_seen)}</td>
                  <td class="num">{fmtNum(d.count)}</td>
                  {writer && (
                    <td>
                      <button type="button" onClick={() => setApproving(d.id)} data-testid="approve">
                        Approve…
                      </button>
                    </td>
                  )}
                </tr>
                {approving === d.id && (
                  <tr>
                    <td colSpan={6}>
                      <ApproveForm
                        device={d}
                        onCancel={() => setApproving(null)}
                        onDone={() => {
                          setApproving(null);
                          paged.reload();
                          props.onApproved();
                        }}
                      />
                    </td>
                  </tr>
                )}
              </Fragment>
            ))}
          </tbody>
        </table>
      )}
      <Pager {...paged} />
    </Card>
  );
}

function Registered(props: { version: number }) {
  const { api, can } = useConsole();
  const names = useNames();
  const [userFilter, setUserFilter] = useState('');
  const [error, setError] = useState<string | null>(null);
  const paged = usePaged(
    (cursor) =>
      api
        .get<{ devices: Device[]; next_cursor: string | null }>('/api/v1/devices', { user_id: userFilter, sort: '-created_at', limit: 50, cursor })
        .then((r) => ({ items: r.devices, next_cursor: r.next_cursor })),
    [userFilter, props.version],
  );
  const writer = can('devices:write');
  const assign = async (device: Device, userId: string) => {
    setError(null);
    try {
      const { device: updated } = await api.patch<{ device: Device }>(`/api/v1/devices/${encodeURIComponent(device.id)}`, { user_id: userId === '' ? null : userId });
      paged.setItems((items) => items.map((d) => (d.id === updated.id ? updated : d)));
    } catch (err) {
      setError(describeError(err));
    }
  };
  return (
    <Card title="Registered" testId="registered" actions={<ExportMenu path="/api/v1/devices" query={{ user_id: userFilter }} name="devices" />}>
      <div class="filters">
        <UserSelect value={userFilter} onChange={setUserFilter} name="user_filter" />
      </div>
      <ErrorBanner error={paged.error} />
      {error !== null && <p class="banner banner-error">{error}</p>}
      {paged.items.length === 0 && !paged.loading ? (
        <Empty>No devices.</Empty>
      ) : (
        <table class="table">
          <thead>
            <tr>
              <th>Device id</th>
              <th>Name</th>
              <th>OS</th>
              <th>User</th>
              <th>Registered</th>
            </tr>
          </thead>
          <tbody>
            {paged.items.map((d) => (
              <tr key={d.id} data-testid="device-row" data-device={d.id}>
                <td class="mono">{d.id}</td>
                <td>{d.name}</td>
                <td>{d.os ?? '—'}</td>
                <td>{writer ? <UserSelect value={d.user_id ?? ''} onChange={(u) => void assign(d, u)} /> : names.user(d.user_id)}</td>
                <td>{fmtTime(d.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager {...paged} />
    </Card>
  );
}

export function Devices(_props: { route: Route }) {
  const { can } = useConsole();
  const [version, setVersion] = useState(0);
  return (
    <div class="stack">
      <h1>Devices</h1>
      {can('discovered:read') && <Discovered onApproved={() => setVersion((v) => v + 1)} />}
      <Registered version={version} />
    </div>
  );
}
