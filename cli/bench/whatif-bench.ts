/**
 * (e) What-if replay (issue #12): a tenant of realistic shape in a real SQLite file, 1,000,000
 * recorded usage events decided by its live index, then a draft replayed over windows holding 10 %,
 * 30 % and 100 % of them. Each replay runs in a child process of its own, so its peak RSS is its
 * own: bounded memory shows as the same peak whatever the window holds.
 *
 * Reported per window: events replayed per second end to end (store cursor pages included) and
 * events evaluated per second on one core (the replay loop alone: two decisions per event —
 * live policy and draft — plus the flip aggregates and the alert/remediation simulation). Also
 * what the version history cost while provisioning the tenant: bytes per version, next to what a
 * full snapshot per version would have stored.
 *
 * The same file is the child's entry point (`node --import tsx whatif-bench.ts <db> <tenant> …`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createIdFactory } from '../../shared/ids.js';
import { compilePolicyIndex } from '../../shared/policy/compile-policy-index.js';
import { contentFromSnapshot } from '../../shared/policy/content.js';
import { applyDraft, type PolicyDraft } from '../../shared/policy/draft.js';
import { evaluateUsage } from '../../shared/policy/evaluate-usage.js';
import { modelFromSnapshot } from '../../shared/policy/model.js';
import { runWhatIf } from '../../shared/policy/what-if.js';
import type { DecidedUsage, RecordUsageInput } from '../../shared/store/port.js';
import { canonicalJson } from '../../shared/store/rules/policy-history.js';
import { decidedUsage } from '../../shared/store/rules/usage-batch.js';
import { SqliteStore } from '../../shared/store/sqlite/sqlite-store.js';
import { mulberry32 } from '../../simulator/prng.js';
import { nodeArgsFor, spawnAndWait } from './child.js';

const SELF = fileURLToPath(import.meta.url);
const HEAP_CAP_MB = 64;
const T0 = 1_700_000_000_000;
const DAY_MS = 86_400_000;

export interface WhatIfWindowResult {
  fraction: number;
  evaluated: number;
  compared: number;
  decisions: number;
  flips: number;
  replay_ms: number;
  replayed_per_s: number;
  evaluated_per_s: number;
  decisions_per_s: number;
  peak_rss_mb: number;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

export interface WhatIfBenchResult {
  events: number;
  users: number;
  devices: number;
  rules: number;
  record_s: number;
  history: { versions: number; entries: number; bytes: number; bytes_per_version: number; snapshot_per_version_bytes_estimate: number };
  windows: WhatIfWindowResult[];
  /** Every event compared (the draft also changes the default effect). */
  worst_case: WhatIfWindowResult;
  /** The 100 % window with V8's old space capped: completing at all shows the replay's memory is bounded. */
  heap_capped: WhatIfWindowResult & { heap_cap_mb: number };
  /** Peak RSS of the largest window over the smallest: ~1 when memory does not grow with the window. */
  rss_ratio_largest_to_smallest: number;
}

interface Shape {
  apps: string[];
  actions: string[];
  roles: number;
  users: number;
  devices: number;
  rules: number;
}

const SHAPE: Shape = {
  apps: Array.from({ length: 300 }, (_, i) => `app${i}`),
  actions: Array.from({ length: 20 }, (_, i) => `act${i}`),
  roles: 40,
  users: 2000,
  devices: 4000,
  rules: 2000,
};

function zipf(rnd: () => number, n: number): number {
  return Math.min(n - 1, Math.floor(Math.exp(rnd() * Math.log(n + 1)) - 1));
}

/** The tenant through the store port (so its history is written as in production). */
async function provision(store: SqliteStore, rnd: () => number): Promise<{ tenantId: string; policies: string[]; roles: string[] }> {
  const tenant = await store.tenants.create({ name: 'whatif-bench', plan_id: 'premium' });
  const t = tenant.id;
  const roles: string[] = [];
  for (let i = 0; i < SHAPE.roles; i++) roles.push((await store.roles.create(t, { name: `role${i}` })).id);
  const policies: string[] = [];
  for (let i = 0; i < 40; i++) {
    const p = (await store.policies.create(t, { name: `policy${i}`, severity: i % 4 === 0 ? 'high' : 'medium' })).id;
    policies.push(p);
    await store.rolePolicies.assign(t, roles[i % SHAPE.roles]!, p);
  }
  for (let i = 0; i < SHAPE.rules; i++) {
    const deny = rnd() < 0.2;
    await store.rules.create(t, {
      policy_id: policies[Math.floor(rnd() * policies.length)]!,
      app: rnd() < (deny ? 0.001 : 0.02) ? '*' : SHAPE.apps[zipf(rnd, SHAPE.apps.length)]!,
      action: rnd() < 0.15 ? '*' : SHAPE.actions[Math.floor(rnd() * SHAPE.actions.length)]!,
      permission: deny ? 'deny' : 'allow',
      remediation: deny && rnd() < 0.3 ? { type: 'block_app', duration_s: 600 } : null,
    });
  }
  const profiles = Array.from({ length: 60 }, () => {
    const set = new Set<string>();
    while (set.size < 3) set.add(roles[Math.floor(rnd() * roles.length)]!);
    return [...set];
  });
  const users: string[] = [];
  for (let u = 0; u < SHAPE.users; u++) {
    const id = (await store.users.create(t, { name: `user${u}` })).id;
    users.push(id);
    for (const r of profiles[Math.floor(rnd() * profiles.length)]!) await store.userRoles.assign(t, id, r);
  }
  for (let d = 0; d < SHAPE.devices; d++) await store.devices.create(t, { id: `wb-dev${d}`, name: 'phone', user_id: users[d % users.length]! });
  return { tenantId: t, policies, roles };
}

/** `events` usage rows over one day, decided by the live index, written in group-committed batches. */
async function recordUsage(store: SqliteStore, tenantId: string, events: number, rnd: () => number): Promise<void> {
  const index = compilePolicyIndex(modelFromSnapshot((await store.policySnapshot(tenantId))!));
  const newId = createIdFactory();
  const BATCH = 1000;
  const GROUP = 20;
  let group: RecordUsageInput[] = [];
  for (let i = 0; i < events; i += BATCH) {
    const batchId = newId();
    const records: DecidedUsage[] = [];
    for (let j = i; j < Math.min(events, i + BATCH); j++) {
      const at = T0 + Math.floor((j / events) * DAY_MS);
      const id = newId();
      const e = { id, ts: at, device_id: `wb-dev${Math.floor(rnd() * SHAPE.devices)}`, app: SHAPE.apps[zipf(rnd, SHAPE.apps.length)]!, action: SHAPE.actions[Math.floor(rnd() * SHAPE.actions.length)]! };
      const r = evaluateUsage(index, e, () => undefined);
      if (r.kind !== 'decided') continue;
      records.push(decidedUsage(e, r, index.version, { tenant_id: tenantId, tower_id: `tower${j % 50}`, batch_id: batchId, received_at: at }));
    }
    group.push({ tenant_id: tenantId, tower_id: 'tower0', batch_id: batchId, now: T0 + Math.floor((i / events) * DAY_MS), alert_window_s: 300, records });
    if (group.length === GROUP) {
      await store.usage.recordBatches(group);
      group = [];
    }
  }
  if (group.length > 0) await store.usage.recordBatches(group);
}

/** A draft an admin might try: deny the most used app to one role, drop the first deny rule, tighten the default. */
function benchDraft(policies: string[], roles: string[], firstDeny: string | null): PolicyDraft {
  return {
    rules: {
      add: [{ id: 'draft-deny-app0', policy_id: policies[1]!, role_id: roles[1]!, app: 'app0', action: '*', permission: 'deny', remediation: { type: 'block_app', duration_s: 300 } }],
      ...(firstDeny !== null && { remove: [firstDeny] }),
    },
  };
}

export async function benchWhatIf(opts: { events: number; fractions: number[]; log: (s: string) => void }): Promise<WhatIfBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeplane-whatif-bench-'));
  const file = join(dir, 'bench.db');
  try {
    const store = new SqliteStore({ file });
    await store.init();
    const rnd = mulberry32(2024);
    opts.log('  provisioning the tenant through the store (its version history as in production) …');
    const { tenantId, policies, roles } = await provision(store, rnd);
    const storage = await store.policyVersions.storage(tenantId);
    const snapshotEstimate = await snapshotPerVersionEstimate(store, tenantId, storage.first_version ?? 1, (await store.tenants.get(tenantId))!.policy_version);
    opts.log(`  recording ${opts.events.toLocaleString('en-US')} usage events …`);
    const t0 = performance.now();
    await recordUsage(store, tenantId, opts.events, rnd);
    const recordS = (performance.now() - t0) / 1000;
    const firstDeny = (await store.rules.list(tenantId, { limit: 1000 })).items.find((r) => r.permission === 'deny')?.id ?? null;
    // One more change after the traffic: the recorded decisions are then not the live version's,
    // so the replay must decide the live side too (the harder case).
    await store.devices.create(tenantId, { id: 'wb-late-device', name: 'late' });
    await store.close();

    const draft = benchDraft(policies, roles, firstDeny);
    const replay = async (fraction: number, d: PolicyDraft, nodeFlags: string[] = []): Promise<WhatIfWindowResult> => {
      const until = T0 + Math.ceil(fraction * DAY_MS);
      const { child, value } = await spawnAndWait([...nodeFlags, ...nodeArgsFor(SELF), 'child', file, tenantId, String(T0), String(until), JSON.stringify(d)], (line) => {
        try {
          return (JSON.parse(line) as { whatif?: Omit<WhatIfWindowResult, 'fraction'> }).whatif;
        } catch {
          return undefined;
        }
      });
      await child.stop();
      const w = { fraction, ...value };
      opts.log(
        `  window ${String(Math.round(fraction * 1000) / 10).padStart(5)} %: ${fmt(w.evaluated)} events (${fmt(w.compared)} compared, ${fmt(w.decisions)} decisions), ${fmt(w.flips)} flips, ` +
          `replayed ${fmt(w.replayed_per_s)}/s, evaluated ${fmt(w.evaluated_per_s)}/s/core, ${fmt(w.decisions_per_s)} decisions/s, peak RSS ${w.peak_rss_mb.toFixed(0)} MB`,
      );
      return w;
    };
    const windows: WhatIfWindowResult[] = [];
    for (const fraction of opts.fractions) windows.push(await replay(fraction, draft));
    opts.log('  worst case: the draft also changes the default effect, so every event is compared …');
    const worst = await replay(1, { ...draft, default_effect: 'deny' });
    opts.log(`  the whole window again with the JavaScript heap capped at ${HEAP_CAP_MB} MB (it completes: memory is bounded) …`);
    const capped = await replay(1, draft, [`--max-old-space-size=${HEAP_CAP_MB}`]);
    const rss = windows.map((w) => w.peak_rss_mb);
    return {
      events: opts.events,
      users: SHAPE.users,
      devices: SHAPE.devices,
      rules: SHAPE.rules,
      record_s: recordS,
      history: {
        versions: storage.versions,
        entries: storage.entries,
        bytes: storage.bytes,
        bytes_per_version: storage.versions > 0 ? storage.bytes / storage.versions : 0,
        snapshot_per_version_bytes_estimate: snapshotEstimate,
      },
      windows,
      worst_case: worst,
      heap_capped: { heap_cap_mb: HEAP_CAP_MB, ...capped },
      rss_ratio_largest_to_smallest: rss.length > 1 ? rss[rss.length - 1]! / rss[0]! : 1,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * What one snapshot per version would average: the content's size sampled at 20 versions spread
 * over the history (the bench tenant only grows while provisioned, so the mean of the samples is
 * the mean over all versions).
 */
async function snapshotPerVersionEstimate(store: SqliteStore, tenantId: string, first: number, last: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 20; i++) {
    const v = Math.round(first + ((last - first) * i) / 19);
    const c = await store.policyVersions.content(tenantId, v);
    if (c) samples.push(canonicalJson(c).length);
  }
  return samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length);
}

/** Child: one replay of the window, then its figures and its own peak RSS as one JSON line. */
async function child(file: string, tenantId: string, since: number, until: number, draftJson: string): Promise<void> {
  const store = new SqliteStore({ file });
  await store.init();
  const snap = (await store.policySnapshot(tenantId))!;
  const base = contentFromSnapshot(snap);
  const draft = applyDraft(base, JSON.parse(draftJson) as PolicyDraft, { roles: new Set(snap.user_roles.map((l) => l.role_id)), users: new Set() });
  const window = { since, until };
  const r = await runWhatIf({
    tenantId,
    base,
    draft,
    compareTo: 'current',
    window,
    alertWindowS: snap.tenant.alert_window_s,
    tests: [],
    scan: (after, limit) => store.usageHistory.scan(tenantId, window, after, limit),
  });
  await store.close();
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  const line = {
    whatif: {
      evaluated: r.evaluated,
      compared: r.compared,
      decisions: r.timing.decisions,
      flips: r.flips.total,
      replay_ms: r.timing.replay_ms,
      replayed_per_s: r.evaluated / (r.timing.replay_ms / 1000),
      evaluated_per_s: r.evaluated / (r.timing.evaluate_ms / 1000),
      decisions_per_s: r.timing.decisions / (r.timing.evaluate_ms / 1000),
      peak_rss_mb: peakRssMb,
    },
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

if (process.argv[1] === SELF && process.argv[2] === 'child') {
  const [, , , file, tenantId, since, until, draft] = process.argv;
  child(file!, tenantId!, Number(since), Number(until), draft!).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`whatif bench child: ${String(err)}\n`);
      process.exit(1);
    },
  );
}
