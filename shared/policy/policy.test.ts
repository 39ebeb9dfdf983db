import { describe, expect, it } from 'vitest';
import type { BundleGrant, Effect, UsageEvent } from '../mqtt/payloads.js';
import { compilePolicyIndex } from './compile-policy-index.js';
import { evaluateUsage } from './evaluate-usage.js';
import { modelFromSnapshot, type PolicyModel } from './model.js';
import type { PolicySnapshot } from '../store/port.js';

const T = 'tenantA';

function grant(id: string, role: string, app: string, action: string, effect: Effect, policy = 'P1'): BundleGrant {
  return { rule_id: id, policy_id: policy, role_id: role, app, action, effect, severity: 'high' };
}

function model(grants: BundleGrant[], opts: Partial<PolicyModel> = {}): PolicyModel {
  return {
    tenant_id: T,
    version: 1,
    default_effect: 'allow',
    devices: [
      { id: 'dev-alice', user_id: 'alice' },
      { id: 'dev-bob', user_id: 'bob' },
      { id: 'dev-nobody', user_id: null },
    ],
    user_roles: new Map([
      ['alice', ['sales']],
      ['bob', ['sales', 'eng']],
    ]),
    grants,
    ...opts,
  };
}

let seq = 0;
function event(device: string, app: string, action: string): UsageEvent {
  seq++;
  return { id: `01J0000000000000000000${String(seq).padStart(4, '0')}`, ts: 1, device_id: device, app, action };
}

const noOtherTenant = () => undefined;

// Each case: the grants in force, who acts, and the expected effect/reason/rule.
const cases: Array<{
  name: string;
  grants: BundleGrant[];
  defaultEffect?: Effect;
  device: string;
  app: string;
  action: string;
  effect: Effect;
  reason: 'rule' | 'default' | 'unknown_device';
  rule?: string | null;
}> = [
  { name: 'no rules → tenant default allow', grants: [], device: 'dev-alice', app: 'slack', action: 'upload_file', effect: 'allow', reason: 'default', rule: null },
  { name: 'no rules → tenant default deny', grants: [], defaultEffect: 'deny', device: 'dev-alice', app: 'slack', action: 'upload_file', effect: 'deny', reason: 'default', rule: null },
  { name: 'exact allow', grants: [grant('R1', 'sales', 'slack', 'upload_file', 'allow')], defaultEffect: 'deny', device: 'dev-alice', app: 'slack', action: 'upload_file', effect: 'allow', reason: 'rule', rule: 'R1' },
  { name: 'exact deny', grants: [grant('R1', 'sales', 'slack', 'upload_file', 'deny')], device: 'dev-alice', app: 'slack', action: 'upload_file', effect: 'deny', reason: 'rule', rule: 'R1' },
  { name: 'rule for another action does not match', grants: [grant('R1', 'sales', 'slack', 'upload_file', 'deny')], device: 'dev-alice', app: 'slack', action: 'send_message', effect: 'allow', reason: 'default', rule: null },
  { name: 'action wildcard matches any action', grants: [grant('R1', 'sales', 'slack', '*', 'deny')], device: 'dev-alice', app: 'slack', action: 'send_message', effect: 'deny', reason: 'rule', rule: 'R1' },
  { name: 'app wildcard matches any app', grants: [grant('R1', 'sales', '*', 'upload_file', 'deny')], device: 'dev-alice', app: 'dropbox', action: 'upload_file', effect: 'deny', reason: 'rule', rule: 'R1' },
  { name: 'double wildcard matches everything', grants: [grant('R1', 'sales', '*', '*', 'deny')], device: 'dev-alice', app: 'zoom', action: 'join', effect: 'deny', reason: 'rule', rule: 'R1' },
  { name: 'wildcard deny beats exact allow', grants: [grant('R1', 'sales', 'slack', 'upload_file', 'allow'), grant('R2', 'sales', '*', '*', 'deny')], device: 'dev-alice', app: 'slack', action: 'upload_file', effect: 'deny', reason: 'rule', rule: 'R2' },
  { name: 'exact deny beats wildcard allow', grants: [grant('R1', 'sales', '*', '*', 'allow'), grant('R2', 'sales', 'slack', 'upload_file', 'deny')], defaultEffect: 'deny', device: 'dev-alice', app: 'slack', action: 'upload_file', effect: 'deny', reason: 'rule', rule: 'R2' },
  { name: 'wildcard allow overrides default deny', grants: [grant('R1', 'sales', 'slack', '*', 'allow')], defaultEffect: 'deny', device: 'dev-alice', app: 'slack', action: 'upload_file', effect: 'allow', reason: 'rule', rule: 'R1' },
  { name: 'most specific deny explains the decision', grants: [grant('R9', 'sales', '*', '*', 'deny'), grant('R5', 'sales', 'slack', 'upload_file', 'deny')], device: 'dev-alice', app: 'slack', action: 'upload_file', effect: 'deny', reason: 'rule', rule: 'R5' },
  { name: 'deny from one role beats allow from another role', grants: [grant('R1', 'sales', 'slack', 'upload_file', 'allow'), grant('R2', 'eng', 'slack', 'upload_file', 'deny')], device: 'dev-bob', app: 'slack', action: 'upload_file', effect: 'deny', reason: 'rule', rule: 'R2' },
  { name: 'rules of a role the user lacks do not apply', grants: [grant('R2', 'eng', 'slack', 'upload_file', 'deny')], device: 'dev-alice', app: 'slack', action: 'upload_file', effect: 'allow', reason: 'default', rule: null },
  { name: 'device without owner gets the default', grants: [grant('R1', 'sales', '*', '*', 'deny')], device: 'dev-nobody', app: 'slack', action: 'upload_file', effect: 'allow', reason: 'default', rule: null },
  { name: 'unknown device gets the default, flagged', grants: [grant('R1', 'sales', '*', '*', 'deny')], defaultEffect: 'deny', device: 'dev-ghost', app: 'slack', action: 'upload_file', effect: 'deny', reason: 'unknown_device', rule: null },
  { name: 'ties between denies resolve to the lowest rule id', grants: [grant('R7', 'sales', 'slack', 'upload_file', 'deny'), grant('R3', 'sales', 'slack', 'upload_file', 'deny')], device: 'dev-alice', app: 'slack', action: 'upload_file', effect: 'deny', reason: 'rule', rule: 'R3' },
];

describe('policy semantics', () => {
  it.each(cases)('$name', (c) => {
    const index = compilePolicyIndex(model(c.grants, c.defaultEffect ? { default_effect: c.defaultEffect } : {}));
    const r = evaluateUsage(index, event(c.device, c.app, c.action), noOtherTenant);
    expect(r.kind).toBe('decided');
    if (r.kind !== 'decided') return;
    expect(r.decision.effect).toBe(c.effect);
    expect(r.decision.reason).toBe(c.reason);
    expect(r.decision.rule_id).toBe(c.rule ?? null);
    if (c.rule) expect(r.decision.policy_id).toBe('P1');
    expect(r.decision.severity).toBe(c.effect === 'deny' && c.reason === 'rule' ? 'high' : null);
  });

  it('rejects a device registered to another tenant', () => {
    const index = compilePolicyIndex(model([]));
    const r = evaluateUsage(index, event('dev-of-b', 'slack', 'x'), (d) => (d === 'dev-of-b' ? 'tenantB' : undefined));
    expect(r).toEqual({ kind: 'rejected', reason: 'device_tenant_mismatch' });
  });

  it('role changes take effect in a recompiled index, memo included', () => {
    const grants = [grant('R2', 'eng', 'slack', 'upload_file', 'deny')];
    const before = compilePolicyIndex(model(grants));
    // Warm the memo with the pre-change outcome.
    expect(before.decide('alice', 'slack', 'upload_file').effect).toBe('allow');
    const after = compilePolicyIndex(model(grants, { user_roles: new Map([['alice', ['sales', 'eng']]]) }));
    expect(after.decide('alice', 'slack', 'upload_file').effect).toBe('deny');
    // And removing the role again restores the default.
    const removed = compilePolicyIndex(model(grants, { user_roles: new Map([['alice', []]]) }));
    expect(removed.decide('alice', 'slack', 'upload_file').reason).toBe('default');
  });

  it('a rule decides through one outcome object, whichever roles hold it and cells it reaches', () => {
    // A policy assigned to two roles is one rule in two grants; each cell it decides (named, the
    // app's `*`, the wildcard app) returns the same object, so decisions touch one per rule.
    const grants = [grant('R1', 'sales', 'slack', '*', 'deny'), grant('R1', 'eng', 'slack', '*', 'deny'), grant('R2', 'eng', '*', 'upload_file', 'allow')];
    const index = compilePolicyIndex(model(grants, { user_roles: new Map([['alice', ['sales']], ['bob', ['eng']], ['carol', ['sales', 'eng']]]) }));
    const outs = [index.decide('alice', 'slack', 'upload_file'), index.decide('bob', 'slack', 'send'), index.decide('carol', 'slack', 'upload_file')];
    expect(outs.map((o) => o.rule?.rule_id)).toEqual(['R1', 'R1', 'R1']);
    expect(new Set(outs).size).toBe(1);
    expect(index.decide('bob', 'zoom', 'upload_file')).toBe(index.decide('carol', 'teams', 'upload_file'));
  });

  it('the dense memo decides exactly as the map memo, for named, wildcard and unknown apps and actions', () => {
    // A small deterministic generator: the same model and stream every run.
    let x = 12345;
    const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const pick = <V>(xs: readonly V[]): V => xs[Math.floor(rnd() * xs.length)]!;
    const apps = ['a0', 'a1', 'a2', 'a3', 'a4', '*'];
    const actions = ['x0', 'x1', 'x2', '*'];
    const roles = ['r0', 'r1', 'r2', 'r3'];
    const grants = Array.from({ length: 60 }, (_, i) => grant(`R${String(i).padStart(3, '0')}`, pick(roles), pick(apps), pick(actions), rnd() < 0.35 ? 'deny' : 'allow'));
    const users = Array.from({ length: 12 }, (_, i) => `u${i}`);
    const m = model(grants, {
      devices: users.map((u) => ({ id: `dev-${u}`, user_id: u })),
      user_roles: new Map(users.map((u) => [u, roles.filter(() => rnd() < 0.5)])),
    });
    const dense = compilePolicyIndex(m);
    const maps = compilePolicyIndex(m, { gridCellsPerIndex: 0 });
    // Names no rule uses land in the shared row / column; the outcomes must not depend on which.
    const eventApps = [...apps.filter((a) => a !== '*'), 'unnamed-1', 'unnamed-2', '*'];
    const eventActions = [...actions.filter((a) => a !== '*'), 'other-1', 'other-2', '*'];
    let compared = 0;
    // Enough decisions per role set that every one gets its grid (256), then again from the memo.
    for (let round = 0; round < 8; round++) {
      for (const u of users) {
        for (const app of eventApps) {
          for (const action of eventActions) {
            expect(dense.decideForDevice(`dev-${u}`, app, action), `${u} ${app} ${action}`).toEqual(maps.decideForDevice(`dev-${u}`, app, action));
            compared++;
          }
        }
      }
    }
    expect(compared).toBe(8 * users.length * eventApps.length * eventActions.length);
  });

  it('a decision by number names the same outcome and effect as decideForDevice, on both memos', () => {
    let x = 777;
    const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const pick = <V>(xs: readonly V[]): V => xs[Math.floor(rnd() * xs.length)]!;
    const roles = ['r0', 'r1', 'r2'];
    const grants = Array.from({ length: 40 }, (_, i) => grant(`R${String(i).padStart(3, '0')}`, pick(roles), pick(['a0', 'a1', 'a2', '*']), pick(['x0', 'x1', '*']), rnd() < 0.4 ? 'deny' : 'allow'));
    const users = ['u0', 'u1', 'u2', 'u3'];
    const m = model(grants, {
      devices: [...users.map((u) => ({ id: `dev-${u}`, user_id: u })), { id: 'dev-nobody', user_id: null }],
      user_roles: new Map(users.map((u, i) => [u, roles.slice(0, i)])),
    });
    for (const index of [compilePolicyIndex(m), compilePolicyIndex(m, { gridCellsPerIndex: 0 })]) {
      const seen = new Set<string>();
      // 300 rounds: past the 256 decisions after which a role set gets its dense memo.
      for (let round = 0; round < 300; round++) {
        for (const device of ['dev-u0', 'dev-u1', 'dev-u2', 'dev-u3', 'dev-nobody']) {
          for (const [app, action] of [['a0', 'x0'], ['a1', 'x1'], ['a2', 'other'], ['unnamed', 'x0']] as const) {
            const n = index.decisionNumber(device, app, action);
            const out = index.decideForDevice(device, app, action)!;
            expect(index.outcomeAt(n)).toBe(out);
            expect(index.effectOf(n)).toBe(out.effect);
            seen.add(`${out.effect}:${out.rule?.rule_id ?? 'default'}`);
          }
        }
      }
      // The stream reaches denies, allows and the default, so the effect table is not all one value.
      expect([...seen].some((k) => k.startsWith('deny:'))).toBe(true);
      expect([...seen].some((k) => k.startsWith('allow:R'))).toBe(true);
      expect(seen.has('allow:default')).toBe(true);
      expect(index.decisionNumber('dev-unknown', 'a0', 'x0')).toBe(-1);
    }
  });

  it('memoised outcomes stay correct across many distinct keys', () => {
    const index = compilePolicyIndex(model([grant('R1', 'sales', 'app1', '*', 'deny')]));
    for (let i = 0; i < 60_000; i++) index.decide('alice', `app${i % 3}`, `act${i}`);
    expect(index.decide('alice', 'app1', 'anything').effect).toBe('deny');
    expect(index.decide('alice', 'app2', 'anything').effect).toBe('allow');
  });
});

describe('policy model', () => {
  const snapshot: PolicySnapshot = {
    tenant: { id: T, name: 'A', plan_id: 'free', default_effect: 'allow', policy_version: 7, alert_window_s: 600, audit_retention_days: 365, created_at: 0, updated_at: 0 },
    plan: { id: 'free', name: 'Free', auto_remediation: false, max_devices: 100, max_events_per_s: 200, retention_days: 7, created_at: 0, updated_at: 0 },
    devices: [{ id: 'dev-alice', user_id: 'alice' }],
    user_roles: [{ user_id: 'alice', role_id: 'sales' }],
    role_policies: [
      { role_id: 'sales', policy_id: 'P1' },
      { role_id: 'eng', policy_id: 'P1' },
    ],
    policies: [{ id: 'P1', tenant_id: T, name: 'p', description: null, severity: 'critical', created_at: 0, updated_at: 0 }],
    rules: [
      { id: 'R1', tenant_id: T, policy_id: 'P1', role_id: null, app: 'slack', action: '*', permission: 'deny', remediation: null, escalation: null, created_at: 0, updated_at: 0 },
      { id: 'R2', tenant_id: T, policy_id: 'P1', role_id: 'eng', app: 'zoom', action: '*', permission: 'deny', remediation: null, escalation: null, created_at: 0, updated_at: 0 },
    ],
  };

  it('flattens unscoped rules onto every role holding the policy and scoped rules onto their role only', () => {
    const m = modelFromSnapshot(snapshot);
    const pairs = m.grants.map((g) => `${g.role_id}:${g.rule_id}`).sort();
    expect(pairs).toEqual(['eng:R1', 'eng:R2', 'sales:R1']);
    expect(m.grants.every((g) => g.severity === 'critical')).toBe(true);
    expect(m.version).toBe(7);
  });
});
