/**
 * Defaults and seed data every adapter applies identically: a tenant created on one adapter must
 * look the same as on another, and both seed the same plans.
 */
import type { Plan, Tenant } from '../../domain.js';
import type { TenantInput } from '../port.js';

/** Tenants are created on it when no plan is named. */
export const DEFAULT_PLAN_ID = 'free';
/** Deny alerts for the same device+rule within five minutes merge into one. */
export const DEFAULT_ALERT_WINDOW_S = 300;
/** Starts at 1 so "no version yet" (0 / absent) is never mistaken for a real policy version. */
export const INITIAL_POLICY_VERSION = 1;
export const DEFAULT_AUDIT_RETENTION_DAYS = 365;

export type SeedPlan = Omit<Plan, 'created_at' | 'updated_at'>;

/** Always present (port: plans); seeded by each adapter's schema setup with the injected clock. */
export const SEED_PLANS: readonly SeedPlan[] = [
  { id: 'free', name: 'Free', auto_remediation: false, max_devices: 100, max_events_per_s: 200, retention_days: 7 },
  {
    id: 'premium',
    name: 'Premium',
    auto_remediation: true,
    max_devices: 100_000,
    max_events_per_s: 50_000,
    retention_days: 90,
  },
];

export function newTenant(input: TenantInput, id: string, now: number): Tenant {
  return {
    id,
    name: input.name,
    plan_id: input.plan_id ?? DEFAULT_PLAN_ID,
    default_effect: input.default_effect ?? 'allow',
    policy_version: INITIAL_POLICY_VERSION,
    alert_window_s: input.alert_window_s ?? DEFAULT_ALERT_WINDOW_S,
    audit_retention_days: input.audit_retention_days ?? DEFAULT_AUDIT_RETENTION_DAYS,
    created_at: now,
    updated_at: now,
  };
}
