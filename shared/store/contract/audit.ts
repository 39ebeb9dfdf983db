/**
 * Contract: the audit log (append-only, newest first, tenant-scoped with a platform scope of its
 * own) and the tenant's audit retention setting.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../domain.js';
import type { AuditFilter, AuditInput, Store } from '../port.js';
import { expectError, ids, must, T0, walk, type ContractState } from './harness.js';

const entry = (tenant_id: string | null, extra: Partial<AuditInput> = {}): AuditInput => ({
  tenant_id,
  actor_kind: 'console_user',
  actor_id: 'cu-1',
  actor_label: 'owner@a.test',
  action: 'devices.create',
  resource_type: 'device',
  resource_id: 'dev-1',
  method: 'POST',
  path: '/api/v1/devices',
  status_code: 201,
  ip: '203.0.113.7',
  user_agent: 'curl/8.5',
  before: null,
  after: { id: 'dev-1', name: 'phone', tags: ['a', 'b'], owner: null },
  at: T0,
  ...extra,
});

export function describeAuditContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });

  /** Records `inputs` in order; the result is oldest first, i.e. the reverse of list order. */
  const recordAll = async (inputs: AuditInput[]): Promise<AuditRecord[]> => {
    const out: AuditRecord[] = [];
    for (const input of inputs) out.push(await store.audit.record(input));
    return out;
  };
  const newestFirst = (rows: AuditRecord[]): string[] => ids(rows).reverse();
  const listIds = async (tenantId: string | null, opts: AuditFilter = {}): Promise<string[]> =>
    ids(await walk((cursor) => store.audit.list(tenantId, { ...opts, limit: 1000, cursor })));

  describe('audit', () => {
    it('records every field, JSON before/after of any shape, and reads it back', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const input = entry(a, { before: { id: 'dev-1', name: 'old' } });
      const rec = await store.audit.record(input);
      expect(rec).toEqual({ ...input, id: rec.id });
      expect(await store.audit.get(a, rec.id)).toEqual(rec);

      const shapes: unknown[] = [[1, 'two', { three: 3 }], 'text', 0, false, true, -1.5, { nested: { deep: [null] } }];
      for (const value of shapes) {
        const r = await store.audit.record(entry(a, { before: value, after: value }));
        expect(await store.audit.get(a, r.id), JSON.stringify(value)).toEqual({ ...r, before: value, after: value });
      }
      const bare = await store.audit.record(
        entry(null, {
          actor_kind: 'system',
          actor_id: null,
          actor_label: null,
          action: 'plans.update',
          resource_type: 'plan',
          resource_id: null,
          method: null,
          path: null,
          status_code: null,
          ip: null,
          user_agent: null,
          before: null,
          after: null,
        }),
      );
      expect(await store.audit.get(null, bare.id)).toEqual(bare);
      expect(bare).toMatchObject({ tenant_id: null, before: null, after: null, status_code: null });
      expect(new Set([rec.id, bare.id]).size).toBe(2);
      await expectError(store.audit.record(entry('no-such-tenant')), 'NOT_FOUND', 'tenant_id');
    });

    it('lists newest first, each tenant only its own, null only the platform’s', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const made = await recordAll([entry(a), entry(b), entry(null), entry(a), entry(null), entry(b), entry(a)]);
      const of = (tenant: string | null): AuditRecord[] => made.filter((r) => r.tenant_id === tenant);

      expect((await store.audit.list(a)).items).toEqual([...of(a)].reverse());
      expect(await listIds(b)).toEqual(newestFirst(of(b)));
      expect(await listIds(null)).toEqual(newestFirst(of(null)));

      const [fromA, fromPlatform] = [must(of(a)[0]), must(of(null)[0])];
      expect(await store.audit.get(b, fromA.id)).toBeNull();
      expect(await store.audit.get(null, fromA.id)).toBeNull();
      expect(await store.audit.get(a, fromPlatform.id)).toBeNull();
      expect(await store.audit.get(a, 'no-such-record')).toBeNull();
      expect(await store.audit.list('no-such-tenant')).toEqual({ items: [], next_cursor: null });
      // Append-only: the port offers no way to rewrite or remove one record.
      expect('update' in store.audit).toBe(false);
      expect('delete' in store.audit).toBe(false);
    });

    it('filters by actor, action and resource, within the tenant', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const [create, update, byKey, roleEdit, system] = await recordAll([
        entry(a),
        entry(a, { action: 'devices.update', before: { name: 'phone' }, after: { name: 'tablet' } }),
        entry(a, { actor_kind: 'api_key', actor_id: 'key-1', actor_label: 'ci', action: 'devices.delete' }),
        entry(a, { action: 'roles.update', resource_type: 'role', resource_id: 'role-1' }),
        entry(a, { actor_kind: 'system', actor_id: null, actor_label: null, action: 'commands.applied', resource_type: 'command', resource_id: 'dev-1' }),
      ]);
      // The same actor and resource in another tenant must never match.
      await recordAll([entry(b), entry(b, { actor_kind: 'api_key', actor_id: 'key-1' })]);
      const [c, u, k, r, s] = [create, update, byKey, roleEdit, system].map((x) => must(x).id);

      expect(await listIds(a, { actor_id: 'cu-1' })).toEqual([r, u, c]);
      expect(await listIds(a, { actor_id: 'key-1' })).toEqual([k]);
      expect(await listIds(a, { actor_kind: 'api_key' })).toEqual([k]);
      expect(await listIds(a, { actor_kind: 'system' })).toEqual([s]);
      expect(await listIds(a, { action: 'devices.update' })).toEqual([u]);
      expect(await listIds(a, { resource_type: 'device' })).toEqual([k, u, c]);
      expect(await listIds(a, { resource_type: 'device', resource_id: 'dev-1' })).toEqual([k, u, c]);
      // resource_id alone does not cross resource types unless asked to.
      expect(await listIds(a, { resource_id: 'dev-1' })).toEqual([s, k, u, c]);
      expect(await listIds(a, { resource_type: 'role', resource_id: 'dev-1' })).toEqual([]);
      expect(await listIds(a, { actor_kind: 'console_user', action: 'devices.create' })).toEqual([c]);
      expect(await listIds(a, { action: 'no.such.action' })).toEqual([]);
      expect(await listIds(null, { actor_id: 'cu-1' })).toEqual([]);
    });

    it('bounds by time: since inclusive, until exclusive', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const made = await recordAll([0, 10, 20, 30, 40].map((dt) => entry(a, { at: T0 + dt })));
      const at = (...dts: number[]): string[] =>
        made.filter((r) => dts.includes(r.at - T0)).map((r) => r.id).reverse();

      expect(await listIds(a, { since: T0 + 10 })).toEqual(at(10, 20, 30, 40));
      expect(await listIds(a, { until: T0 + 30 })).toEqual(at(0, 10, 20));
      expect(await listIds(a, { since: T0 + 10, until: T0 + 30 })).toEqual(at(10, 20));
      expect(await listIds(a, { since: T0 + 20, until: T0 + 21 })).toEqual(at(20));
      expect(await listIds(a, { since: T0 + 20, until: T0 + 20 })).toEqual([]);
      expect(await listIds(a, { since: T0 + 41 })).toEqual([]);
      expect(await listIds(a, { since: T0 + 10, until: T0 + 40, action: 'devices.create' })).toEqual(at(10, 20, 30));
    });

    it('pages newest first with cursors that keep the filters', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const made = await recordAll(
        Array.from({ length: 7 }, (_, i) => entry(a, { resource_type: i % 2 === 0 ? 'device' : 'role', at: T0 + i })),
      );
      await recordAll([entry(null), entry(null)]);
      const first = await store.audit.list(a, { limit: 3 });
      expect(first.items).toHaveLength(3);
      expect(first.next_cursor).not.toBeNull();
      expect(ids(await walk((cursor) => store.audit.list(a, { limit: 3, cursor })))).toEqual(newestFirst(made));
      expect(ids(await walk((cursor) => store.audit.list(a, { limit: 1, cursor })))).toEqual(newestFirst(made));
      const devices = made.filter((r) => r.resource_type === 'device');
      const walked = await walk((cursor) => store.audit.list(a, { limit: 2, cursor, resource_type: 'device' }));
      expect(ids(walked)).toEqual(newestFirst(devices));
      const bounded = await walk((cursor) => store.audit.list(a, { limit: 2, cursor, since: T0 + 2, until: T0 + 6 }));
      expect(ids(bounded)).toEqual(newestFirst(made.slice(2, 6)));
      await expectError(store.audit.list(a, { cursor: '!!not-a-cursor!!' }), 'VALIDATION_FAILED', 'cursor');
    });

    it('purges one tenant’s records older than the cutoff and nothing else', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const times = [0, 10, 20, 30];
      const ofA = await recordAll(times.map((dt) => entry(a, { at: T0 + dt })));
      const ofB = await recordAll(times.map((dt) => entry(b, { at: T0 + dt })));
      const platform = await recordAll(times.map((dt) => entry(null, { at: T0 + dt })));

      expect(await store.audit.purge(a, T0 + 20)).toBe(2);
      expect(await listIds(a)).toEqual(newestFirst(ofA.slice(2)));
      expect(await store.audit.get(a, must(ofA[0]).id)).toBeNull();
      expect(await listIds(b)).toEqual(newestFirst(ofB));
      expect(await listIds(null)).toEqual(newestFirst(platform));
      expect(await store.audit.purge(a, T0 + 20)).toBe(0);
      expect(await store.audit.purge(a, T0 + 1000)).toBe(2);
      expect(await listIds(a)).toEqual([]);
      expect(await store.audit.purge('no-such-tenant', T0 + 1000)).toBe(0);
      expect(await listIds(b)).toEqual(newestFirst(ofB));
    });

    it('purges platform records (tenant null) older than the cutoff, and no tenant’s', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const times = [0, 10, 20, 30];
      const ofA = await recordAll(times.map((dt) => entry(a, { at: T0 + dt })));
      const platform = await recordAll(times.map((dt) => entry(null, { at: T0 + dt })));
      expect(await store.audit.purge(null, T0 + 20)).toBe(2);
      expect(await listIds(null)).toEqual(newestFirst(platform.slice(2)));
      expect(await listIds(a)).toEqual(newestFirst(ofA));
      expect(await store.audit.purge(null, T0 + 1000)).toBe(2);
      expect(await listIds(null)).toEqual([]);
      expect(await listIds(a)).toEqual(newestFirst(ofA));
    });

    it('deleting a tenant deletes its records; platform records stay', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const [ofA] = await recordAll([entry(a), entry(b)]);
      const deletion = await store.audit.record(
        entry(null, { action: 'tenants.delete', resource_type: 'tenant', resource_id: a, method: 'DELETE', status_code: 204 }),
      );
      expect(await store.tenants.delete(a)).toBe(true);
      expect(await store.audit.list(a)).toEqual({ items: [], next_cursor: null });
      expect(await store.audit.get(a, must(ofA).id)).toBeNull();
      expect(await listIds(b)).toHaveLength(1);
      expect(await store.audit.get(null, deletion.id)).toEqual(deletion);
      expect(await listIds(null, { resource_type: 'tenant', resource_id: a })).toEqual([deletion.id]);
    });
  });

  describe('tenant audit retention', () => {
    it('defaults to 365 days, is set on create and update, and never bumps the policy version', async () => {
      const t = await store.tenants.create({ name: 'a' });
      expect(t.audit_retention_days).toBe(365);
      expect(await store.tenants.get(t.id)).toEqual(t);
      const custom = await store.tenants.create({ name: 'b', audit_retention_days: 30 });
      expect(must(await store.tenants.get(custom.id)).audit_retention_days).toBe(30);

      const updated = await state.expectBump(t.id, 0, () => store.tenants.update(t.id, { audit_retention_days: 90 }));
      expect(updated).toMatchObject({ id: t.id, audit_retention_days: 90, policy_version: t.policy_version });
      expect(must(await store.tenants.get(t.id)).audit_retention_days).toBe(90);
      // Other patches leave it alone.
      await state.expectBump(t.id, 1, () => store.tenants.update(t.id, { default_effect: 'deny' }));
      expect(must(await store.tenants.get(t.id)).audit_retention_days).toBe(90);
      expect(must(await store.policySnapshot(t.id)).tenant.audit_retention_days).toBe(90);
      expect(must(await store.tenants.get(custom.id)).audit_retention_days).toBe(30);
    });
  });
}
