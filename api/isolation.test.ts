/**
 * Tenant isolation through the API: tenant B's owner, holding every id of tenant A, learns nothing
 * and changes nothing — every id-taking route answers 404 and every list leaves A's rows out.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let ownerA: Session;
let ownerB: Session;
const a: Record<string, string> = {};
const b: Record<string, string> = {};

type Created = Record<string, { id: string }>;

async function populate(owner: Session, ids: Record<string, string>, tag: string) {
  ids.user = (await post<Created>(h.app, owner, '/api/v1/users', { name: `user-${tag}` })).user!.id;
  ids.role = (await post<Created>(h.app, owner, '/api/v1/roles', { name: `role-${tag}` })).role!.id;
  ids.policy = (await post<Created>(h.app, owner, '/api/v1/policies', { name: `policy-${tag}` })).policy!.id;
  ids.app = (await post<Created>(h.app, owner, '/api/v1/apps', { key: 'dropbox', name: 'Dropbox' })).app!.id;
  ids.action = (await post<Created>(h.app, owner, '/api/v1/actions', { key: 'upload', name: 'Upload' })).action!.id;
  ids.rule = (
    await post<Created>(h.app, owner, '/api/v1/policy-rules', {
      policy_id: ids.policy,
      app: 'dropbox',
      action: 'upload',
      permission: 'deny',
    })
  ).rule!.id;
  ids.device = (
    await post<Created>(h.app, owner, '/api/v1/devices', { id: `dev-${tag}`, name: `phone-${tag}`, user_id: ids.user })
  ).device!.id;
  await post(h.app, owner, '/api/v1/users/roles/assign', { user_id: ids.user, role_id: ids.role }, 200);
  await post(h.app, owner, '/api/v1/roles/policies/assign', { role_id: ids.role, policy_id: ids.policy }, 200);
}

beforeAll(async () => {
  h = await startHarness();
  const operator = await login(h.app, OPERATOR_EMAIL);
  const tA = await createTenant(h.app, operator, 'Alpha');
  const tB = await createTenant(h.app, operator, 'Bravo');
  ownerA = tA.owner;
  ownerB = tB.owner;
  a.tenant = tA.tenantId;
  b.tenant = tB.tenantId;
  await populate(ownerA, a, 'a');
  await populate(ownerB, b, 'b');
  await post(h.app, operator, '/api/v1/towers', { id: 'twr-a', name: 'Tower A' });
  await post(h.app, operator, '/api/v1/towers', { id: 'twr-b', name: 'Tower B' });
  const seeded = await seedUsage(h.store, a.tenant, 'twr-a', [
    { device_id: a.device!, user_id: a.user!, app: 'dropbox', action: 'upload', effect: 'deny', rule_id: a.rule!, policy_id: a.policy! },
    { device_id: 'stranger-1', app: 'dropbox', action: 'upload', effect: 'allow', reason: 'unknown_device' },
  ]);
  a.alert = seeded.alerts_opened[0]!.id;
  a.command = (await post<Created>(h.app, ownerA, '/api/v1/remedial-actions', { device_id: a.device, type: 'notify' })).command!.id;
  await seedUsage(h.store, b.tenant, 'twr-b', [
    { device_id: b.device!, user_id: b.user!, app: 'dropbox', action: 'upload', effect: 'allow' },
  ]);
});
afterAll(async () => {
  await h.close();
});

async function call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) {
  return h.app.inject({ method, url, headers: ownerB.headers, ...(payload && { payload }) });
}

describe("tenant B cannot reach tenant A's records", () => {
  const resources = [
    ['users', 'user', { name: 'x' }],
    ['roles', 'role', { name: 'x' }],
    ['policies', 'policy', { name: 'x' }],
    ['policy-rules', 'rule', { permission: 'allow' }],
    ['apps', 'app', { name: 'x' }],
    ['actions', 'action', { name: 'x' }],
    ['devices', 'device', { name: 'x' }],
  ] as const;

  for (const [path, key, patch] of resources) {
    it(`GET/PATCH/DELETE /${path}/{id} → 404`, async () => {
      const url = `/api/v1/${path}/${a[key]}`;
      for (const [method, body] of [['GET'], ['PATCH', patch], ['DELETE']] as const) {
        const res = await call(method, url, body);
        expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(404);
        expect(json(res)).toMatchObject({ error: { code: 'NOT_FOUND' } });
      }
      // A's record is untouched.
      const mine = await h.app.inject({ method: 'GET', url, headers: ownerA.headers });
      expect(mine.statusCode).toBe(200);
    });
  }

  it('assignment routes → 404 with any of A’s ids', async () => {
    const cases: Array<[string, string, object?]> = [
      ['POST', '/api/v1/users/roles/assign', { user_id: a.user, role_id: b.role }],
      ['POST', '/api/v1/users/roles/assign', { user_id: b.user, role_id: a.role }],
      ['GET', `/api/v1/users/roles?user=${a.user}`],
      ['DELETE', `/api/v1/users/${a.user}/roles/${a.role}`],
      ['POST', '/api/v1/roles/policies/assign', { role_id: a.role, policy_id: b.policy }],
      ['POST', '/api/v1/roles/policies/assign', { role_id: b.role, policy_id: a.policy }],
      ['GET', `/api/v1/roles/policies?role=${a.role}`],
      ['DELETE', `/api/v1/roles/${a.role}/policies/${a.policy}`],
      ['GET', `/api/v1/policies?user_id=${a.user}`],
      ['GET', `/api/v1/policies?role_id=${a.role}`],
      ['GET', `/api/v1/dashboard/alerts/${a.alert}`],
      ['GET', '/api/v1/towers/twr-a'],
      ['GET', '/api/v1/towers/twr-a/carriers'],
      ['GET', `/api/v1/commands/${a.command}`],
    ];
    for (const [method, url, payload] of cases) {
      const res = await call(method as 'GET', url, payload);
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(404);
    }
    // A's assignments survived B's attempts.
    const roles = await h.app.inject({ method: 'GET', url: `/api/v1/users/roles?user=${a.user}`, headers: ownerA.headers });
    expect(json<{ roles: Array<{ id: string }> }>(roles).roles.map((r) => r.id)).toEqual([a.role]);
  });

  it('references to A’s ids inside B’s writes → 404 naming the field', async () => {
    const cases: Array<[string, string, object, string]> = [
      ['POST', '/api/v1/policy-rules', { policy_id: a.policy, app: '*', action: '*', permission: 'allow' }, 'body.policy_id'],
      ['POST', '/api/v1/policy-rules', { policy_id: b.policy, role_id: a.role, app: '*', action: '*', permission: 'allow' }, 'body.role_id'],
      ['POST', '/api/v1/devices', { name: 'x', user_id: a.user }, 'body.user_id'],
      ['PATCH', `/api/v1/devices/${b.device}`, { user_id: a.user }, 'body.user_id'],
      ['POST', '/api/v1/remedial-actions', { device_id: a.device, type: 'notify' }, 'body.device_id'],
      // A tower only A's devices were seen at does not exist for B.
      ['POST', '/api/v1/remedial-actions', { device_id: b.device, type: 'notify', tower_id: 'twr-a' }, 'body.tower_id'],
    ];
    for (const [method, url, payload, field] of cases) {
      const res = await call(method as 'POST', url, payload);
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(404);
      expect(json<{ error: { issues: Array<{ field: string }> } }>(res).error.issues.map((i) => i.field)).toContain(field);
    }
  });

  it("lists never include A's rows", async () => {
    const lists: Array<[string, string]> = [
      ['/api/v1/users', 'users'],
      ['/api/v1/roles', 'roles'],
      ['/api/v1/policies', 'policies'],
      ['/api/v1/policy-rules', 'rules'],
      ['/api/v1/apps', 'apps'],
      ['/api/v1/actions', 'actions'],
      ['/api/v1/devices', 'devices'],
      ['/api/v1/devices/discovered', 'devices'],
      ['/api/v1/app-usage', 'usage'],
      [`/api/v1/app-usage?device_id=${a.device}`, 'usage'],
      ['/api/v1/dashboard/alerts', 'alerts'],
      ['/api/v1/console-users', 'users'],
      ['/api/v1/towers', 'towers'],
      ['/api/v1/remedial-actions', 'remedial_actions'],
      [`/api/v1/remedial-actions?device_id=${a.device}`, 'remedial_actions'],
      ['/api/v1/remedial-actions?tower_id=twr-a', 'remedial_actions'],
    ];
    const aIds = new Set(Object.values(a));
    for (const [url, key] of lists) {
      const res = await call('GET', url);
      expect(res.statusCode, url).toBe(200);
      const rows = json<Record<string, Array<{ id: string; tenant_id?: string }>>>(res)[key]!;
      for (const row of rows) {
        expect(aIds.has(row.id), `${url} leaked ${row.id}`).toBe(false);
        if (row.tenant_id !== undefined) expect(row.tenant_id, url).toBe(b.tenant);
      }
    }
    const towers = json<{ towers: Array<{ id: string }> }>(await call('GET', '/api/v1/towers')).towers;
    expect(towers.map((t) => t.id)).toEqual(['twr-b']);
    // B's own command is listed; A's never.
    await post(h.app, ownerB, '/api/v1/remedial-actions', { device_id: b.device, type: 'notify' });
    const commands = json<{ remedial_actions: Array<{ id: string }> }>(await call('GET', '/api/v1/remedial-actions')).remedial_actions;
    expect(commands).toHaveLength(1);
    expect(commands[0]!.id).not.toBe(a.command);
  });

  it('dashboard metrics count only the caller’s tenant', async () => {
    const mA = json<{ metrics: Record<string, number> }>(
      await h.app.inject({ method: 'GET', url: '/api/v1/dashboard/metrics', headers: ownerA.headers }),
    ).metrics;
    const mB = json<{ metrics: Record<string, number> }>(await call('GET', '/api/v1/dashboard/metrics')).metrics;
    expect(mA).toMatchObject({ devices: 1, alerts_open: 1, usage_denied: 1, discovered_devices: 1 });
    expect(mB).toMatchObject({ devices: 1, alerts_open: 0, usage_denied: 0, usage_allowed: 1, discovered_devices: 0 });
  });

  it('a tenant id in the body or query is refused, never obeyed', async () => {
    const res = await call('GET', `/api/v1/devices?tenant_id=${a.tenant}`);
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain('query.tenant_id');
    const write = await call('POST', '/api/v1/roles', { name: 'sneaky', tenant_id: a.tenant });
    expect(write.statusCode).toBe(400);
  });
});
