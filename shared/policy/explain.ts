/**
 * Why a decision came out as it did: the whole path device → user → roles → policies → every
 * matching rule (the allows a deny overrode and the wildcard matches included), the rule that
 * decided, or the tenant default when none matched, and one human sentence.
 *
 * Deliberately NOT part of the compiled index: the hot path stays allocation-free and this walks
 * the version's rules directly, applying the same precedence the index resolves at build time
 * (compile-policy-index.ts): any deny beats any allow; among rules of one effect the most
 * specific cell wins (app and action named, then app with `*` action, then `*` app with the
 * action, then `*`/`*`), then the lowest rule id. explain.test.ts proves on random versions that
 * the effect, reason and rule named here always equal what the index decides.
 */
import type { Effect, Severity } from '../mqtt/payloads.js';
import { WILDCARD } from './compile-policy-index.js';
import type { ContentPolicy, ContentRule, PolicyContent } from './content.js';

export type Specificity = 'exact' | 'app_any_action' | 'any_app_action' | 'any_app_any_action';
const SPECIFICITY: readonly Specificity[] = ['exact', 'app_any_action', 'any_app_action', 'any_app_any_action'];

/** What a matching rule did for this decision. */
export type MatchOutcome =
  /** It is the rule that decided. */
  | 'decided'
  /** An allow that a deny beat. */
  | 'overridden_by_deny'
  /** A rule of the deciding effect, beaten by a more specific one or a lower rule id. */
  | 'less_specific';

export interface MatchedRule {
  rule_id: string;
  policy_id: string;
  policy_name: string | null;
  /** The user's roles through which the rule applies (it may reach them through several). */
  via_roles: string[];
  /** Set when the rule is scoped to one role of its policy. */
  scoped_to_role: string | null;
  app: string;
  action: string;
  effect: Effect;
  severity: Severity;
  specificity: Specificity;
  /** Which of app and action the rule matched by `*`. */
  wildcard: { app: boolean; action: boolean };
  outcome: MatchOutcome;
}

export type ExplainSubject = { device_id: string } | { user_id: string };

export interface Explanation {
  tenant_id: string;
  policy_version: number;
  app: string;
  action: string;
  /** Present when the question named a device. */
  device: { id: string; registered: boolean; owner_user_id: string | null } | null;
  /** The user whose roles decide; null for an unregistered or unowned device. */
  user_id: string | null;
  /** The user's roles and the policies each holds at this version. */
  roles: Array<{ role_id: string; policies: Array<{ policy_id: string; name: string; severity: Severity }> }>;
  /** Every rule that matched, the deciding one first, then in precedence order. */
  matches: MatchedRule[];
  effect: Effect;
  reason: 'rule' | 'default' | 'unknown_device';
  rule_id: string | null;
  policy_id: string | null;
  /** Severity of a deny by rule (what an alert would carry); null otherwise. */
  severity: Severity | null;
  default_effect: Effect;
  /** One sentence a person can read. */
  summary: string;
}

interface Candidate {
  rule: ContentRule;
  policy: ContentPolicy;
  roles: Set<string>;
  rank: number;
}

function rankOf(rule: ContentRule, app: string, action: string): number | null {
  const appWild = rule.app === WILDCARD;
  const actionWild = rule.action === WILDCARD;
  if (!appWild && rule.app !== app) return null;
  if (!actionWild && rule.action !== action) return null;
  return (appWild ? 2 : 0) + (actionWild ? 1 : 0);
}

/** Precedence among rules of one effect: most specific cell, then lowest rule id. */
function precedes(a: Candidate, b: Candidate): number {
  if (a.rank !== b.rank) return a.rank - b.rank;
  return a.rule.id < b.rule.id ? -1 : a.rule.id > b.rule.id ? 1 : 0;
}

/**
 * Reusable over many questions against one version (policy tests, what-if's broken tests): the
 * lookups are built once.
 */
export class Explainer {
  readonly #content: PolicyContent;
  readonly #owners: Map<string, string | null>;
  readonly #rolesOfUser = new Map<string, string[]>();
  readonly #policies: Map<string, ContentPolicy>;
  readonly #policiesOfRole = new Map<string, string[]>();
  readonly #rulesOfPolicy = new Map<string, ContentRule[]>();

  constructor(content: PolicyContent) {
    this.#content = content;
    this.#owners = new Map(content.devices.map((d) => [d.id, d.user_id]));
    this.#policies = new Map(content.policies.map((p) => [p.id, p]));
    for (const { user_id, role_id } of content.user_roles) push(this.#rolesOfUser, user_id, role_id);
    for (const { role_id, policy_id } of content.role_policies) {
      if (this.#policies.has(policy_id)) push(this.#policiesOfRole, role_id, policy_id);
    }
    for (const r of content.rules) push(this.#rulesOfPolicy, r.policy_id, r);
  }

  explain(subject: ExplainSubject, app: string, action: string): Explanation {
    const c = this.#content;
    const base = { tenant_id: c.tenant_id, policy_version: c.version, app, action, default_effect: c.settings.default_effect };
    if ('device_id' in subject) {
      const id = subject.device_id;
      if (!this.#owners.has(id)) {
        return {
          ...base,
          device: { id, registered: false, owner_user_id: null },
          user_id: null,
          roles: [],
          matches: [],
          effect: c.settings.default_effect,
          reason: 'unknown_device',
          rule_id: null,
          policy_id: null,
          severity: null,
          summary: `${verb(c.settings.default_effect)} by the tenant default: device ${id} is not registered to this tenant at version ${c.version}, so no role applies.`,
        };
      }
      const owner = this.#owners.get(id) ?? null;
      const device = { id, registered: true, owner_user_id: owner };
      if (owner === null) {
        return {
          ...base,
          device,
          user_id: null,
          roles: [],
          matches: [],
          effect: c.settings.default_effect,
          reason: 'default',
          rule_id: null,
          policy_id: null,
          severity: null,
          summary: `${verb(c.settings.default_effect)} by the tenant default: device ${id} has no owner, so no role applies.`,
        };
      }
      return this.#forUser(base, device, owner, app, action);
    }
    return this.#forUser(base, null, subject.user_id, app, action);
  }

  #forUser(
    base: Pick<Explanation, 'tenant_id' | 'policy_version' | 'app' | 'action' | 'default_effect'>,
    device: Explanation['device'],
    userId: string,
    app: string,
    action: string,
  ): Explanation {
    const roleIds = [...new Set(this.#rolesOfUser.get(userId) ?? [])].sort();
    const roles: Explanation['roles'] = roleIds.map((role_id) => ({
      role_id,
      policies: (this.#policiesOfRole.get(role_id) ?? []).map((pid) => {
        const p = this.#policies.get(pid)!;
        return { policy_id: p.id, name: p.name, severity: p.severity };
      }),
    }));

    const byRule = new Map<string, Candidate>();
    for (const role of roleIds) {
      for (const pid of this.#policiesOfRole.get(role) ?? []) {
        for (const rule of this.#rulesOfPolicy.get(pid) ?? []) {
          if (rule.role_id !== null && rule.role_id !== role) continue;
          const rank = rankOf(rule, app, action);
          if (rank === null) continue;
          const seen = byRule.get(rule.id);
          if (seen) seen.roles.add(role);
          else byRule.set(rule.id, { rule, policy: this.#policies.get(pid)!, roles: new Set([role]), rank });
        }
      }
    }
    const candidates = [...byRule.values()];
    const denies = candidates.filter((m) => m.rule.permission === 'deny').sort(precedes);
    const allows = candidates.filter((m) => m.rule.permission === 'allow').sort(precedes);
    const decider = denies[0] ?? allows[0] ?? null;
    const matches = [...denies, ...allows].map((m) => matched(m, decider));

    const defaultEffect = base.default_effect;
    if (decider === null) {
      const roleText = roleIds.length === 0 ? `user ${userId} holds no role` : `no rule of ${plural(roleIds.length, 'role')} (${roleIds.join(', ')}) matches ${app}/${action}`;
      return {
        ...base,
        device,
        user_id: userId,
        roles,
        matches,
        effect: defaultEffect,
        reason: 'default',
        rule_id: null,
        policy_id: null,
        severity: null,
        summary: `${verb(defaultEffect)} by the tenant default: ${roleText}.`,
      };
    }
    const effect = decider.rule.permission;
    return {
      ...base,
      device,
      user_id: userId,
      roles,
      matches,
      effect,
      reason: 'rule',
      rule_id: decider.rule.id,
      policy_id: decider.policy.id,
      severity: effect === 'deny' ? decider.policy.severity : null,
      summary: sentence(decider, effect === 'deny' ? allows.length : 0, (effect === 'deny' ? denies : allows).length - 1, app, action),
    };
  }
}

/** One question against one version. */
export function explainDecision(content: PolicyContent, subject: ExplainSubject, app: string, action: string): Explanation {
  return new Explainer(content).explain(subject, app, action);
}

function matched(m: Candidate, decider: Candidate | null): MatchedRule {
  const outcome: MatchOutcome =
    m === decider ? 'decided' : decider !== null && decider.rule.permission === 'deny' && m.rule.permission === 'allow' ? 'overridden_by_deny' : 'less_specific';
  return {
    rule_id: m.rule.id,
    policy_id: m.policy.id,
    policy_name: m.policy.name,
    via_roles: [...m.roles].sort(),
    scoped_to_role: m.rule.role_id,
    app: m.rule.app,
    action: m.rule.action,
    effect: m.rule.permission,
    severity: m.policy.severity,
    specificity: SPECIFICITY[m.rank]!,
    wildcard: { app: m.rule.app === WILDCARD, action: m.rule.action === WILDCARD },
    outcome,
  };
}

function sentence(d: Candidate, overriddenAllows: number, sameEffectOthers: number, app: string, action: string): string {
  const effect = d.rule.permission;
  const how =
    d.rank === 0 ? `${app}/${action}` : d.rank === 1 ? `every action of ${app}` : d.rank === 2 ? `${action} in every app` : 'everything';
  const roles = [...d.roles].sort();
  let s = `${verb(effect)}: rule ${d.rule.id} of policy "${d.policy.name}" (via role ${roles.join(', ')}) ${effect === 'deny' ? 'denies' : 'allows'} ${how}`;
  if (d.rank !== 0) s += ' (wildcard match)';
  if (overriddenAllows > 0) s += `; a deny beats allows, overriding ${plural(overriddenAllows, 'allow rule')}`;
  if (sameEffectOthers > 0) s += `; ${plural(sameEffectOthers, 'other matching rule')} of the same effect ${sameEffectOthers === 1 ? 'is' : 'are'} less specific`;
  return `${s}.`;
}

function verb(effect: Effect): string {
  return effect === 'deny' ? 'Denied' : 'Allowed';
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function push<V>(map: Map<string, V[]>, key: string, value: V): void {
  let list = map.get(key);
  if (!list) map.set(key, (list = []));
  list.push(value);
}
