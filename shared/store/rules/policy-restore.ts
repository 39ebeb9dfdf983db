/**
 * What restoring policy version n changes (issue #12). A restore is itself a new version: it
 * rewrites the tenant's decision inputs to n's content in one transaction, and is propagated like
 * any other change (policy.changed → workers rebuild → towers get the retained bundle).
 *
 * Restored: the default effect, policies (recreated with their id when deleted since), rules,
 * role↔policy and user↔role links, and the owner of every device still registered. Not restored,
 * and reported as such: inventory that no longer exists (a deleted user, role or device is not
 * resurrected, so what referred to it is skipped), devices registered after n (kept, they are
 * inventory), and the plan (an operator's decision, not the tenant's).
 *
 * Adapters apply a plan in this order: rule deletes, link removals, policy deletes, policy
 * creates/updates, rule creates/updates, link additions, device owners, the default effect.
 */
import type { ContentPolicy, ContentRule, PolicyContent } from '../../policy/content.js';
import type { Effect } from '../../mqtt/payloads.js';
import { canonicalJson } from './policy-history.js';

export interface NotRestored {
  kind: 'rule' | 'role_policy' | 'user_role' | 'device' | 'plan';
  id: string;
  reason: string;
}

export interface RestorePlan {
  default_effect: Effect | null;
  policies: { create: ContentPolicy[]; update: ContentPolicy[]; delete: string[] };
  rules: { create: ContentRule[]; update: ContentRule[]; delete: string[] };
  role_policies: { add: Array<{ role_id: string; policy_id: string }>; remove: Array<{ role_id: string; policy_id: string }> };
  user_roles: { add: Array<{ user_id: string; role_id: string }>; remove: Array<{ user_id: string; role_id: string }> };
  device_owners: Array<{ id: string; user_id: string | null }>;
  not_restored: NotRestored[];
}

/** Ids that exist now: what a restore may refer to. */
export interface LiveInventory {
  users: ReadonlySet<string>;
  roles: ReadonlySet<string>;
}

const pair = (a: string, b: string): string => `${a}\u0000${b}`;

export function planRestore(current: PolicyContent, target: PolicyContent, live: LiveInventory): RestorePlan {
  const plan: RestorePlan = {
    default_effect: current.settings.default_effect !== target.settings.default_effect ? target.settings.default_effect : null,
    policies: { create: [], update: [], delete: [] },
    rules: { create: [], update: [], delete: [] },
    role_policies: { add: [], remove: [] },
    user_roles: { add: [], remove: [] },
    device_owners: [],
    not_restored: [],
  };
  if (canonicalJson(planPart(current)) !== canonicalJson(planPart(target))) {
    plan.not_restored.push({ kind: 'plan', id: target.settings.plan_id, reason: 'the plan is managed by the platform operator' });
  }

  const livePolicies = new Map(current.policies.map((p) => [p.id, p]));
  const targetPolicies = new Set(target.policies.map((p) => p.id));
  for (const p of target.policies) {
    const now = livePolicies.get(p.id);
    if (!now) plan.policies.create.push(p);
    else if (now.severity !== p.severity) plan.policies.update.push(p);
  }
  for (const p of current.policies) if (!targetPolicies.has(p.id)) plan.policies.delete.push(p.id);

  // A rule is restorable when its role (if scoped) still exists; its policy exists after the step above.
  const liveRules = new Map(current.rules.map((r) => [r.id, r]));
  const keptRules = new Set<string>();
  for (const r of target.rules) {
    if (r.role_id !== null && !live.roles.has(r.role_id)) {
      plan.not_restored.push({ kind: 'rule', id: r.id, reason: `role ${r.role_id} no longer exists` });
      continue;
    }
    keptRules.add(r.id);
    const now = liveRules.get(r.id);
    if (!now) plan.rules.create.push(r);
    else if (canonicalJson(now) !== canonicalJson(r)) plan.rules.update.push(r);
  }
  for (const r of current.rules) if (!keptRules.has(r.id)) plan.rules.delete.push(r.id);

  const liveRp = new Set(current.role_policies.map((l) => pair(l.role_id, l.policy_id)));
  const targetRp = new Set<string>();
  for (const l of target.role_policies) {
    if (!live.roles.has(l.role_id)) {
      plan.not_restored.push({ kind: 'role_policy', id: pair(l.role_id, l.policy_id), reason: `role ${l.role_id} no longer exists` });
      continue;
    }
    targetRp.add(pair(l.role_id, l.policy_id));
    if (!liveRp.has(pair(l.role_id, l.policy_id))) plan.role_policies.add.push(l);
  }
  for (const l of current.role_policies) {
    if (!targetRp.has(pair(l.role_id, l.policy_id))) plan.role_policies.remove.push(l);
  }

  const liveUr = new Set(current.user_roles.map((l) => pair(l.user_id, l.role_id)));
  const targetUr = new Set<string>();
  for (const l of target.user_roles) {
    const missing = !live.users.has(l.user_id) ? `user ${l.user_id}` : !live.roles.has(l.role_id) ? `role ${l.role_id}` : null;
    if (missing !== null) {
      plan.not_restored.push({ kind: 'user_role', id: pair(l.user_id, l.role_id), reason: `${missing} no longer exists` });
      continue;
    }
    targetUr.add(pair(l.user_id, l.role_id));
    if (!liveUr.has(pair(l.user_id, l.role_id))) plan.user_roles.add.push(l);
  }
  for (const l of current.user_roles) if (!targetUr.has(pair(l.user_id, l.role_id))) plan.user_roles.remove.push(l);

  const liveDevices = new Map(current.devices.map((d) => [d.id, d.user_id]));
  const targetDevices = new Set<string>();
  for (const d of target.devices) {
    targetDevices.add(d.id);
    if (!liveDevices.has(d.id)) {
      plan.not_restored.push({ kind: 'device', id: d.id, reason: 'the device is no longer registered to this tenant' });
      continue;
    }
    if (liveDevices.get(d.id) === d.user_id) continue;
    if (d.user_id !== null && !live.users.has(d.user_id)) {
      plan.not_restored.push({ kind: 'device', id: d.id, reason: `its owner at that version, user ${d.user_id}, no longer exists` });
      continue;
    }
    plan.device_owners.push({ id: d.id, user_id: d.user_id });
  }
  for (const d of current.devices) {
    if (!targetDevices.has(d.id)) plan.not_restored.push({ kind: 'device', id: d.id, reason: 'registered after that version: kept' });
  }
  return plan;
}

function planPart(c: PolicyContent): Omit<PolicyContent['settings'], 'default_effect'> {
  const { default_effect: _default, ...rest } = c.settings;
  return rest;
}

/**
 * Why a policy could not be recreated: a policy that stays holds its name now (names are unique
 * per tenant; renames make no version, so the name kept is the one of its last version).
 */
export function restoredNameTaken(p: ContentPolicy): string {
  return `policy ${p.id} cannot be restored as "${p.name}": another policy has this name now; rename that one and restore again`;
}

/** Whether applying the plan changes anything at all. */
export function isEmptyPlan(p: RestorePlan): boolean {
  return (
    p.default_effect === null &&
    p.policies.create.length + p.policies.update.length + p.policies.delete.length === 0 &&
    p.rules.create.length + p.rules.update.length + p.rules.delete.length === 0 &&
    p.role_policies.add.length + p.role_policies.remove.length === 0 &&
    p.user_roles.add.length + p.user_roles.remove.length === 0 &&
    p.device_owners.length === 0
  );
}
