/**
 * Device users, their policy roles, and the policies each role holds: who is governed by what.
 * Writers (owners, admins) add users and roles and change assignments; readers see the same
 * without any of those controls.
 */
import { useState } from 'preact/hooks';
import { Card, Empty, ErrorBanner, Field, Pager } from '../../components/ui';
import { useConsole, useNames } from '../../lib/context';
import { describeError } from '../../lib/errors';
import { useAsync, usePaged } from '../../lib/hooks';
import { href, navigate, type Route } from '../../lib/router';
import type { Policy, Role, User } from '../../lib/types';

function CreateForm(props: { what: 'user' | 'role'; onCreated: () => void }) {
  const { api } = useConsole();
  const [name, setName] = useState('');
  const [extra, setExtra] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const body = props.what === 'user' ? { name: name.trim(), ...(extra.trim() && { email: extra.trim() }) } : { name: name.trim(), ...(extra.trim() && { description: extra.trim() }) };
      await api.post(props.what === 'user' ? '/api/v1/users' : '/api/v1/roles', body);
      setName('');
      setExtra('');
      props.onCreated();
    } catch (err) {
      setError(describeError(err));
    }
  };
  return (
    <form class="inline-form row" onSubmit={(e) => void submit(e)} data-testid={`new-${props.what}`}>
      <Field label="Name">
        <input required value={name} onInput={(e) => setName(e.currentTarget.value)} name="name" />
      </Field>
      <Field label={props.what === 'user' ? 'E-mail (optional)' : 'Description (optional)'}>
        <input value={extra} onInput={(e) => setExtra(e.currentTarget.value)} name={props.what === 'user' ? 'email' : 'description'} />
      </Field>
      <button type="submit" class="primary">
        Add {props.what}
      </button>
      {error !== null && <p class="banner banner-error">{error}</p>}
    </form>
  );
}

/** The items assigned to one record, with remove/assign controls for writers. */
function Assignments<T extends { id: string; name: string }>(props: {
  title: string;
  load: () => Promise<T[]>;
  options: T[];
  deps: unknown[];
  assign: (id: string) => Promise<unknown>;
  unassign: (id: string) => Promise<unknown>;
  writer: boolean;
  testId: string;
}) {
  const assigned = useAsync(props.load, props.deps);
  const [pick, setPick] = useState('');
  const [error, setError] = useState<string | null>(null);
  const act = async (fn: () => Promise<unknown>) => {
    setError(null);
    try {
      await fn();
      assigned.reload();
    } catch (err) {
      setError(describeError(err));
    }
  };
  const held = new Set((assigned.data ?? []).map((x) => x.id));
  return (
    <div data-testid={props.testId}>
      <h3>{props.title}</h3>
      <ErrorBanner error={assigned.error} />
      {(assigned.data ?? []).length === 0 ? (
        <Empty>None.</Empty>
      ) : (
        <ul class="chips">
          {(assigned.data ?? []).map((x) => (
            <li key={x.id}>
              {x.name}
              {props.writer && (
                <button type="button" class="link" aria-label={`remove ${x.name}`} onClick={() => void act(() => props.unassign(x.id))}>
                  ×
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {props.writer && (
        <form
          class="inline-form row"
          onSubmit={(e) => {
            e.preventDefault();
            if (pick !== '') void act(() => props.assign(pick));
          }}
        >
          <select value={pick} onChange={(e) => setPick(e.currentTarget.value)}>
            <option value="">choose…</option>
            {props.options
              .filter((o) => !held.has(o.id))
              .map((o) => (
                <option value={o.id} key={o.id}>
                  {o.name}
                </option>
              ))}
          </select>
          <button type="submit">Assign</button>
        </form>
      )}
      {error !== null && <p class="banner banner-error">{error}</p>}
    </div>
  );
}

export function People(props: { route: Route }) {
  const { api, can } = useConsole();
  const names = useNames();
  const [adding, setAdding] = useState<'user' | 'role' | null>(null);
  const userId = props.route.params.get('user');
  const roleId = props.route.params.get('role');
  const users = usePaged(
    (cursor) => api.get<{ users: User[]; next_cursor: string | null }>('/api/v1/users', { sort: 'name', limit: 50, cursor }).then((r) => ({ items: r.users, next_cursor: r.next_cursor })),
    [],
  );
  const roles = useAsync(() => api.get<{ roles: Role[] }>('/api/v1/roles', { sort: 'name', limit: 1000 }).then((r) => r.roles), []);
  const policies = useAsync(() => api.get<{ policies: Policy[] }>('/api/v1/policies', { limit: 1000 }).then((r) => r.policies), []);
  const writeUsers = can('users:write');
  const writeRoles = can('roles:write');

  return (
    <div class="stack">
      <h1>Users &amp; roles</h1>
      <div class="grid2">
        <Card
          title="Device users"
          actions={
            writeUsers && (
              <button type="button" onClick={() => setAdding(adding === 'user' ? null : 'user')} data-testid="add-user">
                {adding === 'user' ? 'Cancel' : 'Add user'}
              </button>
            )
          }
        >
          {adding === 'user' && (
            <CreateForm
              what="user"
              onCreated={() => {
                users.reload();
                void names.load();
              }}
            />
          )}
          <ErrorBanner error={users.error} />
          <ul class="list">
            {users.items.map((u) => (
              <li key={u.id} class={u.id === userId ? 'selected' : ''}>
                <a href={href('/people', { user: u.id })}>{u.name}</a> <span class="muted">{u.email ?? ''}</span>
              </li>
            ))}
          </ul>
          <Pager {...users} />
          {userId !== null && (
            <Assignments<Role>
              title={`Roles of ${names.user(userId)}`}
              testId="user-roles"
              load={() => api.get<{ roles: Role[] }>('/api/v1/users/roles', { user: userId }).then((r) => r.roles)}
              deps={[userId]}
              options={roles.data ?? []}
              writer={writeUsers}
              assign={(id) => api.post('/api/v1/users/roles/assign', { user_id: userId, role_id: id })}
              unassign={(id) => api.delete(`/api/v1/users/${encodeURIComponent(userId)}/roles/${encodeURIComponent(id)}`)}
            />
          )}
        </Card>
        <Card
          title="Roles"
          actions={
            writeRoles && (
              <button type="button" onClick={() => setAdding(adding === 'role' ? null : 'role')} data-testid="add-role">
                {adding === 'role' ? 'Cancel' : 'Add role'}
              </button>
            )
          }
        >
          {adding === 'role' && <CreateForm what="role" onCreated={roles.reload} />}
          <ErrorBanner error={roles.error} />
          <ul class="list">
            {(roles.data ?? []).map((r) => (
              <li key={r.id} class={r.id === roleId ? 'selected' : ''}>
                <a href={href('/people', { ...(userId !== null && { user: userId }), role: r.id })}>{r.name}</a>{' '}
                <span class="muted">{r.description ?? ''}</span>
              </li>
            ))}
          </ul>
          {roleId !== null && (
            <Assignments<Policy>
              title={`Policies of ${(roles.data ?? []).find((r) => r.id === roleId)?.name ?? 'the role'}`}
              testId="role-policies"
              load={() => api.get<{ policies: Policy[] }>('/api/v1/roles/policies', { role: roleId }).then((r) => r.policies)}
              deps={[roleId]}
              options={policies.data ?? []}
              writer={writeRoles}
              assign={(id) => api.post('/api/v1/roles/policies/assign', { role_id: roleId, policy_id: id })}
              unassign={(id) => api.delete(`/api/v1/roles/${encodeURIComponent(roleId)}/policies/${encodeURIComponent(id)}`)}
            />
          )}
          {roleId !== null && (
            <p class="small">
              <button type="button" class="link" onClick={() => navigate('/policies')}>
                Open the policy editor →
              </button>
            </p>
          )}
        </Card>
      </div>
    </div>
  );
}
