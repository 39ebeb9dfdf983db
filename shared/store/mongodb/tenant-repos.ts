/**
 * Tenant-owned entities without reference fields of their own: device users, policy roles,
 * policies and the app/action catalogue. Cascades SQLite gets from foreign keys are explicit here,
 * inside the same transaction as the delete.
 */
import type { Action, App, Policy, Role, User } from '../../domain.js';
import type { Store } from '../port.js';
import { conflict } from '../rules/errors.js';
import { emailKey, nameKey } from '../rules/names.js';
import { BUMPS, policyUpdateBumps } from '../rules/policy-version.js';
import {
  C,
  type CatalogDoc,
  type DeviceDoc,
  type PolicyDoc,
  type RoleDoc,
  type RolePolicyDoc,
  type RuleDoc,
  type UserDoc,
  type UserRoleDoc,
} from './collections.js';
import { insertOrConflict, strip, type MongoContext } from './context.js';
import { MongoEntity, type TenantRefs } from './entity.js';

export const toUser = (d: UserDoc): User => strip(d, 'email_key');
export const toRole = (d: RoleDoc): Role => strip(d, 'name_key');
export const toPolicy = (d: PolicyDoc): Policy => strip(d, 'name_key');

const nameTaken = (what: string) => () => conflict('name', `a ${what} with this name already exists`);
const emailTaken = () => conflict('email', 'a device user with this e-mail already exists');

export function createUserRepo(ctx: MongoContext, refs: TenantRefs): Store['users'] {
  const table = new MongoEntity<UserDoc, User>(ctx, C.users, 'tenant', ['name', 'email'], toUser);
  return {
    async create(tenantId, input) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        await refs.requireTenant(session, tenantId);
        const now = ctx.now();
        const user: User = { id: ctx.newId(), tenant_id: tenantId, name: input.name, email: input.email ?? null, created_at: now, updated_at: now };
        await insertOrConflict(() => table.coll.insertOne({ _id: user.id, ...user, email_key: emailKey(user.email) }, { session }), emailTaken);
        if (BUMPS.users.create) await bumpPolicy(tenantId, { kind: 'user', id: user.id });
        return user;
      });
    },
    get: (tenantId, id) => table.get(tenantId, id),
    async findByEmail(tenantId, email) {
      const key = emailKey(email);
      const doc = key === null ? null : await table.coll.findOne({ tenant_id: tenantId, email_key: key });
      return doc ? toUser(doc) : null;
    },
    list: (tenantId, opts) => table.list({ tenant_id: tenantId }, opts),
    // Names and emails never reach a decision, so no policy bump.
    async update(tenantId, id, patch) {
      if (patch.email === undefined) return table.update(tenantId, id, patch);
      return ctx.write(async ({ session }) => {
        const after = await table.update(tenantId, id, patch, session);
        if (after) await insertOrConflict(() => table.coll.updateOne({ _id: id, tenant_id: tenantId }, { $set: { email_key: emailKey(after.email) } }, { session }), emailTaken);
        return after;
      });
    },
    async delete(tenantId, id) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        if (!(await table.delete(tenantId, id, session))) return false;
        // Devices outlive their owner (they are still seen at towers); role assignments go.
        await ctx
          .coll<DeviceDoc>(C.devices)
          .updateMany({ tenant_id: tenantId, user_id: id }, { $set: { user_id: null, updated_at: ctx.now() } }, { session });
        await ctx.coll<UserRoleDoc>(C.userRoles).deleteMany({ tenant_id: tenantId, user_id: id }, { session });
        if (BUMPS.users.delete) await bumpPolicy(tenantId, { kind: 'user', id });
        return true;
      });
    },
  };
}

export function createRoleRepo(ctx: MongoContext, refs: TenantRefs): Store['roles'] {
  const table = new MongoEntity<RoleDoc, Role>(ctx, C.roles, 'tenant', ['name', 'description'], toRole);
  return {
    async create(tenantId, input) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        await refs.requireTenant(session, tenantId);
        const now = ctx.now();
        const role: Role = {
          id: ctx.newId(),
          tenant_id: tenantId,
          name: input.name,
          description: input.description ?? null,
          created_at: now,
          updated_at: now,
        };
        await insertOrConflict(() => table.coll.insertOne({ _id: role.id, ...role, name_key: nameKey(role.name) }, { session }), nameTaken('role'));
        if (BUMPS.roles.create) await bumpPolicy(tenantId, { kind: 'role', id: role.id });
        return role;
      });
    },
    get: (tenantId, id) => table.get(tenantId, id),
    async findByName(tenantId, name) {
      const doc = await table.coll.findOne({ tenant_id: tenantId, name_key: nameKey(name) });
      return doc ? toRole(doc) : null;
    },
    list: (tenantId, opts) => table.list({ tenant_id: tenantId }, opts),
    async update(tenantId, id, patch) {
      if (patch.name === undefined) return table.update(tenantId, id, patch);
      return ctx.write(async ({ session }) => {
        const after = await table.update(tenantId, id, patch, session);
        if (after) await insertOrConflict(() => table.coll.updateOne({ _id: id, tenant_id: tenantId }, { $set: { name_key: nameKey(after.name) } }, { session }), nameTaken('role'));
        return after;
      });
    },
    async delete(tenantId, id) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        if (!(await table.delete(tenantId, id, session))) return false;
        await ctx.coll<UserRoleDoc>(C.userRoles).deleteMany({ tenant_id: tenantId, role_id: id }, { session });
        await ctx.coll<RolePolicyDoc>(C.rolePolicies).deleteMany({ tenant_id: tenantId, role_id: id }, { session });
        await ctx.coll<RuleDoc>(C.rules).deleteMany({ tenant_id: tenantId, role_id: id }, { session });
        if (BUMPS.roles.delete) await bumpPolicy(tenantId, { kind: 'role', id });
        return true;
      });
    },
  };
}

export function createPolicyRepo(ctx: MongoContext, refs: TenantRefs): Store['policies'] {
  const table = new MongoEntity<PolicyDoc, Policy>(ctx, C.policies, 'tenant', ['name', 'description', 'severity'], toPolicy);
  return {
    async create(tenantId, input) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        await refs.requireTenant(session, tenantId);
        const now = ctx.now();
        const policy: Policy = {
          id: ctx.newId(),
          tenant_id: tenantId,
          name: input.name,
          description: input.description ?? null,
          severity: input.severity ?? 'medium',
          created_at: now,
          updated_at: now,
        };
        await insertOrConflict(() => table.coll.insertOne({ _id: policy.id, ...policy, name_key: nameKey(policy.name) }, { session }), nameTaken('policy'));
        if (BUMPS.policies.create) await bumpPolicy(tenantId, { kind: 'policy', id: policy.id });
        return policy;
      });
    },
    get: (tenantId, id) => table.get(tenantId, id),
    async findByName(tenantId, name) {
      const doc = await table.coll.findOne({ tenant_id: tenantId, name_key: nameKey(name) });
      return doc ? toPolicy(doc) : null;
    },
    list: (tenantId, opts) => table.list({ tenant_id: tenantId }, opts),
    async update(tenantId, id, patch) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        const before = await table.get(tenantId, id, session);
        if (!before) return null;
        const after = await table.update(tenantId, id, patch, session);
        if (after && patch.name !== undefined) {
          await insertOrConflict(() => table.coll.updateOne({ _id: id, tenant_id: tenantId }, { $set: { name_key: nameKey(after.name) } }, { session }), nameTaken('policy'));
        }
        if (policyUpdateBumps(before, patch)) await bumpPolicy(tenantId, { kind: 'policy', id });
        return after;
      });
    },
    async delete(tenantId, id) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        if (!(await table.delete(tenantId, id, session))) return false;
        await ctx.coll<RuleDoc>(C.rules).deleteMany({ tenant_id: tenantId, policy_id: id }, { session });
        await ctx.coll<RolePolicyDoc>(C.rolePolicies).deleteMany({ tenant_id: tenantId, policy_id: id }, { session });
        if (BUMPS.policies.delete) await bumpPolicy(tenantId, { kind: 'policy', id });
        return true;
      });
    },
  };
}

/** Apps and actions share one shape: a tenant-unique key plus a display name. */
export function createCatalogRepo(ctx: MongoContext, refs: TenantRefs, name: 'apps' | 'actions'): Store['apps'] & Store['actions'] {
  const table = new MongoEntity<CatalogDoc, App & Action>(ctx, name === 'apps' ? C.apps : C.actions, 'tenant', ['name'], (d) => strip(d));
  const what = name === 'apps' ? 'app' : 'action';
  return {
    async create(tenantId, input) {
      return ctx.write(async ({ session }) => {
        await refs.requireTenant(session, tenantId);
        const now = ctx.now();
        const row: App & Action = { id: ctx.newId(), tenant_id: tenantId, key: input.key, name: input.name, created_at: now, updated_at: now };
        // The unique (tenant_id, key) index decides; its error aborts the transaction, which is fine here.
        await insertOrConflict(
          () => table.coll.insertOne({ _id: row.id, ...row }, { session }),
          () => conflict('key', `${what} key already exists`),
        );
        return row;
      });
    },
    get: (tenantId, id) => table.get(tenantId, id),
    list: (tenantId, opts) => table.list({ tenant_id: tenantId }, opts),
    // Only the display name is mutable; rules refer to the key.
    update: (tenantId, id, patch) => table.update(tenantId, id, { name: patch.name }),
    // BUMPS[apps|actions] is all false: the catalogue never changes a decision.
    delete: (tenantId, id) => table.delete(tenantId, id),
  };
}
