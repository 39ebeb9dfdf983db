/**
 * Policies and their rules. A rule allows or denies an app/action (`*` for any) for the roles
 * holding the policy (or one of them), and a deny can carry a remediation sent to the tower and an
 * escalation once a device repeats the violation. A rule takes effect on the next event.
 * Writers (owners, admins) create policies and rules and delete rules; readers only read.
 */
import { useState } from 'preact/hooks';
import { Badge, Card, Empty, ErrorBanner, Field } from '../../components/ui';
import { useConsole, useNames } from '../../lib/context';
import { describeError } from '../../lib/errors';
import { fmtDuration } from '../../lib/format';
import { useAsync } from '../../lib/hooks';
import { href, navigate, type Route } from '../../lib/router';
import type { CatalogItem, Effect, Policy, PolicyRule, RemediationType, Role, Severity } from '../../lib/types';

const REMEDIATIONS: RemediationType[] = ['block_app', 'block_device', 'quarantine', 'throttle', 'notify'];

function NewPolicy(props: { onCreated: (p: Policy) => void }) {
  const { api } = useConsole();
  const [name, setName] = useState('');
  const [severity, setSeverity] = useState<Severity>('medium');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const { policy } = await api.post<{ policy: Policy }>('/api/v1/policies', { name: name.trim(), severity });
      setName('');
      props.onCreated(policy);
    } catch (err) {
      setError(describeError(err));
    }
  };
  return (
    <form class="inline-form row" onSubmit={(e) => void submit(e)} data-testid="new-policy">
      <Field label="Policy name">
        <input required value={name} onInput={(e) => setName(e.currentTarget.value)} name="name" />
      </Field>
      <Field label="Severity of its denies">
        <select value={severity} onChange={(e) => setSeverity(e.currentTarget.value as Severity)} name="severity">
          {(['low', 'medium', 'high', 'critical'] as const).map((s) => (
            <option value={s} key={s}>
              {s}
            </option>
          ))}
        </select>
      </Field>
      <button type="submit" class="primary">
        Create policy
      </button>
      {error !== null && <p class="banner banner-error">{error}</p>}
    </form>
  );
}

function KeySelect(props: { items: CatalogItem[]; value: string; onChange: (v: string) => void; name: string }) {
  return (
    <select value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)} name={props.name} required>
      <option value="*">* (any)</option>
      {props.items.map((i) => (
        <option value={i.key} key={i.id}>
          {i.name} ({i.key})
        </option>
      ))}
    </select>
  );
}

function NewRule(props: { policy: Policy; roles: Role[]; onCreated: () => void }) {
  const { api } = useConsole();
  const apps = useAsync(() => api.get<{ apps: CatalogItem[] }>('/api/v1/apps', { sort: 'key', limit: 1000 }).then((r) => r.apps), []);
  const actions = useAsync(() => api.get<{ actions: CatalogItem[] }>('/api/v1/actions', { sort: 'key', limit: 1000 }).then((r) => r.actions), []);
  const [app, setApp] = useState('*');
  const [action, setAction] = useState('*');
  const [permission, setPermission] = useState<Effect>('deny');
  const [roleId, setRoleId] = useState('');
  const [remediation, setRemediation] = useState<'' | RemediationType>('');
  const [minutes, setMinutes] = useState(10);
  const [escalate, setEscalate] = useState(false);
  const [threshold, setThreshold] = useState(3);
  const [windowMin, setWindowMin] = useState(10);
  const [escType, setEscType] = useState<RemediationType>('block_device');
  const [escMinutes, setEscMinutes] = useState(60);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const deny = permission === 'deny';
    try {
      await api.post('/api/v1/policy-rules', {
        policy_id: props.policy.id,
        app,
        action,
        permission,
        ...(roleId !== '' && { role_id: roleId }),
        ...(deny && remediation !== '' && { remediation: { type: remediation, duration_s: Math.round(minutes * 60) } }),
        ...(deny &&
          escalate && {
            escalation: { threshold, window_s: Math.round(windowMin * 60), remediation: { type: escType, duration_s: Math.round(escMinutes * 60) } },
          }),
      });
      props.onCreated();
    } catch (err) {
      setError(describeError(err));
    }
  };

  return (
    <form class="inline-form" onSubmit={(e) => void submit(e)} data-testid="new-rule">
      <h3>New rule</h3>
      <div class="row">
        <Field label="App">
          <KeySelect items={apps.data ?? []} value={app} onChange={setApp} name="app" />
        </Field>
        <Field label="Action">
          <KeySelect items={actions.data ?? []} value={action} onChange={setAction} name="action" />
        </Field>
        <Field label="Decision">
          <select value={permission} onChange={(e) => setPermission(e.currentTarget.value as Effect)} name="permission">
            <option value="deny">deny</option>
            <option value="allow">allow</option>
          </select>
        </Field>
        <Field label="Only for role">
          <select value={roleId} onChange={(e) => setRoleId(e.currentTarget.value)} name="role_id">
            <option value="">every role holding the policy</option>
            {props.roles.map((r) => (
              <option value={r.id} key={r.id}>
                {r.name}
              </option>
            ))}
          </select>
        </Field>
      </div>
      {permission === 'deny' && (
        <div class="row">
          <Field label="Remediation at the tower" hint="sent on plans with auto-remediation">
            <select value={remediation} onChange={(e) => setRemediation(e.currentTarget.value as '' | RemediationType)} name="remediation">
              <option value="">none (alert only)</option>
              {REMEDIATIONS.map((r) => (
                <option value={r} key={r}>
                  {r.replace('_', ' ')}
                </option>
              ))}
            </select>
          </Field>
          {remediation !== '' && (
            <Field label="For (minutes)">
              <input type="number" min={1} value={minutes} onInput={(e) => setMinutes(Number(e.currentTarget.value))} name="remediation_minutes" />
            </Field>
          )}
          <label class="check">
            <input type="checkbox" checked={escalate} onChange={(e) => setEscalate(e.currentTarget.checked)} name="escalate" /> Escalate repeated violations
          </label>
        </div>
      )}
      {permission === 'deny' && escalate && (
        <div class="row">
          <Field label="After violations">
            <input type="number" min={2} max={1000} value={threshold} onInput={(e) => setThreshold(Number(e.currentTarget.value))} name="threshold" />
          </Field>
          <Field label="Within (minutes)">
            <input type="number" min={1} max={1440} value={windowMin} onInput={(e) => setWindowMin(Number(e.currentTarget.value))} name="window_minutes" />
          </Field>
          <Field label="Then">
            <select value={escType} onChange={(e) => setEscType(e.currentTarget.value as RemediationType)} name="escalation_type">
              {REMEDIATIONS.map((r) => (
                <option value={r} key={r}>
                  {r.replace('_', ' ')}
                </option>
              ))}
            </select>
          </Field>
          <Field label="For (minutes)">
            <input type="number" min={1} value={escMinutes} onInput={(e) => setEscMinutes(Number(e.currentTarget.value))} name="escalation_minutes" />
          </Field>
        </div>
      )}
      {error !== null && <p class="banner banner-error">{error}</p>}
      <button type="submit" class="primary" data-testid="create-rule">
        Add rule
      </button>
    </form>
  );
}

function Rules(props: { policy: Policy; roles: Role[] }) {
  const { api, can } = useConsole();
  const names = useNames();
  const writer = can('rules:write');
  const rules = useAsync(
    () => api.get<{ rules: PolicyRule[] }>('/api/v1/policy-rules', { policy_id: props.policy.id, limit: 1000 }).then((r) => r.rules),
    [props.policy.id],
  );
  const [error, setError] = useState<string | null>(null);
  const changed = () => {
    rules.reload();
    void names.load();
  };
  const remove = async (id: string) => {
    setError(null);
    try {
      await api.delete(`/api/v1/policy-rules/${encodeURIComponent(id)}`);
      changed();
    } catch (err) {
      setError(describeError(err));
    }
  };
  const roleName = (id: string | null) => (id === null ? 'all its roles' : (props.roles.find((r) => r.id === id)?.name ?? id));
  return (
    <Card title={`Rules of ${props.policy.name}`} testId="rules" actions={<Badge kind={props.policy.severity}>{props.policy.severity}</Badge>}>
      <ErrorBanner error={rules.error} />
      {error !== null && <p class="banner banner-error">{error}</p>}
      {(rules.data ?? []).length === 0 ? (
        <Empty>No rules yet.</Empty>
      ) : (
        <table class="table">
          <thead>
            <tr>
              <th>App</th>
              <th>Action</th>
              <th>Decision</th>
              <th>Applies to</th>
              <th>Remediation</th>
              <th>Escalation</th>
              {writer && <th />}
            </tr>
          </thead>
          <tbody>
            {(rules.data ?? []).map((r) => (
              <tr key={r.id} data-testid="rule-row" data-app={r.app} data-action={r.action}>
                <td>{r.app}</td>
                <td>{r.action}</td>
                <td>
                  <Badge kind={r.permission}>{r.permission}</Badge>
                </td>
                <td>{roleName(r.role_id)}</td>
                <td>{r.remediation ? `${r.remediation.type} · ${fmtDuration(r.remediation.duration_s)}` : '—'}</td>
                <td>
                  {r.escalation
                    ? `${r.escalation.threshold}× in ${fmtDuration(r.escalation.window_s)} → ${r.escalation.remediation.type} · ${fmtDuration(r.escalation.remediation.duration_s)}`
                    : '—'}
                </td>
                {writer && (
                  <td>
                    <button type="button" class="link danger" onClick={() => void remove(r.id)} data-testid="delete-rule">
                      delete
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {writer && <NewRule policy={props.policy} roles={props.roles} onCreated={changed} />}
    </Card>
  );
}

export function PolicyEditor(props: { route: Route }) {
  const { api, can } = useConsole();
  const names = useNames();
  const policies = useAsync(() => api.get<{ policies: Policy[] }>('/api/v1/policies', { limit: 1000 }).then((r) => r.policies), []);
  const roles = useAsync(
    () => (can('roles:read') ? api.get<{ roles: Role[] }>('/api/v1/roles', { sort: 'name', limit: 1000 }).then((r) => r.roles) : Promise.resolve([])),
    [],
  );
  const [creating, setCreating] = useState(false);
  const selectedId = props.route.params.get('id');
  const selected = (policies.data ?? []).find((p) => p.id === selectedId) ?? null;
  return (
    <div class="stack">
      <h1>Policies</h1>
      <div class="split">
        <Card
          title="Policies"
          actions={
            can('policies:write') && (
              <button type="button" onClick={() => setCreating((c) => !c)} data-testid="add-policy">
                {creating ? 'Cancel' : 'New policy'}
              </button>
            )
          }
        >
          {creating && (
            <NewPolicy
              onCreated={(p) => {
                setCreating(false);
                policies.reload();
                void names.load();
                navigate('/policies', { id: p.id });
              }}
            />
          )}
          <ErrorBanner error={policies.error} />
          <ul class="list" data-testid="policies">
            {(policies.data ?? []).map((p) => (
              <li key={p.id} class={p.id === selectedId ? 'selected' : ''}>
                <a href={href('/policies', { id: p.id })} data-testid="policy-link">
                  {p.name}
                </a>{' '}
                <Badge kind={p.severity}>{p.severity}</Badge>
              </li>
            ))}
          </ul>
          <p class="muted small">Policies apply to the roles that hold them (Users &amp; roles).</p>
        </Card>
        {selected ? <Rules policy={selected} roles={roles.data ?? []} /> : <Empty>Choose a policy to see its rules.</Empty>}
      </div>
    </div>
  );
}
