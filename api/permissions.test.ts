/** Spot checks of the permission table as the API enforces it. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let owner: Session;
let admin: Session;
let analyst: Session;
let viewer: Session;
let tenantId: string;

beforeAll(async () => {
  h = await startHarness();
  operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Acme'));
  for (const role of ['admin', 'analyst', 'viewer'] as const) {
    await post(h.app, owner, '/api/v1/console-users', { email: `${role}@acme.test`, password: PASSWORD, console_role: role });
  }
  admin = await login(h.app, 'admin@acme.test');
  analyst = await login(h.app, 'analyst@acme.test');
  viewer = await login(h.app, 'viewer@acme.test');
});
afterAll(async () => {
  await h.close();
});

async function status(session: Session, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) {
  const res = await h.app.inject({ method, url, headers: session.headers, ...(payload && { payload }) });
  return res.statusCode;
}

describe('role matrix', () => {
  it('viewers and analysts read but cannot write', async () => {
    for (const s of [viewer, analyst]) {
      expect(await status(s, 'GET', '/api/v1/devices')).toBe(200);
      expect(await status(s, 'GET', '/api/v1/policies')).toBe(200);
      expect(await status(s, 'GET', '/api/v1/tenant')).toBe(200);
      expect(await status(s, 'POST', '/api/v1/devices', { name: 'x' })).toBe(403);
      expect(await status(s, 'POST', '/api/v1/policies', { name: 'x' })).toBe(403);
      expect(await status(s, 'PATCH', '/api/v1/tenant', { name: 'x' })).toBe(403);
      expect(await status(s, 'GET', '/api/v1/console-users')).toBe(403);
      expect(await status(s, 'GET', '/api/v1/remedial-actions')).toBe(200);
      expect(await status(s, 'GET', '/api/v1/tenant/plan')).toBe(200);
      expect(await status(s, 'GET', '/api/v1/plans')).toBe(200);
      expect(await status(s, 'POST', '/api/v1/remedial-actions', { device_id: 'x', type: 'notify' })).toBe(403);
    }
  });

  it('a forbidden write is refused before its body is validated', async () => {
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/devices', headers: viewer.headers, payload: { bogus: true } });
    expect(res.statusCode).toBe(403);
    expect(json(res)).toMatchObject({ error: { code: 'FORBIDDEN' } });
  });

  it('owners and admins write their tenant', async () => {
    expect(await status(admin, 'POST', '/api/v1/devices', { name: 'admin-phone' })).toBe(201);
    expect(await status(owner, 'PATCH', '/api/v1/tenant', { default_effect: 'deny' })).toBe(200);
    const tenant = json<{ tenant: { id: string; default_effect: string } }>(
      await h.app.inject({ method: 'GET', url: '/api/v1/tenant', headers: admin.headers }),
    ).tenant;
    expect(tenant).toMatchObject({ id: tenantId, default_effect: 'deny' });
  });

  it('admins cannot create owners; owners can', async () => {
    const body = { email: 'second-owner@acme.test', password: PASSWORD, console_role: 'owner' };
    expect(await status(admin, 'POST', '/api/v1/console-users', body)).toBe(403);
    expect(await status(owner, 'POST', '/api/v1/console-users', body)).toBe(201);
    expect(await status(owner, 'POST', '/api/v1/console-users', body)).toBe(409);
  });

  it('operators cannot read tenant data', async () => {
    for (const url of [
      '/api/v1/devices',
      '/api/v1/users',
      '/api/v1/policies',
      '/api/v1/app-usage',
      '/api/v1/dashboard/metrics',
      '/api/v1/tenant',
      '/api/v1/tenant/plan',
      '/api/v1/remedial-actions',
      '/api/v1/commands/01ARZ3NDEKTSV4RRFFQ69G5FAV',
    ]) {
      expect(await status(operator, 'GET', url), url).toBe(403);
    }
  });

  it('tenant users cannot use operator routes', async () => {
    expect(await status(owner, 'POST', '/api/v1/towers', { name: 'rogue' })).toBe(403);
    expect(await status(owner, 'POST', '/api/v1/carriers', { name: 'rogue' })).toBe(403);
    expect(await status(owner, 'GET', '/api/v1/tenants')).toBe(403);
    expect(await status(owner, 'GET', `/api/v1/tenants/${tenantId}`)).toBe(403);
    expect(await status(owner, 'POST', '/api/v1/tenants', { name: 'x' })).toBe(403);
    expect(await status(owner, 'POST', '/api/v1/plans', { id: 'x', name: 'x', auto_remediation: true, retention_days: 1 })).toBe(403);
    expect(await status(admin, 'PATCH', '/api/v1/plans/free', { max_devices: null })).toBe(403);
    expect(await status(owner, 'PATCH', `/api/v1/tenants/${tenantId}`, { plan_id: 'premium' })).toBe(403);
  });

  it('everyone reads carriers; tenant users see only towers where their devices were seen', async () => {
    await post(h.app, operator, '/api/v1/carriers', { name: 'Orange', mcc_mnc: '20801' });
    await post(h.app, operator, '/api/v1/towers', { id: 'twr-seen', name: 'Seen' });
    await post(h.app, operator, '/api/v1/towers', { id: 'twr-unseen', name: 'Unseen' });
    await seedUsage(h.store, tenantId, 'twr-seen', [{ device_id: 'dev-x', app: 'mail', action: 'send', effect: 'allow' }]);

    for (const s of [viewer, owner]) {
      const carriers = json<{ carriers: unknown[] }>(await h.app.inject({ method: 'GET', url: '/api/v1/carriers', headers: s.headers }));
      expect(carriers.carriers).toHaveLength(1);
      const towers = json<{ towers: Array<{ id: string }> }>(await h.app.inject({ method: 'GET', url: '/api/v1/towers', headers: s.headers }));
      expect(towers.towers.map((t) => t.id)).toEqual(['twr-seen']);
      expect(await status(s, 'GET', '/api/v1/towers/twr-seen')).toBe(200);
      expect(await status(s, 'GET', '/api/v1/towers/twr-unseen')).toBe(404);
    }
    const all = json<{ towers: Array<{ id: string }> }>(await h.app.inject({ method: 'GET', url: '/api/v1/towers', headers: operator.headers }));
    expect(all.towers.map((t) => t.id).sort()).toEqual(['twr-seen', 'twr-unseen']);
  });

  it('discovered devices: tenant users get theirs, operators the platform’s unclaimed ones', async () => {
    await seedUsage(h.store, tenantId, 'twr-seen', [
      { device_id: 'mystery-1', app: 'mail', action: 'send', effect: 'allow', reason: 'unknown_device' },
    ]);
    await h.store.discovered.recordReports('twr-unseen', '01ARZ3NDEKTSV4RRFFQ69G5FAV', [
      { device_id: 'nobodys', first_seen: 1, last_seen: 2, count: 3 },
    ], Date.now());
    const mine = json<{ devices: Array<{ device_id: string; tenant_id: string | null }> }>(
      await h.app.inject({ method: 'GET', url: '/api/v1/devices/discovered', headers: viewer.headers }),
    ).devices;
    expect(mine.map((d) => d.device_id)).toEqual(['mystery-1']);
    const platform = json<{ devices: Array<{ device_id: string; tenant_id: string | null }> }>(
      await h.app.inject({ method: 'GET', url: '/api/v1/devices/discovered', headers: operator.headers }),
    ).devices;
    expect(platform).toEqual([expect.objectContaining({ device_id: 'nobodys', tenant_id: null })]);
  });
});
