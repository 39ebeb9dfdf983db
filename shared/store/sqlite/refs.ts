/**
 * Reference checks scoped to one tenant. A foreign key alone would answer "constraint failed";
 * these answer NOT_FOUND naming the field, which is what the API returns to the caller.
 */
import type { SqliteContext, Stmt } from './context.js';
import { notFound } from './context.js';

export class TenantRefs {
  private readonly tenant: Stmt<[string], { id: string }>;
  private readonly user: Stmt<[string, string], { id: string }>;
  private readonly role: Stmt<[string, string], { id: string }>;
  private readonly policy: Stmt<[string, string], { id: string }>;

  constructor(ctx: SqliteContext) {
    const db = ctx.db;
    this.tenant = db.prepare('SELECT id FROM tenants WHERE id = ?');
    this.user = db.prepare('SELECT id FROM users WHERE tenant_id = ? AND id = ?');
    this.role = db.prepare('SELECT id FROM roles WHERE tenant_id = ? AND id = ?');
    this.policy = db.prepare('SELECT id FROM policies WHERE tenant_id = ? AND id = ?');
  }

  requireTenant(tenantId: string): void {
    if (!this.tenant.get(tenantId)) throw notFound('tenant_id', 'no such tenant');
  }

  hasUser(tenantId: string, userId: string): boolean {
    return this.user.get(tenantId, userId) !== undefined;
  }

  hasRole(tenantId: string, roleId: string): boolean {
    return this.role.get(tenantId, roleId) !== undefined;
  }

  hasPolicy(tenantId: string, policyId: string): boolean {
    return this.policy.get(tenantId, policyId) !== undefined;
  }

  requireUser(tenantId: string, userId: string): void {
    if (!this.hasUser(tenantId, userId)) throw notFound('user_id', 'no such user');
  }

  requireRole(tenantId: string, roleId: string): void {
    if (!this.hasRole(tenantId, roleId)) throw notFound('role_id', 'no such role');
  }

  requirePolicy(tenantId: string, policyId: string): void {
    if (!this.hasPolicy(tenantId, policyId)) throw notFound('policy_id', 'no such policy');
  }
}
