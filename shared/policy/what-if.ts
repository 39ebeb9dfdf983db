/**
 * What-if replay (issue #12): recorded usage of a time window decided again through a draft, with
 * the same compiled index production uses (compilePolicyIndex), compared with the live policy (or
 * with what was recorded). Reports the decisions that flip with counts by user, app, action and
 * tower, a sample, the alerts and remediations each side would have raised, the stored policy
 * tests the draft breaks, and how long it took.
 *
 * Reads the window page by page through `scan` (the store's cursor) and keeps only bounded
 * aggregates, so memory does not grow with the window. It writes nothing: the draft lives in this
 * function's memory. Every flip can be streamed to `onFlip` as it is found (awaited, so a slow
 * consumer slows the replay instead of buffering). Between pages it yields to the event loop, so
 * a long replay does not stall a process that also serves requests and decides live traffic.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { DecisionReason } from '../domain.js';
import type { Effect } from '../mqtt/payloads.js';
import type { ReplayRow, UsageWindow } from '../store/port.js';
import { compilePolicyIndex, type CompileOptions, type PolicyIndex } from './compile-policy-index.js';
import { ConsequenceSim, type ConsequenceSummary, type RuleConsequences } from './consequences.js';
import type { PolicyContent } from './content.js';
import { Explainer } from './explain.js';
import { modelFromContent } from './model.js';
import { replayScope } from './replay-scope.js';
import { runPolicyTest, type PolicyTest, type PolicyTestResult } from './policy-tests.js';

export type CompareTo = 'current' | 'recorded';
/** A recorded decision may also say 'blocked' (answered at the tower by an action in force). */
type Reason = DecisionReason;

export interface DecisionSide {
  effect: Effect;
  reason: Reason;
  rule_id: string | null;
  policy_id: string | null;
}

export interface Flip {
  event_id: string;
  received_at: number;
  ts: number;
  device_id: string;
  user_id: string | null;
  app: string;
  action: string;
  tower_id: string;
  before: DecisionSide;
  after: DecisionSide;
}

export interface FlipCount {
  key: string;
  allow_to_deny: number;
  deny_to_allow: number;
}

export interface WhatIfResult {
  tenant_id: string;
  base_version: number;
  compare_to: CompareTo;
  window: UsageWindow;
  /** Recorded events of the window replayed. */
  evaluated: number;
  /**
   * Events whose live and draft decisions were compared. The others provably decide alike: their
   * device is one the draft cannot change (replay-scope.ts), so nothing about them can differ.
   */
  compared: number;
  /** Devices whose rule outcomes the draft can change (their owner, roles or roles' rules differ). */
  affected_devices: number;
  /** The draft changes the default effect: every event decided by it (no rule) may flip. */
  default_effect_changed: boolean;
  /** Set when `max_events` stopped the replay: resume with `after` = this event id. */
  resume_after: string | null;
  flips: {
    total: number;
    allow_to_deny: number;
    deny_to_allow: number;
    /** Same effect, decided by another rule (alerts and remediations may differ). */
    rule_changes: number;
    by_user: FlipCount[];
    by_app: FlipCount[];
    by_action: FlipCount[];
    by_tower: FlipCount[];
  };
  sample: Flip[];
  /**
   * Alerts and remediations over the compared events, without and with the draft. Alert windows
   * and remediations are per device, so on every other device both sides raise the same ones:
   * draft − baseline is exactly what the draft changes.
   */
  consequences: { baseline: ConsequenceSummary; draft: ConsequenceSummary; auto_remediation: boolean };
  tests: { total: number; passing_now: number; passing_with_draft: number; broken: PolicyTestResult[]; fixed: PolicyTestResult[] };
  timing: { replay_ms: number; evaluate_ms: number; events_per_s: number; decisions: number };
}

export interface WhatIfOptions {
  tenantId: string;
  /** The live version's content (the baseline for 'current', and the tests' "now"). */
  base: PolicyContent;
  /** `base` with the draft applied (draft.ts). */
  draft: PolicyContent;
  compareTo: CompareTo;
  window: UsageWindow;
  alertWindowS: number;
  tests: readonly PolicyTest[];
  /** The tenant's usage in the window, ascending by event id, after `after` (store.usageHistory.scan, tenant-bound by the caller). */
  scan: (after: string | null, limit: number) => Promise<ReplayRow[]>;
  after?: string | null;
  pageSize?: number;
  sampleSize?: number;
  topN?: number;
  maxEvents?: number;
  onFlip?: (flip: Flip) => void | Promise<void>;
  signal?: AbortSignal;
  /** Monotonic milliseconds (performance.now); injectable for tests. */
  clock?: () => number;
}

/**
 * Replays decide recorded names (bounded by the data, not by the field) millions of times: memo
 * the long tail too. Bounds the memo at about 1M outcomes per index (tens of MB), whatever the
 * window holds.
 */
const REPLAY_MEMO: CompileOptions = { memoPerRoleSet: 65_536, memoPerIndex: 1_000_000 };

/** Distinct keys kept per dimension; the rest are counted under OTHER (field-supplied names are unbounded). */
const MAX_KEYS = 10_000;
const OTHER = '(other)';

class Counter {
  readonly #counts = new Map<string, { allow_to_deny: number; deny_to_allow: number }>();
  add(key: string, toDeny: boolean): void {
    let c = this.#counts.get(key);
    if (c === undefined) {
      const k = this.#counts.size < MAX_KEYS ? key : OTHER;
      c = this.#counts.get(k);
      if (c === undefined) this.#counts.set(k, (c = { allow_to_deny: 0, deny_to_allow: 0 }));
    }
    if (toDeny) c.allow_to_deny++;
    else c.deny_to_allow++;
  }
  top(n: number): FlipCount[] {
    return [...this.#counts]
      .map(([key, c]) => ({ key, ...c }))
      .sort((a, b) => b.allow_to_deny + b.deny_to_allow - (a.allow_to_deny + a.deny_to_allow) || (a.key < b.key ? -1 : 1))
      .slice(0, n);
  }
}

function consequenceRules(c: PolicyContent): Map<string, RuleConsequences> {
  return new Map(c.rules.map((r) => [r.id, { remediation: r.remediation, escalation: r.escalation }]));
}

export async function runWhatIf(o: WhatIfOptions): Promise<WhatIfResult> {
  const clock = o.clock ?? (() => performance.now());
  const started = clock();
  const pageSize = o.pageSize ?? 5000;
  const sampleSize = o.sampleSize ?? 50;
  const topN = o.topN ?? 20;
  const maxEvents = o.maxEvents ?? Number.POSITIVE_INFINITY;
  const baseModel = modelFromContent(o.base);
  const draftModel = modelFromContent(o.draft);
  const baseIndex: PolicyIndex = compilePolicyIndex(baseModel, REPLAY_MEMO);
  const draftIndex: PolicyIndex = compilePolicyIndex(draftModel, REPLAY_MEMO);
  const scope = replayScope(baseModel, draftModel);
  const baseVersion = o.base.version;
  const baseDefault = o.base.settings.default_effect;
  const draftDefault = o.draft.settings.default_effect;
  const autoRemediation = o.draft.settings.auto_remediation;
  const baseSim = new ConsequenceSim({ alertWindowS: o.alertWindowS, autoRemediation: o.base.settings.auto_remediation, rules: consequenceRules(o.base) });
  const draftSim = new ConsequenceSim({ alertWindowS: o.alertWindowS, autoRemediation, rules: consequenceRules(o.draft) });
  const byUser = new Counter();
  const byApp = new Counter();
  const byAction = new Counter();
  const byTower = new Counter();
  const sample: Flip[] = [];
  let evaluated = 0;
  /** Events whose two sides were compared (the others provably could not differ). */
  let compared = 0;
  let decisions = 0;
  let toDeny = 0;
  let toAllow = 0;
  let ruleChanges = 0;
  let evaluateMs = 0;
  let after = o.after ?? null;
  let resumeAfter: string | null = null;

  pages: while (true) {
    if (o.signal?.aborted) throw o.signal.reason ?? new Error('what-if aborted');
    const want = Math.min(pageSize, maxEvents - evaluated);
    const rows = await o.scan(after, want);
    if (rows.length === 0) break;
    const t0 = clock();
    const flips: Flip[] = [];
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      // Three sides: the live policy's decision L (recorded, when recorded under the live
      // version — the production index decided it then, edge 'blocked' answers aside — else
      // decided), the baseline B (L, or what was recorded), and the draft's D. Where the draft
      // cannot change the device's rule outcome (replay-scope.ts), D is L's outcome — with the
      // draft's default effect when no rule matched — so it is derived, not decided; and where
      // the default did not change either and B is L, nothing can differ: not even decided.
      const recordedIsLive = r.policy_version === baseVersion && r.reason !== 'blocked';
      const affected = scope.devices.size > 0 && scope.devices.has(r.device_id);
      if (!affected && !scope.defaultChanged && (o.compareTo === 'current' || recordedIsLive)) continue;
      let lEffect: Effect = r.effect;
      let lReason: Reason = r.reason;
      let lRuleId: string | null = r.rule_id;
      let lPolicyId: string | null = r.policy_id;
      if (!recordedIsLive && (o.compareTo === 'current' || !affected)) {
        const l = baseIndex.decideForDevice(r.device_id, r.app, r.action);
        decisions++;
        lEffect = l === undefined ? baseDefault : l.effect;
        lReason = l === undefined ? 'unknown_device' : l.reason;
        lRuleId = l === undefined ? null : (l.rule?.rule_id ?? null);
        lPolicyId = l === undefined ? null : (l.rule?.policy_id ?? null);
      }
      const recordedBase = o.compareTo === 'recorded';
      const bEffect: Effect = recordedBase ? r.effect : lEffect;
      const bReason: Reason = recordedBase ? r.reason : lReason;
      const bRuleId = recordedBase ? r.rule_id : lRuleId;
      const bPolicyId = recordedBase ? r.policy_id : lPolicyId;
      let dEffect: Effect;
      let dReason: Reason;
      let dRuleId: string | null;
      let dPolicyId: string | null;
      if (affected) {
        const d = draftIndex.decideForDevice(r.device_id, r.app, r.action);
        decisions++;
        dEffect = d === undefined ? draftDefault : d.effect;
        dReason = d === undefined ? 'unknown_device' : d.reason;
        dRuleId = d === undefined ? null : (d.rule?.rule_id ?? null);
        dPolicyId = d === undefined ? null : (d.rule?.policy_id ?? null);
      } else {
        const byRule = lReason === 'rule';
        dEffect = byRule ? lEffect : draftDefault;
        dReason = lReason;
        dRuleId = lRuleId;
        dPolicyId = lPolicyId;
      }
      compared++;
      if (bEffect === 'deny' && bReason === 'rule' && bRuleId !== null) {
        baseSim.deny({ device_id: r.device_id, tower_id: r.tower_id, app: r.app, received_at: r.received_at, rule_id: bRuleId, policy_id: bPolicyId ?? '' });
      }
      if (dEffect === 'deny' && dReason === 'rule' && dRuleId !== null) {
        draftSim.deny({ device_id: r.device_id, tower_id: r.tower_id, app: r.app, received_at: r.received_at, rule_id: dRuleId, policy_id: dPolicyId ?? '' });
      }
      if (dEffect === bEffect) {
        if (dRuleId !== bRuleId) ruleChanges++;
        continue;
      }
      const flipToDeny = dEffect === 'deny';
      if (flipToDeny) toDeny++;
      else toAllow++;
      const user = (dReason === 'unknown_device' ? null : draftIndex.ownerOf(r.device_id)) ?? r.user_id ?? '(no user)';
      byUser.add(user, flipToDeny);
      byApp.add(r.app, flipToDeny);
      byAction.add(r.action, flipToDeny);
      byTower.add(r.tower_id, flipToDeny);
      if (sample.length < sampleSize || o.onFlip) {
        const flip: Flip = {
          event_id: r.id,
          received_at: r.received_at,
          ts: r.ts,
          device_id: r.device_id,
          user_id: r.user_id,
          app: r.app,
          action: r.action,
          tower_id: r.tower_id,
          before: { effect: bEffect, reason: bReason, rule_id: bRuleId, policy_id: bPolicyId },
          after: { effect: dEffect, reason: dReason, rule_id: dRuleId, policy_id: dPolicyId },
        };
        if (sample.length < sampleSize) sample.push(flip);
        if (o.onFlip) flips.push(flip);
      }
    }
    evaluateMs += clock() - t0;
    evaluated += rows.length;
    after = rows[rows.length - 1]!.id;
    for (const f of flips) await o.onFlip!(f);
    if (evaluated >= maxEvents) {
      // Whether anything is left: one more row tells.
      if ((await o.scan(after, 1)).length > 0) resumeAfter = after;
      break pages;
    }
    if (rows.length < want) break;
    await yieldToEventLoop();
  }

  const tests = compareTests(o.base, o.draft, o.tests);
  const replayMs = clock() - started;
  return {
    tenant_id: o.tenantId,
    base_version: o.base.version,
    compare_to: o.compareTo,
    window: o.window,
    evaluated,
    compared,
    affected_devices: scope.devices.size,
    default_effect_changed: scope.defaultChanged,
    resume_after: resumeAfter,
    flips: {
      total: toDeny + toAllow,
      allow_to_deny: toDeny,
      deny_to_allow: toAllow,
      rule_changes: ruleChanges,
      by_user: byUser.top(topN),
      by_app: byApp.top(topN),
      by_action: byAction.top(topN),
      by_tower: byTower.top(topN),
    },
    sample,
    consequences: { baseline: baseSim.result(topN), draft: draftSim.result(topN), auto_remediation: autoRemediation },
    tests,
    timing: {
      replay_ms: round(replayMs),
      evaluate_ms: round(evaluateMs),
      events_per_s: replayMs > 0 ? Math.round((evaluated / replayMs) * 1000) : 0,
      decisions,
    },
  };
}

/** Tests passing with the live policy that fail with the draft (broken), and the reverse (fixed). */
function compareTests(base: PolicyContent, draft: PolicyContent, tests: readonly PolicyTest[]): WhatIfResult['tests'] {
  const now = new Explainer(base);
  const next = new Explainer(draft);
  const broken: PolicyTestResult[] = [];
  const fixed: PolicyTestResult[] = [];
  let passingNow = 0;
  let passingDraft = 0;
  for (const t of tests) {
    const a = runPolicyTest(now, t);
    const b = runPolicyTest(next, t);
    if (a.passed) passingNow++;
    if (b.passed) passingDraft++;
    if (a.passed && !b.passed) broken.push(b);
    if (!a.passed && b.passed) fixed.push(b);
  }
  return { total: tests.length, passing_now: passingNow, passing_with_draft: passingDraft, broken, fixed };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
