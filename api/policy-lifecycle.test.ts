/**
 * The policy lifecycle over the API (issue #12): explain a recorded decision at the version that
 * made it and a hypothetical one; what-if over recorded usage (exact flips, flipping back,
 * nothing live changes, tenant scoping); stored tests; versions, diff and restore. Usage is
 * recorded the way the pipeline does it: decided with the index compiled from the live snapshot
 * and stored with that index's version.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../shared/bus.js';
import { createIdFactory } from '../shared/ids.js';
import { compilePolicyIndex } from '../shared/policy/compile-policy-index.js';
import { evaluateUsage } from '../shared/policy/evaluate-usage.js';
import { modelFromSnapshot } from '../shared/policy/model.js';
import type { DecidedUsage, Store } from '../shared/store/port.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { send } from './test-routes.js';
import { OPERATOR_EMAIL, createTenant, login, startHarness, type Harness, type Session } from './test-support.js';

const newId = createIdFactory();
const T0 = 1_718_000_000_000;

let h: Harness;
let dir: string;
let store: SqliteStore;
const bus = new InProcessBus();
const policyChanges: Array<{ tenant_id: string; version: number }> = [];

interface TenantWorld {
  tenantId: string;
  owner: Session;
  ownerEmail: string;
  jane: string;
  bob: string;
  sales: string;
  eng: string;
  policy: string;
  allowDropbox: string;
}

let A: TenantWorld;
let B: TenantWorld;

async function api<T = Record<string, unknown>>(session: Session, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object, expected = 200): Promise<T> {
  const res = await send(h, session, { method, url: `/api/v1${url}`, ...(payload !== undefined && { payload }) });
  if (res.statusCode !== expected) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
  return (res.body === '' ? undefined : JSON.parse(res.body)) as T;
}

async function raw(session: Session, method: 'GET' | 'POST', url: string, payload?: object, headers: Record<string, string> = {}) {
  return send(h, session, { method, url: `/api/v1${url}`, headers, ...(payload !== undefined && { payload }) });
}

async function version(tenantId: string): Promise<number> {
  return (await store.tenants.get(tenantId))!.policy_version;
}

/** Decides events with the live compiled index, as the pipeline does, and stores them. */
async function record(tenantId: string, events: Array<{ device: string; app: string; action: string; at: number; tower?: string }>): Promise<DecidedUsage[]> {
  const index = compilePolicyIndex(modelFromSnapshot((await store.policySnapshot(tenantId))!));
  const batchId = newId();
  const records: DecidedUsage[] = events.map((e) => {
    const id = newId();
    const r = evaluateUsage(index, { id, ts: e.at, device_id: e.device, app: e.app, action: e.action }, () => undefined);
    if (r.kind !== 'decided') throw new Error('rejected');
    const d = r.decision;
    return {
      id,
      tenant_id: tenantId,
      tower_id: e.tower ?? 'tower-1',
      batch_id: batchId,
      device_id: e.device,
      user_id: r.user_id,
      app: e.app,
      action: e.action,
      bytes: null,
      ts: e.at,
      received_at: e.at,
      effect: d.effect,
      reason: d.reason,
      rule_id: d.rule_id,
      policy_id: d.policy_id,
      policy_version: index.version,
      severity: d.severity,
    };
  });
  await store.usage.recordBatch({ tenant_id: tenantId, tower_id: 'tower-1', batch_id: batchId, now: events[0]!.at, alert_window_s: 300, records });
  return records;
}

async function liveDecision(tenantId: string, device: string, app: string, action: string) {
  const index = compilePolicyIndex(modelFromSnapshot((await store.policySnapshot(tenantId))!));
  return index.decideForDevice(device, app, action);
}

async function buildTenant(name: string): Promise<TenantWorld> {
  const operator = await login(h.app, OPERATOR_EMAIL);
  const { tenantId, owner, ownerEmail } = await createTenant(h.app, operator, name);
  const id = (body: Record<string, { id: string }>) => Object.values(body)[0]!.id;
  const jane = id(await api(owner, 'POST', '/users', { name: 'Jane' }, 201));
  const bob = id(await api(owner, 'POST', '/users', { name: 'Bob' }, 201));
  const sales = id(await api(owner, 'POST', '/roles', { name: 'sales' }, 201));
  const eng = id(await api(owner, 'POST', '/roles', { name: 'eng' }, 201));
  for (const [key, kind] of [['dropbox', 'apps'], ['slack', 'apps'], ['upload', 'actions'], ['download', 'actions'], ['send', 'actions']] as const) {
    await api(owner, 'POST', `/${kind}`, { key, name: key }, 201);
  }
  const policy = id(await api(owner, 'POST', '/policies', { name: 'Files', severity: 'high' }, 201));
  const allowDropbox = id(await api(owner, 'POST', '/policy-rules', { policy_id: policy, app: 'dropbox', action: '*', permission: 'allow' }, 201));
  await api(owner, 'POST', '/users/roles/assign', { user_id: jane, role_id: sales });
  await api(owner, 'POST', '/users/roles/assign', { user_id: bob, role_id: eng });
  await api(owner, 'POST', '/roles/policies/assign', { role_id: sales, policy_id: policy });
  await api(owner, 'POST', '/devices', { id: `${name}-jane`, name: 'phone', user_id: jane }, 201);
  await api(owner, 'POST', '/devices', { id: `${name}-bob`, name: 'phone', user_id: bob }, 201);
  await api(owner, 'POST', '/devices', { id: `${name}-spare`, name: 'spare' }, 201);
  return { tenantId, owner, ownerEmail, jane, bob, sales, eng, policy, allowDropbox };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-lifecycle-'));
  // A store announcing its changes on the bus, as the composition root wires it.
  let clock = () => Date.now();
  store = new SqliteStore({ file: join(dir, 'store.db'), now: () => clock(), hooks: { onPolicyChanged: (tenant_id, v) => bus.publish('policy.changed', { tenant_id, version: v }) } });
  await store.init();
  h = await startHarness({ store, bus });
  clock = () => h.clock.now;
  bus.subscribe('policy.changed', (e) => void policyChanges.push(e));
  A = await buildTenant('alpha');
  B = await buildTenant('bravo');
});
afterAll(async () => {
  await h?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('explain', () => {
  it('explains a recorded event at the version that decided it, after its rule changed', async () => {
    const v1 = await version(A.tenantId);
    const [allowed] = await record(A.tenantId, [{ device: 'alpha-jane', app: 'dropbox', action: 'upload', at: T0 }]);
    expect(allowed).toMatchObject({ effect: 'allow', rule_id: A.allowDropbox, policy_version: v1 });
    // The rule changes: it now allows Slack instead, and a deny for Dropbox uploads appears.
    await api(A.owner, 'PATCH', `/policy-rules/${A.allowDropbox}`, { app: 'slack' });
    const deny = (await api<{ rule: { id: string } }>(A.owner, 'POST', '/policy-rules', { policy_id: A.policy, app: 'dropbox', action: 'upload', permission: 'deny' }, 201)).rule.id;
    const [denied] = await record(A.tenantId, [{ device: 'alpha-jane', app: 'dropbox', action: 'upload', at: T0 + 1 }]);
    expect(denied).toMatchObject({ effect: 'deny', rule_id: deny });

    const then = await api<{ explanation: Record<string, unknown>; recorded: object; consistent: boolean }>(A.owner, 'GET', `/app-usage/${allowed!.id}/explain`);
    expect(then.consistent).toBe(true);
    expect(then.explanation).toMatchObject({
      policy_version: v1,
      effect: 'allow',
      reason: 'rule',
      rule_id: A.allowDropbox,
      device: { id: 'alpha-jane', registered: true, owner_user_id: A.jane },
      user_id: A.jane,
      roles: [{ role_id: A.sales, policies: [{ policy_id: A.policy, name: 'Files', severity: 'high' }] }],
      matches: [{ rule_id: A.allowDropbox, app: 'dropbox', action: '*', wildcard: { app: false, action: true }, outcome: 'decided' }],
    });
    expect(then.explanation['summary']).toMatch(/^Allowed: rule .* allows every action of dropbox \(wildcard match\)\.$/);

    const now = await api<{ explanation: { matches: Array<{ rule_id: string; outcome: string }>; summary: string; severity: string } }>(
      A.owner,
      'GET',
      `/app-usage/${denied!.id}/explain`,
    );
    expect(now.explanation.matches.map((m) => [m.rule_id, m.outcome])).toEqual([[deny, 'decided']]);
    expect(now.explanation.severity).toBe('high');
    // Put the old rule back for the rest of the suite, and remove the deny.
    await api(A.owner, 'PATCH', `/policy-rules/${A.allowDropbox}`, { app: 'dropbox' });
    await api(A.owner, 'DELETE', `/policy-rules/${deny}`, undefined, 204);
  });

  it('explains an unknown device and a device without owner with the default effect', async () => {
    const [ghost, spare] = await record(A.tenantId, [
      { device: 'alpha-ghost', app: 'dropbox', action: 'upload', at: T0 + 2 },
      { device: 'alpha-spare', app: 'dropbox', action: 'upload', at: T0 + 2 },
    ]);
    const g = await api<{ explanation: { reason: string; summary: string; device: object } }>(A.owner, 'GET', `/app-usage/${ghost!.id}/explain`);
    expect(g.explanation).toMatchObject({ reason: 'unknown_device', device: { id: 'alpha-ghost', registered: false } });
    const s = await api<{ explanation: { reason: string; summary: string } }>(A.owner, 'GET', `/app-usage/${spare!.id}/explain`);
    expect(s.explanation.reason).toBe('default');
    expect(s.explanation.summary).toMatch(/has no owner/);
  });

  it('answers a hypothetical question against the live policy or a stored version', async () => {
    const past = await version(A.tenantId);
    const deny = (await api<{ rule: { id: string } }>(A.owner, 'POST', '/policy-rules', { policy_id: A.policy, app: 'dropbox', action: 'upload', permission: 'deny' }, 201)).rule.id;
    const live = await api<{ explanation: { effect: string; rule_id: string; matches: Array<{ outcome: string }> } }>(A.owner, 'POST', '/policies/explain', { user_id: A.jane, app: 'dropbox', action: 'upload' });
    expect(live.explanation).toMatchObject({ effect: 'deny', rule_id: deny });
    expect(live.explanation.matches.map((m) => m.outcome)).toEqual(['decided', 'overridden_by_deny']);
    const before = await api<{ explanation: { effect: string; policy_version: number } }>(A.owner, 'POST', '/policies/explain', {
      device_id: 'alpha-jane',
      app: 'dropbox',
      action: 'upload',
      version: past,
    });
    expect(before.explanation).toMatchObject({ effect: 'allow', policy_version: past });
    await api(A.owner, 'DELETE', `/policy-rules/${deny}`, undefined, 204);

    // Another tenant's user is not found; a device of another tenant is simply not registered here.
    expect((await raw(B.owner, 'POST', '/policies/explain', { user_id: A.jane, app: 'dropbox', action: 'upload' })).statusCode).toBe(404);
    const foreign = await api<{ explanation: { reason: string; tenant_id: string } }>(B.owner, 'POST', '/policies/explain', { device_id: 'alpha-jane', app: 'dropbox', action: 'upload' });
    expect(foreign.explanation).toMatchObject({ reason: 'unknown_device', tenant_id: B.tenantId });
    expect((await raw(A.owner, 'POST', '/policies/explain', { user_id: A.jane, device_id: 'alpha-jane', app: 'x', action: 'y' })).statusCode).toBe(400);
    // An event whose version has no stored content (older than the history): 422, saying why.
    const [orphan] = await record(A.tenantId, [{ device: 'alpha-jane', app: 'slack', action: 'send', at: T0 + 3 }]);
    await store.usage.recordBatch({
      tenant_id: A.tenantId,
      tower_id: 'tower-1',
      batch_id: newId(),
      now: T0 + 3,
      alert_window_s: 300,
      records: [{ ...orphan!, id: newId(), policy_version: 999_999 }],
    });
    const old = (await store.usage.list(A.tenantId, { limit: 1 })).items[0]!;
    const unavailable = await raw(A.owner, 'GET', `/app-usage/${old.id}/explain`);
    expect(unavailable.statusCode).toBe(422);
    expect(JSON.parse(unavailable.body).error.message).toMatch(/version 999999 has no stored content: the policy history starts at version 1/);
    // Another tenant's event: 404, never an explanation.
    const [event] = await record(A.tenantId, [{ device: 'alpha-jane', app: 'slack', action: 'send', at: T0 + 3 }]);
    expect((await raw(B.owner, 'GET', `/app-usage/${event!.id}/explain`)).statusCode).toBe(404);
  });
});

describe('what-if', () => {
  const W = T0 + 1_000_000;
  let downloads: DecidedUsage[];
  let others: DecidedUsage[];
  const denyDownloads = () => ({ rules: { add: [{ id: 'D1', policy_id: A.policy, role_id: A.sales, app: 'dropbox', action: 'download', permission: 'deny' as const }] } });

  beforeAll(async () => {
    const recorded = await record(A.tenantId, [
      { device: 'alpha-jane', app: 'dropbox', action: 'download', at: W, tower: 'T1' },
      { device: 'alpha-jane', app: 'dropbox', action: 'upload', at: W + 1, tower: 'T1' },
      { device: 'alpha-jane', app: 'dropbox', action: 'download', at: W + 2, tower: 'T2' },
      { device: 'alpha-bob', app: 'dropbox', action: 'download', at: W + 3, tower: 'T1' },
      { device: 'alpha-jane', app: 'slack', action: 'send', at: W + 4, tower: 'T1' },
      { device: 'alpha-spare', app: 'dropbox', action: 'download', at: W + 5, tower: 'T1' },
    ]);
    downloads = [recorded[0]!, recorded[2]!];
    others = recorded.filter((r) => !downloads.includes(r));
    // Outside the window: never evaluated.
    await record(A.tenantId, [{ device: 'alpha-jane', app: 'dropbox', action: 'download', at: W + 10_000 }]);
    // Tenant B records the same kind of traffic in the same window.
    await record(B.tenantId, [
      { device: 'bravo-jane', app: 'dropbox', action: 'download', at: W },
      { device: 'bravo-bob', app: 'dropbox', action: 'download', at: W + 1 },
    ]);
  });

  it('a draft that adds a deny flips exactly the expected recorded events and no others, and nothing live changes', async () => {
    const before = { version: await version(A.tenantId), rules: (await store.rules.list(A.tenantId)).items, alerts: (await store.alerts.list(A.tenantId)).items, heard: policyChanges.length };
    const r = await api<{
      evaluated: number;
      flips: { total: number; allow_to_deny: number; by_user: object[]; by_tower: object[]; by_app: object[]; by_action: object[] };
      sample: Array<{ event_id: string; after: { rule_id: string } }>;
      consequences: { draft: { alerts_opened: number }; baseline: { alerts_opened: number } };
      base_version: number;
    }>(A.owner, 'POST', '/policies/what-if', { draft: denyDownloads(), since: W, until: W + 1000 });
    expect(r.evaluated).toBe(6);
    expect(r.base_version).toBe(before.version);
    expect(r.flips).toMatchObject({ total: 2, allow_to_deny: 2 });
    expect(r.sample.map((f) => f.event_id).sort()).toEqual(downloads.map((d) => d.id).sort());
    expect(r.sample.every((f) => f.after.rule_id === 'D1')).toBe(true);
    expect(r.flips.by_user).toEqual([{ key: A.jane, allow_to_deny: 2, deny_to_allow: 0 }]);
    expect(r.flips.by_app).toEqual([{ key: 'dropbox', allow_to_deny: 2, deny_to_allow: 0 }]);
    expect(r.flips.by_action).toEqual([{ key: 'download', allow_to_deny: 2, deny_to_allow: 0 }]);
    expect(r.flips.by_tower).toEqual([
      { key: 'T1', allow_to_deny: 1, deny_to_allow: 0 },
      { key: 'T2', allow_to_deny: 1, deny_to_allow: 0 },
    ]);
    expect(r.consequences.draft.alerts_opened).toBe(1);
    expect(r.consequences.baseline.alerts_opened).toBe(0);

    // Nothing live changed: same version, rules, alerts; nothing announced; new events decide as before.
    expect(await version(A.tenantId)).toBe(before.version);
    expect((await store.rules.list(A.tenantId)).items).toEqual(before.rules);
    expect((await store.alerts.list(A.tenantId)).items).toEqual(before.alerts);
    expect(policyChanges.length).toBe(before.heard);
    expect((await liveDecision(A.tenantId, 'alpha-jane', 'dropbox', 'download'))?.effect).toBe('allow');
    for (const e of others) expect((await liveDecision(A.tenantId, e.device_id, e.app, e.action))?.effect ?? 'allow').toBe(e.effect);
  });

  it('streams every flip as NDJSON, then the summary', async () => {
    const res = await raw(A.owner, 'POST', '/policies/what-if?stream=ndjson', { draft: denyDownloads(), since: W, until: W + 1000, sample_size: 0 });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/x-ndjson/);
    const lines = res.body.trim().split('\n').map((l) => JSON.parse(l) as { type: string; event_id?: string; evaluated?: number });
    expect(lines.filter((l) => l.type === 'flip').map((l) => l.event_id).sort()).toEqual(downloads.map((d) => d.id).sort());
    expect(lines.at(-1)).toMatchObject({ type: 'summary', evaluated: 6, sample: [] });
  });

  it('once applied, removing the rule flips them back; against what was recorded, only later events flip', async () => {
    const applied = (await api<{ rule: { id: string } }>(A.owner, 'POST', '/policy-rules', { policy_id: A.policy, role_id: A.sales, app: 'dropbox', action: 'download', permission: 'deny' }, 201)).rule.id;
    try {
      const back = await api<{ flips: { total: number; deny_to_allow: number }; sample: Array<{ event_id: string; before: { rule_id: string } }> }>(A.owner, 'POST', '/policies/what-if', {
        draft: { rules: { remove: [applied] } },
        since: W,
        until: W + 1000,
      });
      expect(back.flips).toMatchObject({ total: 2, deny_to_allow: 2 });
      expect(back.sample.map((f) => f.event_id).sort()).toEqual(downloads.map((d) => d.id).sort());
      expect(back.sample.every((f) => f.before.rule_id === applied)).toBe(true);
      // Compared with what was recorded (allowed, before the deny existed), removing it changes nothing.
      const recorded = await api<{ flips: { total: number } }>(A.owner, 'POST', '/policies/what-if', {
        draft: { rules: { remove: [applied] } },
        since: W,
        until: W + 1000,
        compare_to: 'recorded',
      });
      expect(recorded.flips.total).toBe(0);
    } finally {
      await api(A.owner, 'DELETE', `/policy-rules/${applied}`, undefined, 204);
    }
  });

  it("tenant B's what-if reads only B's usage, and cannot name A's records", async () => {
    const scans: string[] = [];
    const history = store.usageHistory;
    const scan = history.scan.bind(history);
    // An observing wrapper on the real store (not a mock): every usage read the replay makes.
    const spy: Store['usageHistory']['scan'] = (tenantId, window, after, limit) => {
      scans.push(tenantId);
      return scan(tenantId, window, after, limit);
    };
    history.scan = spy;
    try {
      const r = await api<{ evaluated: number; flips: { total: number }; sample: Array<{ device_id: string }> }>(B.owner, 'POST', '/policies/what-if', {
        draft: { default_effect: 'deny', rules: { remove: [B.allowDropbox] } },
        since: W,
        until: W + 1000,
      });
      expect(r.evaluated).toBe(2);
      expect(r.sample.map((f) => f.device_id).sort()).toEqual(['bravo-bob', 'bravo-jane']);
      expect(scans.length).toBeGreaterThan(0);
      expect(new Set(scans)).toEqual(new Set([B.tenantId]));
    } finally {
      history.scan = scan;
    }
    const naming = await raw(B.owner, 'POST', '/policies/what-if', { draft: { rules: { remove: [A.allowDropbox] } }, since: W });
    expect(naming.statusCode).toBe(404);
    expect(JSON.parse(naming.body).error.issues[0].field).toBe('body.draft.rules.remove.0');
    const policyOfA = await raw(B.owner, 'POST', '/policies/what-if', { draft: { rules: { add: [{ policy_id: A.policy, app: '*', action: '*', permission: 'deny' }] } }, since: W });
    expect(policyOfA.statusCode).toBe(404);
  });

  it('reports the stored policy tests the draft would break', async () => {
    const t = await api<{ policy_test: { id: string } }>(A.owner, 'POST', '/policy-tests', { name: 'Jane downloads from Dropbox', device_id: 'alpha-jane', app: 'dropbox', action: 'download', expected_effect: 'allow' }, 201);
    const run = await api<{ passed: number; failed: number }>(A.owner, 'POST', '/policy-tests/run', {});
    expect(run).toMatchObject({ passed: 1, failed: 0 });
    const r = await api<{ tests: { total: number; broken: Array<{ test_id: string; actual: { effect: string } }> } }>(A.owner, 'POST', '/policies/what-if', { draft: denyDownloads(), since: W, until: W + 1000 });
    expect(r.tests.total).toBe(1);
    expect(r.tests.broken).toMatchObject([{ test_id: t.policy_test.id, actual: { effect: 'deny' } }]);
    await api(A.owner, 'DELETE', `/policy-tests/${t.policy_test.id}`, undefined, 204);
  });

  it('refuses a window that ends before it starts', async () => {
    const bad = await raw(A.owner, 'POST', '/policies/what-if', { draft: {}, since: W, until: W });
    expect(bad.statusCode).toBe(400);
    expect(JSON.parse(bad.body).error.issues[0].field).toBe('body.until');
  });
});

describe('versions', () => {
  it("never attributes a version to a sign-in: a new tenant's first version is not its owner's first login", async () => {
    // createTenant signs the owner in right after the operator created the tenant (version 1),
    // well within the attribution window; the operator's write is in the platform's trail.
    const fresh = await createTenant(h.app, await login(h.app, OPERATOR_EMAIL), 'AttribFresh');
    await api(fresh.owner, 'POST', '/auth/refresh', { refresh_token: fresh.owner.refresh }, 200);
    const page = await api<{ versions: Array<{ version: number; attributed_to: { action: string } | null }> }>(fresh.owner, 'GET', '/policy-versions');
    expect(page.versions.length).toBeGreaterThan(0);
    for (const v of page.versions) expect(v.attributed_to?.action ?? '(none)').not.toMatch(/^auth\./);
  });

  it('lists versions with what changed and who, diffs two, and restores one as a new version', async () => {
    const n = await version(A.tenantId);
    const deny = (await api<{ rule: { id: string } }>(A.owner, 'POST', '/policy-rules', { policy_id: A.policy, app: 'slack', action: '*', permission: 'deny' }, 201)).rule.id;
    await api(A.owner, 'PATCH', '/tenant', { default_effect: 'deny' });
    const page = await api<{ versions: Array<{ version: number; changes: Array<{ kind: string; key: string; op: string }>; attributed_to: { actor_label: string; action: string } | null }>; history_starts_at: number }>(
      A.owner,
      'GET',
      '/policy-versions?limit=2',
    );
    expect(page.versions.map((v) => v.version)).toEqual([n + 2, n + 1]);
    expect(page.versions[1]!.changes).toEqual([{ kind: 'rule', key: deny, op: 'added' }]);
    expect(page.versions[1]!.attributed_to).toMatchObject({ actor_label: A.ownerEmail, action: 'policy-rules.create' });
    expect(page.versions[0]!.changes).toEqual([{ kind: 'settings', key: '', op: 'changed' }]);
    expect(page.history_starts_at).toBe(1);

    const diff = await api<{ diff: { rules: { added: Array<{ id: string }> }; settings: object | null; total: number } }>(A.owner, 'GET', `/policy-versions/${n + 2}/diff?against=${n}`);
    expect(diff.diff.rules.added.map((r) => r.id)).toEqual([deny]);
    expect(diff.diff.settings).toMatchObject({ before: { default_effect: 'allow' }, after: { default_effect: 'deny' } });
    expect(diff.diff.total).toBe(2);
    const content = await api<{ content: { rules: Array<{ id: string }> } }>(A.owner, 'GET', `/policy-versions/${n}`);
    expect(content.content.rules.map((r) => r.id)).not.toContain(deny);

    const heard = policyChanges.length;
    const restored = await api<{ version: { version: number; restored_from: number; actor: { label: string } }; created: boolean }>(A.owner, 'POST', `/policy-versions/${n}/restore`);
    expect(restored).toMatchObject({ created: true, version: { version: n + 3, restored_from: n, actor: { label: A.ownerEmail } } });
    expect(policyChanges.slice(heard)).toEqual([{ tenant_id: A.tenantId, version: n + 3 }]);
    expect(await store.rules.get(A.tenantId, deny)).toBeNull();
    expect((await store.tenants.get(A.tenantId))!.default_effect).toBe('allow');
    expect((await liveDecision(A.tenantId, 'alpha-jane', 'slack', 'send'))?.effect).toBe('allow');

    // Versions are per tenant: B cannot read or restore A's (a number B lacks is 404).
    expect((await raw(B.owner, 'GET', `/policy-versions/${n + 3}`)).statusCode).toBe(404);
    expect((await raw(B.owner, 'POST', `/policy-versions/${n + 3}/restore`)).statusCode).toBe(404);
  });
});
