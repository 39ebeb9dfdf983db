/**
 * Compiles a tenant's policies into an index so one decision is a handful of hash lookups and
 * never a database query (DESIGN §4). Cost is independent of the number of rules: each role's
 * grants are bucketed by app then action, and role sets shared by many users share one merged
 * table with a memo of final outcomes.
 */
import type { BundleGrant, Effect, Severity } from '../mqtt/payloads.js';
import type { PolicyModel } from './model.js';

export const WILDCARD = '*';

export interface RuleRef {
  rule_id: string;
  policy_id: string;
  severity: Severity;
}

/** The rules of one (app, action) cell: first deny and first allow in rule-id order. */
interface Slot {
  deny: RuleRef | null;
  allow: RuleRef | null;
}

type Table = Map<string, Map<string, Slot>>;

export type Outcome =
  | { effect: Effect; reason: 'rule'; rule: RuleRef }
  | { effect: Effect; reason: 'default'; rule: null };

/** Memoised outcomes per (app, action) are capped: event app names come from the field. */
const MEMO_LIMIT = 50_000;

class RoleSet {
  readonly table: Table;
  readonly memo = new Map<string, Map<string, Outcome>>();
  memoSize = 0;

  constructor(table: Table) {
    this.table = table;
  }
}

export interface PolicyIndex {
  readonly tenantId: string;
  readonly version: number;
  readonly defaultEffect: Effect;
  readonly ruleCount: number;
  /** Owning user of each device of this tenant (null = registered but unassigned). */
  ownerOf(deviceId: string): string | null | undefined;
  hasDevice(deviceId: string): boolean;
  deviceIds(): IterableIterator<string>;
  /** Decides for a user (null = device without owner → no roles → default effect). */
  decide(userId: string | null, app: string, action: string): Outcome;
}

function put(table: Table, g: BundleGrant): void {
  let byAction = table.get(g.app);
  if (!byAction) table.set(g.app, (byAction = new Map()));
  let slot = byAction.get(g.action);
  if (!slot) byAction.set(g.action, (slot = { deny: null, allow: null }));
  const ref: RuleRef = { rule_id: g.rule_id, policy_id: g.policy_id, severity: g.severity };
  if (g.effect === 'deny') {
    if (!slot.deny || g.rule_id < slot.deny.rule_id) slot.deny = ref;
  } else if (!slot.allow || g.rule_id < slot.allow.rule_id) {
    slot.allow = ref;
  }
}

export function compilePolicyIndex(model: PolicyModel): PolicyIndex {
  const byRole = new Map<string, BundleGrant[]>();
  for (const g of model.grants) {
    let list = byRole.get(g.role_id);
    if (!list) byRole.set(g.role_id, (list = []));
    list.push(g);
  }

  const owners = new Map<string, string | null>();
  for (const d of model.devices) owners.set(d.id, d.user_id);

  const roleSets = new Map<string, RoleSet>();
  const userSet = new Map<string, RoleSet>();
  const empty = new RoleSet(new Map());

  function roleSetFor(userId: string | null): RoleSet {
    if (userId === null) return empty;
    const cached = userSet.get(userId);
    if (cached) return cached;
    const roles = [...new Set(model.user_roles.get(userId) ?? [])].sort();
    const key = roles.join('\u0000');
    let rs = roleSets.get(key);
    if (!rs) {
      const table: Table = new Map();
      for (const r of roles) for (const g of byRole.get(r) ?? []) put(table, g);
      rs = new RoleSet(table);
      roleSets.set(key, rs);
    }
    userSet.set(userId, rs);
    return rs;
  }

  const defaultOutcome: Outcome = { effect: model.default_effect, reason: 'default', rule: null };

  function resolve(table: Table, app: string, action: string): Outcome {
    // Most specific first, so the explanation names the narrowest rule that decided.
    const exactApp = table.get(app);
    const anyApp = table.get(WILDCARD);
    const slots = [exactApp?.get(action), exactApp?.get(WILDCARD), anyApp?.get(action), anyApp?.get(WILDCARD)];
    // Explicit deny beats allow, whatever the specificity.
    for (const s of slots) if (s?.deny) return { effect: 'deny', reason: 'rule', rule: s.deny };
    for (const s of slots) if (s?.allow) return { effect: 'allow', reason: 'rule', rule: s.allow };
    return defaultOutcome;
  }

  return {
    tenantId: model.tenant_id,
    version: model.version,
    defaultEffect: model.default_effect,
    ruleCount: model.grants.length,
    ownerOf: (deviceId) => owners.get(deviceId),
    hasDevice: (deviceId) => owners.has(deviceId),
    deviceIds: () => owners.keys(),
    decide(userId, app, action) {
      const rs = roleSetFor(userId);
      let byAction = rs.memo.get(app);
      const hit = byAction?.get(action);
      if (hit) return hit;
      const out = resolve(rs.table, app, action);
      if (rs.memoSize >= MEMO_LIMIT) {
        rs.memo.clear();
        rs.memoSize = 0;
        byAction = undefined;
      }
      if (!byAction) rs.memo.set(app, (byAction = new Map()));
      byAction.set(action, out);
      rs.memoSize++;
      return out;
    },
  };
}
