/**
 * LiveStats (the consoles' live overview) on a real in-process bus with a moved clock, and its
 * routes on the real app: per-minute buckets, the current rate, rankings, bounded memory, idle
 * tenants forgotten, and each tenant seeing only its own traffic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../shared/bus.js';
import type { UsageRecord } from '../shared/domain.js';
import { LiveStats } from './live-stats.js';
import { signInEveryRole } from './test-routes.js';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

let seq = 0;
function rec(tenant: string, over: Partial<UsageRecord> = {}): UsageRecord {
  seq++;
  return {
    id: `e${seq}`,
    tenant_id: tenant,
    tower_id: 'T1',
    batch_id: 'b',
    device_id: 'dev-1',
    user_id: 'u-1',
    app: 'slack',
    action: 'open',
    bytes: null,
    ts: T0,
    received_at: T0 + 20,
    effect: 'allow',
    reason: 'default',
    rule_id: null,
    policy_id: null,
    policy_version: 1,
    local_effect: null,
    local_policy_version: null,
    disagreement: false,
    ...over,
  };
}

function setup(opts: { maxKeysPerBucket?: number } = {}) {
  const bus = new InProcessBus();
  const clock = { now: T0 };
  const stats = new LiveStats({ bus, clock: () => clock.now, ...opts });
  stats.start();
  const publish = (tenant: string, records: UsageRecord[]) => bus.publish('usage.decided', { tenant_id: tenant, tower_id: 'T1', records });
  return { bus, clock, stats, publish };
}

describe('LiveStats', () => {
  it('buckets events and denies per minute over the last hour, oldest first', () => {
    const { clock, stats, publish } = setup();
    publish('A', [rec('A'), rec('A', { effect: 'deny' })]);
    clock.now += 60_000;
    publish('A', [rec('A', { effect: 'deny' })]);
    const o = stats.tenant('A');
    expect(o.series).toHaveLength(60);
    expect(o.series.at(-1)).toEqual({ t: T0 + 60_000, events: 1, denied: 1 });
    expect(o.series.at(-2)).toEqual({ t: T0, events: 2, denied: 1 });
    expect(o.series.slice(0, -2).every((p) => p.events === 0)).toBe(true);
    expect(o.totals).toEqual({ events: 3, denied: 2 });
    expect(o.deny_rate).toBeCloseTo(2 / 3);
    expect(stats.tenant('A', 1).series).toHaveLength(1);
  });

  it('reports the rate over the last complete seconds, and zero once traffic stops', () => {
    const { clock, stats, publish } = setup();
    for (let s = 0; s < 10; s++) {
      publish('A', Array.from({ length: 50 }, () => rec('A', { effect: s % 2 === 0 ? 'deny' : 'allow' })));
      clock.now += 1000;
    }
    const o = stats.tenant('A');
    expect(o.events_per_s).toBe(50);
    expect(o.denied_per_s).toBe(25);
    clock.now += 11_000;
    expect(stats.tenant('A').events_per_s).toBe(0);
  });

  it('ranks apps and the users and devices that violate most', () => {
    const { stats, publish } = setup();
    publish('A', [
      ...Array.from({ length: 5 }, () => rec('A', { app: 'dropbox', effect: 'deny', user_id: 'u-mallory', device_id: 'd-m' })),
      ...Array.from({ length: 2 }, () => rec('A', { app: 'tiktok', effect: 'deny', user_id: 'u-eve', device_id: 'd-e' })),
      ...Array.from({ length: 9 }, () => rec('A', { app: 'slack' })),
    ]);
    const o = stats.tenant('A');
    expect(o.top_apps).toEqual([
      { app: 'slack', events: 9, denied: 0 },
      { app: 'dropbox', events: 5, denied: 5 },
      { app: 'tiktok', events: 2, denied: 2 },
    ]);
    expect(o.top_violating_users).toEqual([
      { user_id: 'u-mallory', denied: 5 },
      { user_id: 'u-eve', denied: 2 },
    ]);
    expect(o.top_violating_devices[0]).toEqual({ device_id: 'd-m', denied: 5 });
  });

  it('keeps at most maxKeysPerBucket keys per dimension and says the ranking is truncated', () => {
    const { stats, publish } = setup({ maxKeysPerBucket: 5 });
    publish('A', Array.from({ length: 50 }, (_, i) => rec('A', { device_id: `d-${i}`, effect: 'deny', app: `app${i}` })));
    const o = stats.tenant('A');
    expect(o.totals).toEqual({ events: 50, denied: 50 });
    expect(o.top_violating_devices).toHaveLength(5);
    expect(o.top_apps).toHaveLength(5);
    expect(o.truncated).toBe(true);
  });

  it('keeps tenants apart', () => {
    const { stats, publish } = setup();
    publish('A', [rec('A', { device_id: 'secret-device-of-A', effect: 'deny', user_id: 'secret-user-of-A' })]);
    const b = stats.tenant('B');
    expect(b.totals).toEqual({ events: 0, denied: 0 });
    expect(JSON.stringify(b)).not.toContain('secret');
  });

  it('forgets a tenant without traffic for the whole window', () => {
    const { clock, stats, publish } = setup();
    publish('A', [rec('A')]);
    publish('B', [rec('B')]);
    expect(stats.trackedTenants).toBe(2);
    clock.now += 61 * 60_000;
    publish('B', [rec('B')]);
    expect(stats.trackedTenants).toBe(1);
    expect(stats.tenant('A').totals.events).toBe(0);
  });

  it('sums every tenant for the platform, with uplink delay percentiles', () => {
    const { stats, publish } = setup();
    publish('A', Array.from({ length: 99 }, () => rec('A', { received_at: T0 + 10 })));
    publish('B', [rec('B', { received_at: T0 + 5000, effect: 'deny' })]);
    const p = stats.platform();
    const point = p.series.at(-1)!;
    expect(point.events).toBe(100);
    expect(point.denied).toBe(1);
    // Bins are 2^(1/4) wide: the median delay of 10 ms lands in the bin up to 11 ms.
    expect(point.delay_p50_ms).toBeGreaterThanOrEqual(10);
    expect(point.delay_p50_ms).toBeLessThanOrEqual(12);
    expect(point.delay_p99_ms).toBeLessThanOrEqual(12);
    expect(p.tenants_active).toBe(2);
    expect(p.series[0]!.delay_p50_ms).toBeNull();
  });

  it('stops counting when stopped', () => {
    const { stats, publish } = setup();
    stats.stop();
    publish('A', [rec('A')]);
    expect(stats.tenant('A').totals.events).toBe(0);
  });
});

describe('console statistics routes', () => {
  let h: Harness;
  let operator: Session;
  let a: { tenantId: string; owner: Session };
  let b: { tenantId: string; owner: Session };

  beforeAll(async () => {
    h = await startHarness();
    operator = await login(h.app, OPERATOR_EMAIL);
    a = await createTenant(h.app, operator, 'StatsA');
    b = await createTenant(h.app, operator, 'StatsB');
    await post(h.app, a.owner, '/api/v1/devices', { id: 'stats-a-phone', name: 'phone' });
    h.bus.publish('usage.decided', {
      tenant_id: a.tenantId,
      tower_id: 'T1',
      records: [rec(a.tenantId, { device_id: 'stats-a-phone', effect: 'deny', ts: h.clock.now, received_at: h.clock.now })],
    });
  });
  afterAll(() => h.close());

  it("answers a tenant's overview with its own traffic only", async () => {
    const mine = await h.app.inject({ url: '/api/v1/dashboard/overview?minutes=5', headers: a.owner.headers });
    expect(mine.statusCode).toBe(200);
    const o = json<{ overview: { series: unknown[]; totals: { events: number }; top_violating_devices: Array<{ device_id: string }> } }>(mine).overview;
    expect(o.series).toHaveLength(5);
    expect(o.totals.events).toBe(1);
    expect(o.top_violating_devices).toEqual([{ device_id: 'stats-a-phone', denied: 1 }]);
    const theirs = await h.app.inject({ url: '/api/v1/dashboard/overview', headers: b.owner.headers });
    expect(theirs.statusCode).toBe(200);
    expect(theirs.body).not.toContain('stats-a-phone');
    expect(json<{ overview: { totals: { events: number } } }>(theirs).overview.totals.events).toBe(0);
  });

  it('refuses unknown and out-of-range query parameters', async () => {
    for (const q of ['minutes=0', 'minutes=61', 'minutes=x', 'tenant_id=other']) {
      const res = await h.app.inject({ url: `/api/v1/dashboard/overview?${q}`, headers: a.owner.headers });
      expect(res.statusCode, q).toBe(400);
    }
  });

  it("lists each tenant's usage against its plan for operators", async () => {
    const res = await h.app.inject({ url: '/api/v1/platform/tenant-usage?limit=100', headers: operator.headers });
    expect(res.statusCode).toBe(200);
    const rows = json<{ tenants: Array<{ name: string; devices: number; max_devices: number | null; events_last_hour: number; plan_id: string }> }>(res).tenants;
    const rowA = rows.find((r) => r.name === 'StatsA')!;
    expect(rowA).toMatchObject({ devices: 1, max_devices: 100, plan_id: 'free', events_last_hour: 1 });
    expect(rows.find((r) => r.name === 'StatsB')).toMatchObject({ devices: 0, events_last_hour: 0 });
    const platform = await h.app.inject({ url: '/api/v1/platform/overview', headers: operator.headers });
    expect(json<{ overview: { series: Array<{ events: number }> } }>(platform).overview.series.at(-1)!.events).toBe(1);
  });

  it('tells each caller the permissions it holds', async () => {
    const { sessions } = await signInEveryRole(h, 'StatsRoles');
    const permsOf = async (s: Session) => json<{ role: string; permissions: string[] }>(await h.app.inject({ url: '/api/v1/me/permissions', headers: s.headers }));
    const analyst = await permsOf(sessions.analyst);
    expect(analyst.role).toBe('analyst');
    expect(analyst.permissions).toContain('alerts:read');
    expect(analyst.permissions).not.toContain('rules:write');
    expect(analyst.permissions).not.toContain('remediation:write');
    expect((await permsOf(sessions.admin)).permissions).toContain('rules:write');
    const op = await permsOf(sessions.operator);
    expect(op.permissions).toContain('metrics:read');
    expect(op.permissions).not.toContain('usage:read');
    const { key } = json<{ key: string }>(
      await h.app.inject({
        method: 'POST',
        url: '/api/v1/api-keys',
        headers: sessions.owner.headers,
        payload: { name: 'k', scopes: ['session:read', 'alerts:read'] },
      }),
    );
    const viaKey = json<{ kind: string; role: null; permissions: string[] }>(
      await h.app.inject({ url: '/api/v1/me/permissions', headers: { authorization: `Bearer ${key}` } }),
    );
    expect(viaKey).toMatchObject({ kind: 'api_key', role: null, permissions: ['session:read', 'alerts:read'] });
  });
});
