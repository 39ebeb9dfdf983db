/**
 * The policy graph: rules, user↔role and role↔policy assignments, and the per-tenant snapshot
 * the decision engine compiles. Whether a change bumps the policy version is ../rules' call.
 */
import type { Policy, PolicyRule, Role, User } from '../../domain.js';
import { createError } from '../../errors.js';
import type { PolicyRulesSnapshot, PolicySnapshot, Store } from '../port.js';
import type { PolicyTouch } from '../rules/policy-history.js';
import { BUMPS, ruleUpdateBumps } from '../rules/policy-version.js';
import {
  C,
  type DeviceDoc,
  type PlanDoc,
  type PolicyDoc,
  type RoleDoc,
  type RolePolicyDoc,
  type RuleDoc,
  type TenantDoc,
  type UserDoc,
  type UserRoleDoc,
} from './collections.js';
import { insertChecked, strip, type MongoContext } from './context.js';
import type { Document, SessionLike } from './db-like.js';
import { MongoEntity, type TenantRefs } from './entity.js';
import { compositeKey } from './keys.js';
import { toPlan } from './plan-repo.js';
import { toTenant } from './platform-repos.js';
import { toPolicy, toRole, toUser } from './tenant-repos.js';

export const toRule = (d: RuleDoc): PolicyRule => strip(d);

export function createRuleRepo(ctx: MongoContext, refs: TenantRefs): Store['rules'] {
  const table = new MongoEntity<RuleDoc, PolicyRule>(
    ctx,
    C.rules,
    'tenant',
    ['role_id', 'app', 'action', 'permission', 'remediation', 'escalation'],
    toRule,
  );
  return {
    async create(tenantId, input) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        await refs.requireTenant(session, tenantId);
        await refs.requirePolicy(session, tenantId, input.policy_id);
        const roleId = input.role_id ?? null;
        if (roleId !== null) await refs.requireRole(session, tenantId, roleId);
        const now = ctx.now();
        const rule: PolicyRule = {
          id: ctx.newId(),
          tenant_id: tenantId,
          policy_id: input.policy_id,
          role_id: roleId,
          app: input.app,
          action: input.action,
          permission: input.permission,
          remediation: input.remediation ?? null,
          escalation: input.escalation ?? null,
          created_at: now,
          updated_at: now,
        };
        await table.coll.insertOne({ _id: rule.id, ...rule }, { session });
        if (BUMPS.rules.create) await bumpPolicy(tenantId, { kind: 'rule', id: rule.id });
        return rule;
      });
    },
    get: (tenantId, id) => table.get(tenantId, id),
    list(tenantId, opts) {
      const filter: Document = { tenant_id: tenantId };
      if (opts?.policy_id !== undefined) filter['policy_id'] = opts.policy_id;
      if (opts?.role_id !== undefined) filter['role_id'] = opts.role_id;
      return table.list(filter, opts);
    },
    async update(tenantId, id, patch, check) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        const before = await table.get(tenantId, id, session);
        if (!before) return null;
        if (patch.role_id !== undefined && patch.role_id !== null) await refs.requireRole(session, tenantId, patch.role_id);
        const after = await table.update(tenantId, id, patch, session);
        if (!after) return null;
        // Throwing aborts the transaction: the update is never committed.
        check?.(after);
        if (ruleUpdateBumps(before, after)) await bumpPolicy(tenantId, { kind: 'rule', id });
        return after;
      });
    },
    async delete(tenantId, id) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        if (!(await table.delete(tenantId, id, session))) return false;
        if (BUMPS.rules.delete) await bumpPolicy(tenantId, { kind: 'rule', id });
        return true;
      });
    },
  };
}

/** What a link change touches, for the version history. */
function touchOf(name: typeof C.userRoles | typeof C.rolePolicies, l: string, r: string): PolicyTouch {
  return name === C.userRoles ? { kind: 'user_role', user_id: l, role_id: r } : { kind: 'role_policy', role_id: l, policy_id: r };
}

interface LinkSide<T> {
  /** Field in the link document, e.g. 'user_id'. */
  field: 'user_id' | 'role_id' | 'policy_id';
  collection: typeof C.users | typeof C.roles | typeof C.policies;
  toRecord: (doc: Document & { _id: string }) => T;
  require: (session: Parameters<TenantRefs['requireTenant']>[0], tenantId: string, id: string) => Promise<void>;
}

type LinkDoc = Document & { _id: string; tenant_id: string; created_at: number };

/**
 * A tenant-scoped many-to-many link (user↔role, role↔policy). Both sides must be the tenant's;
 * a link change bumps the policy version only when something actually changed.
 */
function createLinkRepo<L, R>(ctx: MongoContext, name: typeof C.userRoles | typeof C.rolePolicies, left: LinkSide<L>, right: LinkSide<R>) {
  const links = ctx.coll<LinkDoc>(name);
  const key = (tenantId: string, l: string, r: string): string => compositeKey(tenantId, l, r);
  const read = async <T>(side: LinkSide<T>, by: LinkSide<unknown>, tenantId: string, id: string): Promise<T[]> => {
    const found = await links.find({ tenant_id: tenantId, [by.field]: id }).toArray();
    const ids = found.map((l) => String(l[side.field]));
    if (ids.length === 0) return [];
    const docs = await ctx
      .coll<Document & { _id: string }>(side.collection)
      .find({ tenant_id: tenantId, _id: { $in: ids } }, { sort: { _id: 1 } })
      .toArray();
    return docs.map(side.toRecord);
  };
  return {
    async assign(tenantId: string, l: string, r: string): Promise<boolean> {
      return ctx.write(async ({ session, bumpPolicy }) => {
        await left.require(session, tenantId, l);
        await right.require(session, tenantId, r);
        const _id = key(tenantId, l, r);
        if (await links.findOne({ _id }, { session })) return false;
        const doc: LinkDoc = { _id, tenant_id: tenantId, [left.field]: l, [right.field]: r, created_at: ctx.now() };
        await insertChecked(() => links.insertOne(doc, { session }));
        await bumpPolicy(tenantId, touchOf(name, l, r));
        return true;
      });
    },
    async unassign(tenantId: string, l: string, r: string): Promise<boolean> {
      return ctx.write(async ({ session, bumpPolicy }) => {
        const removed = (await links.deleteOne({ _id: key(tenantId, l, r), tenant_id: tenantId }, { session })).deletedCount > 0;
        if (removed) await bumpPolicy(tenantId, touchOf(name, l, r));
        return removed;
      });
    },
    rightsOf: (tenantId: string, l: string): Promise<R[]> => read(right, left, tenantId, l),
    leftsOf: (tenantId: string, r: string): Promise<L[]> => read(left, right, tenantId, r),
  };
}

function sides(refs: TenantRefs) {
  const user: LinkSide<User> = {
    field: 'user_id',
    collection: C.users,
    toRecord: (d) => toUser(d as UserDoc),
    require: (s, t, id) => refs.requireUser(s, t, id),
  };
  const role: LinkSide<Role> = {
    field: 'role_id',
    collection: C.roles,
    toRecord: (d) => toRole(d as RoleDoc),
    require: (s, t, id) => refs.requireRole(s, t, id),
  };
  const policy: LinkSide<Policy> = {
    field: 'policy_id',
    collection: C.policies,
    toRecord: (d) => toPolicy(d as PolicyDoc),
    require: (s, t, id) => refs.requirePolicy(s, t, id),
  };
  return { user, role, policy };
}

export function createUserRoleRepo(ctx: MongoContext, refs: TenantRefs): Store['userRoles'] {
  const { user, role } = sides(refs);
  const links = createLinkRepo<User, Role>(ctx, C.userRoles, user, role);
  return {
    assign: (tenantId, userId, roleId) => links.assign(tenantId, userId, roleId),
    unassign: (tenantId, userId, roleId) => links.unassign(tenantId, userId, roleId),
    rolesOfUser: (tenantId, userId) => links.rightsOf(tenantId, userId),
    usersOfRole: (tenantId, roleId) => links.leftsOf(tenantId, roleId),
  };
}

export function createRolePolicyRepo(ctx: MongoContext, refs: TenantRefs): Store['rolePolicies'] {
  const { role, policy } = sides(refs);
  const links = createLinkRepo<Role, Policy>(ctx, C.rolePolicies, role, policy);
  return {
    assign: (tenantId, roleId, policyId) => links.assign(tenantId, roleId, policyId),
    unassign: (tenantId, roleId, policyId) => links.unassign(tenantId, roleId, policyId),
    policiesOfRole: (tenantId, roleId) => links.rightsOf(tenantId, roleId),
    rolesOfPolicy: (tenantId, policyId) => links.leftsOf(tenantId, policyId),
  };
}

/** One snapshot read: the version and the rows it describes come from the same instant. */
export function createSnapshotReaders(ctx: MongoContext): {
  snapshot: (tenantId: string, session?: SessionLike) => Promise<PolicySnapshot | null>;
  rulesSnapshot: (tenantId: string) => Promise<PolicyRulesSnapshot | null>;
} {
  const byTenant = { sort: { _id: 1 } } as const;
  return {
    // Inside a write (a restore reads the live content in its own transaction) or in a read of its own.
    snapshot: (tenantId, outer) => (outer ? readWith(outer, tenantId) : ctx.read((session) => readWith(session, tenantId))),
    rulesSnapshot: (tenantId) => ctx.read((session) => rulesSide(session, tenantId)),
  };
  // One after another: operations of one session must not run concurrently in a transaction.
  async function rulesSide(session: SessionLike, tenantId: string): Promise<PolicyRulesSnapshot | null> {
    const tenantDoc = await ctx.coll<TenantDoc>(C.tenants).findOne({ _id: tenantId }, { session });
    if (!tenantDoc) return null;
    const tenant = toTenant(tenantDoc);
    const planDoc = await ctx.coll<PlanDoc>(C.plans).findOne({ _id: tenant.plan_id }, { session });
    if (!planDoc) throw createError('INTERNAL', `tenant ${tenantId} refers to missing plan ${tenant.plan_id}`);
    const t = { tenant_id: tenantId };
    const rolePolicies = await ctx
      .coll<RolePolicyDoc>(C.rolePolicies)
      .find(t, { sort: { role_id: 1, policy_id: 1 }, session })
      .toArray();
    const policies = await ctx.coll<PolicyDoc>(C.policies).find(t, { ...byTenant, session }).toArray();
    const rules = await ctx.coll<RuleDoc>(C.rules).find(t, { ...byTenant, session }).toArray();
    return {
      tenant,
      plan: toPlan(planDoc),
      role_policies: rolePolicies.map((l) => ({ role_id: l.role_id, policy_id: l.policy_id })),
      policies: policies.map(toPolicy),
      rules: rules.map(toRule),
    };
  }
  async function readWith(session: SessionLike, tenantId: string): Promise<PolicySnapshot | null> {
    const side = await rulesSide(session, tenantId);
    if (!side) return null;
    const t = { tenant_id: tenantId };
    const devices = await ctx.coll<DeviceDoc>(C.devices).find(t, { ...byTenant, session }).toArray();
    const userRoles = await ctx.coll<UserRoleDoc>(C.userRoles).find(t, { sort: { user_id: 1, role_id: 1 }, session }).toArray();
    return {
      ...side,
      devices: devices.map((d) => ({ id: d.id, user_id: d.user_id })),
      user_roles: userRoles.map((l) => ({ user_id: l.user_id, role_id: l.role_id })),
    };
  }
}
