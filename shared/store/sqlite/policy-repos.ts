/**
 * The policy graph: rules, user↔role and role↔policy assignments, and the per-tenant snapshot
 * the decision engine compiles (DESIGN §4). Every change here can alter a decision, so every
 * effective change bumps the tenant's policy version.
 */
import type { Escalation, Policy, PolicyRule, Remediation, Role, Tenant, User } from '../../domain.js';
import { createError } from '../../errors.js';
import type { PolicyRulesSnapshot, PolicySnapshot, RulePatch, Store } from '../port.js';
import type { SqliteContext, Stmt } from './context.js';
import { EntityTable } from './entity-table.js';
import type { PolicyTouch } from '../rules/policy-history.js';
import { BUMPS, ruleUpdateBumps } from '../rules/policy-version.js';
import { fromJson, toJson } from './json-column.js';
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
        if (BUMPS.rules.create) scope.bumpPolicy(tenantId, { kind: 'rule', id: rule.id });
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
    async update(tenantId, id, patch, check) {
      return ctx.write((scope) => {
        const before = table.get(tenantId, id);
        if (!before) return null;
        if (patch.role_id !== undefined && patch.role_id !== null) refs.requireRole(tenantId, patch.role_id);
        const after = table.update(tenantId, id, toRowPatch(patch));
        if (!after) return null;
        const rule = toRule(after);
        // Throwing rolls the whole transaction back.
        check?.(rule);
        if (ruleUpdateBumps(toRule(before), rule)) scope.bumpPolicy(tenantId, { kind: 'rule', id });
        return rule;
      });
    },
    async delete(tenantId, id) {
      return ctx.write((scope) => {
        if (!table.delete(tenantId, id)) return false;
        if (BUMPS.rules.delete) scope.bumpPolicy(tenantId, { kind: 'rule', id });
        return true;
      });
    },
  };
}

interface LinkSide {
  /** Column in the link table, e.g. 'user_id'. */
  column: string;
  /** The entity table it refers to and that table's columns. */
  table: string;
  columns: readonly string[];
  /** Throws NOT_FOUND naming the field when the id is not the tenant's. */
  require: (tenantId: string, id: string) => void;
}

interface LinkRepo<L, R> {
  assign(tenantId: string, left: string, right: string): Promise<boolean>;
  unassign(tenantId: string, left: string, right: string): Promise<boolean>;
  rightsOf(tenantId: string, left: string): Promise<R[]>;
  leftsOf(tenantId: string, right: string): Promise<L[]>;
}

/**
 * A tenant-scoped many-to-many link (user↔role, role↔policy). Both sides must be the tenant's;
 * a change to a link changes decisions, so it bumps the policy version, but only when something
 * actually changed.
 */
function createLinkRepo<L, R>(
  ctx: SqliteContext,
  table: string,
  left: LinkSide,
  right: LinkSide,
  touch: (left: string, right: string) => PolicyTouch,
): LinkRepo<L, R> {
  const db = ctx.db;
  const assign: Stmt<[string, string, string, number]> = db.prepare(
    `INSERT INTO ${table} (tenant_id, ${left.column}, ${right.column}, created_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (tenant_id, ${left.column}, ${right.column}) DO NOTHING`,
  );
  const unassign: Stmt<[string, string, string]> = db.prepare(
    `DELETE FROM ${table} WHERE tenant_id = ? AND ${left.column} = ? AND ${right.column} = ?`,
  );
  const read = (side: LinkSide, by: LinkSide) =>
    db.prepare(
      `SELECT ${prefixed('e', side.columns)} FROM ${table} l
       JOIN ${side.table} e ON e.tenant_id = l.tenant_id AND e.id = l.${side.column}
       WHERE l.tenant_id = ? AND l.${by.column} = ? ORDER BY e.id`,
    );
  const rightsOf = read(right, left) as Stmt<[string, string], R>;
  const leftsOf = read(left, right) as Stmt<[string, string], L>;

  return {
    async assign(tenantId, l, r) {
      return ctx.write((scope) => {
        left.require(tenantId, l);
        right.require(tenantId, r);
        const added = assign.run(tenantId, l, r, ctx.now()).changes > 0;
        if (added) scope.bumpPolicy(tenantId, touch(l, r));
        return added;
      });
    },
    async unassign(tenantId, l, r) {
      return ctx.write((scope) => {
        const removed = unassign.run(tenantId, l, r).changes > 0;
        if (removed) scope.bumpPolicy(tenantId, touch(l, r));
        return removed;
      });
    },
    async rightsOf(tenantId, l) {
      return rightsOf.all(tenantId, l);
    },
    async leftsOf(tenantId, r) {
      return leftsOf.all(tenantId, r);
    },
  };
}

export function createUserRoleRepo(ctx: SqliteContext, refs: TenantRefs): Store['userRoles'] {
  const links = createLinkRepo<User, Role>(
    ctx,
    'user_roles',
    { column: 'user_id', table: 'users', columns: USER_COLUMNS, require: (t, id) => refs.requireUser(t, id) },
    { column: 'role_id', table: 'roles', columns: ROLE_COLUMNS, require: (t, id) => refs.requireRole(t, id) },
    (user_id, role_id) => ({ kind: 'user_role', user_id, role_id }),
  );
  return {
    assign: (tenantId, userId, roleId) => links.assign(tenantId, userId, roleId),
    unassign: (tenantId, userId, roleId) => links.unassign(tenantId, userId, roleId),
    rolesOfUser: (tenantId, userId) => links.rightsOf(tenantId, userId),
    usersOfRole: (tenantId, roleId) => links.leftsOf(tenantId, roleId),
  };
}

export function createRolePolicyRepo(ctx: SqliteContext, refs: TenantRefs): Store['rolePolicies'] {
  const links = createLinkRepo<Role, Policy>(
    ctx,
    'role_policies',
    { column: 'role_id', table: 'roles', columns: ROLE_COLUMNS, require: (t, id) => refs.requireRole(t, id) },
    { column: 'policy_id', table: 'policies', columns: POLICY_COLUMNS, require: (t, id) => refs.requirePolicy(t, id) },
    (role_id, policy_id) => ({ kind: 'role_policy', role_id, policy_id }),
  );
  return {
    assign: (tenantId, roleId, policyId) => links.assign(tenantId, roleId, policyId),
    unassign: (tenantId, roleId, policyId) => links.unassign(tenantId, roleId, policyId),
    policiesOfRole: (tenantId, roleId) => links.rightsOf(tenantId, roleId),
    rolesOfPolicy: (tenantId, policyId) => links.leftsOf(tenantId, policyId),
  };
}

export type SnapshotReader = (tenantId: string) => PolicySnapshot | null;

/** The whole snapshot, and the rule side alone (PolicyRulesSnapshot). */
export function createSnapshotReaders(ctx: SqliteContext): { snapshot: SnapshotReader; rulesSnapshot: (tenantId: string) => PolicyRulesSnapshot | null } {
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

  // Call inside a read transaction: the version and the rows it describes come from one instant.
  const rulesSide = (tenantId: string): PolicyRulesSnapshot | null => {
    const tenant: Tenant | null = tenants.get(null, tenantId);
    if (!tenant) return null;
    // tenants.plan_id is a foreign key, so a missing plan means a corrupted database.
    const plan = planOf(tenant.plan_id);
    if (!plan) throw createError('INTERNAL', `tenant ${tenantId} refers to missing plan ${tenant.plan_id}`);
    return {
      tenant,
      plan,
      role_policies: rolePolicies.all(tenantId),
      policies: policies.all(tenantId),
      rules: rules.all(tenantId).map(toRule),
    };
  };
  return {
    snapshot: (tenantId) =>
      ctx.read(() => {
        const side = rulesSide(tenantId);
        return side && { ...side, devices: devices.all(tenantId), user_roles: userRoles.all(tenantId) };
      }),
    rulesSnapshot: (tenantId) => ctx.read(() => rulesSide(tenantId)),
  };
}
