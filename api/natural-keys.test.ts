/**
 * Admin ergonomics over the real API: names are unique where people use them as names (a setup
 * script run twice does not duplicate anything), and every route that takes a device user, role
 * or policy also takes its e-mail or name; the enterprises list; the metrics window; usage
 * filters by app and time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Device, Policy, PolicyRule, Role, Tenant, UsageRecord, User } from '../shared/domain.js';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, createTenant, json, login, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let owner: Session;
let tenantId: string;
let otherOwner: Session;
let otherTenant: string;

async function call(session: Session, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) {
  const res = await h.app.inject({ method, url, headers: session.headers, ...(payload !== undefined && { payload }) });
  return { status: res.statusCode, body: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {} };
}

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 100_000 });
  operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Names'));
  ({ owner: otherOwner, tenantId: otherTenant } = await createTenant(h.app, operator, 'Others'));
});
afterAll(async () => {
  await h.close();
});

describe('unique names', () => {
  it('a setup script run twice creates nothing twice: 409 naming the field', async () => {
    const setup = async () => [
      await call(owner, 'POST', '/api/v1/roles', { name: 'Field Engineer' }),
      await call(owner, 'POST', '/api/v1/policies', { name: 'No uploads', severity: 'high' }),
      await call(owner, 'POST', '/api/v1/users', { name: 'Ada', email: 'ada@names.test' }),
      await call(owner, 'POST', '/api/v1/apps', { key: 'dropbox', name: 'Dropbox' }),
    ];
    expect((await setup()).map((r) => r.status)).toEqual([201, 201, 201, 201]);
    const second = await setup();
    expect(second.map((r) => r.status)).toEqual([409, 409, 409, 409]);
    expect(second.map((r) => (r.body.error as { issues: Array<{ field: string }> }).issues[0]!.field)).toEqual(['body.name', 'body.name', 'body.email', 'body.key']);
    expect((await call(owner, 'POST', '/api/v1/roles', { name: ' field   ENGINEER ' })).status).toBe(409);
    expect((await call(otherOwner, 'POST', '/api/v1/roles', { name: 'Field Engineer' })).status).toBe(201);
    const roles = (await call(owner, 'GET', '/api/v1/roles')).body.roles as Role[];
    expect(roles.map((r) => r.name)).toEqual(['Field Engineer']);
  });

  it('renaming onto a taken name is a 409 too', async () => {
    await call(owner, 'POST', '/api/v1/roles', { name: 'rename-a' });
    const b = (await call(owner, 'POST', '/api/v1/roles', { name: 'rename-b' })).body.role as Role;
    const res = await call(owner, 'PATCH', `/api/v1/roles/${b.id}`, { name: 'RENAME-A' });
    expect(res.status).toBe(409);
  });
});

describe('natural keys wherever a user, role or policy is taken', () => {
  it('assigns, reads and removes by e-mail and names, and answers with the ids', async () => {
    const ada = (await call(owner, 'GET', '/api/v1/users/ADA@names.test')).body.user as User;
    expect(ada.email).toBe('ada@names.test');
    const role = (await call(owner, 'GET', '/api/v1/roles/field%20engineer')).body.role as Role;
    const policy = (await call(owner, 'GET', '/api/v1/policies/No%20uploads')).body.policy as Policy;
    expect([role.name, policy.name]).toEqual(['Field Engineer', 'No uploads']);

    const assigned = await call(owner, 'POST', '/api/v1/users/roles/assign', { user_id: 'ada@names.test', role_id: 'Field Engineer' });
    expect(assigned.body).toEqual({ user_id: ada.id, role_id: role.id, assigned: true });
    expect((await call(owner, 'POST', '/api/v1/roles/policies/assign', { role_id: 'field engineer', policy_id: 'no uploads' })).body).toMatchObject({ assigned: true });
    expect(((await call(owner, 'GET', '/api/v1/users/roles?user=ada%40names.test')).body.roles as Role[]).map((r) => r.id)).toEqual([role.id]);
    expect(((await call(owner, 'GET', '/api/v1/roles/policies?role=Field%20Engineer')).body.policies as Policy[]).map((p) => p.id)).toEqual([policy.id]);
    expect(((await call(owner, 'GET', '/api/v1/policies?user_id=ada%40names.test')).body.policies as Policy[]).map((p) => p.id)).toEqual([policy.id]);

    await call(owner, 'POST', '/api/v1/actions', { key: 'upload', name: 'Upload' });
    const rule = await call(owner, 'POST', '/api/v1/policy-rules', { policy_id: 'No uploads', role_id: 'Field Engineer', app: 'dropbox', action: 'upload', permission: 'deny' });
    expect(rule.status).toBe(201);
    expect(rule.body.rule).toMatchObject({ policy_id: policy.id, role_id: role.id } satisfies Partial<PolicyRule>);
    expect(((await call(owner, 'GET', '/api/v1/policy-rules?policy_id=no%20uploads')).body.rules as PolicyRule[]).map((r) => r.policy_id)).toEqual([policy.id]);

    const device = await call(owner, 'POST', '/api/v1/devices', { id: 'nk-phone', name: 'phone', user_id: 'Ada@Names.test' });
    expect((device.body.device as Device).user_id).toBe(ada.id);
    expect(((await call(owner, 'GET', '/api/v1/devices?user_id=ada%40names.test')).body.devices as Device[]).map((d) => d.id)).toEqual(['nk-phone']);

    expect((await call(owner, 'DELETE', `/api/v1/users/ada%40names.test/roles/Field%20Engineer`)).status).toBe(204);
    expect((await call(owner, 'DELETE', '/api/v1/roles/field%20engineer/policies/NO%20UPLOADS')).status).toBe(204);
    expect((await call(owner, 'PATCH', '/api/v1/users/ada%40names.test', { name: 'Ada L.' })).body.user).toMatchObject({ id: ada.id, name: 'Ada L.' });
  });

  it('another tenant’s names and e-mails are simply not found', async () => {
    expect((await call(otherOwner, 'GET', '/api/v1/users/ada%40names.test')).status).toBe(404);
    expect((await call(otherOwner, 'GET', '/api/v1/policies/No%20uploads')).status).toBe(404);
    const res = await call(otherOwner, 'POST', '/api/v1/users/roles/assign', { user_id: 'ada@names.test', role_id: 'Field Engineer' });
    expect(res).toMatchObject({ status: 404, body: { error: { issues: [{ field: 'body.user_id' }] } } });
    expect((await call(otherOwner, 'GET', '/api/v1/users/roles?user=ada%40names.test')).status).toBe(404);
  });
});

describe('GET /enterprises', () => {
  it('operators see every tenant (paged, sortable); a tenant user sees its own', async () => {
    const all = (await call(operator, 'GET', '/api/v1/enterprises?sort=name&limit=1')).body;
    expect((all.enterprises as Tenant[]).map((t) => t.name)).toEqual(['Names']);
    const rest = (await call(operator, 'GET', `/api/v1/enterprises?sort=name&cursor=${all.next_cursor as string}`)).body;
    expect((rest.enterprises as Tenant[]).map((t) => t.name)).toEqual(['Others']);
    const own = (await call(owner, 'GET', '/api/v1/enterprises')).body;
    expect(own).toEqual({ enterprises: [expect.objectContaining({ id: tenantId })], next_cursor: null });
    expect(((await call(otherOwner, 'GET', '/api/v1/enterprises?page=2')).body.enterprises as Tenant[])).toEqual([]);
    expect(JSON.stringify((await call(otherOwner, 'GET', '/api/v1/enterprises')).body)).not.toContain(tenantId);
    expect(((await call(otherOwner, 'GET', '/api/v1/enterprises')).body.enterprises as Tenant[])[0]!.id).toBe(otherTenant);
  });
});

describe('time windows and app filters', () => {
  it('filters usage by app and an event-time window, and counts a metrics window', async () => {
    const t0 = h.clock.now;
    await seedUsage(h.store, tenantId, 'twr-w', [{ device_id: 'w-1', app: 'dropbox', action: 'upload', effect: 'deny' }], t0 - 2 * 3_600_000);
    await seedUsage(h.store, tenantId, 'twr-w', [{ device_id: 'w-1', app: 'slack', action: 'open', effect: 'allow' }], t0 - 10 * 60_000);
    await seedUsage(h.store, tenantId, 'twr-w', [{ device_id: 'w-1', app: 'dropbox', action: 'upload', effect: 'allow' }], t0 - 60_000);
    const usage = async (q: string) => ((await call(owner, 'GET', `/api/v1/app-usage?device_id=w-1&${q}`)).body.usage as UsageRecord[]).map((u) => u.app);
    expect(await usage('app=dropbox')).toEqual(['dropbox', 'dropbox']);
    expect(await usage(`since=${t0 - 3_600_000}`)).toEqual(['dropbox', 'slack']);
    expect(await usage(`until=${encodeURIComponent(new Date(t0 - 3_600_000).toISOString())}`)).toEqual(['dropbox']);
    expect(await usage(`since=${encodeURIComponent(new Date(t0 - 3_600_000).toISOString())}&app=slack`)).toEqual(['slack']);
    expect((await call(owner, 'GET', `/api/v1/app-usage?since=${t0}&until=${t0 - 1}`)).status).toBe(400);

    const hour = (await call(owner, 'GET', '/api/v1/dashboard/metrics?window=1h')).body;
    expect(hour.window).toEqual({ since: t0 - 3_600_000, until: t0, usage_total: 2, usage_allowed: 2, usage_denied: 0, alerts_active: 0 });
    const day = (await call(owner, 'GET', '/api/v1/dashboard/metrics?window=24h')).body;
    expect(day.window).toMatchObject({ usage_total: 3, usage_denied: 1 });
    expect((day.metrics as { usage_total: number }).usage_total).toBeGreaterThanOrEqual(3);
    const range = (await call(owner, 'GET', `/api/v1/dashboard/metrics?since=${t0 - 3 * 3_600_000}&until=${t0 - 3_600_000}`)).body;
    expect(range.window).toMatchObject({ usage_total: 1, usage_denied: 1 });
    expect((await call(owner, 'GET', '/api/v1/dashboard/metrics')).body.window).toBeUndefined();
    for (const bad of ['window=forever', 'window=0s', 'window=400d', `window=1h&since=${t0}`]) {
      expect((await call(owner, 'GET', `/api/v1/dashboard/metrics?${bad}`)).status, bad).toBe(400);
    }
  });
});

describe('boolean query values', () => {
  it('export accepts true/false, 1/0, yes/no and refuses anything else by name', async () => {
    for (const v of ['true', '1', 'yes']) {
      const res = await h.app.inject({ method: 'GET', url: `/api/v1/app-usage?export=${v}`, headers: owner.headers });
      expect(res.headers['content-disposition'], v).toMatch(/attachment/);
    }
    for (const v of ['false', '0', 'no']) {
      const res = await h.app.inject({ method: 'GET', url: `/api/v1/app-usage?export=${v}`, headers: owner.headers });
      expect(res.headers['content-disposition'], v).toBeUndefined();
      expect(json<{ usage: unknown[] }>(res).usage).toBeDefined();
    }
    const bad = await h.app.inject({ method: 'GET', url: '/api/v1/app-usage?export=ja', headers: owner.headers });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('query.export');
  });
});
