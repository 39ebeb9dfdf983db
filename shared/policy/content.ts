/**
 * The content of one policy version: every decision input of a tenant as it stood at that
 * version (DESIGN §4 "a change … bumps the tenant's policy version"). Stores keep each version's
 * content (as an interval history, shared/store/rules/policy-history.ts) so a decision recorded
 * under version n can be explained, diffed and restored as n decided it. Rows are sorted by their
 * key, so two contents compare with a structural equality.
 */
import type { Escalation, Remediation } from '../domain.js';
import type { Effect, Severity } from '../mqtt/payloads.js';
import type { PolicySnapshot } from '../store/port.js';

/** What the plan decides about a decision's consequences (remediation, limits). */
export interface ContentSettings {
  default_effect: Effect;
  plan_id: string;
  auto_remediation: boolean;
  max_devices: number | null;
  max_events_per_s: number | null;
  retention_days: number;
}

export interface ContentPolicy {
  id: string;
  name: string;
  description: string | null;
  severity: Severity;
}

export interface ContentRule {
  id: string;
  policy_id: string;
  role_id: string | null;
  app: string;
  action: string;
  permission: Effect;
  remediation: Remediation | null;
  escalation: Escalation | null;
}

export interface PolicyContent {
  tenant_id: string;
  version: number;
  settings: ContentSettings;
  policies: ContentPolicy[];
  rules: ContentRule[];
  role_policies: Array<{ role_id: string; policy_id: string }>;
  user_roles: Array<{ user_id: string; role_id: string }>;
  devices: Array<{ id: string; user_id: string | null }>;
}

const byId = <T extends { id: string }>(a: T, b: T): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const byPair =
  <K extends string>(first: K, second: K) =>
  (a: Record<K, string>, b: Record<K, string>): number =>
    a[first] < b[first] ? -1 : a[first] > b[first] ? 1 : a[second] < b[second] ? -1 : a[second] > b[second] ? 1 : 0;

/** Sorts every list by its key, in place, and returns the content. */
export function normaliseContent(c: PolicyContent): PolicyContent {
  c.policies.sort(byId);
  c.rules.sort(byId);
  c.devices.sort(byId);
  c.role_policies.sort(byPair('role_id', 'policy_id'));
  c.user_roles.sort(byPair('user_id', 'role_id'));
  return c;
}

/** The content of the version a store snapshot describes. */
export function contentFromSnapshot(s: PolicySnapshot): PolicyContent {
  return normaliseContent({
    tenant_id: s.tenant.id,
    version: s.tenant.policy_version,
    settings: {
      default_effect: s.tenant.default_effect,
      plan_id: s.plan.id,
      auto_remediation: s.plan.auto_remediation,
      max_devices: s.plan.max_devices,
      max_events_per_s: s.plan.max_events_per_s,
      retention_days: s.plan.retention_days,
    },
    policies: s.policies.map((p) => ({ id: p.id, name: p.name, description: p.description, severity: p.severity })),
    rules: s.rules.map((r) => ({
      id: r.id,
      policy_id: r.policy_id,
      role_id: r.role_id,
      app: r.app,
      action: r.action,
      permission: r.permission,
      remediation: r.remediation,
      escalation: r.escalation,
    })),
    role_policies: s.role_policies.map((l) => ({ role_id: l.role_id, policy_id: l.policy_id })),
    user_roles: s.user_roles.map((l) => ({ user_id: l.user_id, role_id: l.role_id })),
    devices: s.devices.map((d) => ({ id: d.id, user_id: d.user_id })),
  });
}
