/**
 * Alert folding and deduplication: a rule deny opens one alert per (device, rule); further
 * denies within the tenant's alert window bump its count, last_seen and tower instead of opening
 * another. Windows are measured on the server clock of the batch, not on tower timestamps.
 *
 * The workflow (acknowledge, assign, resolve) is a small transition table, also here. Only an
 * active alert (open or acknowledged) folds new denies: resolving says "this incident is over",
 * so the next deny of the same device and rule starts a new alert with its own count and
 * workflow, as PagerDuty and Alertmanager do, rather than silently reopening a closed one.
 */
import type { Alert, AlertEvent, AlertStatus, Severity } from '../../domain.js';
import { createError } from '../../errors.js';
import type { AlertAction, DecidedUsage } from '../port.js';

/** The workflow fields of an alert nobody has acted on yet. */
export const NO_WORKFLOW = {
  acknowledged_by: null,
  acknowledged_at: null,
  assigned_to: null,
  assigned_at: null,
  assigned_by: null,
  resolved_by: null,
  resolved_at: null,
  note: null,
} as const satisfies Partial<Alert>;

/** Statuses that fold new denies; adapters look alerts up with exactly these. */
export const ACTIVE_ALERT_STATUSES: readonly AlertStatus[] = ['open', 'acknowledged'];

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
    ...NO_WORKFLOW,
  };
}

/**
 * One workflow step. Repeating a step that already holds (acknowledging an acknowledged alert,
 * assigning the current assignee, resolving a resolved alert) changes nothing and records
 * nothing, so a retried request is harmless. A resolved alert is closed: acknowledging or
 * assigning it is a CONFLICT (a new deny opens a new alert instead).
 */
export function applyAlertAction(
  alert: Alert,
  action: AlertAction,
  newId: () => string,
): { alert: Alert; event: AlertEvent | null } {
  const note = action.note ?? null;
  const step = (kind: AlertEvent['kind'], assignee: string | null = null): AlertEvent => ({
    id: newId(),
    tenant_id: alert.tenant_id,
    alert_id: alert.id,
    kind,
    at: action.at,
    actor_id: action.by,
    assignee,
    note,
  });
  const unchanged = { alert, event: null };
  if (alert.status === 'resolved') {
    if (action.kind === 'resolve') return unchanged;
    throw createError('CONFLICT', `status: alert ${alert.id} is resolved; a new deny opens a new alert`, [
      { field: 'status', message: 'resolved alerts are closed' },
    ]);
  }
  switch (action.kind) {
    case 'acknowledge':
      if (alert.status === 'acknowledged') return unchanged;
      return {
        alert: { ...alert, status: 'acknowledged', acknowledged_by: action.by, acknowledged_at: action.at, note },
        event: step('acknowledged'),
      };
    case 'assign': {
      if (alert.assigned_to === action.assignee) return unchanged;
      const assigned = action.assignee !== null;
      return {
        alert: { ...alert, assigned_to: action.assignee, assigned_at: assigned ? action.at : null, assigned_by: action.by, note },
        event: step(assigned ? 'assigned' : 'unassigned', action.assignee),
      };
    }
    case 'resolve':
      return {
        alert: { ...alert, status: 'resolved', resolved_by: action.by, resolved_at: action.at, note },
        event: step('resolved'),
      };
  }
}

/** The workflow columns a step may change (adapters write exactly these). */
export const ALERT_WORKFLOW_FIELDS = [
  'status',
  'acknowledged_by',
  'acknowledged_at',
  'assigned_to',
  'assigned_at',
  'assigned_by',
  'resolved_by',
  'resolved_at',
  'note',
] as const satisfies ReadonlyArray<keyof Alert>;

/** The note of the step that unassigns an alert because its assignee's account was deleted. */
export const ASSIGNEE_DELETED_NOTE = "assignee's console account was deleted";

/**
 * Deleting a console account unassigns its active alerts in the delete's transaction, each by an
 * ordinary 'unassigned' step (so history, live feeds and webhooks see it like any unassignment):
 * left assigned, they pointed at nobody and appeared in nobody's "my alerts". Resolved alerts are
 * closed and keep their assignee as history, like acknowledged_by and resolved_by.
 * `assigned` are the alerts the adapter found assigned to the account (active ones only).
 */
export function unassignDeletedAssignee(
  assigned: readonly Alert[],
  actor: { by: string | null; at: number },
  newId: () => string,
): Array<{ alert: Alert; step: AlertEvent }> {
  const steps: Array<{ alert: Alert; step: AlertEvent }> = [];
  for (const before of assigned) {
    if (before.status === 'resolved' || before.assigned_to === null) continue;
    const { alert, event } = applyAlertAction(before, { kind: 'assign', assignee: null, by: actor.by, at: actor.at, note: ASSIGNEE_DELETED_NOTE }, newId);
    if (event !== null) steps.push({ alert, step: event });
  }
  return steps;
}
