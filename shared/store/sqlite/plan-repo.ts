/**
 * Plans: platform-level tiers (features and limits). A tenant's plan is part of its policy
 * snapshot, so a plan change that can alter what a decision does bumps every tenant on it.
 */
import type { Plan } from '../../domain.js';
import type { PlanPatch, Store } from '../port.js';
import { planUpdateBumps } from '../rules/policy-version.js';
import { requirePlanDeletable } from '../rules/platform.js';
import type { SqliteContext, Stmt } from './context.js';
import { insertOrConflict } from './context.js';
import { EntityTable } from './entity-table.js';

const PLAN_COLUMNS = [
  'id',
  'name',
  'auto_remediation',
  'max_devices',
  'max_events_per_s',
  'retention_days',
  'created_at',
  'updated_at',
] as const;

/** SQLite has no boolean: auto_remediation is 0/1 on disk. */
type PlanRow = Omit<Plan, 'auto_remediation'> & { auto_remediation: number };

const toPlan = (row: PlanRow): Plan => ({ ...row, auto_remediation: row.auto_remediation === 1 });

function toRowPatch(patch: PlanPatch): Partial<PlanRow> {
  const { auto_remediation, ...rest } = patch;
  return auto_remediation === undefined ? rest : { ...rest, auto_remediation: auto_remediation ? 1 : 0 };
}

export function planTable(ctx: SqliteContext): EntityTable<PlanRow> {
  return new EntityTable<PlanRow>(ctx, 'plans', PLAN_COLUMNS, 'platform', [
    'name',
    'auto_remediation',
    'max_devices',
    'max_events_per_s',
    'retention_days',
  ]);
}

/** Reads a plan inside the caller's transaction (snapshot, device limit). */
export function createPlanReader(ctx: SqliteContext): (planId: string) => Plan | null {
  const table = planTable(ctx);
  return (planId) => {
    const row = table.get(null, planId);
    return row ? toPlan(row) : null;
  };
}

export function createPlanRepo(ctx: SqliteContext): Store['plans'] {
  const table = planTable(ctx);
  const tenantsOnPlan: Stmt<[string], string> = ctx.db
    .prepare<[string], string>('SELECT id FROM tenants WHERE plan_id = ? ORDER BY id')
    .pluck();

  return {
    async create(input) {
      const now = ctx.now();
      const row: PlanRow = {
        id: input.id,
        name: input.name,
        auto_remediation: input.auto_remediation ? 1 : 0,
        max_devices: input.max_devices ?? null,
        max_events_per_s: input.max_events_per_s ?? null,
        retention_days: input.retention_days,
        created_at: now,
        updated_at: now,
      };
      insertOrConflict(() => table.insert(row), 'id', `plan ${input.id} already exists`);
      return toPlan(row);
    },
    async get(id) {
      const row = table.get(null, id);
      return row ? toPlan(row) : null;
    },
    async list(opts) {
      const page = table.list({}, opts);
      return { items: page.items.map(toPlan), next_cursor: page.next_cursor };
    },
    async update(id, patch) {
      return ctx.write((scope) => {
        const before = table.get(null, id);
        if (!before) return null;
        const after = table.update(null, id, toRowPatch(patch));
        if (!after) return null;
        if (planUpdateBumps(toPlan(before), toPlan(after))) for (const tenantId of tenantsOnPlan.all(id)) scope.bumpPolicy(tenantId, { kind: 'settings' });
        return toPlan(after);
      });
    },
    async delete(id) {
      return ctx.write(() => {
        if (!table.exists(null, id)) return false;
        requirePlanDeletable(id, tenantsOnPlan.all(id).length);
        return table.delete(null, id);
      });
    },
  };
}
