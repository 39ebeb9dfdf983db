/**
 * Which devices a draft can change a decision for. A device's decision is a function of its
 * owner, the owner's roles, each role's grants and the default effect (compile-policy-index.ts);
 * where all of these are the same in the live model and the draft, both decide alike, so a replay
 * decides such a device's events once instead of twice. Exact, not a heuristic: a role whose
 * grants differ in any way (rule, effect, cell, severity, policy) marks every holder affected.
 * The default effect only decides where no rule matches, so it is reported apart.
 */
import type { BundleGrant } from '../mqtt/payloads.js';
import type { PolicyModel } from './model.js';

export interface ReplayScope {
  /**
   * The default effect differs. Rule outcomes do not depend on it, so a device outside `devices`
   * still decides by the same rule, or else by the draft's default.
   */
  defaultChanged: boolean;
  /** Devices whose owner, roles or roles' grants differ: their rule outcomes may change. */
  devices: ReadonlySet<string>;
}

function grantsByRole(m: PolicyModel): Map<string, string> {
  const lists = new Map<string, string[]>();
  const sig = (g: BundleGrant) => `${g.rule_id}\u0000${g.policy_id}\u0000${g.app}\u0000${g.action}\u0000${g.effect}\u0000${g.severity}`;
  for (const g of m.grants) {
    let list = lists.get(g.role_id);
    if (!list) lists.set(g.role_id, (list = []));
    list.push(sig(g));
  }
  return new Map([...lists].map(([role, list]) => [role, list.sort().join('\u0001')]));
}

const roleSetKey = (roles: readonly string[] | undefined): string => [...new Set(roles ?? [])].sort().join('\u0000');

export function replayScope(base: PolicyModel, draft: PolicyModel): ReplayScope {
  const a = grantsByRole(base);
  const b = grantsByRole(draft);
  const changedRoles = new Set<string>();
  for (const role of new Set([...a.keys(), ...b.keys()])) if (a.get(role) !== b.get(role)) changedRoles.add(role);

  const changedUsers = new Set<string>();
  for (const user of new Set([...base.user_roles.keys(), ...draft.user_roles.keys()])) {
    const before = base.user_roles.get(user);
    const after = draft.user_roles.get(user);
    if (roleSetKey(before) !== roleSetKey(after) || [...(before ?? []), ...(after ?? [])].some((r) => changedRoles.has(r))) changedUsers.add(user);
  }

  const ownerBefore = new Map(base.devices.map((d) => [d.id, d.user_id]));
  const ownerAfter = new Map(draft.devices.map((d) => [d.id, d.user_id]));
  const devices = new Set<string>();
  for (const id of new Set([...ownerBefore.keys(), ...ownerAfter.keys()])) {
    const was = ownerBefore.get(id);
    const now = ownerAfter.get(id);
    if (was !== now || (now !== undefined && now !== null && changedUsers.has(now))) devices.add(id);
  }
  return { defaultChanged: base.default_effect !== draft.default_effect, devices };
}
