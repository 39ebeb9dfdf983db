/**
 * What a sequence of decisions would have set off: alerts (one per device and rule, bumped while
 * denies keep coming within the tenant's alert window — rules/alerts.ts) and, on plans with
 * auto-remediation, remediation commands (a rule's remediation once while it is in force at the
 * tower, its escalation once `threshold` violations by a device fall within `window_s` —
 * workers/remediation/remediation-engine.ts). Replayed in event order on recorded server times.
 *
 * Memory is bounded by what is active, not by how many events are replayed: entries whose window
 * has passed are pruned as the replay moves on.
 */
import type { PolicyRule, RemediationType } from '../domain.js';

export interface ConsequenceEvent {
  device_id: string;
  tower_id: string;
  app: string;
  received_at: number;
  rule_id: string;
  policy_id: string;
}

export type RuleConsequences = Pick<PolicyRule, 'remediation' | 'escalation'>;

export interface ConsequenceSummary {
  /** Alerts opened (a deny by a rule with no open alert for its device and rule in the window). */
  alerts_opened: number;
  /** Denies by a rule folded into an open alert. */
  alert_updates: number;
  /** Remediation commands issued; 0 when the plan has no auto-remediation. */
  remediations: number;
  escalations: number;
  remediations_by_type: Partial<Record<RemediationType, number>>;
  /** Rules raising the most alerts. */
  top_rules: Array<{ rule_id: string; policy_id: string; alerts_opened: number; denies: number; remediations: number }>;
}

const PRUNE_EVERY = 50_000;
const MAX_TRACKED_RULES = 10_000;

export class ConsequenceSim {
  readonly #alertWindowMs: number;
  readonly #autoRemediation: boolean;
  readonly #rules: ReadonlyMap<string, RuleConsequences>;
  /** device → rule → last_seen of its open alert (nested: no key string built per event). */
  readonly #openAlerts = new Map<string, Map<string, number>>();
  /** (tower, device, type, app) → until. */
  readonly #inForce = new Map<string, number>();
  /** (tower, device, rule) → violation times within the escalation window. */
  readonly #violations = new Map<string, number[]>();
  readonly #byRule = new Map<string, { policy_id: string; alerts_opened: number; denies: number; remediations: number }>();
  #seen = 0;
  readonly summary: Omit<ConsequenceSummary, 'top_rules'> = { alerts_opened: 0, alert_updates: 0, remediations: 0, escalations: 0, remediations_by_type: {} };

  constructor(opts: { alertWindowS: number; autoRemediation: boolean; rules: ReadonlyMap<string, RuleConsequences> }) {
    this.#alertWindowMs = opts.alertWindowS * 1000;
    this.#autoRemediation = opts.autoRemediation;
    this.#rules = opts.rules;
  }

  /** A deny by a rule. */
  deny(e: ConsequenceEvent): void {
    const now = e.received_at;
    if (++this.#seen % PRUNE_EVERY === 0) this.#prune(now);
    const stats = this.#stats(e);
    if (stats) stats.denies++;

    let byRule = this.#openAlerts.get(e.device_id);
    if (byRule === undefined) this.#openAlerts.set(e.device_id, (byRule = new Map()));
    const last = byRule.get(e.rule_id);
    if (last !== undefined && last >= now - this.#alertWindowMs) this.summary.alert_updates++;
    else {
      this.summary.alerts_opened++;
      if (stats) stats.alerts_opened++;
    }
    byRule.set(e.rule_id, now);

    const rule = this.#rules.get(e.rule_id);
    if (!this.#autoRemediation || !rule || (!rule.remediation && !rule.escalation)) return;
    if (rule.escalation) {
      const key = `${e.tower_id}\u0000${e.device_id}\u0000${e.rule_id}`;
      const from = now - rule.escalation.window_s * 1000;
      const times = (this.#violations.get(key) ?? []).filter((t) => t > from);
      times.push(now);
      if (times.length >= rule.escalation.threshold) {
        this.#violations.delete(key);
        if (this.#claim(e, rule.escalation.remediation.type, rule.escalation.remediation.duration_s, now, stats)) this.summary.escalations++;
        return;
      }
      this.#violations.set(key, times);
    }
    if (rule.remediation) this.#claim(e, rule.remediation.type, rule.remediation.duration_s, now, stats);
  }

  result(topN: number): ConsequenceSummary {
    const top_rules = [...this.#byRule]
      .sort(([a, x], [b, y]) => y.alerts_opened - x.alerts_opened || y.denies - x.denies || (a < b ? -1 : 1))
      .slice(0, topN)
      .map(([rule_id, s]) => ({ rule_id, ...s }));
    return { ...this.summary, remediations_by_type: { ...this.summary.remediations_by_type }, top_rules };
  }

  /** An action still in force for the device (and app) at the tower is not issued again. */
  #claim(e: ConsequenceEvent, type: RemediationType, durationS: number, now: number, stats: { remediations: number } | null): boolean {
    const key = `${e.tower_id}\u0000${e.device_id}\u0000${type}\u0000${type === 'block_app' ? e.app : ''}`;
    const until = this.#inForce.get(key);
    if (until !== undefined && until > now) return false;
    this.#inForce.set(key, now + durationS * 1000);
    this.summary.remediations++;
    this.summary.remediations_by_type[type] = (this.summary.remediations_by_type[type] ?? 0) + 1;
    if (stats) stats.remediations++;
    return true;
  }

  #stats(e: ConsequenceEvent) {
    let s = this.#byRule.get(e.rule_id);
    if (s === undefined && this.#byRule.size < MAX_TRACKED_RULES) this.#byRule.set(e.rule_id, (s = { policy_id: e.policy_id, alerts_opened: 0, denies: 0, remediations: 0 }));
    return s ?? null;
  }

  #prune(now: number): void {
    for (const [device, byRule] of this.#openAlerts) {
      for (const [rule, last] of byRule) if (last < now - this.#alertWindowMs) byRule.delete(rule);
      if (byRule.size === 0) this.#openAlerts.delete(device);
    }
    for (const [k, until] of this.#inForce) if (until <= now) this.#inForce.delete(k);
    // Escalation windows are at most a day (the API's bound): older violations no longer count.
    for (const [k, times] of this.#violations) if (times[times.length - 1]! < now - 24 * 3600 * 1000) this.#violations.delete(k);
  }
}
