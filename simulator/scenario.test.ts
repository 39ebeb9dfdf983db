import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { EventPlan } from './playback.js';
import { createPrng, mulberry32, weightedPicker } from './prng.js';
import {
  decidingDenyRule,
  deniedCombos,
  expectedEffect,
  expectedRemediations,
  loadScenario,
  parseScenario,
  parseScenarioText,
  ScenarioError,
  scenarioTowerIds,
  type ScenarioInput,
} from './scenario.js';
import type { ProvisionedWorld } from './world.js';

const scenariosDir = fileURLToPath(new URL('./scenarios/', import.meta.url));

function minimal(): ScenarioInput {
  return {
    name: 'mini',
    duration_s: 2,
    rate_eps: 100,
    towers: { count: 2 },
    tenants: [
      {
        name: 'acme',
        apps: ['slack', 'dropbox'],
        actions: ['send', 'upload'],
        roles: [{ name: 'staff' }, { name: 'admin' }],
        policies: [{ name: 'dlp', roles: ['staff'], rules: [{ app: 'dropbox', action: 'upload', permission: 'deny' }] }],
        users: { count: 3, roles: ['staff'] },
        mix: [{ app: 'slack', action: 'send', weight: 1 }],
      },
    ],
  };
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ScenarioError);
    return (err as Error).message;
  }
  throw new Error('expected a ScenarioError');
}

describe('scenario files', () => {
  it('loads the shipped demo, smoke and long-outage scenarios', async () => {
    const demo = await loadScenario(join(scenariosDir, 'demo.yaml'));
    expect(demo).toMatchObject({ name: 'demo', duration_s: 30, rate_eps: 500, towers: { count: 10 }, violations: { count: 20 } });
    expect(demo.tenants).toHaveLength(2);
    const devices = demo.tenants.reduce((n, t) => n + t.users.count * t.devices_per_user, 0);
    expect(devices).toBe(200);
    expect(demo.outages).toHaveLength(1);
    const smoke = await loadScenario(join(scenariosDir, 'smoke.yaml'));
    expect(smoke.duration_s).toBe(3);
    expect(scenarioTowerIds(smoke)).toEqual(['smoke-tower-1', 'smoke-tower-2']);
    expect(smoke.tenants[0]!.plan).toBe('free');
    expect(expectedRemediations(smoke).map((r) => r.expected)).toEqual([false]);
    const outage = await loadScenario(join(scenariosDir, 'long-outage.yaml'));
    expect(outage.outages).toEqual([{ tower_index: 0, at_s: 10, duration_s: 40 }]);
    expect(expectedRemediations(outage).map((r) => r.expected)).toEqual([true]);
  });

  it('demo: acme is premium with remediations on its deny rules, globex is free', async () => {
    const demo = await loadScenario(join(scenariosDir, 'demo.yaml'));
    expect(demo.tenants.map((t) => t.plan)).toEqual(['premium', 'free']);
    expect(expectedRemediations(demo).map((r) => [r.tenant, r.app, r.expected, r.remediation?.type ?? null])).toEqual([
      ['acme', 'dropbox', true, 'block_app'],
      ['acme', 'tiktok', true, 'block_app'],
      ['globex', 'salesforce', false, null],
      ['globex', 'whatsapp', false, null],
    ]);
    const tiktok = demo.tenants[0]!.policies.find((p) => p.name === 'no-social-video')!.rules[0]!;
    expect(tiktok.escalation).toEqual({ threshold: 3, window_s: 600, remediation: { type: 'block_device', duration_s: 3600 } });
  });

  it('remediation-smoke: a short premium run where every violation expects a command', async () => {
    const s = await loadScenario(join(scenariosDir, 'remediation-smoke.yaml'));
    expect(s.duration_s).toBeLessThanOrEqual(5);
    expect(s.tenants.every((t) => t.plan === 'premium')).toBe(true);
    expect(s.violations.count).toBeGreaterThan(0);
    expect(expectedRemediations(s).every((r) => r.expected)).toBe(true);
    // Regular traffic never violates: only the injected violations call for commands.
    const t = s.tenants[0]!;
    expect(t.mix.every((m) => expectedEffect(t, t.users.roles, m.app, m.action) === 'allow')).toBe(true);
  });

  it('applies defaults', () => {
    const s = parseScenario(minimal());
    expect(s.seed).toBe(1);
    expect(s.arrival).toBe('poisson');
    expect(s.towers.id_prefix).toBe('tower');
    expect(s.batch).toEqual({ max_events: 100, max_delay_ms: 50 });
    expect(s.violations).toEqual({ count: 0, pick: [] });
    expect(s.outages).toEqual([]);
    expect(s.tenants[0]).toMatchObject({ default_effect: 'allow', devices_per_user: 1, plan: 'free' });
    expect(s.tenants[0]!.policies[0]!.rules[0]!.remediation).toBeUndefined();
    expect(s.tenants[0]!.policies[0]!.severity).toBe('medium');
  });

  it('names the offending field', () => {
    expect(messageOf(() => parseScenario({ ...minimal(), rate_eps: -1 }))).toMatch(/rate_eps:/);
    expect(messageOf(() => parseScenario({ ...minimal(), arrival: 'bursty' }))).toMatch(/arrival:/);
    const badRole = minimal();
    badRole.tenants[0]!.policies![0]!.roles = ['ghost'];
    expect(messageOf(() => parseScenario(badRole))).toMatch(/tenants\.0\.policies\.0\.roles\.0: unknown role "ghost"/);
    const badMix = minimal();
    badMix.tenants[0]!.mix = [{ app: 'zoom', action: 'send', weight: 1 }];
    expect(messageOf(() => parseScenario(badMix))).toMatch(/tenants\.0\.mix\.0\.app/);
    const badOutage = { ...minimal(), outages: [{ tower_index: 5, at_s: 1, duration_s: 1 }] };
    expect(messageOf(() => parseScenario(badOutage))).toMatch(/outages\.0\.tower_index/);
  });

  it('parses plans, remediations and escalations, naming the field of a bad one', () => {
    const withRule = (rule: Record<string, unknown>, plan: unknown = 'premium'): ScenarioInput => {
      const s = minimal();
      Object.assign(s.tenants[0]!, { plan });
      s.tenants[0]!.policies = [{ name: 'dlp', roles: ['staff'], rules: [{ app: 'dropbox', action: 'upload', permission: 'deny', ...rule }] }];
      return s;
    };
    const escalation = { threshold: 3, window_s: 600, remediation: { type: 'block_device', duration_s: 3600 } };
    const ok = parseScenario(withRule({ remediation: { type: 'block_app', duration_s: 600 }, escalation }));
    expect(ok.tenants[0]!.plan).toBe('premium');
    expect(ok.tenants[0]!.policies[0]!.rules[0]).toMatchObject({ remediation: { type: 'block_app', duration_s: 600 }, escalation });

    const at = 'tenants\\.0\\.policies\\.0\\.rules\\.0\\.';
    expect(messageOf(() => parseScenario(withRule({ remediation: { type: 'nuke', duration_s: 60 } })))).toMatch(new RegExp(`${at}remediation\\.type:`));
    expect(messageOf(() => parseScenario(withRule({ remediation: { type: 'block_app', duration_s: 0 } })))).toMatch(new RegExp(`${at}remediation\\.duration_s:`));
    expect(messageOf(() => parseScenario(withRule({ remediation: { type: 'block_app' } })))).toMatch(new RegExp(`${at}remediation\\.duration_s:`));
    expect(messageOf(() => parseScenario(withRule({ escalation: { ...escalation, threshold: 0 } })))).toMatch(new RegExp(`${at}escalation\\.threshold:`));
    expect(messageOf(() => parseScenario(withRule({ escalation: { ...escalation, remediation: { type: 'ban', duration_s: 1 } } })))).toMatch(
      new RegExp(`${at}escalation\\.remediation\\.type:`),
    );
    expect(messageOf(() => parseScenario(withRule({ permission: 'allow', remediation: { type: 'notify', duration_s: 60 } })))).toMatch(
      new RegExp(`${at}remediation: only a deny rule`),
    );
    expect(messageOf(() => parseScenario(withRule({}, 'gold')))).toMatch(/tenants\.0\.plan:/);
  });

  it('refuses a violation that the scenario policies would allow', () => {
    const allowed = { ...minimal(), violations: { count: 1, pick: [{ tenant: 'acme', app: 'slack', action: 'send' }] } };
    expect(messageOf(() => parseScenario(allowed))).toMatch(/violations\.pick\.0: slack\/send is allowed/);
    const denied = { ...minimal(), violations: { count: 1, pick: [{ tenant: 'acme', app: 'dropbox', action: 'upload' }] } };
    expect(parseScenario(denied).violations.count).toBe(1);
  });

  it('reads JSON by extension and rejects unknown extensions', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-scenario-'));
    try {
      await writeFile(join(dir, 's.json'), JSON.stringify(minimal()));
      expect((await loadScenario(join(dir, 's.json'))).name).toBe('mini');
      await writeFile(join(dir, 's.toml'), 'name = "x"');
      await expect(loadScenario(join(dir, 's.toml'))).rejects.toThrow(/unsupported extension/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(() => parseScenarioText('name: [unclosed', 'yaml')).toThrow(/not valid YAML/);
  });
});

describe('expected effects', () => {
  const tenant = parseScenario({
    ...minimal(),
    tenants: [
      {
        ...minimal().tenants[0]!,
        default_effect: 'deny',
        policies: [
          { name: 'base', roles: ['staff', 'admin'], rules: [{ app: '*', action: 'send', permission: 'allow' }, { app: 'dropbox', action: '*', permission: 'allow', role: 'admin' }] },
          { name: 'dlp', roles: ['staff'], rules: [{ app: 'slack', action: 'send', permission: 'deny' }] },
        ],
      },
    ],
  }).tenants[0]!;

  it('deny beats allow, wildcards match, rule roles narrow, no match falls back to the default', () => {
    expect(expectedEffect(tenant, ['staff'], 'slack', 'send')).toBe('deny');
    expect(expectedEffect(tenant, ['admin'], 'slack', 'send')).toBe('allow');
    expect(expectedEffect(tenant, ['staff'], 'dropbox', 'upload')).toBe('deny');
    expect(expectedEffect(tenant, ['admin'], 'dropbox', 'upload')).toBe('allow');
    expect(deniedCombos(tenant)).toEqual([
      { app: 'slack', action: 'send' },
      { app: 'slack', action: 'upload' },
      { app: 'dropbox', action: 'upload' },
    ]);
  });
});

describe('expected remediations', () => {
  type Rule = { app: string; action: string; permission: 'allow' | 'deny'; role?: string; remediation?: { type: 'block_app' | 'block_device' | 'notify'; duration_s: number }; escalation?: unknown };
  const block = { type: 'block_app' as const, duration_s: 60 };
  const device = { type: 'block_device' as const, duration_s: 600 };
  type Policies = Array<{ roles?: string[]; rules: Rule[] }>;
  const scenario = (plan: 'free' | 'premium', policies: Policies) =>
    parseScenario({
      ...minimal(),
      tenants: [{ ...minimal().tenants[0]!, plan, policies: policies.map((p, i) => ({ name: `p${i}`, roles: p.roles ?? ['staff'], rules: p.rules })) }],
      violations: { count: 1, pick: [{ tenant: 'acme', app: 'dropbox', action: 'upload' }] },
    });
  const deny = (extra: Partial<Rule> = {}): Rule => ({ app: 'dropbox', action: 'upload', permission: 'deny', ...extra });

  const cases: Array<[string, 'free' | 'premium', Policies, typeof block | typeof device | null]> = [
    ['premium, deciding rule with a remediation', 'premium', [{ rules: [deny({ remediation: block })] }], block],
    ['free plan: alerts only', 'free', [{ rules: [deny({ remediation: block })] }], null],
    ['premium, rule without remediation', 'premium', [{ rules: [deny()] }], null],
    ['premium, escalation only', 'premium', [{ rules: [deny({ escalation: { threshold: 2, window_s: 60, remediation: device } })] }], null],
    ['the most specific deny decides (exact rule has none)', 'premium', [{ rules: [deny({ app: '*', remediation: block }), deny()] }], null],
    ['the most specific deny decides (exact rule has one)', 'premium', [{ rules: [deny({ action: '*' }), deny({ remediation: device })] }], device],
    ['app exact beats action exact', 'premium', [{ rules: [deny({ app: '*', remediation: block }), deny({ action: '*', remediation: device })] }], device],
    ['same specificity: the first provisioned', 'premium', [{ rules: [deny({ remediation: device })] }, { rules: [deny({ remediation: block })] }], device],
    ['a rule narrowed to a role the users lack does not match', 'premium', [{ roles: ['staff', 'admin'], rules: [deny({ role: 'admin', remediation: block }), deny()] }], null],
  ];
  it.each(cases)('%s', (_name, plan, policies, expected) => {
    const s = scenario(plan, policies);
    expect(expectedRemediations(s)).toEqual([{ tenant: 'acme', app: 'dropbox', action: 'upload', expected: expected !== null, remediation: expected }]);
  });

  it('decidingDenyRule ignores allow rules and returns null without a deny', () => {
    const s = scenario('premium', [{ rules: [{ app: 'dropbox', action: 'upload', permission: 'allow' }, deny({ app: '*', action: '*', remediation: block })] }]);
    const t = s.tenants[0]!;
    expect(decidingDenyRule(t, ['staff'], 'dropbox', 'upload')).toMatchObject({ app: '*', action: '*' });
    expect(decidingDenyRule(t, ['admin'], 'dropbox', 'upload')).toBeNull();
  });
});

describe('deterministic randomness', () => {
  let world: ProvisionedWorld;
  beforeAll(() => {
    const scenario = parseScenario({ ...minimal(), seed: 42, violations: { count: 5, pick: [{ tenant: 'acme', app: 'dropbox', action: 'upload' }] } });
    world = {
      scenario,
      tenants: [{ name: 'acme', id: 'T-acme', device_ids: ['d1', 'd2', 'd3', 'd4'], denied: [{ app: 'dropbox', action: 'upload' }] }],
      towers: [{ id: 't1', password: 'x' }, { id: 't2', password: 'y' }],
    };
  });
  it('mulberry32 repeats for a seed and differs across seeds', () => {
    const a = mulberry32(123);
    const b = mulberry32(123);
    const c = mulberry32(124);
    const sa = Array.from({ length: 50 }, () => a());
    expect(Array.from({ length: 50 }, () => b())).toEqual(sa);
    expect(Array.from({ length: 50 }, () => c())).not.toEqual(sa);
    expect(sa.every((x) => x >= 0 && x < 1)).toBe(true);
  });

  it('weighted picks follow the weights', () => {
    const pick = weightedPicker(['a', 'b'], (x) => (x === 'a' ? 3 : 1), createPrng(9));
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 4000; i++) counts[pick() as 'a' | 'b']++;
    expect(counts.a / 4000).toBeGreaterThan(0.7);
    expect(counts.a / 4000).toBeLessThan(0.8);
  });

  it('the same world and seed play the same event sequence', () => {
    const run = (): unknown[] => {
      const plan = new EventPlan(world);
      const out: unknown[] = [plan.violationTimes];
      for (let i = 0; i < 100; i++) out.push(plan.nextArrival(), plan.nextEvent());
      out.push(plan.nextViolation());
      return out;
    };
    expect(run()).toEqual(run());
    const plan = new EventPlan(world);
    expect(plan.violationTimes).toHaveLength(5);
    expect(plan.nextViolation()).toMatchObject({ app: 'dropbox', action: 'upload', violation: true });
  });
});
