/**
 * Alert folding and deduplication: a rule deny opens one alert per (device, rule); further
 * denies within the tenant's alert window bump its count, last_seen and tower instead of opening
 * another. Windows are measured on the server clock of the batch, not on tower timestamps.
 */
import type { Alert, Severity } from '../../domain.js';
import type { DecidedUsage } from '../port.js';

/** Only a deny by a rule is explainable as an alert (it names its rule and policy). */
export function raisesAlert(r: DecidedUsage): r is DecidedUsage & { rule_id: string; policy_id: string } {
  return r.effect === 'deny' && r.reason === 'rule' && r.rule_id !== null && r.policy_id !== null;
}

/** NUL cannot occur in ids, so the pair maps to one string without ambiguity. */
export function alertKey(deviceId: string, ruleId: string): string {
  return `${deviceId}\u0000${ruleId}`;
}

/** Ordered ranks, for adapters that sort alerts by severity. */
export const SEVERITY_ORDER: readonly Severity[] = ['low', 'medium', 'high', 'critical'];

export function severityRank(severity: Severity): number {
  return SEVERITY_ORDER.indexOf(severity);
}

/**
 * `open` holds, per alertKey, the tenant's open alert with the latest last_seen (then id) whose
 * last_seen is within the window. Records are folded in input order; an alert opened or bumped
 * by this batch is bumped again by the batch's later records.
 */
export function foldAlerts(
  batch: { tenant_id: string; now: number },
  fresh: readonly DecidedUsage[],
  open: ReadonlyMap<string, Alert>,
  newId: () => string,
): { opened: Alert[]; updated: Alert[] } {
  const touched = new Map<string, { row: Alert; isNew: boolean }>();
  for (const r of fresh) {
    if (!raisesAlert(r)) continue;
    const key = alertKey(r.device_id, r.rule_id);
    const seen = touched.get(key);
    const existing = seen?.row ?? open.get(key);
    if (existing) {
      const row = { ...existing, count: existing.count + 1, last_seen: batch.now, tower_id: r.tower_id };
      touched.set(key, { row, isNew: seen?.isNew ?? false });
    } else {
      touched.set(key, { row: newAlert(newId(), batch.tenant_id, r, batch.now), isNew: true });
    }
  }
  const opened: Alert[] = [];
  const updated: Alert[] = [];
  for (const { row, isNew } of touched.values()) (isNew ? opened : updated).push(row);
  return { opened, updated };
}

function newAlert(id: string, tenantId: string, r: DecidedUsage & { rule_id: string; policy_id: string }, now: number): Alert {
  return {
    id,
    tenant_id: tenantId,
    device_id: r.device_id,
    user_id: r.user_id,
    rule_id: r.rule_id,
    policy_id: r.policy_id,
    app: r.app,
    action: r.action,
    tower_id: r.tower_id,
    severity: r.severity ?? 'medium',
    count: 1,
    first_seen: now,
    last_seen: now,
    status: 'open',
  };
}
