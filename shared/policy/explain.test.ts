import { describe, expect, it } from 'vitest';
import type { Effect, Severity } from '../mqtt/payloads.js';
import { compilePolicyIndex } from './compile-policy-index.js';
import { normaliseContent, type ContentRule, type PolicyContent } from './content.js';
import { evaluateUsage } from './evaluate-usage.js';
import { explainDecision, Explainer, type ExplainSubject } from './explain.js';
import { modelFromContent } from './model.js';

const T = 'tenantA';

function rule(id: string, app: string, action: string, permission: Effect, extra: Partial<ContentRule> = {}): ContentRule {
  return { id, policy_id: 'P1', role_id: null, app, action, permission, remediation: null, escalation: null, ...extra };
}

/** alice: sales; bob: sales + eng; dev-nobody has no owner. P1 held by sales, P2 by eng. */
function content(rules: ContentRule[], opts: { defaultEffect?: Effect; version?: number } = {}): PolicyContent {
  return normaliseContent({
    tenant_id: T,
    version: opts.version ?? 1,
    settings: {
      default_effect: opts.defaultEffect ?? 'allow',
      plan_id: 'free',
      auto_remediation: false,
      max_devices: 100,
      max_events_per_s: 200,
      retention_days: 7,
    },
    policies: [
      { id: 'P1', name: 'Sales rules', description: null, severity: 'high' },
      { id: 'P2', name: 'Engineering rules', description: null, severity: 'critical' },
    ],
    rules,
    role_policies: [
      { role_id: 'sales', policy_id: 'P1' },
      { role_id: 'eng', policy_id: 'P2' },
    ],
    user_roles: [
      { user_id: 'alice', role_id: 'sales' },
      { user_id: 'bob', role_id: 'sales' },
      { user_id: 'bob', role_id: 'eng' },
    ],
    devices: [
      { id: 'dev-alice', user_id: 'alice' },
      { id: 'dev-bob', user_id: 'bob' },
      { id: 'dev-nobody', user_id: null },
    ],
  });
}

interface Case {
  name: string;
  rules: ContentRule[];
  defaultEffect?: Effect;
  subject: ExplainSubject;
  app: string;
  action: string;
  effect: Effect;
  reason: 'rule' | 'default' | 'unknown_device';
  rule: string | null;
  /** rule id → outcome, for every rule that must be listed as matching (and no others). */
  matches: Record<string, string>;
  wildcard?: { rule: string; app: boolean; action: boolean };
  summary: RegExp;
}

const cases: Case[] = [
  {
    name: 'deny overrides allow (the overridden allow is listed)',
    rules: [rule('R1', 'dropbox', 'upload', 'allow'), rule('R2', 'dropbox', 'upload', 'deny', { policy_id: 'P2' })],
    subject: { device_id: 'dev-bob' },
    app: 'dropbox',
    action: 'upload',
    effect: 'deny',
    reason: 'rule',
    rule: 'R2',
    matches: { R2: 'decided', R1: 'overridden_by_deny' },
    summary: /^Denied: rule R2 of policy "Engineering rules" \(via role eng\) denies dropbox\/upload; a deny beats allows, overriding 1 allow rule\.$/,
  },
  {
    name: 'a wildcard deny beats an exact allow, and is named as a wildcard match',
    rules: [rule('R1', 'dropbox', 'upload', 'allow'), rule('R2', '*', '*', 'deny')],
    subject: { user_id: 'alice' },
    app: 'dropbox',
    action: 'upload',
    effect: 'deny',
    reason: 'rule',
    rule: 'R2',
    matches: { R2: 'decided', R1: 'overridden_by_deny' },
    wildcard: { rule: 'R2', app: true, action: true },
    summary: /denies everything \(wildcard match\)/,
  },
  {
    name: 'an action wildcard allows every action of the app',
    rules: [rule('R1', 'slack', '*', 'allow')],
    defaultEffect: 'deny',
    subject: { device_id: 'dev-alice' },
    app: 'slack',
    action: 'send',
    effect: 'allow',
    reason: 'rule',
    rule: 'R1',
    matches: { R1: 'decided' },
    wildcard: { rule: 'R1', app: false, action: true },
    summary: /^Allowed: rule R1 .* allows every action of slack \(wildcard match\)\.$/,
  },
  {
    name: 'the most specific deny decides; the wider one is listed as less specific',
    rules: [rule('R1', '*', 'upload', 'deny'), rule('R9', 'dropbox', 'upload', 'deny')],
    subject: { device_id: 'dev-alice' },
    app: 'dropbox',
    action: 'upload',
    effect: 'deny',
    reason: 'rule',
    rule: 'R9',
    matches: { R9: 'decided', R1: 'less_specific' },
    summary: /1 other matching rule of the same effect is less specific/,
  },
  {
    name: 'no rule matches: the tenant default effect',
    rules: [rule('R1', 'dropbox', 'upload', 'deny')],
    defaultEffect: 'deny',
    subject: { device_id: 'dev-alice' },
    app: 'slack',
    action: 'send',
    effect: 'deny',
    reason: 'default',
    rule: null,
    matches: {},
    summary: /^Denied by the tenant default: no rule of 1 role \(sales\) matches slack\/send\.$/,
  },
  {
    name: 'a user without roles gets the default',
    rules: [rule('R1', '*', '*', 'deny')],
    subject: { user_id: 'carol' },
    app: 'slack',
    action: 'send',
    effect: 'allow',
    reason: 'default',
    rule: null,
    matches: {},
    summary: /user carol holds no role/,
  },
  {
    name: 'unknown device: the default, flagged',
    rules: [rule('R1', '*', '*', 'deny')],
    defaultEffect: 'deny',
    subject: { device_id: 'dev-ghost' },
    app: 'slack',
    action: 'send',
    effect: 'deny',
    reason: 'unknown_device',
    rule: null,
    matches: {},
    summary: /device dev-ghost is not registered to this tenant at version 1/,
  },
  {
    name: 'device without owner: the default, no roles',
    rules: [rule('R1', '*', '*', 'deny')],
    subject: { device_id: 'dev-nobody' },
    app: 'slack',
    action: 'send',
    effect: 'allow',
    reason: 'default',
    rule: null,
    matches: {},
    summary: /device dev-nobody has no owner/,
  },
  {
    name: 'a rule scoped to another role does not match',
    rules: [rule('R1', 'slack', 'send', 'deny', { role_id: 'eng' })],
    subject: { device_id: 'dev-alice' },
    app: 'slack',
    action: 'send',
    effect: 'allow',
    reason: 'default',
    rule: null,
    matches: {},
    summary: /no rule of 1 role/,
  },
];

describe('explanation cases', () => {
  it.each(cases)('$name', (c) => {
    const v = content(c.rules, c.defaultEffect ? { defaultEffect: c.defaultEffect } : {});
    const e = explainDecision(v, c.subject, c.app, c.action);
    expect(e.effect).toBe(c.effect);
    expect(e.reason).toBe(c.reason);
    expect(e.rule_id).toBe(c.rule);
    expect(Object.fromEntries(e.matches.map((m) => [m.rule_id, m.outcome]))).toEqual(c.matches);
    if (c.rule !== null) expect(e.matches[0]!.rule_id).toBe(c.rule);
    if (c.wildcard) expect(e.matches.find((m) => m.rule_id === c.wildcard!.rule)!.wildcard).toEqual({ app: c.wildcard.app, action: c.wildcard.action });
    expect(e.summary).toMatch(c.summary);
    // And the compiled index (production) agrees.
    const index = compilePolicyIndex(modelFromContent(v));
    const out = 'device_id' in c.subject ? index.decideForDevice(c.subject.device_id, c.app, c.action) : index.decide(c.subject.user_id, c.app, c.action);
    if (c.reason === 'unknown_device') expect(out).toBeUndefined();
    else expect({ effect: out!.effect, rule: out!.rule?.rule_id ?? null }).toEqual({ effect: c.effect, rule: c.rule });
  });

  it('a rule changed since: each version is explained with its own rules', () => {
    const v1 = content([rule('R1', 'dropbox', 'upload', 'allow')], { version: 1 });
    const v2 = content([rule('R1', 'dropbox', 'upload', 'deny')], { version: 2 });
    const at1 = explainDecision(v1, { device_id: 'dev-alice' }, 'dropbox', 'upload');
    const at2 = explainDecision(v2, { device_id: 'dev-alice' }, 'dropbox', 'upload');
    expect([at1.policy_version, at1.effect, at1.rule_id]).toEqual([1, 'allow', 'R1']);
    expect([at2.policy_version, at2.effect, at2.rule_id]).toEqual([2, 'deny', 'R1']);
  });

  it('lists the path: device → user → roles → policies', () => {
    const e = explainDecision(content([]), { device_id: 'dev-bob' }, 'x', 'y');
    expect(e.device).toEqual({ id: 'dev-bob', registered: true, owner_user_id: 'bob' });
    expect(e.user_id).toBe('bob');
    expect(e.roles).toEqual([
      { role_id: 'eng', policies: [{ policy_id: 'P2', name: 'Engineering rules', severity: 'critical' }] },
      { role_id: 'sales', policies: [{ policy_id: 'P1', name: 'Sales rules', severity: 'high' }] },
    ]);
  });
});

/** Deterministic PRNG (mulberry32): a failing seed reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const APPS = ['slack', 'dropbox', 'zoom', '*'];
const ACTIONS = ['upload', 'send', 'join', '*'];
const ROLES = ['r1', 'r2', 'r3', 'r4'];
const POLICIES = ['p1', 'p2', 'p3'];
const USERS = ['u1', 'u2', 'u3', 'u4'];
const SEVERITIES: Severity[] = ['low', 'medium', 'high', 'critical'];

function randomContent(rand: () => number): PolicyContent {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const some = <T>(xs: readonly T[], p: number): T[] => xs.filter(() => rand() < p);
  const ruleCount = Math.floor(rand() * 14);
  const ids = new Set<string>();
  while (ids.size < ruleCount) ids.add(`R${String(Math.floor(rand() * 90) + 10)}`);
  const rules: ContentRule[] = [...ids].map((id) => ({
    id,
    policy_id: pick(POLICIES),
    role_id: rand() < 0.25 ? pick(ROLES) : null,
    app: pick(APPS),
    action: pick(ACTIONS),
    permission: rand() < 0.5 ? 'deny' : 'allow',
    remediation: null,
    escalation: null,
  }));
  return normaliseContent({
    tenant_id: T,
    version: 1,
    settings: { default_effect: rand() < 0.5 ? 'deny' : 'allow', plan_id: 'free', auto_remediation: false, max_devices: null, max_events_per_s: null, retention_days: 7 },
    policies: POLICIES.map((id) => ({ id, name: id, description: null, severity: pick(SEVERITIES) })),
    rules,
    role_policies: ROLES.flatMap((role_id) => some(POLICIES, 0.5).map((policy_id) => ({ role_id, policy_id }))),
    user_roles: USERS.flatMap((user_id) => some(ROLES, 0.4).map((role_id) => ({ user_id, role_id }))),
    devices: ['d1', 'd2', 'd3', 'd4', 'd5'].map((id) => ({ id, user_id: rand() < 0.15 ? null : pick(USERS) })),
  });
}

describe('explain agrees with the compiled index (property, random versions)', () => {
  it('effect, reason, rule and policy are the index decision for every question', () => {
    const rand = prng(20240612);
    const queryApps = [...APPS, 'teams'];
    const queryActions = [...ACTIONS, 'delete'];
    let questions = 0;
    let byRule = 0;
    for (let m = 0; m < 600; m++) {
      const v = randomContent(rand);
      const index = compilePolicyIndex(modelFromContent(v));
      const explainer = new Explainer(v);
      for (let q = 0; q < 40; q++) {
        const app = queryApps[Math.floor(rand() * queryApps.length)]!;
        const action = queryActions[Math.floor(rand() * queryActions.length)]!;
        const useDevice = rand() < 0.6;
        const who = useDevice ? ['d1', 'd2', 'd3', 'd4', 'd5', 'd-unknown'][Math.floor(rand() * 6)]! : [...USERS, 'u-none'][Math.floor(rand() * 5)]!;
        const e = explainer.explain(useDevice ? { device_id: who } : { user_id: who }, app, action);
        const ctx = `model ${m} q ${q}: ${who} ${app}/${action}`;
        if (useDevice) {
          const r = evaluateUsage(index, { id: '01J00000000000000000000000', ts: 1, device_id: who, app, action }, () => undefined);
          if (r.kind !== 'decided') throw new Error(ctx);
          expect({ effect: e.effect, reason: e.reason, rule: e.rule_id, policy: e.policy_id, severity: e.severity }, ctx).toEqual({
            effect: r.decision.effect,
            reason: r.decision.reason,
            rule: r.decision.rule_id,
            policy: r.decision.policy_id,
            severity: r.decision.severity,
          });
        } else {
          const out = index.decide(who, app, action);
          expect({ effect: e.effect, reason: e.reason, rule: e.rule_id, policy: e.policy_id }, ctx).toEqual({
            effect: out.effect,
            reason: out.reason,
            rule: out.rule?.rule_id ?? null,
            policy: out.rule?.policy_id ?? null,
          });
        }
        // Every listed match really matches, and the decider is listed first.
        for (const mr of e.matches) {
          expect(mr.app === '*' || mr.app === app, ctx).toBe(true);
          expect(mr.action === '*' || mr.action === action, ctx).toBe(true);
        }
        if (e.rule_id !== null) {
          expect(e.matches[0]?.rule_id, ctx).toBe(e.rule_id);
          byRule++;
        }
        questions++;
      }
    }
    expect(questions).toBe(24_000);
    // The generator exercises rule decisions, not just defaults.
    expect(byRule).toBeGreaterThan(6000);
  });
});
