/**
 * The neutral input of policy compilation. The cloud builds it from a store snapshot, the edge
 * from its policy bundle (edge-bundle.ts: modelFromPolicyBundle), so both decide with exactly the
 * same code.
 */
import type { PolicyRule } from '../domain.js';
import type { BundleGrant, Effect, Severity } from '../mqtt/payloads.js';
import type { PolicyRulesSnapshot, PolicySnapshot } from '../store/port.js';
import type { PolicyContent } from './content.js';

export interface PolicyModel {
  tenant_id: string;
  version: number;
  default_effect: Effect;
  devices: Array<{ id: string; user_id: string | null }>;
  /** user id → policy role ids. */
  user_roles: Map<string, string[]>;
  /** Rules flattened onto each role that holds their policy. */
  grants: BundleGrant[];
}

/**
 * Flattens policies onto roles: a rule reaches role R when R holds the rule's policy and the rule
 * is either unscoped (role_id null) or scoped to R.
 */
export function flattenGrants(
  policies: ReadonlyArray<{ id: string; severity: Severity }>,
  rules: ReadonlyArray<Pick<PolicyRule, 'id' | 'policy_id' | 'role_id' | 'app' | 'action' | 'permission'>>,
  rolePolicies: ReadonlyArray<{ role_id: string; policy_id: string }>,
): BundleGrant[] {
  const byId = new Map(policies.map((p) => [p.id, p]));
  const rulesByPolicy = new Map<string, Array<(typeof rules)[number]>>();
  for (const r of rules) {
    let list = rulesByPolicy.get(r.policy_id);
    if (!list) rulesByPolicy.set(r.policy_id, (list = []));
    list.push(r);
  }
  const grants: BundleGrant[] = [];
  for (const rp of rolePolicies) {
    const policy = byId.get(rp.policy_id);
    if (!policy) continue;
    for (const r of rulesByPolicy.get(rp.policy_id) ?? []) {
      if (r.role_id !== null && r.role_id !== rp.role_id) continue;
      grants.push({
        rule_id: r.id,
        policy_id: policy.id,
        role_id: rp.role_id,
        app: r.app,
        action: r.action,
        effect: r.permission,
        severity: policy.severity,
      });
    }
  }
  return grants;
}

function userRolesOf(links: ReadonlyArray<{ user_id: string; role_id: string }>): Map<string, string[]> {
  const userRoles = new Map<string, string[]>();
  for (const ur of links) {
    let list = userRoles.get(ur.user_id);
    if (!list) userRoles.set(ur.user_id, (list = []));
    list.push(ur.role_id);
  }
  return userRoles;
}

export function modelFromSnapshot(s: PolicySnapshot): PolicyModel {
  return {
    tenant_id: s.tenant.id,
    version: s.tenant.policy_version,
    default_effect: s.tenant.default_effect,
    devices: s.devices,
    user_roles: userRolesOf(s.user_roles),
    grants: flattenGrants(s.policies, s.rules, s.role_policies),
  };
}

/**
 * The model after rule-side changes only (PolicyChangeScope 'rules'): the new rule side over the
 * inventory of an earlier model, shared by reference (so its consumers can tell it is unchanged).
 */
export function modelFromRulesSnapshot(s: PolicyRulesSnapshot, inventory: Pick<PolicyModel, 'devices' | 'user_roles'>): PolicyModel {
  return {
    tenant_id: s.tenant.id,
    version: s.tenant.policy_version,
    default_effect: s.tenant.default_effect,
    devices: inventory.devices,
    user_roles: inventory.user_roles,
    grants: flattenGrants(s.policies, s.rules, s.role_policies),
  };
}

/** The model of a stored policy version: the same flattening as the live snapshot's. */
export function modelFromContent(c: PolicyContent): PolicyModel {
  return {
    tenant_id: c.tenant_id,
    version: c.version,
    default_effect: c.settings.default_effect,
    devices: c.devices,
    user_roles: userRolesOf(c.user_roles),
    grants: flattenGrants(c.policies, c.rules, c.role_policies),
  };
}
