import { describe, expect, it } from 'vitest';
import { isEdgeplaneError } from '../errors.js';
import { createIdFactory } from '../ids.js';
import type { ReplayRow } from '../store/port.js';
import { normaliseContent, type PolicyContent } from './content.js';
import { applyDraft, DraftSchema, type PolicyDraft } from './draft.js';
import type { PolicyTest } from './policy-tests.js';
import { runWhatIf, type Flip, type WhatIfOptions } from './what-if.js';

const T = 'tenantA';
const newId = createIdFactory(() => 1_700_000_000_000);

/** alice (sales) on dev-a, bob (eng) on dev-b; P1 (sales) allows slack; P2 (eng) denies zoom. */
function base(overrides: Partial<PolicyContent['settings']> = {}): PolicyContent {
  return normaliseContent({
    tenant_id: T,
    version: 4,
    settings: { default_effect: 'allow', plan_id: 'premium', auto_remediation: true, max_devices: null, max_events_per_s: null, retention_days: 90, ...overrides },
    policies: [
      { id: 'P1', name: 'sales', description: null, severity: 'high' },
      { id: 'P2', name: 'eng', description: null, severity: 'low' },
    ],
    rules: [
      { id: 'R1', policy_id: 'P1', role_id: null, app: 'slack', action: '*', permission: 'allow', remediation: null, escalation: null },
      { id: 'R2', policy_id: 'P2', role_id: null, app: 'zoom', action: '*', permission: 'deny', remediation: null, escalation: null },
    ],
    role_policies: [
      { role_id: 'sales', policy_id: 'P1' },
      { role_id: 'eng', policy_id: 'P2' },
    ],
    user_roles: [
      { user_id: 'alice', role_id: 'sales' },
      { user_id: 'bob', role_id: 'eng' },
    ],
    devices: [
      { id: 'dev-a', user_id: 'alice' },
      { id: 'dev-b', user_id: 'bob' },
    ],
  });
}

const refs = { roles: new Set(['sales', 'eng']), users: new Set(['alice', 'bob']) };

function row(device: string, app: string, action: string, received_at: number, extra: Partial<ReplayRow> = {}): ReplayRow {
  return {
    id: newId(),
    received_at,
    ts: received_at,
    device_id: device,
    user_id: device === 'dev-a' ? 'alice' : device === 'dev-b' ? 'bob' : null,
    app,
    action,
    tower_id: received_at % 2 === 0 ? 'T-even' : 'T-odd',
    effect: 'allow',
    reason: 'default',
    rule_id: null,
    policy_id: null,
    policy_version: 4,
    ...extra,
  };
}

/** A store-like scan over rows: window on received_at, ascending ids, after a cursor. */
function scanOf(rows: ReplayRow[], window = { since: 0, until: Number.MAX_SAFE_INTEGER }) {
  const sorted = [...rows].sort((a, b) => (a.id < b.id ? -1 : 1));
  const calls: Array<{ after: string | null; limit: number }> = [];
  const scan = async (after: string | null, limit: number) => {
    calls.push({ after, limit });
    return sorted.filter((r) => (after === null || r.id > after) && r.received_at >= window.since && r.received_at < window.until).slice(0, limit);
  };
  return { scan, calls };
}

function options(rows: ReplayRow[], draft: PolicyDraft, extra: Partial<WhatIfOptions> = {}): WhatIfOptions {
  const b = base();
  return {
    tenantId: T,
    base: b,
    draft: applyDraft(b, draft, refs),
    compareTo: 'current',
    window: { since: 0, until: Number.MAX_SAFE_INTEGER },
    alertWindowS: 300,
    tests: [],
    scan: scanOf(rows).scan,
    pageSize: 3,
    ...extra,
  };
}

const denyDropboxUpload: PolicyDraft = { rules: { add: [{ id: 'D1', policy_id: 'P1', app: 'dropbox', action: 'upload', permission: 'deny' }] } };

describe('what-if replay', () => {
  const rows = [
    row('dev-a', 'dropbox', 'upload', 1000),
    row('dev-a', 'dropbox', 'upload', 1001),
    row('dev-a', 'dropbox', 'download', 1002),
    row('dev-b', 'dropbox', 'upload', 1003),
    row('dev-a', 'slack', 'send', 1004, { reason: 'rule', rule_id: 'R1', policy_id: 'P1' }),
    row('dev-b', 'zoom', 'join', 1005, { effect: 'deny', reason: 'rule', rule_id: 'R2', policy_id: 'P2' }),
    row('dev-x', 'dropbox', 'upload', 1006, { reason: 'unknown_device' }),
  ];
  const expectedFlips = [rows[0]!.id, rows[1]!.id];

  it('a draft that adds a deny flips exactly the expected events and no others', async () => {
    const streamed: Flip[] = [];
    const r = await runWhatIf(options(rows, denyDropboxUpload, { onFlip: (f) => void streamed.push(f) }));
    expect(r.evaluated).toBe(7);
    // Only alice's device can decide differently (her role's rules change): only its events are compared.
    expect(r.affected_devices).toBe(1);
    expect(r.compared).toBe(4);
    expect(r.flips).toMatchObject({ total: 2, allow_to_deny: 2, deny_to_allow: 0, rule_changes: 0 });
    expect(streamed.map((f) => f.event_id)).toEqual(expectedFlips);
    expect(r.sample.map((f) => f.event_id)).toEqual(expectedFlips);
    expect(r.sample[0]).toMatchObject({
      device_id: 'dev-a',
      user_id: 'alice',
      before: { effect: 'allow', reason: 'default', rule_id: null },
      after: { effect: 'deny', reason: 'rule', rule_id: 'D1', policy_id: 'P1' },
    });
    expect(r.flips.by_user).toEqual([{ key: 'alice', allow_to_deny: 2, deny_to_allow: 0 }]);
    expect(r.flips.by_app).toEqual([{ key: 'dropbox', allow_to_deny: 2, deny_to_allow: 0 }]);
    expect(r.flips.by_action).toEqual([{ key: 'upload', allow_to_deny: 2, deny_to_allow: 0 }]);
    expect(r.flips.by_tower).toEqual([
      { key: 'T-even', allow_to_deny: 1, deny_to_allow: 0 },
      { key: 'T-odd', allow_to_deny: 1, deny_to_allow: 0 },
    ]);
    expect(r.base_version).toBe(4);
  });

  it('removing the rule again flips them back (the deny is live, the draft removes it)', async () => {
    const b = base();
    // Applying it made a new version: the rows were recorded under the previous one.
    const live = { ...applyDraft(b, denyDropboxUpload, refs), version: 5 };
    const r = await runWhatIf({ ...options(rows, {}), base: live, draft: applyDraft(live, { rules: { remove: ['D1'] } }, refs) });
    expect(r.flips).toMatchObject({ total: 2, allow_to_deny: 0, deny_to_allow: 2 });
    expect(r.sample.map((f) => f.event_id)).toEqual(expectedFlips);
  });

  it('a new default effect flips exactly what no rule decided, without deciding anything again', async () => {
    const r = await runWhatIf(options(rows, { default_effect: 'deny' }));
    const byDefault = rows.filter((x) => x.reason !== 'rule').map((x) => x.id);
    expect(r.sample.map((f) => f.event_id)).toEqual(byDefault);
    expect(r.flips).toMatchObject({ total: byDefault.length, allow_to_deny: byDefault.length });
    expect(r.default_effect_changed).toBe(true);
    // Every event was recorded under the live version: the live side is what was recorded.
    expect(r.timing.decisions).toBe(0);
    // Recorded under an older version, the live side is decided (once: the draft's is derived).
    const older = await runWhatIf({ ...options(rows, { default_effect: 'deny' }), base: { ...base(), version: 5 }, draft: { ...applyDraft(base(), { default_effect: 'deny' }, refs), version: 5 } });
    expect(older.sample.map((f) => f.event_id)).toEqual(byDefault);
    expect(older.timing.decisions).toBe(rows.length);
  });

  it('compared with what was recorded, a draft equal to the recorded policy flips nothing', async () => {
    const r = await runWhatIf(options(rows, {}, { compareTo: 'recorded' }));
    expect(r.flips.total).toBe(0);
    const withDeny = await runWhatIf(options(rows, denyDropboxUpload, { compareTo: 'recorded' }));
    expect(withDeny.flips.total).toBe(2);
  });

  it('reads page by page after the last id, and stops at max_events with a resume point', async () => {
    const { scan, calls } = scanOf(rows);
    const r = await runWhatIf(options(rows, denyDropboxUpload, { scan, maxEvents: 4 }));
    expect(r.evaluated).toBe(4);
    expect(r.resume_after).toBe(rows[3]!.id);
    expect(calls.slice(0, 2)).toEqual([
      { after: null, limit: 3 },
      { after: rows[2]!.id, limit: 1 },
    ]);
    const rest = await runWhatIf(options(rows, denyDropboxUpload, { after: r.resume_after }));
    expect(rest.evaluated).toBe(3);
    expect(rest.resume_after).toBeNull();
  });

  it('counts the alerts and remediations each side would raise', async () => {
    const draft: PolicyDraft = {
      rules: {
        add: [{ id: 'D1', policy_id: 'P1', app: 'dropbox', action: '*', permission: 'deny', remediation: { type: 'block_app', duration_s: 60 }, escalation: { threshold: 3, window_s: 600, remediation: { type: 'quarantine', duration_s: 3600 } } }],
      },
    };
    // Four denies by one device within the alert window: one alert, bumped three times; the
    // remediation once (in force for 60 s), then the escalation at the third violation.
    const burst = [1000, 2000, 3000, 4000].map((t) => row('dev-a', 'dropbox', 'upload', t * 10));
    const r = await runWhatIf(options(burst, draft));
    expect(r.consequences.draft).toMatchObject({ alerts_opened: 1, alert_updates: 3, remediations: 2, escalations: 1, remediations_by_type: { block_app: 1, quarantine: 1 } });
    expect(r.consequences.draft.top_rules[0]).toMatchObject({ rule_id: 'D1', alerts_opened: 1, denies: 4 });
    expect(r.consequences.baseline).toMatchObject({ alerts_opened: 0, remediations: 0 });
    // Without auto-remediation on the plan: alerts only.
    const free = base({ auto_remediation: false });
    const r2 = await runWhatIf({ ...options(burst, {}), base: free, draft: applyDraft(free, draft, refs) });
    expect(r2.consequences.draft).toMatchObject({ alerts_opened: 1, remediations: 0 });
  });

  it('reports the stored tests the draft breaks and fixes', async () => {
    const test = (id: string, device: string, app: string, action: string, expected: 'allow' | 'deny'): PolicyTest => ({
      id,
      tenant_id: T,
      name: id,
      device_id: device,
      user_id: null,
      app,
      action,
      expected_effect: expected,
      expected_rule_id: null,
      created_at: 0,
      updated_at: 0,
    });
    const tests = [test('keeps-uploads', 'dev-a', 'dropbox', 'upload', 'allow'), test('wants-deny', 'dev-a', 'dropbox', 'upload', 'deny'), test('slack', 'dev-a', 'slack', 'x', 'allow')];
    const r = await runWhatIf(options([], denyDropboxUpload, { tests }));
    expect(r.tests).toMatchObject({ total: 3, passing_now: 2, passing_with_draft: 2 });
    expect(r.tests.broken.map((t) => t.test_id)).toEqual(['keeps-uploads']);
    expect(r.tests.broken[0]!.summary).toMatch(/rule D1/);
    expect(r.tests.fixed.map((t) => t.test_id)).toEqual(['wants-deny']);
  });

  it('stops when the caller goes away', async () => {
    const controller = new AbortController();
    controller.abort(new Error('client gone'));
    await expect(runWhatIf(options(rows, denyDropboxUpload, { signal: controller.signal }))).rejects.toThrow('client gone');
  });
});

describe('drafts', () => {
  it('accepts the documented shape and refuses unknown fields', () => {
    expect(DraftSchema.safeParse(denyDropboxUpload).success).toBe(true);
    expect(DraftSchema.safeParse({ rules: { add: [{ policy_id: 'P1', app: 'Dropbox!', action: '*', permission: 'deny' }] } }).success).toBe(false);
    expect(DraftSchema.safeParse({ nonsense: 1 }).success).toBe(false);
  });

  it.each([
    [{ rules: { add: [{ policy_id: 'nope', app: '*', action: '*', permission: 'deny' }] } }, 'draft.rules.add.0.policy_id'],
    [{ rules: { change: [{ id: 'nope', permission: 'deny' }] } }, 'draft.rules.change.0.id'],
    [{ rules: { remove: ['nope'] } }, 'draft.rules.remove.0'],
    [{ user_roles: { assign: [{ user_id: 'carol', role_id: 'sales' }] } }, 'draft.user_roles.assign.0.user_id'],
    [{ role_policies: { assign: [{ role_id: 'ghost', policy_id: 'P1' }] } }, 'draft.role_policies.assign.0.role_id'],
    [{ policies: { change: [{ id: 'nope', severity: 'low' }] } }, 'draft.policies.change.0.id'],
  ] as Array<[PolicyDraft, string]>)('refuses a reference the tenant does not hold (%j)', (draft, field) => {
    let err: unknown;
    try {
      applyDraft(base(), draft, refs);
    } catch (e) {
      err = e;
    }
    expect(isEdgeplaneError(err) && err.code).toBe('NOT_FOUND');
    expect(isEdgeplaneError(err) && err.issues?.[0]?.field).toBe(field);
  });

  it('applies every kind of change without touching the base', () => {
    const b = base();
    const before = structuredClone(b);
    const d = applyDraft(
      b,
      {
        default_effect: 'deny',
        policies: { add: [{ id: 'P3', name: 'new', severity: 'critical' }], change: [{ id: 'P2', severity: 'medium' }], remove: ['P1'] },
        rules: { add: [{ policy_id: 'P3', app: '*', action: '*', permission: 'allow' }], change: [{ id: 'R2', app: 'teams' }] },
        role_policies: { assign: [{ role_id: 'sales', policy_id: 'P3' }] },
        user_roles: { unassign: [{ user_id: 'bob', role_id: 'eng' }], assign: [{ user_id: 'bob', role_id: 'sales' }] },
      },
      refs,
    );
    expect(b).toEqual(before);
    expect(d.settings.default_effect).toBe('deny');
    expect(d.policies.map((p) => `${p.id}:${p.severity}`)).toEqual(['P2:medium', 'P3:critical']);
    expect(d.rules.map((r) => `${r.id}:${r.app}`)).toEqual(['R2:teams', 'draft-1:*']);
    expect(d.role_policies).toEqual([
      { role_id: 'eng', policy_id: 'P2' },
      { role_id: 'sales', policy_id: 'P3' },
    ]);
    expect(d.user_roles).toEqual([
      { user_id: 'alice', role_id: 'sales' },
      { user_id: 'bob', role_id: 'sales' },
    ]);
  });
});
