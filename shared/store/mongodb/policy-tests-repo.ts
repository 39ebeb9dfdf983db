/**
 * Stored policy test cases (port: policyTests). Plain tenant-owned records: they describe
 * expectations, not decisions, so no change here bumps the policy version.
 */
import { newPolicyTest, requireOneSubject, requireRoomForTest, type PolicyTest } from '../../policy/policy-tests.js';
import type { Store } from '../port.js';
import { C, type PolicyTestDoc } from './collections.js';
import { strip, type MongoContext } from './context.js';
import { MongoEntity, type TenantRefs } from './entity.js';

const toTest = (d: PolicyTestDoc): PolicyTest => strip(d);

export function createPolicyTestRepo(ctx: MongoContext, refs: TenantRefs): Store['policyTests'] {
  const table = new MongoEntity<PolicyTestDoc, PolicyTest>(
    ctx,
    C.policyTests,
    'tenant',
    ['name', 'device_id', 'user_id', 'app', 'action', 'expected_effect', 'expected_rule_id'],
    toTest,
  );
  return {
    async create(tenantId, input) {
      requireOneSubject(input);
      return ctx.write(async ({ session }) => {
        // requireTenant writes the tenant's document: concurrent creates conflict, so the count is exact.
        await refs.requireTenant(session, tenantId);
        requireRoomForTest(await table.coll.countDocuments({ tenant_id: tenantId }, { session }));
        const test = newPolicyTest(tenantId, input, ctx.newId(), ctx.now());
        await table.coll.insertOne({ _id: test.id, ...test }, { session });
        return test;
      });
    },
    get: (tenantId, id) => table.get(tenantId, id),
    list: (tenantId, opts) => table.list({ tenant_id: tenantId }, opts),
    async update(tenantId, id, patch) {
      return ctx.write(async ({ session }) => {
        const before = await table.get(tenantId, id, session);
        if (!before) return null;
        requireOneSubject({
          device_id: patch.device_id !== undefined ? patch.device_id : before.device_id,
          user_id: patch.user_id !== undefined ? patch.user_id : before.user_id,
        });
        return table.update(tenantId, id, patch, session);
      });
    },
    delete: (tenantId, id) => table.delete(tenantId, id),
  };
}
