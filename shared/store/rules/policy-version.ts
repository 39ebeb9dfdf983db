/**
 * Which changes bump a tenant's policy version (port: "a change that can alter a decision").
 * Every adapter asks these functions inside the write's transaction, so what counts as a
 * decision input is decided once, here.
 */
import type { Device, Plan, Policy, PolicyRule, Tenant } from '../../domain.js';
import type { DevicePatch, PolicyInput, TenantInput } from '../port.js';

export type BumpingEntity = 'users' | 'roles' | 'policies' | 'rules' | 'devices' | 'apps' | 'actions';

/**
 * Creates and deletes. A new user or role is not referenced by anything yet, so it cannot change
 * a decision; deleting one detaches devices / drops assignments and scoped rules, which can. The
 * catalogue (apps, actions) is display data: rules refer to keys, not to catalogue rows.
 * User↔role and role↔policy links bump when an assignment was actually added or removed.
 */
export const BUMPS: Readonly<Record<BumpingEntity, { readonly create: boolean; readonly delete: boolean }>> = {
  users: { create: false, delete: true },
  roles: { create: false, delete: true },
  policies: { create: true, delete: true },
  rules: { create: true, delete: true },
  devices: { create: true, delete: true },
  apps: { create: false, delete: false },
  actions: { create: false, delete: false },
};

/**
 * The plan decides what a decision does (auto-remediation, rate limit), like default_effect.
 * Names, alert windows and audit retention do not change any decision.
 */
export function tenantUpdateBumps(before: Tenant, patch: Partial<TenantInput>): boolean {
  return (
    (patch.default_effect !== undefined && patch.default_effect !== before.default_effect) ||
    (patch.plan_id !== undefined && patch.plan_id !== before.plan_id)
  );
}

/** Severity travels with every deny decision and alert; name/description do not. */
export function policyUpdateBumps(before: Policy, patch: Partial<PolicyInput>): boolean {
  return patch.severity !== undefined && patch.severity !== before.severity;
}

/** Only the owner feeds decisions; renaming a device does not. */
export function deviceUpdateBumps(before: Device, patch: DevicePatch): boolean {
  return patch.user_id !== undefined && patch.user_id !== before.user_id;
}

/** Remediation and escalation decide what follows a deny, so they count as decision inputs. */
export function ruleUpdateBumps(before: PolicyRule, after: PolicyRule): boolean {
  return (
    after.role_id !== before.role_id ||
    after.app !== before.app ||
    after.action !== before.action ||
    after.permission !== before.permission ||
    !sameValue(after.remediation, before.remediation) ||
    !sameValue(after.escalation, before.escalation)
  );
}

/**
 * The plan travels in every tenant's policy snapshot (feature flags, rate limit); its display
 * name does not change what the pipeline does. A bump applies to every tenant on the plan.
 */
export function planUpdateBumps(before: Plan, after: Plan): boolean {
  return (
    after.auto_remediation !== before.auto_remediation ||
    after.max_devices !== before.max_devices ||
    after.max_events_per_s !== before.max_events_per_s ||
    after.retention_days !== before.retention_days
  );
}

/** Structural equality of JSON values: key order is not meaning ({a,b} and {b,a} are the same). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === undefined || b === undefined) return false;
  return canonical(a) === canonical(b);
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}
