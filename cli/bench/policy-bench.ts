/**
 * (c) Policy evaluation alone: decisions per second on one core with a small and a very large
 * rule set, to show decision cost does not grow with the number of rules.
 */
import type { BundleGrant, Effect, UsageEvent } from '../../shared/mqtt/payloads.js';
import { compilePolicyIndex } from '../../shared/policy/compile-policy-index.js';
import { evaluateUsage } from '../../shared/policy/evaluate-usage.js';
import type { PolicyModel } from '../../shared/policy/model.js';
// Deterministic, so both rule sets see the same event stream shape.
import { mulberry32 } from '../../simulator/prng.js';

export interface PolicyBenchResult {
  rules: number;
  compile_ms: number;
  decisions: number;
  seconds: number;
  decisions_per_s: number;
  denied_fraction: number;
}

const APPS = 1000;
const ACTIONS = 100;
const ROLES = 50;
const USERS = 5000;
const DEVICES = 10_000;

function buildModel(ruleCount: number, rnd: () => number): PolicyModel {
  const grants: BundleGrant[] = [];
  for (let i = 0; i < ruleCount; i++) {
    // A mix of exact and wildcard rules, mostly allows with some denies, spread over roles.
    const effect: Effect = rnd() < 0.2 ? 'deny' : 'allow';
    // Broad wildcard denies are rare in real policies; broad allows are common.
    const wildcardApp = rnd() < (effect === 'deny' ? 0.0005 : 0.02);
    const wildcardAction = rnd() < 0.1;
    grants.push({
      rule_id: `R${String(i).padStart(7, '0')}`,
      policy_id: `P${i % 500}`,
      role_id: `role${i % ROLES}`,
      app: wildcardApp ? '*' : `app${Math.floor(rnd() * APPS)}`,
      action: wildcardAction ? '*' : `act${Math.floor(rnd() * ACTIONS)}`,
      effect,
      severity: 'medium',
    });
  }
  const user_roles = new Map<string, string[]>();
  for (let u = 0; u < USERS; u++) user_roles.set(`user${u}`, [`role${u % ROLES}`, `role${(u * 7) % ROLES}`]);
  const devices = Array.from({ length: DEVICES }, (_, d) => ({ id: `dev${d}`, user_id: `user${d % USERS}` }));
  return { tenant_id: 'bench', version: 1, default_effect: 'allow', devices, user_roles, grants };
}

function buildEvents(n: number, rnd: () => number): UsageEvent[] {
  const events: UsageEvent[] = [];
  for (let i = 0; i < n; i++) {
    events.push({
      id: '01J00000000000000000000000',
      ts: 0,
      device_id: `dev${Math.floor(rnd() * DEVICES)}`,
      // Skewed towards popular apps/actions, as real traffic is.
      app: `app${Math.floor(rnd() * rnd() * APPS)}`,
      action: `act${Math.floor(rnd() * rnd() * ACTIONS)}`,
    });
  }
  return events;
}

export function benchPolicy(ruleCount: number, targetSeconds = 2): PolicyBenchResult {
  const rnd = mulberry32(42);
  const model = buildModel(ruleCount, rnd);
  const t0 = performance.now();
  const index = compilePolicyIndex(model);
  const compile_ms = performance.now() - t0;
  const events = buildEvents(200_000, mulberry32(7));
  const noOther = () => undefined;

  // Warm-up: JIT and memo tables.
  for (const e of events) evaluateUsage(index, e, noOther);

  let decisions = 0;
  let denied = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < targetSeconds * 1000) {
    for (const e of events) {
      const r = evaluateUsage(index, e, noOther);
      if (r.kind === 'decided' && r.decision.effect === 'deny') denied++;
    }
    decisions += events.length;
    elapsed = performance.now() - start;
  }
  const seconds = elapsed / 1000;
  return { rules: ruleCount, compile_ms, decisions, seconds, decisions_per_s: decisions / seconds, denied_fraction: denied / decisions };
}
