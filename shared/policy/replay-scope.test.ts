import { describe, expect, it } from 'vitest';
import type { Effect } from '../mqtt/payloads.js';
import { compilePolicyIndex } from './compile-policy-index.js';
import { normaliseContent, type ContentRule, type PolicyContent } from './content.js';
import { modelFromContent } from './model.js';
import { replayScope } from './replay-scope.js';

/** Deterministic PRNG (mulberry32). */
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

const APPS = ['slack', 'dropbox', '*'];
const ACTIONS = ['upload', 'send', '*'];
const ROLES = ['r1', 'r2', 'r3', 'r4'];
const USERS = ['u1', 'u2', 'u3', 'u4', 'u5'];
const DEVICES = ['d1', 'd2', 'd3', 'd4', 'd5', 'd6'];

function random(rand: () => number): PolicyContent {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const rules: ContentRule[] = Array.from({ length: Math.floor(rand() * 10) }, (_, i) => ({
    id: `R${i}`,
    policy_id: pick(['p1', 'p2']),
    role_id: rand() < 0.2 ? pick(ROLES) : null,
    app: pick(APPS),
    action: pick(ACTIONS),
    permission: (rand() < 0.5 ? 'deny' : 'allow') as Effect,
    remediation: null,
    escalation: null,
  }));
  return normaliseContent({
    tenant_id: 't',
    version: 1,
    settings: { default_effect: 'allow', plan_id: 'free', auto_remediation: false, max_devices: null, max_events_per_s: null, retention_days: 7 },
    policies: [
      { id: 'p1', name: 'p1', description: null, severity: 'high' },
      { id: 'p2', name: 'p2', description: null, severity: 'low' },
    ],
    rules,
    role_policies: ROLES.flatMap((role_id) => ['p1', 'p2'].filter(() => rand() < 0.5).map((policy_id) => ({ role_id, policy_id }))),
    user_roles: USERS.flatMap((user_id) => ROLES.filter(() => rand() < 0.4).map((role_id) => ({ user_id, role_id }))),
    devices: DEVICES.map((id) => ({ id, user_id: rand() < 0.15 ? null : pick(USERS) })),
  });
}

/** One small edit of the kinds a draft makes. */
function mutate(c: PolicyContent, rand: () => number): PolicyContent {
  const m = structuredClone(c);
  const pick = <T>(xs: readonly T[]): T | undefined => (xs.length ? xs[Math.floor(rand() * xs.length)] : undefined);
  switch (Math.floor(rand() * 6)) {
    case 0:
      m.rules.push({ id: 'RX', policy_id: 'p1', role_id: rand() < 0.5 ? 'r2' : null, app: pick(APPS)!, action: pick(ACTIONS)!, permission: 'deny', remediation: null, escalation: null });
      break;
    case 1:
      m.rules = m.rules.filter((r) => r !== pick(m.rules));
      break;
    case 2: {
      const r = pick(m.rules);
      if (r) r.permission = r.permission === 'deny' ? 'allow' : 'deny';
      break;
    }
    case 3:
      m.user_roles = m.user_roles.filter((l) => l !== pick(m.user_roles));
      break;
    case 4:
      m.role_policies.push({ role_id: pick(ROLES)!, policy_id: 'p2' });
      break;
    case 5: {
      const p = pick(m.policies);
      if (p) p.severity = 'critical';
      break;
    }
  }
  return normaliseContent(m);
}

describe('replay scope', () => {
  it('devices it leaves out decide exactly alike under the live policy and the draft (property)', () => {
    const rand = prng(77);
    let unaffected = 0;
    for (let n = 0; n < 1500; n++) {
      const base = random(rand);
      const draft = mutate(base, rand);
      const [bm, dm] = [modelFromContent(base), modelFromContent(draft)];
      const scope = replayScope(bm, dm);
      const [bi, di] = [compilePolicyIndex(bm), compilePolicyIndex(dm)];
      for (const device of [...DEVICES, 'd-unknown']) {
        if (scope.devices.has(device)) continue;
        unaffected++;
        for (const app of ['slack', 'dropbox', 'zoom']) {
          for (const action of ['upload', 'send', 'join']) {
            expect(di.decideForDevice(device, app, action), `model ${n} ${device} ${app}/${action}`).toEqual(bi.decideForDevice(device, app, action));
          }
        }
      }
    }
    expect(unaffected).toBeGreaterThan(3000);
  });

  it('a new default effect changes only what no rule decides', () => {
    const rand = prng(5);
    for (let n = 0; n < 300; n++) {
      const base = modelFromContent(random(rand));
      const draft = { ...base, default_effect: 'deny' as const };
      const scope = replayScope(base, draft);
      expect(scope).toEqual({ defaultChanged: true, devices: new Set() });
      const [bi, di] = [compilePolicyIndex(base), compilePolicyIndex(draft)];
      for (const device of [...DEVICES, 'd-unknown']) {
        for (const app of ['slack', 'dropbox']) {
          const b = bi.decideForDevice(device, app, 'upload');
          const d = di.decideForDevice(device, app, 'upload');
          if (b?.reason === 'rule') expect(d).toEqual(b);
          else expect(d?.effect ?? 'deny').toBe('deny');
        }
      }
    }
  });
});
