/**
 * Stored policy test cases (port: policyTests). Plain tenant-owned records: they describe
 * expectations, not decisions, so no change here bumps the policy version.
 */
import { newPolicyTest, requireOneSubject, requireRoomForTest, type PolicyTest } from '../../policy/policy-tests.js';
import type { Store } from '../port.js';
import type { SqliteContext, Stmt } from './context.js';
import { EntityTable } from './entity-table.js';
import type { TenantRefs } from './refs.js';

const COLUMNS = [
  'id',
  'tenant_id',
  'name',
  'device_id',
  'user_id',
  'app',
  'action',
  'expected_effect',
  'expected_rule_id',
  'created_at',
  'updated_at',
] as const;

export function createPolicyTestRepo(ctx: SqliteContext, refs: TenantRefs): Store['policyTests'] {
  const table = new EntityTable<PolicyTest>(ctx, 'policy_tests', COLUMNS, 'tenant', [
    'name',
    'device_id',
    'user_id',
    'app',
    'action',
    'expected_effect',
    'expected_rule_id',
  ]);
  const countOf: Stmt<[string], number> = ctx.db.prepare<[string], number>('SELECT count(*) FROM policy_tests WHERE tenant_id = ?').pluck();
  return {
    async create(tenantId, input) {
      requireOneSubject(input);
      return ctx.write(() => {
        refs.requireTenant(tenantId);
        requireRoomForTest(countOf.get(tenantId) ?? 0);
        return table.insert(newPolicyTest(tenantId, input, ctx.newId(), ctx.now()));
      });
    },
    async get(tenantId, id) {
      return table.get(tenantId, id);
    },
    async list(tenantId, opts) {
      return table.list({ tenant_id: tenantId }, opts);
    },
    async update(tenantId, id, patch) {
      return ctx.write(() => {
        const before = table.get(tenantId, id);
        if (!before) return null;
        requireOneSubject({
          device_id: patch.device_id !== undefined ? patch.device_id : before.device_id,
          user_id: patch.user_id !== undefined ? patch.user_id : before.user_id,
        });
        return table.update(tenantId, id, patch);
      });
    },
    async delete(tenantId, id) {
      return table.delete(tenantId, id);
    },
  };
}
