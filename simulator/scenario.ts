/**
 * Scenario files (YAML or JSON) for `edgeplane simulate`: the tenants and their policies to
 * provision, the device population, the offered load and its arrival pattern, the violations to
 * inject and the tower outages to stage. Validation names the offending field, and cross-checks
 * references (roles, catalogue keys, towers) so a bad file fails before anything is provisioned.
 * Every object is strict: an unknown key is refused, because a misspelt optional one (`arival`)
 * was dropped in silence and the run played its default instead.
 *
 * Auto-remediation: a tenant has a `plan` (free: alerts only; premium: remediation commands),
 * and a deny rule may carry a `remediation` and an `escalation` with the domain's shapes.
 */
import { open } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { KEY_RE } from '../shared/ids.js';
import type { Escalation, Remediation, RemediationType } from '../shared/domain.js';
import { EffectSchema, SeveritySchema, type Effect } from '../shared/mqtt/payloads.js';

const Name = z.string().min(1).max(64);
const Key = z.string().regex(KEY_RE, 'must be a lowercase key like "slack" or "upload_file"');
const KeyOrWildcard = z.union([z.literal('*'), Key]);

const REMEDIATION_TYPES = ['block_device', 'block_app', 'quarantine', 'throttle', 'notify'] as const satisfies readonly RemediationType[];

const RemediationSchema = z.strictObject({
  type: z.enum(REMEDIATION_TYPES),
  duration_s: z.number().int().positive(),
});

const EscalationSchema = z.strictObject({
  /** Violations by one device within `window_s` that trigger the escalation's remediation. */
  threshold: z.number().int().positive(),
  window_s: z.number().int().positive(),
  remediation: RemediationSchema,
});

const RuleSchema = z.strictObject({
  app: KeyOrWildcard,
  action: KeyOrWildcard,
  permission: EffectSchema,
  /** Narrows the rule to one of the policy's roles; otherwise it applies to all of them. */
  role: Name.optional(),
  /** Sent to the tower when this rule denies (premium tenants only). */
  remediation: RemediationSchema.optional(),
  /** A stronger remediation after `threshold` violations by one device within `window_s`. */
  escalation: EscalationSchema.optional(),
});

const PolicySchema = z.strictObject({
  name: Name,
  severity: SeveritySchema.default('medium'),
  roles: z.array(Name).min(1),
  rules: z.array(RuleSchema).min(1),
});

const TenantSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_-]{1,48}$/, 'must be 1-48 chars of [A-Za-z0-9_-]'),
  default_effect: EffectSchema.default('allow'),
  /** free: alerts only; premium: deny rules with a remediation send commands to the tower. */
  plan: z.enum(['free', 'premium']).default('free'),
  apps: z.array(Key).min(1),
  actions: z.array(Key).min(1),
  roles: z.array(z.strictObject({ name: Name })).min(1),
  policies: z.array(PolicySchema).default([]),
  /** Every user holds all of these roles. */
  users: z.strictObject({ count: z.number().int().positive(), roles: z.array(Name).min(1) }),
  devices_per_user: z.number().int().positive().default(1),
  mix: z.array(z.strictObject({ app: Key, action: Key, weight: z.number().positive() })).min(1),
});

const ViolationPickSchema = z.strictObject({ tenant: Name, app: Key, action: Key });

/**
 * How big a fleet one simulator process plays: each tower is a live agent and connection, each
 * device is provisioned and held in memory, and the report keeps every event sent until the end
 * (duplicate decisions are counted). Beyond these a run exhausts the machine instead of failing
 * with a clear message.
 */
export const SCENARIO_LIMITS = { towers: 10_000, devices: 1_000_000, events: 5_000_000 } as const;

export const ScenarioSchema = z
  .strictObject({
    name: Name,
    seed: z.number().int().default(1),
    duration_s: z.number().positive(),
    rate_eps: z.number().positive(),
    arrival: z.enum(['poisson', 'uniform']).default('poisson'),
    towers: z.strictObject({
      count: z.number().int().positive().max(SCENARIO_LIMITS.towers),
      id_prefix: z.string().regex(/^[A-Za-z0-9_-]{1,48}$/, 'must be 1-48 chars of [A-Za-z0-9_-]').default('tower'),
    }),
    tenants: z.array(TenantSchema).min(1),
    violations: z
      .strictObject({ count: z.number().int().nonnegative().max(SCENARIO_LIMITS.events).default(0), pick: z.array(ViolationPickSchema).default([]) })
      .default({ count: 0, pick: [] }),
    outages: z
      .array(z.strictObject({ tower_index: z.number().int().nonnegative(), at_s: z.number().nonnegative(), duration_s: z.number().positive() }))
      .default([]),
    batch: z
      .strictObject({ max_events: z.number().int().min(1).max(1000).default(100), max_delay_ms: z.number().nonnegative().default(50) })
      .default({ max_events: 100, max_delay_ms: 50 }),
  })
  .superRefine((s, ctx) => {
    const issue = (path: (string | number)[], message: string): void => ctx.addIssue({ code: 'custom', path, message });
    const tenantNames = new Set<string>();
    s.tenants.forEach((t, ti) => {
      const at = (...p: (string | number)[]): (string | number)[] => ['tenants', ti, ...p];
      if (tenantNames.has(t.name)) issue(at('name'), `duplicate tenant name "${t.name}"`);
      tenantNames.add(t.name);
      const roles = new Set(t.roles.map((r) => r.name));
      const apps = new Set(t.apps);
      const actions = new Set(t.actions);
      if (roles.size !== t.roles.length) issue(at('roles'), 'role names must be unique');
      t.policies.forEach((p, pi) => {
        p.roles.forEach((r, ri) => {
          if (!roles.has(r)) issue(at('policies', pi, 'roles', ri), `unknown role "${r}"`);
        });
        p.rules.forEach((rule, ri) => {
          if (rule.app !== '*' && !apps.has(rule.app)) issue(at('policies', pi, 'rules', ri, 'app'), `"${rule.app}" is not in the tenant's apps`);
          if (rule.action !== '*' && !actions.has(rule.action)) issue(at('policies', pi, 'rules', ri, 'action'), `"${rule.action}" is not in the tenant's actions`);
          if (rule.role !== undefined && !p.roles.includes(rule.role)) issue(at('policies', pi, 'rules', ri, 'role'), `"${rule.role}" is not one of the policy's roles`);
          for (const field of ['remediation', 'escalation'] as const) {
            if (rule[field] !== undefined && rule.permission !== 'deny') issue(at('policies', pi, 'rules', ri, field), 'only a deny rule can carry one');
          }
        });
      });
      t.users.roles.forEach((r, ri) => {
        if (!roles.has(r)) issue(at('users', 'roles', ri), `unknown role "${r}"`);
      });
      t.mix.forEach((m, mi) => {
        if (!apps.has(m.app)) issue(at('mix', mi, 'app'), `"${m.app}" is not in the tenant's apps`);
        if (!actions.has(m.action)) issue(at('mix', mi, 'action'), `"${m.action}" is not in the tenant's actions`);
      });
    });
    const devices = s.tenants.reduce((n, t) => n + t.users.count * t.devices_per_user, 0);
    if (devices > SCENARIO_LIMITS.devices) issue(['tenants'], `${devices} devices in all (users.count × devices_per_user): at most ${SCENARIO_LIMITS.devices}`);
    const events = s.rate_eps * s.duration_s;
    if (events > SCENARIO_LIMITS.events) issue(['rate_eps'], `rate_eps × duration_s is ${Math.round(events)} events: at most ${SCENARIO_LIMITS.events}`);
    if (s.violations.count > 0 && s.violations.pick.length === 0) issue(['violations', 'pick'], 'at least one pick is needed when count > 0');
    s.violations.pick.forEach((v, vi) => {
      const t = s.tenants.find((x) => x.name === v.tenant);
      if (!t) return issue(['violations', 'pick', vi, 'tenant'], `unknown tenant "${v.tenant}"`);
      if (!t.apps.includes(v.app)) return issue(['violations', 'pick', vi, 'app'], `"${v.app}" is not in ${t.name}'s apps`);
      if (!t.actions.includes(v.action)) return issue(['violations', 'pick', vi, 'action'], `"${v.action}" is not in ${t.name}'s actions`);
      if (expectedEffect(t, t.users.roles, v.app, v.action) !== 'deny') {
        issue(['violations', 'pick', vi], `${v.app}/${v.action} is allowed for ${t.name}'s users, so it cannot be an injected violation`);
      }
    });
    s.outages.forEach((o, oi) => {
      if (o.tower_index >= s.towers.count) issue(['outages', oi, 'tower_index'], `must be < towers.count (${s.towers.count})`);
      if (o.at_s >= s.duration_s) issue(['outages', oi, 'at_s'], `must be < duration_s (${s.duration_s})`);
    });
  });

export type Scenario = z.output<typeof ScenarioSchema>;
export type ScenarioInput = z.input<typeof ScenarioSchema>;
export type ScenarioTenant = Scenario['tenants'][number];
export type ScenarioRule = ScenarioTenant['policies'][number]['rules'][number];

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** Compiles only when T is `true`: provisioning sends these shapes to the API as they are. */
type Assert<T extends true> = T;
export type ScenarioShapesMatchDomain = [
  Assert<Same<z.output<typeof RemediationSchema>, Remediation>>,
  Assert<Same<z.output<typeof EscalationSchema>, Escalation>>,
];

export class ScenarioError extends Error {
  readonly issues: string[];
  constructor(source: string, issues: string[]) {
    super(`invalid scenario ${source}: ${issues.join('; ')}`);
    this.name = 'ScenarioError';
    this.issues = issues;
  }
}

export function parseScenario(raw: unknown, source = '(inline)'): Scenario {
  const r = ScenarioSchema.safeParse(raw);
  if (r.success) return r.data;
  throw new ScenarioError(
    source,
    r.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`),
  );
}

export function parseScenarioText(text: string, format: 'yaml' | 'json', source = '(inline)'): Scenario {
  let raw: unknown;
  try {
    raw = format === 'json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    // The yaml library appends a code frame on further lines: the error stays one line.
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
    throw new ScenarioError(source, [`not valid ${format.toUpperCase()}: ${message}`]);
  }
  return parseScenario(raw, source);
}

/**
 * A scenario describes a fleet, it does not list it: the shipped ones are a few KB. A larger file
 * is a mistake (a log or a dump passed by accident) and is refused before it is read into memory.
 */
export const SCENARIO_MAX_BYTES = 1024 * 1024;

/**
 * Reads a scenario file; the format follows the extension (.yaml, .yml or .json). A file that
 * cannot be read (missing, a directory, unreadable) or is over SCENARIO_MAX_BYTES is a
 * ScenarioError like any other bad scenario.
 */
export async function loadScenario(path: string): Promise<Scenario> {
  const ext = extname(path).toLowerCase();
  const format = ext === '.json' ? 'json' : ext === '.yaml' || ext === '.yml' ? 'yaml' : null;
  if (!format) throw new ScenarioError(path, [`unsupported extension "${ext}" (use .yaml, .yml or .json)`]);
  let text: string;
  try {
    const file = await open(path, 'r');
    try {
      const st = await file.stat();
      if (!st.isFile()) throw new ScenarioError(path, ['not a regular file']);
      if (st.size > SCENARIO_MAX_BYTES) throw new ScenarioError(path, [`${st.size} bytes: a scenario file is at most ${SCENARIO_MAX_BYTES} bytes`]);
      text = await file.readFile('utf8');
    } finally {
      await file.close();
    }
  } catch (err) {
    if (err instanceof ScenarioError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new ScenarioError(path, [`cannot read it: ${e.code === 'ENOENT' ? 'no such file' : (e.code ?? e.message)}`]);
  }
  // Grown after the stat (a file still being written): the limit holds all the same.
  if (Buffer.byteLength(text) > SCENARIO_MAX_BYTES) throw new ScenarioError(path, [`a scenario file is at most ${SCENARIO_MAX_BYTES} bytes`]);
  return parseScenarioText(text, format, path);
}

/** Tower ids a scenario implies: `<id_prefix>-<n>`, n from 1. */
export function scenarioTowerIds(s: Scenario): string[] {
  return Array.from({ length: s.towers.count }, (_, i) => `${s.towers.id_prefix}-${i + 1}`);
}

/**
 * The effect the scenario's own policies give (app, action) for a user holding `roles`
 * (DESIGN §4: explicit deny beats allow; no match falls back to the tenant default). This is
 * the simulator's independent oracle, deliberately not the cloud's evaluator.
 */
export function expectedEffect(tenant: Pick<ScenarioTenant, 'default_effect' | 'policies'>, roles: readonly string[], app: string, action: string): Effect {
  let allowed = false;
  for (const rule of matchingRules(tenant, roles, app, action)) {
    if (rule.permission === 'deny') return 'deny';
    allowed = true;
  }
  return allowed ? 'allow' : tenant.default_effect;
}

/** The rules of policies held through `roles` that match (app, action), in provisioning order. */
function* matchingRules(tenant: Pick<ScenarioTenant, 'policies'>, roles: readonly string[], app: string, action: string): Generator<ScenarioRule> {
  for (const p of tenant.policies) {
    const held = p.roles.filter((r) => roles.includes(r));
    if (held.length === 0) continue;
    for (const rule of p.rules) {
      if (rule.role !== undefined && !held.includes(rule.role)) continue;
      if (rule.app !== '*' && rule.app !== app) continue;
      if (rule.action !== '*' && rule.action !== action) continue;
      yield rule;
    }
  }
}

/**
 * The deny rule a decision names for (app, action): the most specific match (app and action
 * exact, then app exact, then action exact, then neither), the first provisioned on a tie, as
 * the cloud's compiled index explains a deny. Its remediation is the one the cloud sends.
 */
export function decidingDenyRule(tenant: Pick<ScenarioTenant, 'policies'>, roles: readonly string[], app: string, action: string): ScenarioRule | null {
  let best: ScenarioRule | null = null;
  let bestRank = Infinity;
  for (const rule of matchingRules(tenant, roles, app, action)) {
    if (rule.permission !== 'deny') continue;
    const rank = (rule.app === '*' ? 2 : 0) + (rule.action === '*' ? 1 : 0);
    if (rank < bestRank) {
      best = rule;
      bestRank = rank;
    }
  }
  return best;
}

export interface ExpectedRemediation {
  tenant: string;
  app: string;
  action: string;
  /** True when the tower must receive a command for a violation of this pick. */
  expected: boolean;
  /** The deciding rule's remediation, when the tenant's plan lets it fire. */
  remediation: Remediation | null;
}

/**
 * Per `violations.pick` entry (same order): whether its violations expect a remediation
 * command. Expected when the tenant is premium and the deny rule deciding the violation carries
 * a `remediation`; an escalation only adds a later, stronger command and changes nothing here.
 */
export function expectedRemediations(s: Scenario): ExpectedRemediation[] {
  return s.violations.pick.map((v) => {
    const t = s.tenants.find((x) => x.name === v.tenant);
    const rule = t ? decidingDenyRule(t, t.users.roles, v.app, v.action) : null;
    const remediation = t?.plan === 'premium' ? (rule?.remediation ?? null) : null;
    return { tenant: v.tenant, app: v.app, action: v.action, expected: remediation !== null, remediation };
  });
}

/** Every (app, action) of the tenant's catalogue that its users are denied. */
export function deniedCombos(tenant: ScenarioTenant): Array<{ app: string; action: string }> {
  const out: Array<{ app: string; action: string }> = [];
  for (const app of tenant.apps) {
    for (const action of tenant.actions) {
      if (expectedEffect(tenant, tenant.users.roles, app, action) === 'deny') out.push({ app, action });
    }
  }
  return out;
}
