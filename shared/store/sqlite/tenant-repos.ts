/**
 * Tenant-owned entities without reference fields of their own: device users, policy roles,
 * policies and the app/action catalogue.
 */
import type { Action, App, Policy, Role, User } from '../../domain.js';
import type { Store } from '../port.js';
import { BUMPS, policyUpdateBumps } from '../rules/policy-version.js';
import type { SqliteContext, Stmt } from './context.js';
import { insertOrConflict } from './context.js';
import { EntityTable } from './entity-table.js';
import type { TenantRefs } from './refs.js';

export const USER_COLUMNS = ['id', 'tenant_id', 'name', 'email', 'created_at', 'updated_at'] as const;
export const ROLE_COLUMNS = ['id', 'tenant_id', 'name', 'description', 'created_at', 'updated_at'] as const;
export const POLICY_COLUMNS = [
  'id',
  'tenant_id',
  'name',
  'description',
  'severity',
  'created_at',
  'updated_at',
] as const;

export function createUserRepo(ctx: SqliteContext, refs: TenantRefs): Store['users'] {
  const table = new EntityTable<User>(ctx, 'users', USER_COLUMNS, 'tenant', ['name', 'email']);
  const detachDevices: Stmt<[number, string, string]> = ctx.db.prepare(
    'UPDATE devices SET user_id = NULL, updated_at = ? WHERE tenant_id = ? AND user_id = ?',
  );
  return {
    async create(tenantId, input) {
      return ctx.write((scope) => {
        refs.requireTenant(tenantId);
        const now = ctx.now();
        const user = table.insert({
          id: ctx.newId(),
          tenant_id: tenantId,
          name: input.name,
          email: input.email ?? null,
          created_at: now,
          updated_at: now,
        });
        if (BUMPS.users.create) scope.bumpPolicy(tenantId, { kind: 'user', id: user.id });
        return user;
      });
    },
    async get(tenantId, id) {
      return table.get(tenantId, id);
    },
    async list(tenantId, opts) {
      return table.list({ tenant_id: tenantId }, opts);
    },
    async update(tenantId, id, patch) {
      // Names, emails and descriptions never reach a decision, so no policy bump.
      return table.update(tenantId, id, patch);
    },
    async delete(tenantId, id) {
      return ctx.write((scope) => {
        if (!table.exists(tenantId, id)) return false;
        // Devices outlive their owner (they are still seen at towers); role assignments cascade.
        detachDevices.run(ctx.now(), tenantId, id);
        table.delete(tenantId, id);
        if (BUMPS.users.delete) scope.bumpPolicy(tenantId, { kind: 'user', id });
        return true;
      });
    },
  };
}

export function createRoleRepo(ctx: SqliteContext, refs: TenantRefs): Store['roles'] {
  const table = new EntityTable<Role>(ctx, 'roles', ROLE_COLUMNS, 'tenant', ['name', 'description']);
  return {
    async create(tenantId, input) {
      return ctx.write((scope) => {
        refs.requireTenant(tenantId);
        const now = ctx.now();
        const role = table.insert({
          id: ctx.newId(),
          tenant_id: tenantId,
          name: input.name,
          description: input.description ?? null,
          created_at: now,
          updated_at: now,
        });
        if (BUMPS.roles.create) scope.bumpPolicy(tenantId, { kind: 'role', id: role.id });
        return role;
      });
    },
    async get(tenantId, id) {
      return table.get(tenantId, id);
    },
    async list(tenantId, opts) {
      return table.list({ tenant_id: tenantId }, opts);
    },
    async update(tenantId, id, patch) {
      return table.update(tenantId, id, patch);
    },
    async delete(tenantId, id) {
      return ctx.write((scope) => {
        // user_roles, role_policies and role-scoped rules go with it (ON DELETE CASCADE).
        if (!table.delete(tenantId, id)) return false;
        if (BUMPS.roles.delete) scope.bumpPolicy(tenantId, { kind: 'role', id });
        return true;
      });
    },
  };
}

export function createPolicyRepo(ctx: SqliteContext, refs: TenantRefs): Store['policies'] {
  const table = new EntityTable<Policy>(ctx, 'policies', POLICY_COLUMNS, 'tenant', ['name', 'description', 'severity']);
  return {
    async create(tenantId, input) {
      return ctx.write((scope) => {
        refs.requireTenant(tenantId);
        const now = ctx.now();
        const policy = table.insert({
          id: ctx.newId(),
          tenant_id: tenantId,
          name: input.name,
          description: input.description ?? null,
          severity: input.severity ?? 'medium',
          created_at: now,
          updated_at: now,
        });
        if (BUMPS.policies.create) scope.bumpPolicy(tenantId, { kind: 'policy', id: policy.id });
        return policy;
      });
    },
    async get(tenantId, id) {
      return table.get(tenantId, id);
    },
    async list(tenantId, opts) {
      return table.list({ tenant_id: tenantId }, opts);
    },
    async update(tenantId, id, patch) {
      return ctx.write((scope) => {
        const before = table.get(tenantId, id);
        if (!before) return null;
        const after = table.update(tenantId, id, patch);
        if (policyUpdateBumps(before, patch)) scope.bumpPolicy(tenantId, { kind: 'policy', id });
        return after;
      });
    },
    async delete(tenantId, id) {
      return ctx.write((scope) => {
        // Its rules and role assignments cascade.
        if (!table.delete(tenantId, id)) return false;
        if (BUMPS.policies.delete) scope.bumpPolicy(tenantId, { kind: 'policy', id });
        return true;
      });
    },
  };
}

/** Apps and actions share one shape: a tenant-unique key plus a display name. */
export function createCatalogRepo(
  ctx: SqliteContext,
  refs: TenantRefs,
  tableName: 'apps' | 'actions',
): Store['apps'] & Store['actions'] {
  const table = new EntityTable<App & Action>(
    ctx,
    tableName,
    ['id', 'tenant_id', 'key', 'name', 'created_at', 'updated_at'],
    'tenant',
    ['name'],
  );
  const what = tableName === 'apps' ? 'app' : 'action';
  return {
    async create(tenantId, input) {
      return ctx.write(() => {
        refs.requireTenant(tenantId);
        const now = ctx.now();
        const row: App & Action = {
          id: ctx.newId(),
          tenant_id: tenantId,
          key: input.key,
          name: input.name,
          created_at: now,
          updated_at: now,
        };
        insertOrConflict(() => table.insert(row), 'key', `${what} key already exists`);
        return row;
      });
    },
    async get(tenantId, id) {
      return table.get(tenantId, id);
    },
    async list(tenantId, opts) {
      return table.list({ tenant_id: tenantId }, opts);
    },
    async update(tenantId, id, patch) {
      // Only the display name is mutable; rules refer to the key.
      return table.update(tenantId, id, { name: patch.name });
    },
    async delete(tenantId, id) {
      // BUMPS[apps|actions] is all false: the catalogue never changes a decision.
      return table.delete(tenantId, id);
    },
  };
}
