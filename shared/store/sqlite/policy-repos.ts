/**
 * The policy graph: rules, user↔role and role↔policy assignments, and the per-tenant snapshot
 * the decision engine compiles (DESIGN §4). Every change here can alter a decision, so every
 * effective change bumps the tenant's policy version.
 */
import type { Escalation, Policy, PolicyRule, Remediation, Role, Tenant, User } from '../../domain.js';
import { createError } from '../../errors.js';
import type { PolicySnapshot, RulePatch, Store } from '../port.js';
import type { SqliteContext, Stmt } from './context.js';
import { EntityTable } from './entity-table.js';
import { fromJson, sameJson, toJson } from './json-column.js';
import { createPlanReader } from './plan-repo.js';
import type { TenantRefs } from './refs.js';
import { tenantTable } from './platform-repos.js';
import { POLICY_COLUMNS, ROLE_COLUMNS, USER_COLUMNS } from './tenant-repos.js';

const RULE_COLUMNS = [
  'id',
  'tenant_id',
  'policy_id',
  'role_id',
  'app',
  'action',
  'permission',
  'remediation',
  'escalation',
  'created_at',
  'updated_at',
] as const;

/** remediation and escalation are JSON text on disk. */
type RuleRow = Omit<PolicyRule, 'remediation' | 'escalation'> & { remediation: string | null; escalation: string | null };

const toRule = (row: RuleRow): PolicyRule => ({
  ...row,
  remediation: fromJson<Remediation>(row.remediation),
  escalation: fromJson<Escalation>(row.escalation),
});

function toRowPatch(patch: RulePatch): Partial<RuleRow> {
  const { remediation, escalation, ...rest } = patch;
  const row: Partial<RuleRow> = { ...rest };
  // undefined leaves the column alone; null clears it.
  if (remediation !== undefined) row.remediation = toJson(remediation);
  if (escalation !== undefined) row.escalation = toJson(escalation);
  return row;
}

const prefixed = (alias: string, columns: readonly string[]): string => columns.map((c) => `${alias}.${c}`).join(', ');

export function createRuleRepo(ctx: SqliteContext, refs: TenantRefs): Store['rules'] {
  const table = new EntityTable<RuleRow>(ctx, 'rules', RULE_COLUMNS, 'tenant', [
    'role_id',
    'app',
    'action',
    'permission',
    'remediation',
    'escalation',
  ]);
  return {
    async create(tenantId, input) {
      return ctx.write((scope) => {
        refs.requireTenant(tenantId);
        refs.requirePolicy(tenantId, input.policy_id);
        const roleId = input.role_id ?? null;
        if (roleId !== null) refs.requireRole(tenantId, roleId);
        const now = ctx.now();
        const rule = table.insert({
          id: ctx.newId(),
          tenant_id: tenantId,
          policy_id: input.policy_id,
          role_id: roleId,
          app: input.app,
          action: input.action,
          permission: input.permission,
          remediation: toJson(input.remediation),
          escalation: toJson(input.escalation),
          created_at: now,
          updated_at: now,
        });
        scope.bumpPolicy(tenantId);
        return toRule(rule);
      });
    },
    async get(tenantId, id) {
      const row = table.get(tenantId, id);
      return row ? toRule(row) : null;
    },
    async list(tenantId, opts) {
      const page = table.list({ tenant_id: tenantId, policy_id: opts?.policy_id, role_id: opts?.role_id }, opts);
      return { items: page.items.map(toRule), next_cursor: page.next_cursor };
    },
    async update(tenantId, id, patch) {
      return ctx.write((scope) => {
        const before = table.get(tenantId, id);
        if (!before) return null;
        if (patch.role_id !== undefined && patch.role_id !== null) refs.requireRole(tenantId, patch.role_id);
        const after = table.update(tenantId, id, toRowPatch(patch));
        if (!after) return null;
        // Remediation and escalation decide what follows a deny, so they count as decision inputs.
        const changed =
          after.role_id !== before.role_id ||
          after.app !== before.app ||
          after.action !== before.action ||
          after.permission !== before.permission ||
          !sameJson(after.remediation, before.remediation) ||
          !sameJson(after.escalation, before.escalation);
        if (changed) scope.bumpPolicy(tenantId);
        return toRule(after);
      });
    },
    async delete(tenantId, id) {
      return ctx.write((scope) => {
        if (!table.delete(tenantId, id)) return false;
        scope.bumpPolicy(tenantId);
        return true;
      });
    },
  };
}

export function createUserRoleRepo(ctx: SqliteContext, refs: TenantRefs): Store['userRoles'] {
  const db = ctx.db;
  const assign: Stmt<[string, string, string, number]> = db.prepare(
    `INSERT INTO user_roles (tenant_id, user_id, role_id, created_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (tenant_id, user_id, role_id) DO NOTHING`,
  );
  const unassign: Stmt<[string, string, string]> = db.prepare(
    'DELETE FROM user_roles WHERE tenant_id = ? AND user_id = ? AND role_id = ?',
  );
  const rolesOfUser: Stmt<[string, string], Role> = db.prepare(
    `SELECT ${prefixed('r', ROLE_COLUMNS)} FROM user_roles ur
     JOIN roles r ON r.tenant_id = ur.tenant_id AND r.id = ur.role_id
     WHERE ur.tenant_id = ? AND ur.user_id = ? ORDER BY r.id`,
  );
  const usersOfRole: Stmt<[string, string], User> = db.prepare(
    `SELECT ${prefixed('u', USER_COLUMNS)} FROM user_roles ur
     JOIN users u ON u.tenant_id = ur.tenant_id AND u.id = ur.user_id
     WHERE ur.tenant_id = ? AND ur.role_id = ? ORDER BY u.id`,
  );

  return {
    async assign(tenantId, userId, roleId) {
      return ctx.write((scope) => {
        refs.requireUser(tenantId, userId);
        refs.requireRole(tenantId, roleId);
        const added = assign.run(tenantId, userId, roleId, ctx.now()).changes > 0;
        if (added) scope.bumpPolicy(tenantId);
        return added;
      });
    },
    async unassign(tenantId, userId, roleId) {
      return ctx.write((scope) => {
        const removed = unassign.run(tenantId, userId, roleId).changes > 0;
        if (removed) scope.bumpPolicy(tenantId);
        return removed;
      });
    },
    async rolesOfUser(tenantId, userId) {
      return rolesOfUser.all(tenantId, userId);
    },
    async usersOfRole(tenantId, roleId) {
      return usersOfRole.all(tenantId, roleId);
    },
  };
}

export function createRolePolicyRepo(ctx: SqliteContext, refs: TenantRefs): Store['rolePolicies'] {
  const db = ctx.db;
  const assign: Stmt<[string, string, string, number]> = db.prepare(
    `INSERT INTO role_policies (tenant_id, role_id, policy_id, created_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (tenant_id, role_id, policy_id) DO NOTHING`,
  );
  const unassign: Stmt<[string, string, string]> = db.prepare(
    'DELETE FROM role_policies WHERE tenant_id = ? AND role_id = ? AND policy_id = ?',
  );
  const policiesOfRole: Stmt<[string, string], Policy> = db.prepare(
    `SELECT ${prefixed('p', POLICY_COLUMNS)} FROM role_policies rp
     JOIN policies p ON p.tenant_id = rp.tenant_id AND p.id = rp.policy_id
     WHERE rp.tenant_id = ? AND rp.role_id = ? ORDER BY p.id`,
  );
  const rolesOfPolicy: Stmt<[string, string], Role> = db.prepare(
    `SELECT ${prefixed('r', ROLE_COLUMNS)} FROM role_policies rp
     JOIN roles r ON r.tenant_id = rp.tenant_id AND r.id = rp.role_id
     WHERE rp.tenant_id = ? AND rp.policy_id = ? ORDER BY r.id`,
  );

  return {
    async assign(tenantId, roleId, policyId) {
      return ctx.write((scope) => {
        refs.requireRole(tenantId, roleId);
        refs.requirePolicy(tenantId, policyId);
        const added = assign.run(tenantId, roleId, policyId, ctx.now()).changes > 0;
        if (added) scope.bumpPolicy(tenantId);
        return added;
      });
    },
    async unassign(tenantId, roleId, policyId) {
      return ctx.write((scope) => {
        const removed = unassign.run(tenantId, roleId, policyId).changes > 0;
        if (removed) scope.bumpPolicy(tenantId);
        return removed;
      });
    },
    async policiesOfRole(tenantId, roleId) {
      return policiesOfRole.all(tenantId, roleId);
    },
    async rolesOfPolicy(tenantId, policyId) {
      return rolesOfPolicy.all(tenantId, policyId);
    },
  };
}

export type SnapshotReader = (tenantId: string) => PolicySnapshot | null;

export function createSnapshotReader(ctx: SqliteContext): SnapshotReader {
  const tenants = tenantTable(ctx);
  const planOf = createPlanReader(ctx);
  const db = ctx.db;
  const devices: Stmt<[string], { id: string; user_id: string | null }> = db.prepare(
    'SELECT id, user_id FROM devices WHERE tenant_id = ? ORDER BY id',
  );
  const userRoles: Stmt<[string], { user_id: string; role_id: string }> = db.prepare(
    'SELECT user_id, role_id FROM user_roles WHERE tenant_id = ? ORDER BY user_id, role_id',
  );
  const rolePolicies: Stmt<[string], { role_id: string; policy_id: string }> = db.prepare(
    'SELECT role_id, policy_id FROM role_policies WHERE tenant_id = ? ORDER BY role_id, policy_id',
  );
  const policies: Stmt<[string], Policy> = db.prepare(
    `SELECT ${POLICY_COLUMNS.join(', ')} FROM policies WHERE tenant_id = ? ORDER BY id`,
  );
  const rules: Stmt<[string], RuleRow> = db.prepare(
    `SELECT ${RULE_COLUMNS.join(', ')} FROM rules WHERE tenant_id = ? ORDER BY id`,
  );

  // One read transaction: the version and the rows it describes come from the same instant.
  return (tenantId) =>
    ctx.read(() => {
      const tenant: Tenant | null = tenants.get(null, tenantId);
      if (!tenant) return null;
      // tenants.plan_id is a foreign key, so a missing plan means a corrupted database.
      const plan = planOf(tenant.plan_id);
      if (!plan) throw createError('INTERNAL', `tenant ${tenantId} refers to missing plan ${tenant.plan_id}`);
      return {
        tenant,
        plan,
        devices: devices.all(tenantId),
        user_roles: userRoles.all(tenantId),
        role_policies: rolePolicies.all(tenantId),
        policies: policies.all(tenantId),
        rules: rules.all(tenantId).map(toRule),
      };
    });
}
