import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { EventPlan } from './playback.js';
import { createPrng, mulberry32, weightedPicker } from './prng.js';
import {
  deniedCombos,
  expectedEffect,
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
  it('loads the shipped demo and smoke scenarios', async () => {
    const demo = await loadScenario(join(scenariosDir, 'demo.yaml'));
    expect(demo).toMatchObject({ name: 'demo', duration_s: 30, rate_eps: 500, towers: { count: 10 }, violations: { count: 20 } });
    expect(demo.tenants).toHaveLength(2);
    const devices = demo.tenants.reduce((n, t) => n + t.users.count * t.devices_per_user, 0);
    expect(devices).toBe(200);
    expect(demo.outages).toHaveLength(1);
    const smoke = await loadScenario(join(scenariosDir, 'smoke.yaml'));
    expect(smoke.duration_s).toBe(3);
    expect(scenarioTowerIds(smoke)).toEqual(['smoke-tower-1', 'smoke-tower-2']);
  });

  it('applies defaults', () => {
    const s = parseScenario(minimal());
    expect(s.seed).toBe(1);
    expect(s.arrival).toBe('poisson');
    expect(s.towers.id_prefix).toBe('tower');
    expect(s.batch).toEqual({ max_events: 100, max_delay_ms: 5 });
    expect(s.violations).toEqual({ count: 0, pick: [] });
    expect(s.outages).toEqual([]);
    expect(s.tenants[0]).toMatchObject({ default_effect: 'allow', devices_per_user: 1 });
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
