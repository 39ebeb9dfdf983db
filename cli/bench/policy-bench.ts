/**
 * (c) Policy evaluation alone, on one core: the engine's decision (device → user → roles →
 * rules → the deciding outcome's number and its effect, `decisionNumber` and `effectOf`: what an
 * enforcement point needs to allow or deny, the rule named by its number) and the full per-event
 * evaluation the pipeline runs (`evaluateUsage`, which also reads the deciding rule and builds the
 * wire Decision).
 *
 * A realistic tenant: a catalogue of 300 apps with 20 actions each, traffic concentrated on
 * popular apps (Zipf), 40 policy roles, 5,000 users holding 3 roles each through 60 job profiles
 * (in organisations, people in the same job share their role combination), rules with wildcard
 * apps and actions, 20 % denies. The same event stream is decided with 10 and with 100,000 rules,
 * to show decision cost does not grow with the rule count. A worst case, where every user holds
 * a random combination (about 4,000 distinct ones), is printed too: there the memo of each
 * combination is cold, and the cost is memory latency, not rules. Then the shapes of the three sample
 * applications of the Cedar paper's benchmark (OOPSLA 2024: a document drive, a code host, a
 * todo app), re-expressed in our model (apps = resources, actions = operations, roles = group or
 * team memberships), so figures can be set next to published Cedar/OPA/SAPL ones.
 */
import type { BundleGrant, Effect, UsageEvent } from '../../shared/mqtt/payloads.js';
import { compilePolicyIndex } from '../../shared/policy/compile-policy-index.js';
import { evaluateUsage } from '../../shared/policy/evaluate-usage.js';
import type { PolicyModel } from '../../shared/policy/model.js';
// Deterministic, so both rule sets see the same event stream shape.
import { mulberry32 } from '../../simulator/prng.js';
import { median, medianBy } from './stats.js';

export interface PolicyBenchResult {
  name: string;
  rules: number;
  compile_ms: number;
  decisions: number;
  /** Engine decisions per second on one core (decisionNumber + effectOf). */
  decisions_per_s: number;
  ns_per_decision: number;
  /** Full evaluation including the wire Decision object (evaluateUsage). */
  evaluations_per_s: number;
  denied_fraction: number;
}

interface Shape {
  name: string;
  apps: string[];
  actions: string[];
  roles: number;
  rolesPerUser: number;
  /** Distinct role combinations users are drawn from; 0 = every user its own random one. */
  profiles: number;
  users: number;
  devices: number;
  /** Picks a rule's app/action (may return '*'). */
  rule: (rnd: () => number) => { app: string; action: string; effect: Effect };
  /** Picks an event's app/action. */
  event: (rnd: () => number) => { app: string; action: string };
}

const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** Zipf-like pick over `n` items (s ≈ 1): a few items take most of the traffic. */
function zipf(rnd: () => number, n: number): number {
  return Math.min(n - 1, Math.floor(Math.exp(rnd() * Math.log(n + 1)) - 1));
}

const CATALOGUE_APPS = names('app', 300);
const CATALOGUE_ACTIONS = names('act', 20);

export const REALISTIC: Shape = {
  name: 'realistic tenant',
  apps: CATALOGUE_APPS,
  actions: CATALOGUE_ACTIONS,
  roles: 40,
  rolesPerUser: 3,
  profiles: 60,
  users: 5000,
  devices: 10_000,
  rule: (rnd) => {
    const effect: Effect = rnd() < 0.2 ? 'deny' : 'allow';
    return {
      effect,
      // Broad wildcard denies are rare in real policies; broad allows are common.
      app: rnd() < (effect === 'deny' ? 0.001 : 0.02) ? '*' : CATALOGUE_APPS[zipf(rnd, CATALOGUE_APPS.length)]!,
      action: rnd() < 0.15 ? '*' : CATALOGUE_ACTIONS[Math.floor(rnd() * CATALOGUE_ACTIONS.length)]!,
    };
  },
  event: (rnd) => ({ app: CATALOGUE_APPS[zipf(rnd, CATALOGUE_APPS.length)]!, action: CATALOGUE_ACTIONS[Math.floor(rnd() * CATALOGUE_ACTIONS.length)]! }),
};

/** The Cedar paper's sample applications, re-expressed (resources → apps, operations → actions). */
export const CEDAR_SHAPES: Array<Shape & { rules: number }> = [
  {
    name: 'drive (documents, folders, sharing groups)',
    apps: names('doc', 500),
    actions: ['view', 'comment', 'edit', 'share', 'delete', 'create_in'],
    roles: 60,
    rolesPerUser: 4,
    profiles: 0,
    users: 1000,
    devices: 2000,
    rules: 3000,
    rule: (rnd) => ({ app: `doc${Math.floor(rnd() * 500)}`, action: ['view', 'comment', 'edit', 'share', 'delete', 'create_in'][Math.floor(rnd() * 6)]!, effect: rnd() < 0.05 ? 'deny' : 'allow' }),
    event: (rnd) => ({ app: `doc${zipf(rnd, 500)}`, action: ['view', 'view', 'view', 'comment', 'edit', 'share'][Math.floor(rnd() * 6)]! }),
  },
  {
    name: 'code host (repos, teams, permission levels)',
    apps: names('repo', 200),
    actions: ['pull', 'fork', 'push', 'add_reader', 'add_writer', 'add_maintainer', 'delete_issue', 'edit_issue', 'assign_issue'],
    roles: 100,
    rolesPerUser: 3,
    profiles: 0,
    users: 2000,
    devices: 4000,
    rules: 5000,
    rule: (rnd) => {
      const a = ['pull', 'fork', 'push', 'add_reader', 'add_writer', 'add_maintainer', 'delete_issue', 'edit_issue', 'assign_issue'];
      return { app: rnd() < 0.05 ? '*' : `repo${Math.floor(rnd() * 200)}`, action: rnd() < 0.1 ? '*' : a[Math.floor(rnd() * a.length)]!, effect: rnd() < 0.1 ? 'deny' : 'allow' };
    },
    event: (rnd) => ({ app: `repo${zipf(rnd, 200)}`, action: ['pull', 'pull', 'pull', 'fork', 'push', 'edit_issue'][Math.floor(rnd() * 6)]! }),
  },
  {
    name: 'todo app (lists, readers/editors teams)',
    apps: names('list', 100),
    actions: ['get_list', 'update_list', 'delete_list', 'create_task', 'update_task', 'delete_task', 'edit_share'],
    roles: 20,
    rolesPerUser: 2,
    profiles: 0,
    users: 500,
    devices: 1000,
    rules: 400,
    rule: (rnd) => {
      const a = ['get_list', 'update_list', 'delete_list', 'create_task', 'update_task', 'delete_task', 'edit_share'];
      return { app: `list${Math.floor(rnd() * 100)}`, action: rnd() < 0.2 ? '*' : a[Math.floor(rnd() * a.length)]!, effect: rnd() < 0.1 ? 'deny' : 'allow' };
    },
    event: (rnd) => ({ app: `list${zipf(rnd, 100)}`, action: ['get_list', 'get_list', 'create_task', 'update_task', 'delete_task'][Math.floor(rnd() * 5)]! }),
  },
];

function buildModel(shape: Shape, ruleCount: number, rnd: () => number): PolicyModel {
  const grants: BundleGrant[] = [];
  for (let i = 0; i < ruleCount; i++) {
    const r = shape.rule(rnd);
    grants.push({
      rule_id: `R${String(i).padStart(7, '0')}`,
      policy_id: `P${i % 500}`,
      role_id: `role${Math.floor(rnd() * shape.roles)}`,
      app: r.app,
      action: r.action,
      effect: r.effect,
      severity: 'medium',
    });
  }
  const combination = () => {
    const roles = new Set<string>();
    while (roles.size < Math.min(shape.rolesPerUser, shape.roles)) roles.add(`role${Math.floor(rnd() * shape.roles)}`);
    return [...roles];
  };
  const profiles = Array.from({ length: shape.profiles }, combination);
  const user_roles = new Map<string, string[]>();
  for (let u = 0; u < shape.users; u++) user_roles.set(`user${u}`, shape.profiles > 0 ? profiles[Math.floor(rnd() * shape.profiles)]! : combination());
  const devices = Array.from({ length: shape.devices }, (_, d) => ({ id: `dev${d}`, user_id: `user${d % shape.users}` }));
  return { tenant_id: 'bench', version: 1, default_effect: 'allow', devices, user_roles, grants };
}

function buildEvents(shape: Shape, n: number, rnd: () => number): UsageEvent[] {
  const deviceIds = names('dev', shape.devices);
  const events: UsageEvent[] = [];
  for (let i = 0; i < n; i++) {
    const e = shape.event(rnd);
    events.push({ id: '01J00000000000000000000000', ts: 0, device_id: deviceIds[Math.floor(rnd() * shape.devices)]!, app: e.app, action: e.action });
  }
  return events;
}

/** Runs `pass` over the events until `seconds` elapsed; returns passes/s × events. */
function rate(events: UsageEvent[], seconds: number, pass: () => number): { per_s: number; total: number; denied: number } {
  pass(); // warm-up: JIT and lazily built tables
  let total = 0;
  let denied = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < seconds * 1000) {
    denied += pass();
    total += events.length;
    elapsed = performance.now() - start;
  }
  return { per_s: total / (elapsed / 1000), total, denied };
}

export function benchPolicy(ruleCount: number, targetSeconds = 2, shape: Shape = REALISTIC): PolicyBenchResult {
  const model = buildModel(shape, ruleCount, mulberry32(42));
  const t0 = performance.now();
  const index = compilePolicyIndex(model);
  const compile_ms = performance.now() - t0;
  const events = buildEvents(shape, 200_000, mulberry32(7));
  const noOther = () => undefined;
  const engine = rate(events, targetSeconds, () => {
    let denied = 0;
    for (const e of events) {
      const n = index.decisionNumber(e.device_id, e.app, e.action);
      if (n >= 0 && index.effectOf(n) === 'deny') denied++;
    }
    return denied;
  });
  const full = rate(events, targetSeconds / 2, () => {
    let denied = 0;
    for (const e of events) {
      const r = evaluateUsage(index, e, noOther);
      if (r.kind === 'decided' && r.decision.effect === 'deny') denied++;
    }
    return denied;
  });
  return {
    name: shape.name,
    rules: ruleCount,
    compile_ms,
    decisions: engine.total,
    decisions_per_s: engine.per_s,
    ns_per_decision: 1e9 / engine.per_s,
    evaluations_per_s: full.per_s,
    denied_fraction: engine.denied / engine.total,
  };
}

/**
 * 10 and 100,000 rules in alternating rounds, 1 s each: on a shared VM the speed drifts by tens of
 * percent within a minute, so one run of each says little about their ratio. Reported: the run
 * of each with the median rate, and the median of the rounds' paired ratios (with their range).
 */
export function benchRuleCounts(rounds = 3): { rules_10: PolicyBenchResult; rules_100k: PolicyBenchResult; ratio_100k_to_10: number; ratio_rounds: number[] } {
  const small: PolicyBenchResult[] = [];
  const large: PolicyBenchResult[] = [];
  for (let i = 0; i < rounds; i++) {
    small.push(benchPolicy(10, 1));
    large.push(benchPolicy(100_000, 1));
  }
  const rate = (r: PolicyBenchResult) => r.decisions_per_s;
  const ratios = large.map((l, i) => l.decisions_per_s / small[i]!.decisions_per_s);
  return { rules_10: medianBy(small, rate)!, rules_100k: medianBy(large, rate)!, ratio_100k_to_10: median(ratios), ratio_rounds: ratios };
}

/** Every user with a random role combination: the memo per combination is cold. */
export const REALISTIC_WORST: Shape = { ...REALISTIC, name: 'every user a random role combination', profiles: 0 };

export function benchCedarShapes(targetSeconds = 1): PolicyBenchResult[] {
  return CEDAR_SHAPES.map((s) => benchPolicy(s.rules, targetSeconds, s));
}
