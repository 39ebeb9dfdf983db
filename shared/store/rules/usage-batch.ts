/**
 * Rules of a decided usage batch (port: usage.recordBatch), independent of how an adapter stores
 * it: validation, which records are new, alert folding, discovered-device folding, tower
 * sightings and counters. An adapter inserts the records, looks up what `batchLookups` names
 * (inside its transaction), calls `foldBatch`, and writes what it returns.
 */
import type { Alert, DiscoveredDevice, Effect } from '../../domain.js';
import type { Decision, UsageEvent } from '../../mqtt/payloads.js';
import type { DecidedUsage, RecordUsageInput, RecordUsageResult, StoredDecision } from '../port.js';
import { alertKey, foldAlerts, raisesAlert } from './alerts.js';
import { foldDiscovered, type DeviceSighting, type Tracked } from './discovery.js';
import { invalid } from './errors.js';

/**
 * Rejects the whole batch up front: a record for another tenant must never land in this one, and
 * a rule decision without its rule and policy could not raise an explainable alert.
 */
export function validateBatch(input: RecordUsageInput): void {
  input.records.forEach((r, i) => {
    if (r.tenant_id !== input.tenant_id) throw invalid(`records.${i}.tenant_id`, 'does not match the batch tenant');
    if (r.reason === 'rule' && r.rule_id === null) throw invalid(`records.${i}.rule_id`, 'required when reason is rule');
    if (r.reason === 'rule' && r.policy_id === null) throw invalid(`records.${i}.policy_id`, 'required when reason is rule');
  });
}

/**
 * The record of one decided usage event, as the store takes it: the event, the decision and its
 * policy version, where and when it was received, and the tower's own decision if it made one.
 */
export function decidedUsage(
  event: Pick<UsageEvent, 'id' | 'ts' | 'device_id' | 'app' | 'action' | 'bytes' | 'local'>,
  evaluation: { decision: Decision; user_id: string | null },
  policyVersion: number,
  at: { tenant_id: string; tower_id: string; batch_id: string; received_at: number },
): DecidedUsage {
  const d = evaluation.decision;
  return {
    id: event.id,
    tenant_id: at.tenant_id,
    tower_id: at.tower_id,
    batch_id: at.batch_id,
    device_id: event.device_id,
    user_id: evaluation.user_id,
    app: event.app,
    action: event.action,
    bytes: event.bytes ?? null,
    ts: event.ts,
    received_at: at.received_at,
    effect: d.effect,
    reason: d.reason,
    rule_id: d.rule_id,
    policy_id: d.policy_id,
    policy_version: policyVersion,
    severity: d.severity,
    local_effect: event.local?.effect ?? null,
    local_policy_version: event.local?.policy_version ?? null,
  };
}

/** The local-decision columns of a record: set when the tower decided itself, with the disagreement. */
export function localFields(r: Pick<DecidedUsage, 'effect' | 'local_effect' | 'local_policy_version'>): {
  local_effect: Effect | null;
  local_policy_version: number | null;
  disagreement: boolean;
} {
  const local = r.local_effect ?? null;
  return { local_effect: local, local_policy_version: local === null ? null : (r.local_policy_version ?? null), disagreement: local !== null && local !== r.effect };
}

export function storedDecisionOf(r: DecidedUsage | StoredDecision): StoredDecision {
  return {
    id: r.id,
    effect: r.effect,
    reason: r.reason,
    rule_id: r.rule_id,
    policy_id: r.policy_id,
    policy_version: r.policy_version,
  };
}

/**
 * For adapters that look stored ids up before inserting: splits the batch into records stored for
 * the first time and the decisions of duplicates, in input order. An id repeated inside the batch
 * is a duplicate of its first occurrence, as a row inserted earlier in the same transaction is.
 */
export function partitionFresh(
  records: readonly DecidedUsage[],
  stored: ReadonlyMap<string, StoredDecision>,
): { fresh: DecidedUsage[]; storedDecisions: StoredDecision[] } {
  const fresh: DecidedUsage[] = [];
  const storedDecisions: StoredDecision[] = [];
  const firstInBatch = new Map<string, DecidedUsage>();
  for (const r of records) {
    const before = stored.get(r.id) ?? firstInBatch.get(r.id);
    if (before) {
      storedDecisions.push(storedDecisionOf(before));
      continue;
    }
    firstInBatch.set(r.id, r);
    fresh.push(r);
  }
  return { fresh, storedDecisions };
}

export interface BatchLookups {
  /** Open alerts count only when last_seen >= windowStart (server clock of the batch). */
  windowStart: number;
  /** (device, rule) pairs whose latest open alert within the window the adapter must read. */
  alerts: Array<{ device_id: string; rule_id: string }>;
  /** Devices whose tenant-scoped discovered row the adapter must read. */
  discoveredDevices: string[];
}

/** What the adapter must read (inside the transaction) before folding the fresh records. */
export function batchLookups(input: RecordUsageInput, fresh: readonly DecidedUsage[]): BatchLookups {
  const alerts = new Map<string, { device_id: string; rule_id: string }>();
  const devices = new Set<string>();
  for (const r of fresh) {
    if (raisesAlert(r)) alerts.set(alertKey(r.device_id, r.rule_id), { device_id: r.device_id, rule_id: r.rule_id });
    if (r.reason === 'unknown_device') devices.add(r.device_id);
  }
  return { windowStart: input.now - input.alert_window_s * 1000, alerts: [...alerts.values()], discoveredDevices: [...devices] };
}

export interface BatchFold {
  alertsOpened: Alert[];
  alertsUpdated: Alert[];
  discovered: Array<Tracked<DiscoveredDevice>>;
  /** Earliest and latest event time per tower where the tenant's devices were seen. */
  towers: Map<string, TowerSighting>;
  /** Fresh events per effect, for the dashboard's running totals. */
  counts: { allow: number; deny: number };
  /**
   * Where each device of the batch was last seen, by the time the CLOUD received it (never the
   * event's own ts or id, which the tower chooses): the device's latest tower.
   */
  presence: Map<string, DevicePresence>;
}

export interface DevicePresence {
  tower_id: string;
  received_at: number;
}

/**
 * Folds the fresh records of one batch. `openAlerts` is keyed by alertKey and holds the latest
 * open alert within the window; `discovered` is keyed by device id and holds the tenant's row.
 */
export function foldBatch(
  input: RecordUsageInput,
  fresh: readonly DecidedUsage[],
  found: { openAlerts: ReadonlyMap<string, Alert>; discovered: ReadonlyMap<string, DiscoveredDevice> },
  newId: () => string,
): BatchFold {
  const { opened, updated } = foldAlerts(input, fresh, found.openAlerts, newId);
  const sightings: DeviceSighting[] = fresh
    .filter((r) => r.reason === 'unknown_device')
    .map((r) => ({ device_id: r.device_id, tower_id: r.tower_id, first_seen: r.ts, last_seen: r.ts, count: 1 }));
  const discovered = foldDiscovered(input.tenant_id, sightings, found.discovered, newId);
  const towers = new Map<string, { first_seen: number; last_seen: number }>();
  const presence = new Map<string, DevicePresence>();
  let deny = 0;
  for (const r of fresh) {
    if (r.effect === 'deny') deny++;
    const p = presence.get(r.device_id);
    if (!p || r.received_at >= p.received_at) presence.set(r.device_id, { tower_id: r.tower_id, received_at: r.received_at });
    const seen = towers.get(r.tower_id);
    if (seen) {
      seen.first_seen = Math.min(seen.first_seen, r.ts);
      seen.last_seen = Math.max(seen.last_seen, r.ts);
    } else {
      towers.set(r.tower_id, { first_seen: r.ts, last_seen: r.ts });
    }
  }
  return { alertsOpened: opened, alertsUpdated: updated, discovered, towers, counts: { allow: fresh.length - deny, deny }, presence };
}

export function batchResult(
  input: RecordUsageInput,
  inserted: number,
  storedDecisions: StoredDecision[],
  fold: BatchFold,
  localRecorded: RecordUsageResult['local_recorded'] = [],
): RecordUsageResult {
  return {
    local_recorded: localRecorded,
    inserted,
    duplicates: input.records.length - inserted,
    stored_decisions: storedDecisions,
    alerts_opened: fold.alertsOpened,
    alerts_updated: fold.alertsUpdated,
    discovered: fold.discovered.map((t) => t.row),
  };
}

/**
 * Remembers, per tenant and key, the value last written (per store process), and says which of a
 * batch's values are worth writing now (`stale`): a busy key costs one write per interval, not one
 * per batch. Bounded (LRU) so a flood of keys cannot grow memory. `written` is called after the
 * write committed, so a rolled-back group is written again by the next.
 */
export class WriteThrottle<V> {
  readonly #written = new Map<string, V>();
  constructor(
    readonly stale: (last: V, next: V) => boolean,
    readonly maxKeys: number,
  ) {}

  /** The values of `batch` worth writing now. */
  due(tenantId: string, batch: ReadonlyMap<string, V>): Array<[string, V]> {
    const out: Array<[string, V]> = [];
    for (const [key, value] of batch) {
      const last = this.#written.get(`${tenantId}\u0000${key}`);
      if (last === undefined || this.stale(last, value)) out.push([key, value]);
    }
    return out;
  }

  /** Call after the write committed. */
  written(tenantId: string, rows: ReadonlyArray<[string, V]>): void {
    for (const [key, value] of rows) {
      const k = `${tenantId}\u0000${key}`;
      this.#written.delete(k);
      this.#written.set(k, value);
    }
    while (this.#written.size > this.maxKeys) {
      const oldest = this.#written.keys().next().value;
      if (oldest === undefined) break;
      this.#written.delete(oldest);
    }
  }
}

/**
 * Device presence is written when a device changes tower at once, and otherwise at most every
 * `refreshMs` per device: a busy device at one tower costs one presence write per interval.
 */
export class PresenceThrottle extends WriteThrottle<DevicePresence> {
  constructor(refreshMs = 10_000, maxDevices = 200_000) {
    super((last, p) => last.tower_id !== p.tower_id || p.received_at >= last.received_at + refreshMs, maxDevices);
  }
}

/**
 * The throttled writes (presence, tower sightings) of the running transaction, confirmed to their
 * throttles once it committed; `reset` at the start of every attempt, so a rolled-back or retried
 * transaction's writes do not count.
 */
export class ThrottledWrites {
  #pending: Array<() => void> = [];

  reset(): void {
    this.#pending = [];
  }

  add<V>(throttle: WriteThrottle<V>, tenantId: string, rows: Array<[string, V]>): void {
    if (rows.length > 0) this.#pending.push(() => throttle.written(tenantId, rows));
  }

  confirm(): void {
    for (const written of this.#pending) written();
    this.#pending = [];
  }
}

export interface TowerSighting {
  first_seen: number;
  last_seen: number;
}

/**
 * A tenant's tower sighting (`tenant_towers`: which towers saw the tenant's devices, first and
 * last) is written the first time a store process sees the pair, when an event predates the first
 * sighting written, and otherwise at most every `refreshMs`: it was rewritten by every batch, one
 * page of the ~8 each SQLite group commit wrote (bench b). The store keeps the earliest and
 * latest it is given, so a skipped write loses at most `refreshMs` of the last sighting.
 */
export class TowerSightingThrottle extends WriteThrottle<TowerSighting> {
  constructor(refreshMs = 10_000, maxPairs = 100_000) {
    super((last, next) => next.first_seen < last.first_seen || next.last_seen >= last.last_seen + refreshMs, maxPairs);
  }
}
