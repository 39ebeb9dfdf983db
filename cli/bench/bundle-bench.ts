/**
 * (f) Edge bundles and the journal (issue #11), measured in one run:
 * - size: a tenant with 100,000 devices and 10,000 rules — its policy bundle (what each tower
 *   serving it holds) and its device directory slice (what every tower holds), against the
 *   schema 1 bundle it replaces (every device with its owner, the user → role map, the grants);
 * - journal: bytes per event on disk for a realistic mix, append rate on one core, and what a
 *   week offline at 1,000 events/s costs;
 * - freshness: `edgeplane start` in a child process, N towers (real agents in this process) all
 *   serving one tenant; a rule changed through the API, and the time until every tower has
 *   applied the new version (per tower and for the whole fleet), small and large tenant.
 * The agents share this process's core: each tower's parsing and compiling of the bundle is
 * serialised here, so the fleet figures are an upper bound for towers that each have their own.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EdgeAgent, type BundleInfo } from '../../edge-agent/edge-agent.js';
import { Journal } from '../../edge-agent/journal/journal.js';
import { createIdFactory } from '../../shared/ids.js';
import type { BundleGrant } from '../../shared/mqtt/payloads.js';
import { buildDirectorySlice, buildPolicyBundle, deriveDirectoryKey, inventoryProfiles, directoryEntry } from '../../shared/policy/edge-bundle.js';
import type { PolicyModel } from '../../shared/policy/model.js';
import { ApiClient } from '../../simulator/api-client.js';
import { provisionWorld } from '../../simulator/provision.js';
import { mulberry32 } from '../../simulator/prng.js';
import { parseScenario, type ScenarioInput } from '../../simulator/scenario.js';
import { BENCH_ADMIN_EMAIL, startBenchControlPlane } from './control-plane.js';

export interface BundleSizeResult {
  devices: number;
  rules: number;
  grants: number;
  profiles: number;
  build_ms: number;
  bundle_bytes: number;
  bundle_parts: number;
  directory_bytes: number;
  directory_parts: number;
  directory_bytes_per_device: number;
  /** The schema 1 bundle of the same tenant (whole inventory with owners, user roles, grants). */
  legacy_bundle_bytes: number;
  /** Largest single MQTT payload (head or part): must stay under --mqtt-max-payload-bytes. */
  largest_message_bytes: number;
}

export interface JournalBenchResult {
  events: number;
  bytes_per_event: number;
  appends_per_s: number;
  week_at_1000_eps_gb: number;
}

export interface FreshnessResult {
  label: string;
  devices: number;
  rules: number;
  towers: number;
  changes: number;
  /** Rule change accepted by the API → the new version applied at one tower (all samples). */
  per_tower_ms: { p50: number; p99: number; max: number };
  /** … → applied at every tower, per change. */
  all_towers_ms: { p50: number; p99: number; max: number };
}

export interface BundleBenchResult {
  size: BundleSizeResult;
  journal: JournalBenchResult;
  freshness: FreshnessResult[];
}

export interface BundleBenchOptions {
  towers: number;
  changes: number;
  sizes: Array<'small' | 'large'>;
  log: (s: string) => void;
}

const SIZES = {
  small: { devices: 1_000, rules: 100 },
  large: { devices: 100_000, rules: 10_000 },
} as const;

export async function benchBundles(opts: BundleBenchOptions): Promise<BundleBenchResult> {
  opts.log('  bundle and directory sizes …');
  const size = bundleSize(100_000, 10_000);
  opts.log('  journal …');
  const journal = await benchJournal(200_000);
  const freshness: FreshnessResult[] = [];
  for (const s of opts.sizes) {
    opts.log(`  freshness, ${s} tenant (${SIZES[s].devices} devices, ${SIZES[s].rules} rules), ${opts.towers} towers …`);
    freshness.push(await benchFreshness(s, opts.towers, opts.changes, opts.log));
  }
  return { size, journal, freshness };
}

/** A realistic large tenant: 40 roles, 60 job profiles of 3 roles, 2 devices per user. */
function bundleSize(devices: number, rules: number): BundleSizeResult {
  const rnd = mulberry32(11);
  const roles = Array.from({ length: 40 }, (_, i) => `01JROLE${String(i).padStart(19, '0')}`);
  const profiles = Array.from({ length: 60 }, () => [0, 1, 2].map(() => roles[Math.floor(rnd() * roles.length)]!));
  const users = devices / 2;
  const userRoles = new Map<string, string[]>();
  for (let u = 0; u < users; u++) userRoles.set(`01JUSER${String(u).padStart(19, '0')}`, profiles[u % profiles.length]!);
  const grants: BundleGrant[] = Array.from({ length: rules }, (_, i) => ({
    rule_id: `01JRULE${String(i).padStart(19, '0')}`,
    policy_id: `01JPOLICY${String(i % 200).padStart(17, '0')}`,
    role_id: roles[i % roles.length]!,
    app: `app${i % 500}`,
    action: i % 7 === 0 ? '*' : `action${Math.floor(i / 500) % 20}`,
    effect: i % 5 === 0 ? 'deny' : 'allow',
    severity: 'high',
  }));
  const model: PolicyModel = {
    tenant_id: '01JTENANT00000000000000000',
    version: 42,
    default_effect: 'allow',
    devices: Array.from({ length: devices }, (_, d) => ({ id: `imei-35${String(d).padStart(13, '0')}`, user_id: `01JUSER${String(d >> 1).padStart(19, '0')}` })),
    user_roles: userRoles,
    grants,
  };
  const key = deriveDirectoryKey('bench-service-secret');
  const t0 = performance.now();
  const bundle = buildPolicyBundle(model);
  const entries = inventoryProfiles(model).devices.map((d) => directoryEntry(key, model.tenant_id, d.id, d.profile));
  const slice = buildDirectorySlice(key, model.tenant_id, model.version, entries);
  const buildMs = performance.now() - t0;
  const bundleHead = Buffer.byteLength(JSON.stringify({ ...bundle.head, id: '01J00000000000000000000000', tower_id: 'tower-0001', published_at: Date.now() }));
  const sliceHead = Buffer.byteLength(JSON.stringify({ ...slice.head, id: '01J00000000000000000000000', published_at: Date.now() }));
  const sum = (parts: Buffer[]): number => parts.reduce((n, p) => n + p.length, 0);
  const legacy = JSON.stringify({
    v: 1,
    id: '01J00000000000000000000000',
    tenant_id: model.tenant_id,
    version: model.version,
    default_effect: model.default_effect,
    devices: model.devices,
    user_roles: Object.fromEntries(model.user_roles),
    grants: model.grants,
    published_at: Date.now(),
  });
  const directoryBytes = sliceHead + sum(slice.parts);
  return {
    devices,
    rules,
    grants: bundle.head.grants,
    profiles: Object.keys(bundle.head.profiles).length,
    build_ms: Math.round(buildMs),
    bundle_bytes: bundleHead + sum(bundle.parts),
    bundle_parts: bundle.parts.length,
    directory_bytes: directoryBytes,
    directory_parts: slice.parts.length,
    directory_bytes_per_device: Math.round((directoryBytes / devices) * 10) / 10,
    legacy_bundle_bytes: Buffer.byteLength(legacy),
    largest_message_bytes: Math.max(bundleHead, sliceHead, ...bundle.parts.map((p) => p.length), ...slice.parts.map((p) => p.length)),
  };
}

async function benchJournal(events: number): Promise<JournalBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeplane-bench-journal-'));
  const newId = createIdFactory();
  const rnd = mulberry32(5);
  const journal = new Journal({ dir, maxBytes: 4 * 1024 ** 3 });
  await journal.open();
  try {
    const t0 = performance.now();
    let ts = Date.now();
    for (let i = 0; i < events; i++) {
      ts += Math.floor(rnd() * 3);
      const local = i % 2 === 0 ? { effect: 'allow' as const, reason: 'default' as const, rule_id: null, policy_version: 42 } : undefined;
      journal.append({
        tenantId: i % 10 === 0 ? '01JTENANTB0000000000000000' : '01JTENANTA0000000000000000',
        event: { id: newId(), ts, device_id: `imei-35${String(Math.floor(rnd() * 10_000)).padStart(13, '0')}`, app: `app${Math.floor(rnd() * 50)}`, action: `action${Math.floor(rnd() * 10)}`, ...(local ? { local } : {}) },
      });
    }
    const ms = performance.now() - t0;
    const perEvent = journal.bytes / events;
    return {
      events,
      bytes_per_event: Math.round(perEvent * 10) / 10,
      appends_per_s: Math.round(events / (ms / 1000)),
      week_at_1000_eps_gb: Math.round(((perEvent * 1000 * 86_400 * 7) / 1e9) * 10) / 10,
    };
  } finally {
    await journal.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function freshnessScenario(size: 'small' | 'large', towers: number): ScenarioInput {
  const { devices, rules } = SIZES[size];
  const apps = Array.from({ length: Math.ceil(rules / 20) }, (_, i) => `app${i}`);
  const actions = Array.from({ length: 20 }, (_, i) => `action${i}`);
  const roles = Array.from({ length: 10 }, (_, i) => ({ name: `role${i}` }));
  const perPolicy = 100;
  const policies = Array.from({ length: Math.ceil(rules / perPolicy) }, (_, p) => ({
    name: `policy${p}`,
    severity: 'high' as const,
    roles: [`role${p % roles.length}`],
    rules: Array.from({ length: Math.min(perPolicy, rules - p * perPolicy) }, (_, r) => {
      const i = p * perPolicy + r;
      return { app: apps[Math.floor(i / 20)]!, action: actions[i % 20]!, permission: (i % 5 === 0 ? 'deny' : 'allow') as 'deny' | 'allow' };
    }),
  }));
  return {
    name: `freshness-${size}`,
    seed: 3,
    duration_s: 1,
    rate_eps: 1,
    towers: { count: towers, id_prefix: `fresh-${size}` },
    tenants: [
      {
        name: `fresh-${size}`,
        plan: 'premium',
        apps,
        actions,
        roles,
        policies,
        users: { count: devices / 2, roles: ['role0', 'role1', 'role2'] },
        devices_per_user: 2,
        mix: [{ app: apps[0]!, action: actions[1]!, weight: 1 }],
      },
    ],
  };
}

async function benchFreshness(size: 'small' | 'large', towerCount: number, changes: number, log: (s: string) => void): Promise<FreshnessResult> {
  const cp = await startBenchControlPlane();
  const { urls, adminPassword } = cp;
  const agents: EdgeAgent[] = [];
  try {
    const scenario = parseScenario(freshnessScenario(size, towerCount));
    const t0 = performance.now();
    const { world, owners } = await provisionWorld(scenario, { apiUrl: urls.http, adminEmail: BENCH_ADMIN_EMAIL, adminPassword });
    log(`    provisioned in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const tenant = world.tenants[0]!;
    const owner = await ApiClient.login(urls.http, owners[0]!.email, owners[0]!.password);
    const applied = new Map<EdgeAgent, number>();
    let waiting: { version: number; t0: number; samples: number[]; done: () => void } | null = null;
    for (const t of world.towers) {
      const agent = new EdgeAgent({ url: urls.mqtt, towerId: t.id, password: t.password, bundleSettleMs: 200, connectTimeoutMs: 30_000 });
      agent.on('error', () => undefined);
      agent.on('bundle', (tenantId: string | null, b: BundleInfo) => {
        if (tenantId !== tenant.id) return;
        applied.set(agent, b.version);
        const w = waiting;
        if (w && b.version >= w.version && w.samples.length < agents.length) {
          w.samples.push(performance.now() - w.t0);
          if (w.samples.length === agents.length) w.done();
        }
      });
      agents.push(agent);
    }
    await Promise.all(agents.map((a) => a.start()));
    await Promise.all(agents.map((a) => a.whenReady()));
    // Every tower serves the tenant from its first stored event: then it holds the bundle.
    const first = new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (applied.size === agents.length) {
          clearInterval(check);
          resolve();
        }
      }, 20);
    });
    for (const a of agents) a.observe({ device_id: tenant.device_ids[0]!, app: scenario.tenants[0]!.apps[0]!, action: scenario.tenants[0]!.actions[0]! });
    await fleetWithin(first, () => `${applied.size} of ${agents.length} towers hold the tenant's bundle`);
    const { rules } = await owner.get<{ rules: Array<{ id: string; permission: 'allow' | 'deny' }> }>('/api/v1/policy-rules?limit=1');
    const rule = rules[0]!;
    const perTower: number[] = [];
    const all: number[] = [];
    let permission = rule.permission;
    for (let c = 0; c < changes; c++) {
      const version = Math.max(...applied.values()) + 1;
      permission = permission === 'allow' ? 'deny' : 'allow';
      const samples: number[] = [];
      const done = new Promise<void>((resolve) => (waiting = { version, t0: performance.now(), samples, done: resolve }));
      await owner.patch(`/api/v1/policy-rules/${rule.id}`, { permission });
      await fleetWithin(done, () => {
        const behind = [...applied.values()].filter((v) => v < version);
        return `change ${c + 1}: ${samples.length} of ${agents.length} towers applied version ${version}; the others hold ${[...new Set(behind)].join(', ') || 'nothing'}`;
      });
      waiting = null;
      perTower.push(...samples);
      all.push(Math.max(...samples));
    }
    return { label: size, devices: tenant.device_ids.length, rules: SIZES[size].rules, towers: agents.length, changes, per_tower_ms: percentiles(perTower), all_towers_ms: percentiles(all) };
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    await cp.stop();
  }
}

/** A fleet that does not converge fails the part with what it reached, instead of hanging the bench. */
const FLEET_TIMEOUT_MS = 120_000;

async function fleetWithin(reached: Promise<void>, state: () => string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`bundle freshness: not converged within ${FLEET_TIMEOUT_MS / 1000} s: ${state()}`)), FLEET_TIMEOUT_MS);
  });
  try {
    await Promise.race([reached, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function percentiles(samples: number[]): { p50: number; p99: number; max: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => Math.round(s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]! * 10) / 10;
  return { p50: at(0.5), p99: at(0.99), max: at(1) };
}

export function printBundles(r: BundleBenchResult, log: (s: string) => void, fmt: (n: number, d?: number) => string): void {
  const z = r.size;
  const kb = (n: number) => `${fmt(n / 1024, 0)} KiB`;
  log(`  (k) edge bundles, tenant of ${fmt(z.devices)} devices, ${fmt(z.rules)} rules (${fmt(z.grants)} grants, ${z.profiles} profiles), built in ${fmt(z.build_ms)} ms`);
  log(`      policy bundle (each serving tower)       ${kb(z.bundle_bytes).padStart(12)} in ${z.bundle_parts} parts`);
  log(`      directory slice (every tower)            ${kb(z.directory_bytes).padStart(12)} in ${z.directory_parts} parts, ${z.directory_bytes_per_device} B/device`);
  log(`      schema 1 bundle it replaces               ${kb(z.legacy_bundle_bytes).padStart(12)} in one message; largest message now ${kb(z.largest_message_bytes)}`);
  const j = r.journal;
  log(`      journal: ${j.bytes_per_event} B/event, ${fmt(j.appends_per_s)} appends/s on one core; a week at 1,000 events/s = ${j.week_at_1000_eps_gb} GB`);
  log('      freshness (rule change in the API → new version applied)   target p99 < 1,000 ms for 100 towers');
  for (const f of r.freshness) {
    log(`      ${f.label.padEnd(6)} ${fmt(f.devices).padStart(7)} devices ${fmt(f.rules).padStart(6)} rules, ${f.towers} towers, ${f.changes} changes: per tower p50 ${fmt(f.per_tower_ms.p50, 1)} / p99 ${fmt(f.per_tower_ms.p99, 1)} ms; every tower p50 ${fmt(f.all_towers_ms.p50, 1)} / p99 ${fmt(f.all_towers_ms.p99, 1)} / max ${fmt(f.all_towers_ms.max, 1)} ms`);
  }
}
