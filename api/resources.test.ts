import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let owner: Session;
let tenantId: string;

beforeAll(async () => {
  h = await startHarness();
  operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Acme'));
});
afterAll(async () => {
  await h.close();
});

const as = (s: Session) => (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
  h.app.inject({ method, url, headers: s.headers, ...(payload && { payload }) });

describe('tenants', () => {
  it('operators create tenants with an owner, list, get and patch them', async () => {
    const op = as(operator);
    const res = await op('POST', '/api/v1/tenants', {
      name: 'Globex',
      default_effect: 'deny',
      alert_window_s: 60,
      owner: { email: 'owner@globex.test', password: PASSWORD },
    });
    expect(res.statusCode).toBe(201);
    const body = json<{ tenant: { id: string }; owner: Record<string, unknown> }>(res);
    expect(body.tenant).toMatchObject({ name: 'Globex', default_effect: 'deny', alert_window_s: 60 });
    expect(body.owner).toMatchObject({ email: 'owner@globex.test', console_role: 'owner', tenant_id: body.tenant.id });
    expect(res.body).not.toContain('password');

    const list = json<{ tenants: Array<{ id: string }> }>(await op('GET', '/api/v1/tenants')).tenants;
    expect(list.map((t) => t.id)).toContain(body.tenant.id);
    expect(json(await op('PATCH', `/api/v1/tenants/${body.tenant.id}`, { name: 'Globex Corp' })).tenant).toMatchObject({
      name: 'Globex Corp',
    });
    expect((await op('GET', '/api/v1/tenants/nope')).statusCode).toBe(404);
  });

  it('an owner e-mail another tenant uses is accepted like a fresh one (e-mails are unique per tenant)', async () => {
    const op = as(operator);
    const before = json<{ tenants: unknown[] }>(await op('GET', '/api/v1/tenants?limit=1000')).tenants.length;
    const res = await op('POST', '/api/v1/tenants', { name: 'Dup', owner: { email: 'owner@acme.test', password: 'the other tenant’s password' } });
    expect(res.statusCode, res.body).toBe(201);
    const created = json<{ tenant: { id: string }; owner: { tenant_id: string } }>(res);
    expect(created.owner.tenant_id).toBe(created.tenant.id);
    const after = json<{ tenants: unknown[] }>(await op('GET', '/api/v1/tenants?limit=1000')).tenants.length;
    expect(after).toBe(before + 1);
    // Each account signs in with its own password.
    const signIn = (password: string) => h.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: 'owner@acme.test', password } });
    expect((await signIn('the other tenant’s password')).statusCode).toBe(200);
    expect((await signIn(PASSWORD)).statusCode).toBe(200);
  });
});

describe('device users, roles, policies and their assignments', () => {
  it('CRUD round trip with single and list envelopes', async () => {
    const call = as(owner);
    const { user } = await post<{ user: { id: string } }>(h.app, owner, '/api/v1/users', { name: 'Ada', email: 'ada@acme.test' });
    expect(json(await call('GET', `/api/v1/users/${user.id}`)).user).toMatchObject({ name: 'Ada', tenant_id: tenantId });
    expect(json(await call('PATCH', `/api/v1/users/${user.id}`, { email: null })).user).toMatchObject({ email: null });
    const list = json<{ users: unknown[]; next_cursor: string | null }>(await call('GET', '/api/v1/users'));
    expect(list.users).toHaveLength(1);
    expect(list.next_cursor).toBeNull();
    expect((await call('DELETE', `/api/v1/users/${user.id}`)).statusCode).toBe(204);
    expect((await call('GET', `/api/v1/users/${user.id}`)).statusCode).toBe(404);
  });

  it('assignments and the policies reaching a user, deduplicated', async () => {
    const call = as(owner);
    const { user } = await post<{ user: { id: string } }>(h.app, owner, '/api/v1/users', { name: 'Grace' });
    const r1 = (await post<{ role: { id: string } }>(h.app, owner, '/api/v1/roles', { name: 'eng' })).role;
    const r2 = (await post<{ role: { id: string } }>(h.app, owner, '/api/v1/roles', { name: 'ops' })).role;
    const p1 = (await post<{ policy: { id: string } }>(h.app, owner, '/api/v1/policies', { name: 'p1', severity: 'critical' })).policy;
    const p2 = (await post<{ policy: { id: string } }>(h.app, owner, '/api/v1/policies', { name: 'p2' })).policy;

    expect(await post(h.app, owner, '/api/v1/users/roles/assign', { user_id: user.id, role_id: r1.id }, 200)).toEqual({
      user_id: user.id,
      role_id: r1.id,
      assigned: true,
    });
    expect((await post(h.app, owner, '/api/v1/users/roles/assign', { user_id: user.id, role_id: r1.id }, 200)).assigned).toBe(false);
    await post(h.app, owner, '/api/v1/users/roles/assign', { user_id: user.id, role_id: r2.id }, 200);
    await post(h.app, owner, '/api/v1/roles/policies/assign', { role_id: r1.id, policy_id: p1.id }, 200);
    await post(h.app, owner, '/api/v1/roles/policies/assign', { role_id: r2.id, policy_id: p1.id }, 200);
    await post(h.app, owner, '/api/v1/roles/policies/assign', { role_id: r2.id, policy_id: p2.id }, 200);

    const roles = json<{ user_id: string; roles: Array<{ id: string }> }>(await call('GET', `/api/v1/users/roles?user=${user.id}`));
    expect(roles.roles.map((r) => r.id).sort()).toEqual([r1.id, r2.id].sort());
    const byUser = json<{ user_id: string; policies: Array<{ id: string }> }>(await call('GET', `/api/v1/policies?user_id=${user.id}`));
    expect(byUser.user_id).toBe(user.id);
    expect(byUser.policies.map((p) => p.id).sort()).toEqual([p1.id, p2.id].sort());
    const byRole = json<{ role_id: string; policies: Array<{ id: string }> }>(await call('GET', `/api/v1/roles/policies?role=${r2.id}`));
    expect(byRole.policies).toHaveLength(2);
    const byRoleQuery = json<{ role_id: string; policies: unknown[] }>(await call('GET', `/api/v1/policies?role_id=${r1.id}`));
    expect(byRoleQuery).toMatchObject({ role_id: r1.id, policies: [expect.objectContaining({ id: p1.id, severity: 'critical' })] });
    expect((await call('GET', `/api/v1/policies?role_id=${r1.id}&user_id=${user.id}`)).statusCode).toBe(400);

    expect((await call('DELETE', `/api/v1/users/${user.id}/roles/${r1.id}`)).statusCode).toBe(204);
    expect((await call('DELETE', `/api/v1/users/${user.id}/roles/${r1.id}`)).statusCode).toBe(404);
    expect((await call('DELETE', `/api/v1/roles/${r2.id}/policies/${p2.id}`)).statusCode).toBe(204);
    const after = json<{ policies: Array<{ id: string }> }>(await call('GET', `/api/v1/policies?user_id=${user.id}`));
    expect(after.policies.map((p) => p.id)).toEqual([p1.id]);
  });
});

describe('devices and pagination', () => {
  it('pages by cursor and by page number', async () => {
    const call = as(owner);
    for (let i = 0; i < 5; i++) await post(h.app, owner, '/api/v1/devices', { id: `dev-page-${i}`, name: `d${i}` });
    const p1 = json<{ devices: Array<{ id: string }>; next_cursor: string }>(await call('GET', '/api/v1/devices?limit=2'));
    expect(p1.devices.map((d) => d.id)).toEqual(['dev-page-0', 'dev-page-1']);
    const p2 = json<{ devices: Array<{ id: string }> }>(await call('GET', `/api/v1/devices?limit=2&cursor=${encodeURIComponent(p1.next_cursor)}`));
    expect(p2.devices.map((d) => d.id)).toEqual(['dev-page-2', 'dev-page-3']);
    const page3 = json<{ devices: Array<{ id: string }>; next_cursor: string | null }>(await call('GET', '/api/v1/devices?limit=2&page=3'));
    expect(page3.devices.map((d) => d.id)).toEqual(['dev-page-4']);
    expect(page3.next_cursor).toBeNull();
    const beyond = json<{ devices: unknown[] }>(await call('GET', '/api/v1/devices?limit=2&page=9'));
    expect(beyond.devices).toEqual([]);
  });

  it('generated ids, user filter, duplicate id conflict', async () => {
    const call = as(owner);
    const { user } = await post<{ user: { id: string } }>(h.app, owner, '/api/v1/users', { name: 'Owner of phone' });
    const { device } = await post<{ device: { id: string } }>(h.app, owner, '/api/v1/devices', { name: 'gen', user_id: user.id, os: 'ios' });
    expect(device.id).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    const filtered = json<{ devices: Array<{ id: string }> }>(await call('GET', `/api/v1/devices?user_id=${user.id}`));
    expect(filtered.devices.map((d) => d.id)).toEqual([device.id]);
    expect((await call('POST', '/api/v1/devices', { id: device.id, name: 'dup' })).statusCode).toBe(409);
  });
});

describe('usage, alerts and dashboard', () => {
  it('filters usage and alerts; metrics reflect them', async () => {
    const call = as(owner);
    await post(h.app, operator, '/api/v1/towers', { id: 'twr-u', name: 'U' });
    await post(h.app, owner, '/api/v1/apps', { key: 'mail', name: 'Mail' });
    await post(h.app, owner, '/api/v1/actions', { key: 'send', name: 'Send' });
    const { policy } = await post<{ policy: { id: string } }>(h.app, owner, '/api/v1/policies', { name: 'deny mail' });
    const { rule } = await post<{ rule: { id: string } }>(h.app, owner, '/api/v1/policy-rules', {
      policy_id: policy.id,
      app: 'mail',
      action: 'send',
      permission: 'deny',
    });
    const { device } = await post<{ device: { id: string } }>(h.app, owner, '/api/v1/devices', { id: 'dev-usage', name: 'u' });
    await seedUsage(h.store, tenantId, 'twr-u', [
      { device_id: device.id, app: 'mail', action: 'send', effect: 'deny', rule_id: rule.id, policy_id: policy.id },
      { device_id: device.id, app: 'mail', action: 'read', effect: 'allow' },
      { device_id: 'dev-page-0', app: 'mail', action: 'read', effect: 'allow' },
    ]);

    const denied = json<{ usage: Array<{ effect: string; rule_id: string }> }>(await call('GET', '/api/v1/app-usage?effect=deny'));
    expect(denied.usage).toEqual([expect.objectContaining({ effect: 'deny', rule_id: rule.id })]);
    const ofDevice = json<{ usage: unknown[] }>(await call('GET', `/api/v1/app-usage?device_id=${device.id}&tower_id=twr-u`));
    expect(ofDevice.usage).toHaveLength(2);

    const alerts = json<{ alerts: Array<{ id: string; status: string }> }>(await call('GET', '/api/v1/dashboard/alerts?status=open'));
    expect(alerts.alerts).toHaveLength(1);
    expect(json(await call('GET', `/api/v1/dashboard/alerts/${alerts.alerts[0]!.id}`)).alert).toMatchObject({ rule_id: rule.id });
    expect(json<{ alerts: unknown[] }>(await call('GET', '/api/v1/dashboard/alerts?status=resolved')).alerts).toEqual([]);

    const { metrics } = json<{ metrics: Record<string, number> }>(await call('GET', '/api/v1/dashboard/metrics'));
    expect(metrics).toMatchObject({ usage_total: 3, usage_denied: 1, usage_allowed: 2, alerts_open: 1 });
  });
});
