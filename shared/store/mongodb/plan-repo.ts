/**
 * Plans: platform-level tiers (features and limits). A plan change that can alter what a
 * decision does bumps every tenant on it (../rules/policy-version.ts).
 */
import type { Plan } from '../../domain.js';
import type { Store } from '../port.js';
import { conflict } from '../rules/errors.js';
import { planUpdateBumps } from '../rules/policy-version.js';
import { requirePlanDeletable } from '../rules/platform.js';
import { C, type PlanDoc, type TenantDoc } from './collections.js';
import { insertOrConflict, strip, type MongoContext } from './context.js';
import { MongoEntity } from './entity.js';

export const toPlan = (d: PlanDoc): Plan => strip(d);

export function createPlanRepo(ctx: MongoContext): Store['plans'] {
  const table = new MongoEntity<PlanDoc, Plan>(
    ctx,
    C.plans,
    'platform',
    ['name', 'auto_remediation', 'max_devices', 'max_events_per_s', 'retention_days'],
    toPlan,
  );
  const tenants = ctx.coll<TenantDoc>(C.tenants);
  return {
    async create(input) {
      const now = ctx.now();
      const row: Plan = {
        id: input.id,
        name: input.name,
        auto_remediation: input.auto_remediation,
        max_devices: input.max_devices ?? null,
        max_events_per_s: input.max_events_per_s ?? null,
        retention_days: input.retention_days,
        created_at: now,
        updated_at: now,
      };
      await insertOrConflict(() => table.coll.insertOne({ _id: row.id, ...row }), () => conflict('id', `plan ${input.id} already exists`));
      return row;
    },
    get: (id) => table.get(null, id),
    list: (opts) => table.list({}, opts),
    async update(id, patch) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        const before = await table.get(null, id, session);
        if (!before) return null;
        const after = await table.update(null, id, patch, session);
        if (!after) return null;
        if (planUpdateBumps(before, after)) {
          const onPlan = await tenants.find({ plan_id: id }, { sort: { _id: 1 }, session }).toArray();
          for (const tenant of onPlan) await bumpPolicy(tenant._id, { kind: 'settings' });
        }
        return after;
      });
    },
    async delete(id) {
      return ctx.write(async ({ session }) => {
        if (!(await table.get(null, id, session))) return false;
        requirePlanDeletable(id, await tenants.countDocuments({ plan_id: id }, { session }));
        return table.delete(null, id, session);
      });
    },
  };
}
