/**
 * Tenant-owned entities without reference fields of their own: device users, policy roles,
 * policies and the app/action catalogue.
 */
import type { Action, App, Policy, Role, User } from '../../domain.js';
import type { Store } from '../port.js';
import { emailKey, nameKey } from '../rules/names.js';
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

/**
 * The normalised natural key column of a table (name_key, email_key: migration 5), written in
 * the same transaction as the row it belongs to; its unique index turns a duplicate into CONFLICT.
 */
export class NaturalKey {
  private readonly set: Stmt<[string | null, string, string]>;
  private readonly find: Stmt<[string, string], { id: string }>;

  constructor(
    ctx: SqliteContext,
    table: string,
    private readonly column: 'name_key' | 'email_key',
    private readonly field: 'name' | 'email',
    private readonly what: string,
  ) {
    this.set = ctx.db.prepare(`UPDATE ${table} SET ${column} = ? WHERE tenant_id = ? AND id = ?`);
    this.find = ctx.db.prepare(`SELECT id FROM ${table} WHERE tenant_id = ? AND ${column} = ?`);
  }

  keyOf(value: string | null | undefined): string | null {
    return this.column === 'name_key' ? (value === null || value === undefined ? null : nameKey(value)) : emailKey(value);
  }

  write(tenantId: string, id: string, value: string | null | undefined): void {
    insertOrConflict(() => this.set.run(this.keyOf(value), tenantId, id), this.field, `${this.what} already exists`);
  }

  idOf(tenantId: string, value: string): string | null {
    const key = this.keyOf(value);
    return key === null ? null : (this.find.get(tenantId, key)?.id ?? null);
  }
}

export function createUserRepo(ctx: SqliteContext, refs: TenantRefs): Store['users'] {
  const table = new EntityTable<User>(ctx, 'users', USER_COLUMNS, 'tenant', ['name', 'email']);
  const emails = new NaturalKey(ctx, 'users', 'email_key', 'email', 'a device user with this e-mail');
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
        emails.write(tenantId, user.id, user.email);
        if (BUMPS.users.create) scope.bumpPolicy(tenantId, { kind: 'user', id: user.id });
        return user;
      });
    },
    async get(tenantId, id) {
      return table.get(tenantId, id);
    },
    async findByEmail(tenantId, email) {
      const id = emails.idOf(tenantId, email);
      return id === null ? null : table.get(tenantId, id);
    },
    async list(tenantId, opts) {
      return table.list({ tenant_id: tenantId }, opts);
    },
    async update(tenantId, id, patch) {
      // Names, emails and descriptions never reach a decision, so no policy bump.
      return ctx.write(() => {
        const after = table.update(tenantId, id, patch);
        if (after && patch.email !== undefined) emails.write(tenantId, id, after.email);
        return after;
      });
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
  const names = new NaturalKey(ctx, 'roles', 'name_key', 'name', 'a role with this name');
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
        names.write(tenantId, role.id, role.name);
        if (BUMPS.roles.create) scope.bumpPolicy(tenantId, { kind: 'role', id: role.id });
        return role;
      });
    },
    async get(tenantId, id) {
      return table.get(tenantId, id);
    },
    async findByName(tenantId, name) {
      const id = names.idOf(tenantId, name);
      return id === null ? null : table.get(tenantId, id);
    },
    async list(tenantId, opts) {
      return table.list({ tenant_id: tenantId }, opts);
    },
    async update(tenantId, id, patch) {
      return ctx.write(() => {
        const after = table.update(tenantId, id, patch);
        if (after && patch.name !== undefined) names.write(tenantId, id, after.name);
        return after;
      });
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
  const names = new NaturalKey(ctx, 'policies', 'name_key', 'name', 'a policy with this name');
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
        names.write(tenantId, policy.id, policy.name);
        if (BUMPS.policies.create) scope.bumpPolicy(tenantId, { kind: 'policy', id: policy.id });
        return policy;
      });
    },
    async get(tenantId, id) {
      return table.get(tenantId, id);
    },
    async findByName(tenantId, name) {
      const id = names.idOf(tenantId, name);
      return id === null ? null : table.get(tenantId, id);
    },
    async list(tenantId, opts) {
      return table.list({ tenant_id: tenantId }, opts);
    },
    async update(tenantId, id, patch) {
      return ctx.write((scope) => {
        const before = table.get(tenantId, id);
        if (!before) return null;
        const after = table.update(tenantId, id, patch);
        if (after && patch.name !== undefined) names.write(tenantId, id, after.name);
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
