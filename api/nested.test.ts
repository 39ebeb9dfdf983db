/**
 * Nested routes (api/routes/nested*.ts) through app.inject: the shape of each, and that tenant B,
 * holding every id of tenant A, gets 404 from each id-taking route and never a trace of A.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandType } from '../shared/mqtt/payloads.js';
import type { CommandRecord } from '../shared/domain.js';
import { activeRemediations } from './routes/nested.js';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let ownerA: Session;
let ownerB: Session;
const a: Record<string, string> = {};
const b: Record<string, string> = {};
let carrier: string;

type Created = Record<string, { id: string }>;

async function populate(owner: Session, ids: Record<string, string>, tag: string): Promise<void> {
  ids.user = (await post<Created>(h.app, owner, '/api/v1/users', { name: `user-${tag}` })).user!.id;
  ids.role = (await post<Created>(h.app, owner, '/api/v1/roles', { name: `role-${tag}` })).role!.id;
  ids.policy = (await post<Created>(h.app, owner, '/api/v1/policies', { name: `policy-${tag}` })).policy!.id;
  await post(h.app, owner, '/api/v1/apps', { key: 'dropbox', name: 'Dropbox' });
  await post(h.app, owner, '/api/v1/actions', { key: 'upload', name: 'Upload' });
  ids.rule = (
    await post<Created>(h.app, owner, '/api/v1/policy-rules', { policy_id: ids.policy, app: 'dropbox', action: 'upload', permission: 'deny' })
  ).rule!.id;
  ids.device = (await post<Created>(h.app, owner, '/api/v1/devices', { id: `dev-${tag}`, name: `phone-${tag}`, user_id: ids.user })).device!.id;
  ids.loose = (await post<Created>(h.app, owner, '/api/v1/devices', { id: `loose-${tag}`, name: `spare-${tag}` })).device!.id;
  await post(h.app, owner, '/api/v1/users/roles/assign', { user_id: ids.user, role_id: ids.role }, 200);
  await post(h.app, owner, '/api/v1/roles/policies/assign', { role_id: ids.role, policy_id: ids.policy }, 200);
}

async function get(session: Session, url: string) {
  const res = await h.app.inject({ method: 'GET', url, headers: session.headers });
  return { status: res.statusCode, body: json(res), raw: res.body };
}

/** An applied command of tenant A's device, acked at `ackedAt`. */
async function applied(type: CommandType, ackedAt: number, extra: { app?: string; duration_s?: number } = {}): Promise<CommandRecord> {
  const c = await h.store.commands.create({
    tenant_id: a.tenant!,
    tower_id: 'twr-a',
    device_id: a.device!,
    type,
    app: extra.app ?? null,
    duration_s: extra.duration_s ?? null,
    source: 'manual',
    expires_at: h.clock.now + 3_600_000,
  });
  await h.store.commands.transition(a.tenant!, c.id, 'delivered', ackedAt);
  return (await h.store.commands.transition(a.tenant!, c.id, 'applied', ackedAt))!.command;
}

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 1_000_000 });
  operator = await login(h.app, OPERATOR_EMAIL);
  const tA = await createTenant(h.app, operator, 'NestAlpha');
  const tB = await createTenant(h.app, operator, 'NestBravo');
  [ownerA, ownerB, a.tenant, b.tenant] = [tA.owner, tB.owner, tA.tenantId, tB.tenantId];
  await populate(ownerA, a, 'a');
  await populate(ownerB, b, 'b');
  await post(h.app, operator, '/api/v1/towers', { id: 'twr-a', name: 'Tower A', lat: 48.85, lon: 2.35, radius_m: 1500 });
  await post(h.app, operator, '/api/v1/towers', { id: 'twr-b', name: 'Tower B', lat: 45.76, lon: 4.83 });
  await post(h.app, operator, '/api/v1/towers', { id: 'twr-dark', name: 'Tower nobody used' });
  carrier = (await post<Created>(h.app, operator, '/api/v1/carriers', { name: 'Shared', mcc_mnc: '20801' })).carrier!.id;
  for (const t of ['twr-a', 'twr-b', 'twr-dark']) await post(h.app, operator, `/api/v1/towers/${t}/carriers`, { carrier_id: carrier }, 200);
  await h.store.towers.setStatus('twr-a', { state: 'online', agent_version: '1.4.0', at: h.clock.now });
  await h.store.towers.setStatus('twr-b', { state: 'offline', agent_version: '1.3.9', at: h.clock.now });

  const seeded = await seedUsage(
    h.store,
    a.tenant!,
    'twr-a',
    [
      { device_id: a.device!, user_id: a.user!, app: 'dropbox', action: 'upload', effect: 'deny', rule_id: a.rule!, policy_id: a.policy! },
      { device_id: a.device!, user_id: a.user!, app: 'slack', action: 'send', effect: 'allow' },
      { device_id: 'stranger-a', app: 'dropbox', action: 'upload', effect: 'allow', reason: 'unknown_device' },
    ],
    h.clock.now,
  );
  a.alert = seeded.alerts_opened[0]!.id;
  await seedUsage(h.store, b.tenant!, 'twr-b', [{ device_id: b.device!, user_id: b.user!, app: 'dropbox', action: 'upload', effect: 'allow' }]);

  const now = h.clock.now;
  a.activeBlock = (await applied('block_app', now - 1000, { app: 'dropbox', duration_s: 600 })).id;
  await applied('block_device', now - 120_000, { duration_s: 60 }); // over by now
  await applied('block_app', now - 5000, { app: 'slack', duration_s: 600 });
  await applied('unblock_app', now - 4000, { app: 'slack' }); // lifts the slack block
  await applied('notify', now - 3000); // nothing to hold
  a.pending = (
    await h.store.commands.create({
      tenant_id: a.tenant!,
      tower_id: 'twr-a',
      device_id: a.device!,
      type: 'quarantine',
      duration_s: 600,
      source: 'manual',
      expires_at: now + 60_000,
    })
  ).id;
});

afterAll(async () => {
  await h.close();
});

describe('/enterprises/{id}', () => {
  it('operators read any tenant; tenant users only their own', async () => {
    const asOperator = await get(operator, `/api/v1/enterprises/${a.tenant}`);
    expect(asOperator.status).toBe(200);
    expect(asOperator.body).toMatchObject({ enterprise: { id: a.tenant, name: 'NestAlpha', plan_id: 'free' } });
    expect((await get(ownerA, `/api/v1/enterprises/${a.tenant}`)).body).toEqual(asOperator.body);
    expect((await get(operator, '/api/v1/enterprises/01ARZ3NDEKTSV4RRFFQ69G5FAV')).status).toBe(404);
  });

  it('lists the devices, policies and users of the caller’s own enterprise', async () => {
    const devices = await get(ownerA, `/api/v1/enterprises/${a.tenant}/devices`);
    expect(devices.status).toBe(200);
    expect(devices.body).toMatchObject({ next_cursor: null });
    expect((devices.body.devices as Array<{ id: string }>).map((d) => d.id).sort()).toEqual([a.device, a.loose].sort());
    const owned = await get(ownerA, `/api/v1/enterprises/${a.tenant}/devices?user_id=${a.user}&limit=1`);
    expect((owned.body.devices as Array<{ id: string }>).map((d) => d.id)).toEqual([a.device]);
    expect(await get(ownerA, `/api/v1/enterprises/${a.tenant}/policies`)).toMatchObject({
      status: 200,
      body: { policies: [{ id: a.policy, tenant_id: a.tenant }], next_cursor: null },
    });
    expect(await get(ownerA, `/api/v1/enterprises/${a.tenant}/users`)).toMatchObject({
      status: 200,
      body: { users: [{ id: a.user, tenant_id: a.tenant }], next_cursor: null },
    });
  });

  it('operators hold no tenant data below the enterprise', async () => {
    for (const sub of ['devices', 'policies', 'users']) {
      const res = await get(operator, `/api/v1/enterprises/${a.tenant}/${sub}`);
      expect(res.status, sub).toBe(403);
      expect(res.body).toMatchObject({ error: { code: 'FORBIDDEN' } });
    }
  });
});

describe('/devices/{id}/…', () => {
  it('policies: those reaching the device through its owner’s roles (none without owner)', async () => {
    expect((await get(ownerA, `/api/v1/devices/${a.device}/policies`)).body).toMatchObject({
      device_id: a.device,
      user_id: a.user,
      policies: [{ id: a.policy, name: 'policy-a' }],
    });
    expect((await get(ownerA, `/api/v1/devices/${a.loose}/policies`)).body).toEqual({ device_id: a.loose, user_id: null, policies: [] });
  });

  it('usage: the device’s decided events, newest first, paginated and filterable', async () => {
    const first = await get(ownerA, `/api/v1/devices/${a.device}/usage?limit=1`);
    expect(first.status).toBe(200);
    const rows = first.body.usage as Array<{ device_id: string }>;
    expect(rows).toHaveLength(1);
    expect(first.body.next_cursor).toEqual(expect.any(String));
    const all = await get(ownerA, `/api/v1/devices/${a.device}/usage`);
    const usage = all.body.usage as Array<{ device_id: string; effect: string }>;
    expect(usage).toHaveLength(2);
    expect(usage.every((u) => u.device_id === a.device)).toBe(true);
    const denied = await get(ownerA, `/api/v1/devices/${a.device}/usage?effect=deny`);
    expect((denied.body.usage as Array<{ effect: string; app: string }>).map((u) => [u.effect, u.app])).toEqual([['deny', 'dropbox']]);
    expect((await get(ownerA, `/api/v1/devices/${a.loose}/usage`)).body).toEqual({ device_id: a.loose, usage: [], next_cursor: null });
  });

  it('status: last seen, open alerts and the remediations in force', async () => {
    const res = await get(ownerA, `/api/v1/devices/${a.device}/status`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ device_id: a.device, last_seen: h.clock.now, last_tower_id: 'twr-a', open_alerts: 1 });
    const active = res.body.active_remediations as Array<{ id: string; type: string; app: string }>;
    // Not the expired block, the lifted slack block, the notify, nor the pending quarantine.
    expect(active.map((c) => [c.id, c.type, c.app])).toEqual([[a.activeBlock, 'block_app', 'dropbox']]);
    expect((await get(ownerA, `/api/v1/devices/${a.loose}/status`)).body).toEqual({
      device_id: a.loose,
      last_seen: null,
      last_tower_id: null,
      open_alerts: 0,
      active_remediations: [],
    });
  });

  it("status needs the alerts and remediation scopes too (an API key with only 'devices:read' is refused)", async () => {
    const key = await post<{ key: string }>(h.app, ownerA, '/api/v1/api-keys', { name: 'inventory', scopes: ['devices:read'] });
    const headers = { authorization: `Bearer ${key.key}` };
    const refused = await h.app.inject({ method: 'GET', url: `/api/v1/devices/${a.device}/status`, headers });
    expect(refused.statusCode).toBe(403);
    expect(json(refused)).toMatchObject({ error: { code: 'FORBIDDEN' } });
  });

  it('activeRemediations replays holds per tower, slot and duration', () => {
    const base: CommandRecord = {
      id: 'c0', tenant_id: 't', tower_id: 'T1', device_id: 'd', type: 'block_device', app: null, duration_s: 100,
      reason: null, source: 'manual', rule_id: null, issued_by: null, status: 'applied', attempts: 1,
      created_at: 0, updated_at: 0, expires_at: 0, delivered_at: 0, acked_at: 0, ack_reason: null,
    };
    const cmds: CommandRecord[] = [
      { ...base, id: 'c1', type: 'quarantine', acked_at: 1000 },
      { ...base, id: 'c2', type: 'block_device', acked_at: 1000, tower_id: 'T2' },
      { ...base, id: 'c3', type: 'unblock_device', duration_s: null, acked_at: 2000 }, // lifts c1 at T1 only
      { ...base, id: 'c4', type: 'throttle', app: 'video', acked_at: 3000 },
      { ...base, id: 'c5', type: 'throttle', app: 'video', acked_at: 4000, duration_s: 1 }, // replaces c4, over at 5000
    ];
    expect(activeRemediations(cmds, 4500).map((c) => c.id)).toEqual(['c2', 'c5']);
    expect(activeRemediations(cmds, 5000).map((c) => c.id)).toEqual(['c2']);
  });
});

describe('/towers/{id}/…', () => {
  it('devices: the caller’s devices seen at a tower it can see, registered or not', async () => {
    const res = await get(ownerA, '/api/v1/towers/twr-a/devices');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ tower_id: 'twr-a', next_cursor: null });
    const devices = res.body.devices as Array<{ device_id: string; registered: boolean; user_id: string | null; last_seen: number }>;
    expect(devices.map((d) => [d.device_id, d.registered, d.user_id]).sort()).toEqual(
      [
        [a.device, true, a.user],
        ['stranger-a', false, null],
      ].sort(),
    );
    expect(devices.every((d) => d.last_seen === h.clock.now)).toBe(true);
    // Operators hold no tenant data; a tower with none of the caller's devices does not exist for it.
    expect((await get(operator, '/api/v1/towers/twr-a/devices')).status).toBe(403);
    expect((await get(ownerA, '/api/v1/towers/twr-dark/devices')).status).toBe(404);
  });

  it('coverage: location, radius and carriers', async () => {
    const res = await get(ownerA, '/api/v1/towers/twr-a/coverage');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ tower_id: 'twr-a', lat: 48.85, lon: 2.35, radius_m: 1500, carriers: [{ id: carrier, name: 'Shared' }] });
    expect((await get(operator, '/api/v1/towers/twr-dark/coverage')).body).toMatchObject({
      tower_id: 'twr-dark',
      lat: null,
      lon: null,
      radius_m: null,
    });
  });
});

describe('/carriers/{id}/…', () => {
  it('towers: all for operators, only the visible ones for tenant users', async () => {
    const ids = async (s: Session) =>
      ((await get(s, `/api/v1/carriers/${carrier}/towers`)).body.towers as Array<{ id: string }>).map((t) => t.id);
    expect(await ids(operator)).toEqual(['twr-a', 'twr-b', 'twr-dark']);
    expect(await ids(ownerA)).toEqual(['twr-a']);
    expect(await ids(ownerB)).toEqual(['twr-b']);
  });

  it('coverage: located towers only, with their radius', async () => {
    expect((await get(operator, `/api/v1/carriers/${carrier}/coverage`)).body).toEqual({
      carrier_id: carrier,
      towers: [
        { tower_id: 'twr-a', name: 'Tower A', lat: 48.85, lon: 2.35, radius_m: 1500 },
        { tower_id: 'twr-b', name: 'Tower B', lat: 45.76, lon: 4.83, radius_m: null },
      ],
    });
  });

  it('performance: what the towers report (state, agent version, last status)', async () => {
    const res = await get(operator, `/api/v1/carriers/${carrier}/performance`);
    expect(res.body).toEqual({
      carrier_id: carrier,
      summary: { towers: 3, online: 1, offline: 1, unknown: 1 },
      towers: [
        { tower_id: 'twr-a', name: 'Tower A', state: 'online', agent_version: '1.4.0', last_seen: h.clock.now },
        { tower_id: 'twr-b', name: 'Tower B', state: 'offline', agent_version: '1.3.9', last_seen: h.clock.now },
        { tower_id: 'twr-dark', name: 'Tower nobody used', state: 'unknown', agent_version: null, last_seen: null },
      ],
    });
    expect((await get(ownerB, `/api/v1/carriers/${carrier}/performance`)).body).toMatchObject({
      summary: { towers: 1, online: 0, offline: 1, unknown: 0 },
      towers: [{ tower_id: 'twr-b' }],
    });
    for (const sub of ['towers', 'coverage', 'performance']) {
      expect((await get(ownerA, `/api/v1/carriers/01ARZ3NDEKTSV4RRFFQ69G5FAV/${sub}`)).status, sub).toBe(404);
    }
  });
});

describe("tenant B cannot reach tenant A's records through nested routes", () => {
  const aOnly = () => [a.tenant!, a.user!, a.role!, a.policy!, a.rule!, a.device!, a.loose!, a.alert!, a.activeBlock!, a.pending!, 'twr-a', 'stranger-a'];

  it("answers 404 for every id-taking route given A's ids", async () => {
    const urls = [
      `/api/v1/enterprises/${a.tenant}`,
      `/api/v1/enterprises/${a.tenant}/devices`,
      `/api/v1/enterprises/${a.tenant}/policies`,
      `/api/v1/enterprises/${a.tenant}/users`,
      `/api/v1/devices/${a.device}/policies`,
      `/api/v1/devices/${a.device}/usage`,
      `/api/v1/devices/${a.device}/status`,
      `/api/v1/devices/${a.loose}/status`,
      '/api/v1/towers/twr-a/devices',
      '/api/v1/towers/twr-a/coverage',
    ];
    for (const url of urls) {
      const res = await get(ownerB, url);
      expect(res.status, `${url}: ${res.raw}`).toBe(404);
      expect(res.body).toMatchObject({ error: { code: 'NOT_FOUND' } });
      expect(aOnly().filter((id) => res.raw.includes(id)), url).toEqual([]);
      // A still reaches its own record: the 404 is isolation, not a broken route.
      expect((await get(ownerA, url)).status, url).toBe(200);
    }
  });

  it("B's own nested reads carry nothing of A", async () => {
    const urls = [
      `/api/v1/enterprises/${b.tenant}`,
      `/api/v1/enterprises/${b.tenant}/devices`,
      `/api/v1/enterprises/${b.tenant}/policies`,
      `/api/v1/enterprises/${b.tenant}/users`,
      `/api/v1/devices/${b.device}/policies`,
      `/api/v1/devices/${b.device}/usage`,
      `/api/v1/devices/${b.device}/usage?tower_id=twr-a`,
      `/api/v1/devices/${b.device}/status`,
      '/api/v1/towers/twr-b/devices',
      '/api/v1/towers/twr-b/coverage',
      `/api/v1/carriers/${carrier}/towers`,
      `/api/v1/carriers/${carrier}/coverage`,
      `/api/v1/carriers/${carrier}/performance`,
    ];
    for (const url of urls) {
      const res = await get(ownerB, url);
      expect(res.status, `${url}: ${res.raw}`).toBe(200);
      expect(aOnly().filter((id) => res.raw.includes(id)), url).toEqual([]);
    }
    const devices = (await get(ownerB, '/api/v1/towers/twr-b/devices')).body.devices as Array<{ device_id: string }>;
    expect(devices.map((d) => d.device_id)).toEqual([b.device]);
  });
});
