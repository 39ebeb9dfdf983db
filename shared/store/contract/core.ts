/**
 * Contract: tenants, tenant isolation, uniqueness, the policy version, cascades, associations and
 * the policy snapshot.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../port.js';
import {
  consoleUser,
  expectError,
  ids,
  must,
  ruleInput,
  seedWorld,
  sortedIds,
  denyEvent,
  type ContractState,
  type PolicyChange,
} from './harness.js';

export function describeCoreContract(state: ContractState): void {
  let store: Store;
  let changes: PolicyChange[];
  beforeEach(() => {
    store = state.store;
    changes = state.changes;
  });
  const { expectBump, recordBatch } = state;

  describe('tenants', () => {
    it('creates with defaults, gets, lists, updates and deletes', async () => {
      const t = await store.tenants.create({ name: 'acme' });
      expect(t).toMatchObject({ name: 'acme', default_effect: 'allow', plan_id: 'free' });
      expect(Number.isInteger(t.policy_version)).toBe(true);
      expect(t.alert_window_s).toBeGreaterThan(0);
      expect(t.updated_at).toBe(t.created_at);
      const custom = await store.tenants.create({ name: 'strict', default_effect: 'deny', alert_window_s: 60 });
      expect(custom).toMatchObject({ default_effect: 'deny', alert_window_s: 60 });
      expect(await store.tenants.get(t.id)).toEqual(t);
      expect(await store.tenants.get('no-such-tenant')).toBeNull();
      expect(sortedIds((await store.tenants.list()).items)).toEqual([t.id, custom.id].sort());

      const renamed = must(await store.tenants.update(t.id, { name: 'acme2', alert_window_s: 30 }));
      expect(renamed).toMatchObject({ id: t.id, name: 'acme2', alert_window_s: 30, default_effect: 'allow' });
      expect(renamed.updated_at).toBeGreaterThanOrEqual(t.updated_at);
      expect(await store.tenants.update('no-such-tenant', { name: 'x' })).toBeNull();

      expect(await store.tenants.delete(t.id)).toBe(true);
      expect(await store.tenants.get(t.id)).toBeNull();
      expect(await store.tenants.delete(t.id)).toBe(false);
    });

    it('bumps the policy version only when default_effect changes', async () => {
      const t = await store.tenants.create({ name: 'acme' });
      await expectBump(t.id, 0, () => store.tenants.update(t.id, { name: 'renamed' }));
      await expectBump(t.id, 0, () => store.tenants.update(t.id, { default_effect: 'allow' }));
      const updated = await expectBump(t.id, 1, () => store.tenants.update(t.id, { default_effect: 'deny' }));
      expect(updated).toMatchObject({ default_effect: 'deny', policy_version: t.policy_version + 1 });
    });

    it('deleting a tenant removes everything it owns', async () => {
      const w = await seedWorld(store, 'a');
      const other = await seedWorld(store, 'b');
      await recordBatch(w, [denyEvent(w)]);
      await store.consoleUsers.create(consoleUser(w.tenant.id, 'o@a.test'));
      expect(await store.tenants.delete(w.tenant.id)).toBe(true);
      expect(await store.policySnapshot(w.tenant.id)).toBeNull();
      expect(await store.devices.tenantOf(w.device.id)).toBeNull();
      expect(await store.consoleUsers.findByEmail('o@a.test')).toBeNull();
      expect((await store.usage.list(w.tenant.id)).items).toEqual([]);
      expect(await store.devices.tenantOf(other.device.id)).toBe(other.tenant.id);
    });
  });

  describe('tenant isolation', () => {
    it('never reads, lists, updates or deletes another tenant’s rows', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const app = await store.apps.create(a.tenant.id, { key: 'slack', name: 'Slack' });
      const action = await store.actions.create(a.tenant.id, { key: 'upload', name: 'Upload' });
      // The repos differ only in their record types; the isolation rules are the same for all.
      type AnyRepo = Store['users'] | Store['roles'] | Store['policies'] | Store['rules'] | Store['apps'] | Store['devices'];
      const cases: Array<{ name: string; id: string; repo: AnyRepo; patch: Record<string, string> }> = [
        { name: 'users', id: a.user.id, repo: store.users, patch: { name: 'x' } },
        { name: 'roles', id: a.role.id, repo: store.roles, patch: { name: 'x' } },
        { name: 'policies', id: a.policy.id, repo: store.policies, patch: { name: 'x' } },
        { name: 'rules', id: a.rule.id, repo: store.rules, patch: { app: 'x' } },
        { name: 'apps', id: app.id, repo: store.apps, patch: { name: 'x' } },
        { name: 'actions', id: action.id, repo: store.actions, patch: { name: 'x' } },
        { name: 'devices', id: a.device.id, repo: store.devices, patch: { name: 'x' } },
      ];
      for (const c of cases) {
        const repo = c.repo as Store['users'];
        const original = await repo.get(a.tenant.id, c.id);
        expect(original, c.name).not.toBeNull();
        expect(await repo.get(b.tenant.id, c.id), c.name).toBeNull();
        expect(ids((await repo.list(b.tenant.id, { limit: 1000 })).items), c.name).not.toContain(c.id);
        expect(await repo.update(b.tenant.id, c.id, c.patch), c.name).toBeNull();
        expect(await repo.delete(b.tenant.id, c.id), c.name).toBe(false);
        expect(await repo.get(a.tenant.id, c.id), c.name).toEqual(original);
      }
      expect(await store.userRoles.rolesOfUser(b.tenant.id, a.user.id)).toEqual([]);
      expect(await store.userRoles.usersOfRole(b.tenant.id, a.role.id)).toEqual([]);
      expect(await store.rolePolicies.policiesOfRole(b.tenant.id, a.role.id)).toEqual([]);
      expect(await store.rolePolicies.rolesOfPolicy(b.tenant.id, a.policy.id)).toEqual([]);
      expect(await store.userRoles.unassign(b.tenant.id, a.user.id, a.role.id)).toBe(false);
      expect(await store.rolePolicies.unassign(b.tenant.id, a.role.id, a.policy.id)).toBe(false);
      expect(await store.userRoles.rolesOfUser(a.tenant.id, a.user.id)).toHaveLength(1);
    });

    it('refuses references to another tenant’s ids with NOT_FOUND naming the field', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const t = a.tenant.id;
      const heard = changes.length;
      await expectError(store.rules.create(t, ruleInput(b.policy.id)), 'NOT_FOUND', 'policy_id');
      await expectError(store.rules.create(t, ruleInput(a.policy.id, { role_id: b.role.id })), 'NOT_FOUND', 'role_id');
      await expectError(store.rules.update(t, a.rule.id, { role_id: b.role.id }), 'NOT_FOUND', 'role_id');
      await expectError(store.userRoles.assign(t, b.user.id, a.role.id), 'NOT_FOUND', 'user_id');
      await expectError(store.userRoles.assign(t, a.user.id, b.role.id), 'NOT_FOUND', 'role_id');
      await expectError(store.rolePolicies.assign(t, b.role.id, a.policy.id), 'NOT_FOUND', 'role_id');
      await expectError(store.rolePolicies.assign(t, a.role.id, b.policy.id), 'NOT_FOUND', 'policy_id');
      await expectError(store.devices.create(t, { name: 'x', user_id: b.user.id }), 'NOT_FOUND', 'user_id');
      await expectError(store.devices.update(t, a.device.id, { user_id: b.user.id }), 'NOT_FOUND', 'user_id');
      await expectError(store.users.create('no-such-tenant', { name: 'x' }), 'NOT_FOUND', 'tenant_id');
      await expectError(store.devices.create('no-such-tenant', { name: 'x' }), 'NOT_FOUND', 'tenant_id');
      expect(changes.length, 'a refused change must not bump').toBe(heard);
      expect((await store.rules.list(t)).items).toEqual([a.rule]);
      expect(must(await store.devices.get(t, a.device.id)).user_id).toBe(a.user.id);
    });
  });

  describe('uniqueness', () => {
    it('app and action keys are unique per tenant', async () => {
      const a = await store.tenants.create({ name: 'a' });
      const b = await store.tenants.create({ name: 'b' });
      await store.apps.create(a.id, { key: 'slack', name: 'Slack' });
      await expectError(store.apps.create(a.id, { key: 'slack', name: 'Again' }), 'CONFLICT', 'key');
      await expect(store.apps.create(b.id, { key: 'slack', name: 'Slack' })).resolves.toMatchObject({ key: 'slack' });
      await store.actions.create(a.id, { key: 'upload', name: 'Upload' });
      await expectError(store.actions.create(a.id, { key: 'upload', name: 'Again' }), 'CONFLICT', 'key');
      await expect(store.actions.create(b.id, { key: 'upload', name: 'Upload' })).resolves.toMatchObject({ key: 'upload' });
      expect((await store.apps.list(a.id)).items).toHaveLength(1);
    });

    it('a device id is registered once across the platform', async () => {
      const a = await store.tenants.create({ name: 'a' });
      const b = await store.tenants.create({ name: 'b' });
      await store.devices.create(a.id, { id: 'imei-1', name: 'phone' });
      await expectError(store.devices.create(b.id, { id: 'imei-1', name: 'phone' }), 'CONFLICT', 'id');
      await expectError(store.devices.create(a.id, { id: 'imei-1', name: 'phone' }), 'CONFLICT', 'id');
      expect(await store.devices.tenantOf('imei-1')).toBe(a.id);
      const generated = await store.devices.create(b.id, { name: 'tablet' });
      expect(generated.id.length).toBeGreaterThan(0);
      expect(await store.devices.directory()).toEqual(
        [
          { device_id: 'imei-1', tenant_id: a.id },
          { device_id: generated.id, tenant_id: b.id },
        ].sort((x, y) => (x.device_id < y.device_id ? -1 : 1)),
      );
    });
  });

  describe('policy version', () => {
    it('every decision-relevant change bumps by one and is announced', async () => {
      const w = await seedWorld(store, 'a');
      const t = w.tenant.id;
      const user2 = await expectBump(t, 0, () => store.users.create(t, { name: 'u2' }));
      const role2 = await expectBump(t, 0, () => store.roles.create(t, { name: 'r2' }));
      const policy2 = await expectBump(t, 1, () => store.policies.create(t, { name: 'p2' }));
      expect(policy2.severity).toBe('medium');
      await expectBump(t, 1, () => store.policies.update(t, policy2.id, { severity: 'critical' }));
      await expectBump(t, 0, () => store.policies.update(t, policy2.id, { name: 'renamed' }));
      await expectBump(t, 0, () => store.policies.update(t, policy2.id, { severity: 'critical' }));
      const rule2 = await expectBump(t, 1, () =>
        store.rules.create(t, { policy_id: policy2.id, role_id: role2.id, app: '*', action: 'upload', permission: 'allow' }),
      );
      await expectBump(t, 1, () => store.rules.update(t, rule2.id, { permission: 'deny' }));
      await expectBump(t, 1, () => store.userRoles.assign(t, user2.id, role2.id));
      await expectBump(t, 0, () => store.userRoles.assign(t, user2.id, role2.id));
      await expectBump(t, 1, () => store.rolePolicies.assign(t, role2.id, policy2.id));
      await expectBump(t, 0, () => store.rolePolicies.assign(t, role2.id, policy2.id));
      const dev2 = await expectBump(t, 1, () => store.devices.create(t, { name: 'd2' }));
      await expectBump(t, 1, () => store.devices.update(t, dev2.id, { user_id: user2.id }));
      await expectBump(t, 0, () => store.devices.update(t, dev2.id, { name: 'renamed', user_id: user2.id }));
      await expectBump(t, 0, () => store.users.update(t, user2.id, { email: 'u2@x.test' }));
      await expectBump(t, 0, () => store.roles.update(t, role2.id, { description: 'd' }));
      const app = await expectBump(t, 0, () => store.apps.create(t, { key: 'mail', name: 'Mail' }));
      await expectBump(t, 0, () => store.apps.update(t, app.id, { name: 'Email' }));
      await expectBump(t, 0, () => store.apps.delete(t, app.id));
      const action = await expectBump(t, 0, () => store.actions.create(t, { key: 'send', name: 'Send' }));
      await expectBump(t, 0, () => store.actions.delete(t, action.id));
      await expectBump(t, 1, () => store.rolePolicies.unassign(t, role2.id, policy2.id));
      await expectBump(t, 0, () => store.rolePolicies.unassign(t, role2.id, policy2.id));
      await expectBump(t, 1, () => store.userRoles.unassign(t, user2.id, role2.id));
      await expectBump(t, 0, () => store.userRoles.unassign(t, user2.id, role2.id));
      await expectBump(t, 1, () => store.rules.delete(t, rule2.id));
      await expectBump(t, 0, () => store.rules.delete(t, rule2.id));
      await expectBump(t, 1, () => store.devices.delete(t, dev2.id));
      await expectBump(t, 1, () => store.policies.delete(t, policy2.id));
      await expectBump(t, 1, () => store.roles.delete(t, role2.id));
      await expectBump(t, 1, () => store.users.delete(t, user2.id));
      await expectBump(t, 0, () => store.users.delete(t, user2.id));
      const versions = changes.filter((c) => c.tenantId === t).map((c) => c.version);
      expect(versions).toEqual([...versions].sort((x, y) => x - y));
      expect(new Set(versions).size).toBe(versions.length);
    });

    it('a bump in one tenant leaves the others alone', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const bBefore = must(await store.tenants.get(b.tenant.id)).policy_version;
      await expectBump(a.tenant.id, 1, () => store.rules.update(a.tenant.id, a.rule.id, { app: 'mail' }));
      expect(must(await store.tenants.get(b.tenant.id)).policy_version).toBe(bBefore);
    });
  });

  describe('cascades', () => {
    it('deleting a user drops its role assignments and orphans its devices', async () => {
      const w = await seedWorld(store, 'a');
      const t = w.tenant.id;
      await expectBump(t, 1, () => store.users.delete(t, w.user.id));
      expect(await store.userRoles.usersOfRole(t, w.role.id)).toEqual([]);
      const device = must(await store.devices.get(t, w.device.id));
      expect(device.user_id).toBeNull();
      const snap = must(await store.policySnapshot(t));
      expect(snap.user_roles).toEqual([]);
      expect(snap.devices).toEqual([{ id: w.device.id, user_id: null }]);
    });

    it('deleting a role drops its assignments and the rules scoped to it', async () => {
      const w = await seedWorld(store, 'a');
      const t = w.tenant.id;
      const scoped = await store.rules.create(t, ruleInput(w.policy.id, { role_id: w.role.id, app: 'mail' }));
      const other = await store.roles.create(t, { name: 'other' });
      const otherScoped = await store.rules.create(t, ruleInput(w.policy.id, { role_id: other.id, app: 'mail' }));
      await expectBump(t, 1, () => store.roles.delete(t, w.role.id));
      expect(await store.rules.get(t, scoped.id)).toBeNull();
      expect(await store.rules.get(t, otherScoped.id)).not.toBeNull();
      expect(await store.rules.get(t, w.rule.id)).not.toBeNull();
      expect(await store.userRoles.rolesOfUser(t, w.user.id)).toEqual([]);
      expect(await store.rolePolicies.rolesOfPolicy(t, w.policy.id)).toEqual([]);
      expect(ids((await store.rules.list(t, { role_id: w.role.id })).items)).toEqual([]);
    });

    it('deleting a policy drops its rules and role assignments', async () => {
      const w = await seedWorld(store, 'a');
      const t = w.tenant.id;
      const keep = await store.policies.create(t, { name: 'keep' });
      const keptRule = await store.rules.create(t, { policy_id: keep.id, app: '*', action: '*', permission: 'allow' });
      await expectBump(t, 1, () => store.policies.delete(t, w.policy.id));
      expect(await store.rules.get(t, w.rule.id)).toBeNull();
      expect(await store.rolePolicies.policiesOfRole(t, w.role.id)).toEqual([]);
      expect((await store.rules.list(t)).items).toEqual([keptRule]);
    });
  });

  describe('associations and filters', () => {
    it('reads assignments both ways and filters rules and devices', async () => {
      const w = await seedWorld(store, 'a');
      const t = w.tenant.id;
      expect(await store.userRoles.rolesOfUser(t, w.user.id)).toEqual([w.role]);
      expect(await store.userRoles.usersOfRole(t, w.role.id)).toEqual([w.user]);
      expect(await store.rolePolicies.policiesOfRole(t, w.role.id)).toEqual([w.policy]);
      expect(await store.rolePolicies.rolesOfPolicy(t, w.policy.id)).toEqual([w.role]);
      const p2 = await store.policies.create(t, { name: 'p2' });
      const r2 = await store.rules.create(t, ruleInput(p2.id, { role_id: w.role.id, app: 'a', action: 'b', permission: 'allow' }));
      expect((await store.rules.list(t, { policy_id: p2.id })).items).toEqual([r2]);
      expect((await store.rules.list(t, { role_id: w.role.id })).items).toEqual([r2]);
      expect(sortedIds((await store.rules.list(t)).items)).toEqual([w.rule.id, r2.id].sort());
      const loose = await store.devices.create(t, { name: 'loose', os: 'android' });
      expect(loose).toMatchObject({ user_id: null, os: 'android', tenant_id: t });
      expect((await store.devices.list(t, { user_id: w.user.id })).items).toEqual([w.device]);
      expect(await store.userRoles.unassign(t, w.user.id, w.role.id)).toBe(true);
      expect(await store.userRoles.rolesOfUser(t, w.user.id)).toEqual([]);
      const patched = must(await store.rules.update(t, r2.id, { role_id: null, action: '*' }));
      expect(patched).toMatchObject({ id: r2.id, policy_id: p2.id, role_id: null, action: '*', app: 'a' });
    });
  });

  describe('policy snapshot', () => {
    it('returns exactly the tenant’s decision inputs at the current version', async () => {
      const a = await seedWorld(store, 'a');
      await seedWorld(store, 'b');
      const loose = await store.devices.create(a.tenant.id, { name: 'loose' });
      const snap = must(await store.policySnapshot(a.tenant.id));
      expect(snap.tenant).toEqual(await store.tenants.get(a.tenant.id));
      expect(snap.plan).toEqual(await store.plans.get(a.tenant.plan_id));
      expect(snap.devices).toEqual(
        [
          { id: a.device.id, user_id: a.user.id },
          { id: loose.id, user_id: null },
        ].sort((x, y) => (x.id < y.id ? -1 : 1)),
      );
      expect(snap.user_roles).toEqual([{ user_id: a.user.id, role_id: a.role.id }]);
      expect(snap.role_policies).toEqual([{ role_id: a.role.id, policy_id: a.policy.id }]);
      expect(snap.policies).toEqual([a.policy]);
      expect(snap.rules).toEqual([a.rule]);
      expect(await store.policySnapshot('no-such-tenant')).toBeNull();
      const { devices: _devices, user_roles: _userRoles, ...rulesSide } = snap;
      expect(await store.policyRulesSnapshot(a.tenant.id)).toEqual(rulesSide);
      expect(await store.policyRulesSnapshot('no-such-tenant')).toBeNull();
    });

    it('announces what each change can alter: the rule side only, or the inventory too', async () => {
      const w = await seedWorld(store, 'a');
      const scopeOf = async (op: () => Promise<unknown>): Promise<string[]> => {
        const from = changes.length;
        await op();
        return changes.slice(from).map((c) => c.scope);
      };
      const t = w.tenant.id;
      // Rule side: the inventory (devices, user → role links) of the version before still holds.
      expect(await scopeOf(() => store.rules.update(t, w.rule.id, { permission: 'allow' }))).toEqual(['rules']);
      expect(await scopeOf(() => store.rules.create(t, { policy_id: w.policy.id, app: 'zoom', action: '*', permission: 'deny' }))).toEqual(['rules']);
      expect(await scopeOf(() => store.policies.update(t, w.policy.id, { severity: 'low' }))).toEqual(['rules']);
      expect(await scopeOf(() => store.rolePolicies.unassign(t, w.role.id, w.policy.id))).toEqual(['rules']);
      expect(await scopeOf(() => store.tenants.update(t, { default_effect: 'deny' }))).toEqual(['rules']);
      // Inventory: who holds which roles, which devices exist and whose they are.
      expect(await scopeOf(() => store.userRoles.unassign(t, w.user.id, w.role.id))).toEqual(['inventory']);
      expect(await scopeOf(() => store.devices.create(t, { name: 'second', user_id: w.user.id }))).toEqual(['inventory']);
      expect(await scopeOf(() => store.devices.update(t, w.device.id, { user_id: null }))).toEqual(['inventory']);
      expect(await scopeOf(() => store.roles.delete(t, w.role.id))).toEqual(['inventory']);
      expect(await scopeOf(() => store.users.delete(t, w.user.id))).toEqual(['inventory']);
    });
  });
}
