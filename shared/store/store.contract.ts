/**
 * The store contract (DESIGN §2): one suite, run against every Store adapter. It is written only
 * against the port, so an adapter passes it or the adapter is wrong.
 *
 * Usage from an adapter's test file:
 *
 *   describeStoreContract('sqlite', async () => {
 *     const { hooks, policyChanges } = recordingHooks();
 *     const store = new SqliteStore({ file, hooks });
 *     await store.init();
 *     return { store, hooks: { policyChanges }, cleanup: async () => { await store.close(); ... } };
 *   });
 *
 * `open` is called once per test and must return an initialised, empty store whose
 * `hooks.onPolicyChanged` appends to `hooks.policyChanges` (recordingHooks() builds that pair).
 * The suite never controls the clock or id factory, so it asserts relations between timestamps
 * and ids, not their values.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Alert, Device, Policy, PolicyRule, Role, Tenant, User } from '../domain.js';
import { isEdgeplaneError, type ErrorCode } from '../errors.js';
import { createIdFactory } from '../ids.js';
import type { ConsoleUserInput, DecidedUsage, Page, RuleInput, Store, StoreHooks } from './port.js';

export interface PolicyChange {
  tenantId: string;
  version: number;
}

export interface StoreContractHarness {
  store: Store;
  hooks: { policyChanges: PolicyChange[] };
  cleanup: () => Promise<void>;
}

/** StoreHooks that record every policy change, for the harness `open` returns. */
export function recordingHooks(): { hooks: StoreHooks; policyChanges: PolicyChange[] } {
  const policyChanges: PolicyChange[] = [];
  return { hooks: { onPolicyChanged: (tenantId, version) => policyChanges.push({ tenantId, version }) }, policyChanges };
}

const eventId = createIdFactory();

function must<T>(value: T | null | undefined, what = 'value'): T {
  if (value === null || value === undefined) throw new Error(`expected ${what}`);
  return value;
}

async function expectError(p: Promise<unknown>, code: ErrorCode, messageIncludes?: string): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isEdgeplaneError(err), `expected EdgeplaneError ${code}, got ${String(err)}`).toBe(true);
  if (!isEdgeplaneError(err)) return;
  expect(err.code).toBe(code);
  if (messageIncludes !== undefined) expect(err.message).toContain(messageIncludes);
}

async function walk<T extends { id: string }>(fetch: (cursor: string | null) => Promise<Page<T>>): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | null = null;
  for (let guard = 0; guard < 10_000; guard++) {
    const page: Page<T> = await fetch(cursor);
    all.push(...page.items);
    if (page.next_cursor === null) return all;
    cursor = page.next_cursor;
  }
  throw new Error('pagination did not terminate');
}

const ids = (rows: Array<{ id: string }>): string[] => rows.map((r) => r.id);
const sortedIds = (rows: Array<{ id: string }>): string[] => ids(rows).sort();

interface World {
  tenant: Tenant;
  user: User;
  role: Role;
  policy: Policy;
  rule: PolicyRule;
  device: Device;
}

/** One tenant with a complete decision path: device → user → role → policy → rule. */
async function seedWorld(store: Store, name: string): Promise<World> {
  const tenant = await store.tenants.create({ name });
  const user = await store.users.create(tenant.id, { name: `${name}-user`, email: `${name}@example.com` });
  const role = await store.roles.create(tenant.id, { name: `${name}-role` });
  const policy = await store.policies.create(tenant.id, { name: `${name}-policy`, severity: 'high' });
  const rule = await store.rules.create(tenant.id, { policy_id: policy.id, app: 'slack', action: '*', permission: 'deny' });
  const deviceId = `dev-${name}-${eventId().slice(-8)}`;
  const device = await store.devices.create(tenant.id, { id: deviceId, name: 'phone', user_id: user.id });
  await store.userRoles.assign(tenant.id, user.id, role.id);
  await store.rolePolicies.assign(tenant.id, role.id, policy.id);
  return { tenant, user, role, policy, rule, device: must(await store.devices.get(tenant.id, device.id)) };
}

function usageEvent(w: World, overrides: Partial<DecidedUsage> = {}): DecidedUsage {
  return {
    id: eventId(),
    tenant_id: w.tenant.id,
    tower_id: 'tower-1',
    batch_id: 'batch-1',
    device_id: w.device.id,
    user_id: w.user.id,
    app: 'slack',
    action: 'upload',
    bytes: 1200,
    ts: 1_700_000_000_000,
    received_at: 1_700_000_000_100,
    effect: 'allow',
    reason: 'default',
    rule_id: null,
    policy_id: null,
    policy_version: w.tenant.policy_version,
    severity: null,
    ...overrides,
  };
}

function denyEvent(w: World, overrides: Partial<DecidedUsage> = {}): DecidedUsage {
  return usageEvent(w, {
    effect: 'deny',
    reason: 'rule',
    rule_id: w.rule.id,
    policy_id: w.policy.id,
    severity: 'high',
    ...overrides,
  });
}

const T0 = 1_700_000_000_000;

function consoleUser(tenant_id: string | null, email: string, password_hash = 'h'): ConsoleUserInput {
  return { tenant_id, email, console_role: tenant_id === null ? 'operator' : 'admin', password_hash };
}

function ruleInput(policy_id: string, extra: Partial<RuleInput> = {}): RuleInput {
  return { policy_id, app: '*', action: '*', permission: 'deny', ...extra };
}

export function describeStoreContract(name: string, open: () => Promise<StoreContractHarness>): void {
  describe(`Store contract: ${name}`, () => {
    let harness: StoreContractHarness;
    let store: Store;
    let changes: PolicyChange[];

    beforeEach(async () => {
      harness = await open();
      store = harness.store;
      changes = harness.hooks.policyChanges;
    });
    afterEach(async () => {
      await harness.cleanup();
    });

    /** Runs `op` and asserts it bumped the tenant's version by exactly `by` and announced it. */
    async function expectBump<T>(tenantId: string, by: 0 | 1, op: () => Promise<T>): Promise<T> {
      const before = must(await store.tenants.get(tenantId), 'tenant').policy_version;
      const heard = changes.length;
      const result = await op();
      const after = must(await store.tenants.get(tenantId), 'tenant').policy_version;
      expect(after, 'policy_version').toBe(before + by);
      expect(changes.slice(heard)).toEqual(by === 1 ? [{ tenantId, version: after }] : []);
      return result;
    }

    async function recordBatch(w: World, records: DecidedUsage[], now = T0, windowS = 300) {
      return store.usage.recordBatch({
        tenant_id: w.tenant.id,
        tower_id: 'tower-1',
        batch_id: eventId(),
        now,
        alert_window_s: windowS,
        records,
      });
    }

    describe('tenants', () => {
      it('creates with defaults, gets, lists, updates and deletes', async () => {
        const t = await store.tenants.create({ name: 'acme' });
        expect(t).toMatchObject({ name: 'acme', default_effect: 'allow' });
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

      it('console user emails are unique case-insensitively', async () => {
        const t = await store.tenants.create({ name: 'a' });
        const u = await store.consoleUsers.create(consoleUser(t.id, 'Ann@Example.COM', 'hash1'));
        expect(u).toMatchObject({ tenant_id: t.id, email: 'ann@example.com', console_role: 'admin' });
        expect(u).not.toHaveProperty('password_hash');
        await expectError(
          store.consoleUsers.create(consoleUser(null, 'ann@example.com')),
          'CONFLICT',
          'email',
        );
        expect(await store.consoleUsers.findByEmail('ANN@example.com')).toEqual({ ...u, password_hash: 'hash1' });
        expect(await store.consoleUsers.get(u.id)).toEqual(u);
        expect(await store.consoleUsers.findByEmail('nobody@example.com')).toBeNull();
        const op = await store.consoleUsers.create(consoleUser(null, 'op@platform.test'));
        expect(ids((await store.consoleUsers.list(null)).items)).toEqual([op.id]);
        expect(ids((await store.consoleUsers.list(t.id)).items)).toEqual([u.id]);
        await expectError(
          store.consoleUsers.create(consoleUser('no-such-tenant', 'x@y.z')),
          'NOT_FOUND',
          'tenant_id',
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
      });
    });

    describe('usage', () => {
      it('stores decided events and lists them newest first, exactly as recorded', async () => {
        const w = await seedWorld(store, 'a');
        const events = [usageEvent(w), usageEvent(w, { bytes: null, user_id: null }), denyEvent(w)];
        const res = await recordBatch(w, events);
        expect(res).toMatchObject({ inserted: 3, duplicates: 0 });
        const listed = (await store.usage.list(w.tenant.id)).items;
        const expected = events.map(({ severity: _s, ...rest }) => rest).reverse();
        expect(listed).toEqual(expected);
      });

      it('is idempotent by event id: redelivery writes nothing else', async () => {
        const w = await seedWorld(store, 'a');
        const unknown = usageEvent(w, { device_id: 'stranger', user_id: null, reason: 'unknown_device', effect: 'deny' });
        const events = [denyEvent(w), unknown];
        const first = await recordBatch(w, events);
        expect(first).toMatchObject({ inserted: 2, duplicates: 0 });
        expect(first.alerts_opened).toHaveLength(1);
        expect(first.discovered).toHaveLength(1);
        const again = await recordBatch(w, [...events, usageEvent(w)]);
        expect(again).toEqual({ inserted: 1, duplicates: 2, alerts_opened: [], alerts_updated: [], discovered: [] });
        const alert = must((await store.alerts.list(w.tenant.id)).items[0]);
        expect(alert.count).toBe(1);
        expect(must((await store.discovered.list(w.tenant.id)).items[0]).count).toBe(1);
        expect((await store.usage.list(w.tenant.id)).items).toHaveLength(3);
      });

      it('opens one alert per device and rule, bumps it within the window, opens anew after it', async () => {
        const w = await seedWorld(store, 'a');
        const first = await recordBatch(w, [denyEvent(w), denyEvent(w, { tower_id: 'tower-2' }), usageEvent(w)], T0);
        expect(first.alerts_opened).toHaveLength(1);
        expect(first.alerts_updated).toEqual([]);
        const opened = must(first.alerts_opened[0]);
        expect(opened).toMatchObject({
          tenant_id: w.tenant.id,
          device_id: w.device.id,
          user_id: w.user.id,
          rule_id: w.rule.id,
          policy_id: w.policy.id,
          app: 'slack',
          action: 'upload',
          tower_id: 'tower-2',
          severity: 'high',
          count: 2,
          first_seen: T0,
          last_seen: T0,
          status: 'open',
        });
        expect(await store.alerts.get(w.tenant.id, opened.id)).toEqual(opened);

        const later = T0 + 200_000;
        const second = await recordBatch(w, [denyEvent(w, { tower_id: 'tower-3' })], later, 300);
        expect(second.alerts_opened).toEqual([]);
        expect(second.alerts_updated).toEqual([{ ...opened, count: 3, last_seen: later, tower_id: 'tower-3' }]);

        const muchLater = later + 301_000;
        const third = await recordBatch(w, [denyEvent(w)], muchLater, 300);
        expect(third.alerts_updated).toEqual([]);
        expect(third.alerts_opened).toHaveLength(1);
        expect(must(third.alerts_opened[0])).toMatchObject({ count: 1, first_seen: muchLater, last_seen: muchLater });
        expect(must(third.alerts_opened[0]).id).not.toBe(opened.id);
        expect((await store.alerts.list(w.tenant.id)).items).toHaveLength(2);
      });

      it('alerts only for rule denies, keyed by rule, with medium as the default severity', async () => {
        const w = await seedWorld(store, 'a');
        const rule2 = await store.rules.create(w.tenant.id, ruleInput(w.policy.id, { app: 'mail' }));
        const res = await recordBatch(w, [
          denyEvent(w, { severity: null }),
          denyEvent(w, { rule_id: rule2.id, app: 'mail' }),
          usageEvent(w, { effect: 'deny', reason: 'default' }),
          usageEvent(w, { effect: 'allow', reason: 'rule', rule_id: w.rule.id, policy_id: w.policy.id }),
        ]);
        expect(res.alerts_opened.map((a) => [a.rule_id, a.severity, a.count])).toEqual([
          [w.rule.id, 'medium', 1],
          [rule2.id, 'high', 1],
        ]);
        expect(res.alerts_updated).toEqual([]);
      });

      it('lists alerts newest first with status and device filters, per tenant', async () => {
        const a = await seedWorld(store, 'a');
        const b = await seedWorld(store, 'b');
        const d2 = await store.devices.create(a.tenant.id, { name: 'd2', user_id: a.user.id });
        await recordBatch(a, [denyEvent(a)]);
        await recordBatch(a, [denyEvent(a, { device_id: d2.id })]);
        await recordBatch(b, [denyEvent(b)]);
        const listed = (await store.alerts.list(a.tenant.id)).items;
        expect(listed.map((x) => x.device_id)).toEqual([d2.id, a.device.id]);
        expect(ids(listed)).toEqual(ids(listed).sort().reverse());
        expect((await store.alerts.list(a.tenant.id, { device_id: d2.id })).items.map((x) => x.device_id)).toEqual([d2.id]);
        expect((await store.alerts.list(a.tenant.id, { status: 'open' })).items).toHaveLength(2);
        expect((await store.alerts.list(a.tenant.id, { status: 'resolved' })).items).toEqual([]);
        const bAlert = must((await store.alerts.list(b.tenant.id)).items[0]);
        expect(await store.alerts.get(a.tenant.id, bAlert.id)).toBeNull();
      });

      it('folds unknown devices into tenant-scoped discovered devices', async () => {
        const w = await seedWorld(store, 'a');
        const unknown = (ts: number, tower: string): DecidedUsage =>
          usageEvent(w, { device_id: 'stranger', user_id: null, reason: 'unknown_device', ts, tower_id: tower });
        const first = await recordBatch(w, [unknown(T0 + 10, 'tower-1'), unknown(T0 + 5, 'tower-2')]);
        expect(first.discovered).toHaveLength(1);
        expect(must(first.discovered[0])).toMatchObject({
          tenant_id: w.tenant.id,
          device_id: 'stranger',
          first_seen: T0 + 5,
          last_seen: T0 + 10,
          count: 2,
          tower_id: 'tower-1',
        });
        const second = await recordBatch(w, [unknown(T0 + 50, 'tower-3')]);
        const folded = must(second.discovered[0]);
        expect(folded).toMatchObject({
          id: must(first.discovered[0]).id,
          first_seen: T0 + 5,
          last_seen: T0 + 50,
          count: 3,
          tower_id: 'tower-3',
        });
        expect((await store.discovered.list(w.tenant.id)).items).toEqual([folded]);
        expect((await store.discovered.list(null)).items).toEqual([]);
      });

      it('filters usage by device, user, effect and tower, and never across tenants', async () => {
        const a = await seedWorld(store, 'a');
        const b = await seedWorld(store, 'b');
        const d2 = await store.devices.create(a.tenant.id, { name: 'd2' });
        const e1 = usageEvent(a);
        const e2 = denyEvent(a, { tower_id: 'tower-9' });
        const e3 = usageEvent(a, { device_id: d2.id, user_id: null });
        await recordBatch(a, [e1, e2, e3]);
        await recordBatch(b, [usageEvent(b)]);
        const t = a.tenant.id;
        expect(ids((await store.usage.list(t, { device_id: d2.id })).items)).toEqual([e3.id]);
        expect(ids((await store.usage.list(t, { user_id: a.user.id })).items)).toEqual([e2.id, e1.id]);
        expect(ids((await store.usage.list(t, { effect: 'deny' })).items)).toEqual([e2.id]);
        expect(ids((await store.usage.list(t, { tower_id: 'tower-9' })).items)).toEqual([e2.id]);
        expect(ids((await store.usage.list(t, { effect: 'allow', device_id: a.device.id })).items)).toEqual([e1.id]);
        expect((await store.usage.list(t, { device_id: b.device.id })).items).toEqual([]);
        expect(await store.usage.list('no-such-tenant')).toEqual({ items: [], next_cursor: null });
      });

      it('recordBatches applies a group exactly like sequential recordBatch calls', async () => {
        const a = await seedWorld(store, 'a');
        const b = await seedWorld(store, 'b');
        const first = [denyEvent(a), usageEvent(a)];
        const input = (w: World, records: DecidedUsage[]) => ({
          tenant_id: w.tenant.id,
          tower_id: 'tower-1',
          batch_id: eventId(),
          now: T0,
          alert_window_s: 300,
          records,
        });
        const results = await store.usage.recordBatches([
          input(a, first),
          // A redelivery of the first batch plus one new violation by the same device and rule.
          input(a, [...first, denyEvent(a)]),
          input(b, [denyEvent(b)]),
        ]);
        expect(results.map((r) => [r.inserted, r.duplicates])).toEqual([
          [2, 0],
          [1, 2],
          [1, 0],
        ]);
        expect(results[0]!.alerts_opened).toHaveLength(1);
        expect(results[1]!.alerts_opened).toHaveLength(0);
        expect(results[1]!.alerts_updated.map((x) => x.count)).toEqual([2]);
        expect((await store.alerts.list(a.tenant.id)).items.map((x) => x.count)).toEqual([2]);
        expect((await store.alerts.list(b.tenant.id)).items.map((x) => x.count)).toEqual([1]);
        expect((await store.usage.list(a.tenant.id)).items).toHaveLength(3);
        expect(await store.usage.recordBatches([])).toEqual([]);
      });

      it('recordBatches is all or nothing', async () => {
        const a = await seedWorld(store, 'a');
        const b = await seedWorld(store, 'b');
        const good = { tenant_id: a.tenant.id, tower_id: 't', batch_id: eventId(), now: T0, alert_window_s: 60, records: [denyEvent(a)] };
        await expectError(
          store.usage.recordBatches([good, { ...good, batch_id: eventId(), records: [usageEvent(b)] }]),
          'VALIDATION_FAILED',
          'tenant_id',
        );
        await expectError(
          store.usage.recordBatches([good, { ...good, tenant_id: 'no-such-tenant', records: [usageEvent(a, { tenant_id: 'no-such-tenant' })] }]),
          'NOT_FOUND',
          'tenant_id',
        );
        expect((await store.usage.list(a.tenant.id)).items).toEqual([]);
        expect((await store.alerts.list(a.tenant.id)).items).toEqual([]);
        expect((await store.dashboard(a.tenant.id)).usage_total).toBe(0);
      });

      it('rejects a batch for an unknown tenant or with a foreign record, writing nothing', async () => {
        const a = await seedWorld(store, 'a');
        const b = await seedWorld(store, 'b');
        await expectError(
          store.usage.recordBatch({
            tenant_id: 'no-such-tenant',
            tower_id: 't',
            batch_id: 'b',
            now: T0,
            alert_window_s: 60,
            records: [usageEvent(a, { tenant_id: 'no-such-tenant' })],
          }),
          'NOT_FOUND',
          'tenant_id',
        );
        await expectError(recordBatch(a, [denyEvent(a), usageEvent(b)]), 'VALIDATION_FAILED', 'tenant_id');
        expect((await store.usage.list(a.tenant.id)).items).toEqual([]);
        expect((await store.alerts.list(a.tenant.id)).items).toEqual([]);
      });

      it('counts the dashboard for one tenant only', async () => {
        const a = await seedWorld(store, 'a');
        const b = await seedWorld(store, 'b');
        await store.devices.create(a.tenant.id, { name: 'd2' });
        const stranger = usageEvent(a, { device_id: 'stranger', user_id: null, reason: 'unknown_device', effect: 'deny' });
        const batch = [usageEvent(a), usageEvent(a), denyEvent(a), stranger];
        await recordBatch(a, batch);
        await recordBatch(a, batch);
        await recordBatch(b, [denyEvent(b), usageEvent(b)]);
        expect(await store.dashboard(a.tenant.id)).toEqual({
          devices: 2,
          users: 1,
          policies: 1,
          rules: 1,
          alerts_open: 1,
          usage_total: 4,
          usage_allowed: 2,
          usage_denied: 2,
          discovered_devices: 1,
        });
        expect(await store.dashboard('no-such-tenant')).toMatchObject({ devices: 0, usage_total: 0, alerts_open: 0 });
      });
    });

    describe('platform discovery', () => {
      it('upserts tower reports by device and ignores a batch seen before', async () => {
        const w = await seedWorld(store, 'a');
        const report = (device_id: string, first_seen: number, last_seen: number, count: number) => ({
          device_id,
          first_seen,
          last_seen,
          count,
        });
        const firstReports = [report('x', T0, T0 + 10, 3), report('y', T0, T0, 1)];
        expect(await store.discovered.recordReports('tower-1', 'batch-1', firstReports, T0)).toBe(true);
        expect(await store.discovered.recordReports('tower-1', 'batch-1', [report('x', T0, T0 + 10, 3)], T0)).toBe(false);
        expect(await store.discovered.recordReports('tower-2', 'batch-2', [report('x', T0 - 5, T0 + 20, 2)], T0)).toBe(true);
        const listed = (await store.discovered.list(null)).items;
        expect(listed.map(({ id: _id, ...rest }) => rest).sort((p, q) => (p.device_id < q.device_id ? -1 : 1))).toEqual([
          { tenant_id: null, device_id: 'x', tower_id: 'tower-2', first_seen: T0 - 5, last_seen: T0 + 20, count: 5 },
          { tenant_id: null, device_id: 'y', tower_id: 'tower-1', first_seen: T0, last_seen: T0, count: 1 },
        ]);
        expect((await store.discovered.list(w.tenant.id)).items).toEqual([]);
      });
    });

    describe('pagination', () => {
      it('defaults to 50, clamps to 1..1000 and walks every row once, ascending by id', async () => {
        const t = await store.tenants.create({ name: 'a' });
        const created: User[] = [];
        for (let i = 0; i < 57; i++) created.push(await store.users.create(t.id, { name: `u${i}` }));
        const expected = sortedIds(created);
        const firstPage = await store.users.list(t.id);
        expect(firstPage.items).toHaveLength(50);
        expect(firstPage.next_cursor).not.toBeNull();
        expect((await store.users.list(t.id, { limit: 0 })).items).toHaveLength(1);
        expect((await store.users.list(t.id, { limit: -5 })).items).toHaveLength(1);
        const walked = await walk((cursor) => store.users.list(t.id, { limit: 7, cursor }));
        expect(ids(walked)).toEqual(expected);
        const exact = await store.users.list(t.id, { limit: 57 });
        expect(exact.next_cursor).toBeNull();
        const other = await store.tenants.create({ name: 'b' });
        expect(await walk((cursor) => store.users.list(other.id, { limit: 7, cursor }))).toEqual([]);
      });

      it('walks usage and alerts newest first and caps a page at 1000', async () => {
        const w = await seedWorld(store, 'a');
        const events = Array.from({ length: 1001 }, () => usageEvent(w));
        const res = await recordBatch(w, events);
        expect(res.inserted).toBe(1001);
        const capped = await store.usage.list(w.tenant.id, { limit: 5000 });
        expect(capped.items).toHaveLength(1000);
        expect(capped.next_cursor).not.toBeNull();
        const walked = await walk((cursor) => store.usage.list(w.tenant.id, { limit: 333, cursor }));
        expect(ids(walked)).toEqual(ids(events).reverse());

        const devices: string[] = [];
        for (let i = 0; i < 5; i++) devices.push((await store.devices.create(w.tenant.id, { name: `d${i}` })).id);
        for (const d of devices) await recordBatch(w, [denyEvent(w, { device_id: d })]);
        const alerts: Alert[] = await walk((cursor) => store.alerts.list(w.tenant.id, { limit: 2, cursor }));
        expect(alerts.map((a) => a.device_id)).toEqual([...devices].reverse());
      });

      it('rejects a cursor it did not issue', async () => {
        const t = await store.tenants.create({ name: 'a' });
        const err = await store.users.list(t.id, { cursor: '!!not-a-cursor!!' }).then(
          () => null,
          (e: unknown) => e,
        );
        expect(isEdgeplaneError(err) && err.status === 400).toBe(true);
      });
    });

    describe('refresh tokens', () => {
      it('consumes once, detects reuse and revokes a family', async () => {
        const u = await store.consoleUsers.create(consoleUser(null, 'op@x.test'));
        const base = { user_id: u.id, family_id: 'fam-1', expires_at: T0 + 1000 };
        await store.refreshTokens.create({ ...base, id: 'rt-1', token_hash: 'hash-1' });
        await store.refreshTokens.create({ ...base, id: 'rt-2', token_hash: 'hash-2' });
        await store.refreshTokens.create({ ...base, id: 'rt-3', family_id: 'fam-2', token_hash: 'hash-3' });
        expect(await store.refreshTokens.findByHash('hash-1')).toEqual({
          ...base,
          id: 'rt-1',
          token_hash: 'hash-1',
          used_at: null,
          revoked_at: null,
        });
        expect(await store.refreshTokens.findByHash('nope')).toBeNull();
        expect(await store.refreshTokens.consume('rt-1', T0)).toBe(true);
        expect(await store.refreshTokens.consume('rt-1', T0 + 1)).toBe(false);
        expect(must(await store.refreshTokens.findByHash('hash-1')).used_at).toBe(T0);
        await store.refreshTokens.revokeFamily('fam-1', T0 + 2);
        expect(await store.refreshTokens.consume('rt-2', T0 + 3)).toBe(false);
        expect(must(await store.refreshTokens.findByHash('hash-2')).revoked_at).toBe(T0 + 2);
        expect(await store.refreshTokens.consume('rt-3', T0 + 3)).toBe(true);
        expect(await store.refreshTokens.consume('no-such-token', T0)).toBe(false);
        const orphan = { ...base, user_id: 'ghost', id: 'rt-9', token_hash: 'hash-9' };
        await expectError(store.refreshTokens.create(orphan), 'NOT_FOUND', 'user_id');
      });
    });

    describe('towers, carriers and credentials', () => {
      it('keeps tower CRUD and status', async () => {
        const tower = await store.towers.create({ id: 'tw-1', name: 'North', lat: 52.5, lon: 13.4, radius_m: 800 });
        expect(tower).toMatchObject({ id: 'tw-1', state: 'unknown', agent_version: null, last_seen: null, radius_m: 800 });
        await expectError(store.towers.create({ id: 'tw-1', name: 'Dup' }), 'CONFLICT', 'id');
        const generated = await store.towers.create({ name: 'South' });
        expect(sortedIds((await store.towers.list()).items)).toEqual(['tw-1', generated.id].sort());
        expect(await store.towers.update('tw-1', { name: 'N', lat: null })).toMatchObject({ name: 'N', lat: null, lon: 13.4 });
        expect(await store.towers.update('ghost', { name: 'x' })).toBeNull();
        expect(await store.towers.setStatus('tw-1', { state: 'online', agent_version: '1.2.3', at: T0 })).toBe(true);
        expect(await store.towers.get('tw-1')).toMatchObject({ state: 'online', agent_version: '1.2.3', last_seen: T0 });
        expect(await store.towers.setStatus('ghost', { state: 'online', agent_version: null, at: T0 })).toBe(false);
      });

      it('links carriers both ways and cleans up when a tower goes', async () => {
        await store.towers.create({ id: 'tw-1', name: 'North' });
        await store.towers.create({ id: 'tw-2', name: 'South' });
        const carrier = await store.carriers.create({ name: 'Telco', mcc_mnc: '262-01' });
        expect(await store.carriers.get(carrier.id)).toEqual(carrier);
        const renamed = await store.carriers.update(carrier.id, { name: 'Telco AG' });
        expect(renamed).toMatchObject({ name: 'Telco AG', mcc_mnc: '262-01' });
        expect(await store.towerCarriers.link('tw-1', carrier.id)).toBe(true);
        expect(await store.towerCarriers.link('tw-1', carrier.id)).toBe(false);
        expect(await store.towerCarriers.link('tw-2', carrier.id)).toBe(true);
        expect(ids(await store.towerCarriers.carriersOfTower('tw-1'))).toEqual([carrier.id]);
        expect(ids(await store.towerCarriers.towersOfCarrier(carrier.id))).toEqual(['tw-1', 'tw-2']);
        await expectError(store.towerCarriers.link('ghost', carrier.id), 'NOT_FOUND', 'tower_id');
        await expectError(store.towerCarriers.link('tw-1', 'ghost'), 'NOT_FOUND', 'carrier_id');
        await expectError(store.towerCarriers.carriersOfTower('ghost'), 'NOT_FOUND', 'tower_id');
        await expectError(store.towerCarriers.towersOfCarrier('ghost'), 'NOT_FOUND', 'carrier_id');
        expect(await store.towerCarriers.unlink('tw-2', carrier.id)).toBe(true);
        expect(await store.towerCarriers.unlink('tw-2', carrier.id)).toBe(false);

        await store.towerCredentials.create({ id: 'cred-1', tower_id: 'tw-1', secret_hash: 's' });
        expect(await store.towers.delete('tw-1')).toBe(true);
        expect(await store.towers.delete('tw-1')).toBe(false);
        expect(await store.towerCredentials.get('cred-1')).toBeNull();
        expect(await store.towerCarriers.towersOfCarrier(carrier.id)).toEqual([]);
        expect(await store.carriers.delete(carrier.id)).toBe(true);
        expect(await store.carriers.get(carrier.id)).toBeNull();
      });

      it('manages tower credentials', async () => {
        await store.towers.create({ id: 'tw-1', name: 'North' });
        const cred = await store.towerCredentials.create({ id: 'cred-1', tower_id: 'tw-1', secret_hash: 'sh' });
        expect(cred).toMatchObject({ id: 'cred-1', tower_id: 'tw-1', revoked_at: null, last_used_at: null });
        expect(cred).not.toHaveProperty('secret_hash');
        const orphan = { id: 'cred-2', tower_id: 'ghost', secret_hash: 'x' };
        await expectError(store.towerCredentials.create(orphan), 'NOT_FOUND', 'tower_id');
        await expectError(store.towerCredentials.create({ id: 'cred-1', tower_id: 'tw-1', secret_hash: 'x' }), 'CONFLICT');
        expect(await store.towerCredentials.get('cred-1')).toEqual({ ...cred, secret_hash: 'sh' });
        await store.towerCredentials.touch('cred-1', T0);
        expect(must(await store.towerCredentials.get('cred-1')).last_used_at).toBe(T0);
        expect(await store.towerCredentials.listForTower('tw-1')).toEqual([{ ...cred, last_used_at: T0 }]);
        expect(await store.towerCredentials.revoke('cred-1', T0 + 1)).toBe(true);
        expect(await store.towerCredentials.revoke('cred-1', T0 + 2)).toBe(false);
        expect(await store.towerCredentials.revoke('ghost', T0)).toBe(false);
        expect(must(await store.towerCredentials.get('cred-1')).revoked_at).toBe(T0 + 1);
      });

      it('lists the towers where a tenant’s devices were seen', async () => {
        const a = await seedWorld(store, 'a');
        const b = await seedWorld(store, 'b');
        for (const id of ['tw-1', 'tw-2', 'tw-3', 'tw-4']) await store.towers.create({ id, name: id });
        await recordBatch(a, [usageEvent(a, { tower_id: 'tw-1' })]);
        const stranger = usageEvent(a, { tower_id: 'tw-2', device_id: 'stranger', user_id: null, reason: 'unknown_device' });
        await recordBatch(a, [stranger]);
        await recordBatch(b, [usageEvent(b, { tower_id: 'tw-3' })]);
        const unclaimed = [{ device_id: 'x', first_seen: T0, last_seen: T0, count: 1 }];
        await store.discovered.recordReports('tw-4', 'batch-1', unclaimed, T0);
        expect(ids((await store.towers.listSeenByTenant(a.tenant.id)).items)).toEqual(['tw-1', 'tw-2']);
        const walked = await walk((cursor) => store.towers.listSeenByTenant(a.tenant.id, { limit: 1, cursor }));
        expect(ids(walked)).toEqual(['tw-1', 'tw-2']);
        expect(ids((await store.towers.listSeenByTenant(b.tenant.id)).items)).toEqual(['tw-3']);
      });
    });
  });
}
