/**
 * Smaller platform rules shared by the adapters: plan deletion, device limits, webhook attempts
 * and their fair order, console e-mail normalisation.
 */
import { createError } from '../../errors.js';
import type { Plan } from '../../domain.js';
import { DEFAULT_PLAN_ID } from './defaults.js';
import { conflict } from './errors.js';

/** The default plan cannot go (new tenants fall back to it), nor a plan tenants are still on. */
export function requirePlanDeletable(planId: string, tenantsOnPlan: number): void {
  if (planId === DEFAULT_PLAN_ID) {
    throw createError('CONFLICT', `id: plan ${planId} is the default plan of new tenants`, [
      { field: 'id', message: 'default plan' },
    ]);
  }
  if (tenantsOnPlan > 0) {
    throw conflict('id', `plan ${planId} is still used by ${tenantsOnPlan} tenant${tenantsOnPlan === 1 ? '' : 's'}`);
  }
}

/** Checked inside the insert's transaction, so two creates cannot both take the last free slot. */
export function requireRoomForDevice(plan: Pick<Plan, 'id' | 'max_devices'>, devices: number): void {
  if (plan.max_devices === null) return;
  if (devices >= plan.max_devices) {
    throw createError('PLAN_LIMIT_EXCEEDED', `plan ${plan.id} allows ${plan.max_devices} devices`);
  }
}

/** A final delivery is never due again, whatever the caller passed. */
export function nextAttemptAfter(outcome: { status: 'pending' | 'delivered' | 'failed'; next_attempt_at: number | null }): number | null {
  return outcome.status === 'pending' ? outcome.next_attempt_at : null;
}

/**
 * Due deliveries served fairly (port: webhookDeliveries.dueFair): `perTenant` holds one list per
 * tenant, most overdue first. Tenants take turns in the order of their most overdue delivery —
 * each one's first, then each one's second… — cut at `limit`, so no tenant's backlog pushes
 * another tenant's due deliveries out.
 */
export function interleaveDue<T extends { id: string; next_attempt_at: number | null }>(perTenant: ReadonlyArray<readonly T[]>, limit: number): T[] {
  const overdue = (d: T): number => d.next_attempt_at ?? Number.NEGATIVE_INFINITY;
  const lists = perTenant
    .filter((rows) => rows.length > 0)
    .sort((x, y) => overdue(x[0]!) - overdue(y[0]!) || (x[0]!.id < y[0]!.id ? -1 : x[0]!.id > y[0]!.id ? 1 : 0));
  return roundRobin(lists, limit);
}

/**
 * Takes turns over `lists` in their order — each one's first, then each one's second… — until
 * `limit` items or every list is used up. The fair order of webhook deliveries (interleaveDue
 * here, and the deliverer's pickFairly on what the store returns).
 */
export function roundRobin<T>(lists: ReadonlyArray<readonly T[]>, limit: number): T[] {
  const out: T[] = [];
  for (let turn = 0; out.length < limit; turn++) {
    const before = out.length;
    for (const rows of lists) {
      const d = rows[turn];
      if (d === undefined) continue;
      out.push(d);
      if (out.length >= limit) break;
    }
    if (out.length === before) break;
  }
  return out;
}

/** Stored lowercased so uniqueness is case-insensitive and lookups hit the index. */
export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}
