/**
 * The hot path: decided usage batches, the alerts they raise and the unknown devices they reveal,
 * written in one transaction per batch (DESIGN §4, §5). Statements are prepared once here; the
 * folding rules live in ../rules/ and run in memory, and their result is written once per row at
 * the end, so a batch costs one INSERT per event plus one write per alert/device.
 */
import { ALERT_STEP_EVENTS } from '../../bus-events.js';
import type { Alert, AlertEvent, DiscoveredDevice, Effect, UsageRecord } from '../../domain.js';
import type {
  AlertFilter,
  DashboardMetrics,
  DecidedUsage,
  ListOptions,
  Page,
  RecordUsageInput,
  RecordUsageResult,
  Store,
  StoredDecision,
  UsageFilter,
} from '../port.js';
import { ALERT_WORKFLOW_FIELDS, alertKey, applyAlertAction } from '../rules/alerts.js';
import { notFound } from '../rules/errors.js';
import { foldDiscovered, reportSightings, sightedDevices, type Tracked } from '../rules/discovery.js';
import { clampLimit, cursorError, decodeCursor, encodeCursor, SORT_TAG } from '../rules/pagination.js';
import { batchLookups, batchResult, foldBatch, localFields, PresenceThrottle, ThrottledWrites, TowerSightingThrottle, validateBatch } from '../rules/usage-batch.js';
import type { SqliteContext, Stmt } from './context.js';
import { limitClause } from './context.js';
import type { TenantRefs } from './refs.js';
import type { SqliteOutbox } from './webhook-repos.js';

const USAGE_COLUMNS = [
  'tenant_id',
  'id',
  'tower_id',
  'batch_id',
  'device_id',
  'user_id',
  'app',
  'action',
  'bytes',
  'ts',
  'received_at',
  'effect',
  'reason',
  'rule_id',
  'policy_id',
  'policy_version',
  'local_effect',
  'local_policy_version',
  'disagreement',
] as const;
export const ALERT_COLUMNS = [
  'id',
  'tenant_id',
  'device_id',
  'user_id',
  'rule_id',
  'policy_id',
  'app',
  'action',
  'tower_id',
  'severity',
  'count',
  'first_seen',
  'last_seen',
  ...ALERT_WORKFLOW_FIELDS,
] as const;
export const ALERT_EVENT_COLUMNS = ['id', 'tenant_id', 'alert_id', 'kind', 'at', 'actor_id', 'assignee', 'note'] as const;
const DISCOVERED_COLUMNS = ['id', 'tenant_id', 'device_id', 'tower_id', 'first_seen', 'last_seen', 'count'] as const;

/** Rows a device- or user-filtered page reads at most (~10 ms inside SQLite, ~0.2 µs a row). */
export const SCAN_BUDGET = 50_000;
/** The first window of such a page: a frequent device or user fills its page here. */
const FIRST_WINDOW = 2_000;
/** A usage row as SQLite returns it: the disagreement flag is an integer. */
export type UsageRow = Omit<UsageRecord, 'disagreement'> & { disagreement: number };

export function usageFromRow(row: UsageRow): UsageRecord {
  return { ...row, local_effect: row.local_effect ?? null, local_policy_version: row.local_policy_version ?? null, disagreement: row.disagreement === 1 };
}

export interface UsageRepos {
  usage: Store['usage'];
  alerts: Store['alerts'];
  discovered: Store['discovered'];
  dashboard: (tenantId: string) => DashboardMetrics;
}

export function createUsageRepos(ctx: SqliteContext, refs: TenantRefs, outbox: SqliteOutbox): UsageRepos {
  const db = ctx.db;
  const alertCols = ALERT_COLUMNS.join(', ');
  const discoveredCols = DISCOVERED_COLUMNS.join(', ');

  // ON CONFLICT, not OR IGNORE: OR IGNORE would also swallow CHECK/NOT NULL failures as duplicates.
  const insertUsage: Stmt<unknown[]> = db.prepare(
    `INSERT INTO usage (${USAGE_COLUMNS.join(', ')}) VALUES (${USAGE_COLUMNS.map(() => '?').join(', ')})
     ON CONFLICT (tenant_id, id) DO NOTHING`,
  );
  const findOpenAlert: Stmt<[string, string, string, number], Alert> = db.prepare(
    `SELECT ${alertCols} FROM alerts
     WHERE tenant_id = ? AND device_id = ? AND rule_id = ? AND status IN ('open', 'acknowledged') AND last_seen >= ?
     ORDER BY last_seen DESC, id DESC LIMIT 1`,
  );
  const insertAlert: Stmt<[Alert]> = db.prepare(
    `INSERT INTO alerts (${alertCols}) VALUES (${ALERT_COLUMNS.map((c) => `@${c}`).join(', ')})`,
  );
  const bumpAlert: Stmt<[number, number, string, string]> = db.prepare(
    'UPDATE alerts SET count = ?, last_seen = ?, tower_id = ? WHERE id = ?',
  );
  const findTenantDiscovered: Stmt<[string, string], DiscoveredDevice> = db.prepare(
    `SELECT ${discoveredCols} FROM discovered_devices WHERE tenant_id = ? AND device_id = ?`,
  );
  const findPlatformDiscovered: Stmt<[string], DiscoveredDevice> = db.prepare(
    `SELECT ${discoveredCols} FROM discovered_devices WHERE tenant_id IS NULL AND device_id = ?`,
  );
  const insertDiscovered: Stmt<[DiscoveredDevice]> = db.prepare(
    `INSERT INTO discovered_devices (${discoveredCols}) VALUES (${DISCOVERED_COLUMNS.map((c) => `@${c}`).join(', ')})`,
  );
  const updateDiscovered: Stmt<[number, number, number, string, string]> = db.prepare(
    'UPDATE discovered_devices SET first_seen = ?, last_seen = ?, count = ?, tower_id = ? WHERE id = ?',
  );
  const markProcessed: Stmt<[string, string, string, number]> = db.prepare(
    `INSERT INTO processed_messages (kind, source_id, message_id, processed_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (kind, source_id, message_id) DO NOTHING`,
  );
  const addCount: Stmt<[string, string, number]> = db.prepare(
    `INSERT INTO usage_counters (tenant_id, effect, count) VALUES (?, ?, ?)
     ON CONFLICT (tenant_id, effect) DO UPDATE SET count = count + excluded.count`,
  );
  const presence = new PresenceThrottle();
  const sightings = new TowerSightingThrottle();
  // Throttled writes of the running transaction, confirmed to their throttles after COMMIT.
  const throttled = new ThrottledWrites();
  // Newer receipt wins, whatever order concurrent writers commit in.
  const upsertPresence: Stmt<[string, string, string, number]> = db.prepare(
    `INSERT INTO device_presence (tenant_id, device_id, tower_id, received_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (tenant_id, device_id) DO UPDATE SET tower_id = excluded.tower_id, received_at = excluded.received_at
     WHERE excluded.received_at >= device_presence.received_at`,
  );
  const lastSeen: Stmt<[string, string], { tower_id: string; at: number }> = db.prepare(
    'SELECT tower_id, received_at AS at FROM device_presence WHERE tenant_id = ? AND device_id = ?',
  );
  const seenAtTower: Stmt<[string, string, number, number]> = db.prepare(
    `INSERT INTO tenant_towers (tenant_id, tower_id, first_seen, last_seen) VALUES (?, ?, ?, ?)
     ON CONFLICT (tenant_id, tower_id) DO UPDATE SET
       first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)`,
  );
  const storedDecision: Stmt<[string, string], StoredDecision> = db.prepare(
    'SELECT id, effect, reason, rule_id, policy_id, policy_version FROM usage WHERE tenant_id = ? AND id = ?',
  );
  // A local decision reported after the event was stored: recorded once, against the stored decision.
  const recordLocal: Stmt<[string | null, number | null, string | null, string, string]> = db.prepare(
    `UPDATE usage SET local_effect = ?, local_policy_version = ?, disagreement = (effect <> ?)
     WHERE tenant_id = ? AND id = ? AND local_effect IS NULL`,
  );
  const getAlert: Stmt<[string, string], Alert> = db.prepare(
    `SELECT ${alertCols} FROM alerts WHERE tenant_id = ? AND id = ?`,
  );
  const saveWorkflow: Stmt<[Alert]> = db.prepare(
    `UPDATE alerts SET ${ALERT_WORKFLOW_FIELDS.map((c) => `${c} = @${c}`).join(', ')} WHERE tenant_id = @tenant_id AND id = @id`,
  );
  const insertAlertEvent: Stmt<[AlertEvent]> = db.prepare(
    `INSERT INTO alert_events (${ALERT_EVENT_COLUMNS.join(', ')}) VALUES (${ALERT_EVENT_COLUMNS.map((c) => `@${c}`).join(', ')})`,
  );
  const listAlertEvents: Stmt<[string, string], AlertEvent> = db.prepare(
    `SELECT ${ALERT_EVENT_COLUMNS.join(', ')} FROM alert_events WHERE tenant_id = ? AND alert_id = ? ORDER BY id`,
  );
  const consoleUserOfTenant: Stmt<[string, string], { id: string }> = db.prepare(
    'SELECT id FROM console_users WHERE id = ? AND tenant_id = ?',
  );
  const countEffect: Stmt<[string, string, number, number], number> = db
    .prepare<[string, string, number, number], number>('SELECT count(*) FROM usage WHERE tenant_id = ? AND effect = ? AND ts >= ? AND ts < ?')
    .pluck();

  const flushDiscovered = (tracked: Iterable<Tracked<DiscoveredDevice>>): void => {
    for (const { row, isNew } of tracked) {
      if (isNew) insertDiscovered.run(row);
      else updateDiscovered.run(row.first_seen, row.last_seen, row.count, row.tower_id, row.id);
    }
  };

  /** The domain rules (../rules/usage-batch.ts) decide; this function reads and writes rows. */
  const writeBatch = (input: RecordUsageInput): RecordUsageResult => {
    const tenantId = input.tenant_id;
    const fresh: DecidedUsage[] = [];
    const storedDecisions: StoredDecision[] = [];
    const localRecorded: RecordUsageResult['local_recorded'] = [];
    for (const r of input.records) {
      const local = localFields(r);
      const inserted =
        insertUsage.run(
          tenantId,
          r.id,
          r.tower_id,
          r.batch_id,
          r.device_id,
          r.user_id,
          r.app,
          r.action,
          r.bytes,
          r.ts,
          r.received_at,
          r.effect,
          r.reason,
          r.rule_id,
          r.policy_id,
          r.policy_version,
          local.local_effect,
          local.local_policy_version,
          local.disagreement ? 1 : 0,
        ).changes > 0;
      if (inserted) {
        fresh.push(r);
        continue;
      }
      // A redelivered event already raised its alert and discovery the first time.
      const stored = storedDecision.get(tenantId, r.id);
      if (!stored) continue;
      storedDecisions.push(stored);
      if (local.local_effect !== null && recordLocal.run(local.local_effect, local.local_policy_version, local.local_effect, tenantId, r.id).changes > 0) {
        localRecorded.push({ id: r.id, local_effect: local.local_effect, effect: stored.effect, disagreement: local.local_effect !== stored.effect });
      }
    }

    const lookups = batchLookups(input, fresh);
    const openAlerts = new Map<string, Alert>();
    for (const { device_id, rule_id } of lookups.alerts) {
      const open = findOpenAlert.get(tenantId, device_id, rule_id, lookups.windowStart);
      if (open) openAlerts.set(alertKey(device_id, rule_id), open);
    }
    const discovered = new Map<string, DiscoveredDevice>();
    for (const deviceId of lookups.discoveredDevices) {
      const row = findTenantDiscovered.get(tenantId, deviceId);
      if (row) discovered.set(deviceId, row);
    }
    const fold = foldBatch(input, fresh, { openAlerts, discovered }, ctx.newId);

    for (const alert of fold.alertsOpened) insertAlert.run(alert);
    for (const alert of fold.alertsUpdated) bumpAlert.run(alert.count, alert.last_seen, alert.tower_id, alert.id);
    flushDiscovered(fold.discovered);
    // Their webhook deliveries commit with them (the outbox): a crash before the announcement
    // loses none, and a redelivered batch folds no alert again, so writes none twice.
    outbox(tenantId, 'alert.opened', fold.alertsOpened);
    outbox(tenantId, 'alert.updated', fold.alertsUpdated);
    outbox(tenantId, 'device.discovered', fold.discovered.map((t) => t.row));
    if (fold.counts.allow > 0) addCount.run(tenantId, 'allow', fold.counts.allow);
    if (fold.counts.deny > 0) addCount.run(tenantId, 'deny', fold.counts.deny);
    const seen = sightings.due(tenantId, fold.towers);
    for (const [towerId, s] of seen) seenAtTower.run(tenantId, towerId, s.first_seen, s.last_seen);
    throttled.add(sightings, tenantId, seen);
    const due = presence.due(tenantId, fold.presence);
    for (const [deviceId, p] of due) upsertPresence.run(tenantId, deviceId, p.tower_id, p.received_at);
    throttled.add(presence, tenantId, due);
    return batchResult(input, fresh.length, storedDecisions, fold, localRecorded);
  };

  /**
   * A page of usage filtered by device, user and/or tower, newest first, reading at most
   * SCAN_BUDGET rows of the tenant per request: the answer holds what matched in that stretch, and
   * its cursor continues after the last row read even when fewer than `limit` matched. So every
   * page costs bounded time however rare the device, user or tower is; clients follow next_cursor
   * until null.
   *
   * Everything is filtered inside SQLite (a row costs ~0.1 µs there; a row brought into JavaScript
   * to be tested cost 4–10 µs), over windows of the primary key that grow 4× until the page is
   * full: a frequent device costs one small window, a rare one the whole budget. Each window's
   * lower edge is found by stepping over its rows in the key (`LIMIT 1 OFFSET n`), so the budget
   * counts rows read, whatever the other filters match. The filters' columns carry a unary `+`:
   * the plan walks the primary key in id order instead of sorting what a secondary index finds.
   */
  const boundedScan = (tenantId: string, opts: ListOptions & UsageFilter): Page<UsageRecord> => {
    const limit = clampLimit(opts.limit);
    const after = decodeCursor(opts.cursor);
    if (after !== null && after.startsWith(SORT_TAG)) throw cursorError('cursor belongs to a different sort');
    const where: string[] = [];
    const params: unknown[] = [];
    for (const [column, value] of [['device_id', opts.device_id], ['user_id', opts.user_id], ['effect', opts.effect], ['tower_id', opts.tower_id], ['app', opts.app]] as const) {
      if (value === undefined) continue;
      where.push(`+${column} = ?`);
      params.push(value);
    }
    // A literal, not a parameter, as in the indexed path below.
    if (opts.disagreement !== undefined) where.push(opts.disagreement ? '+disagreement = 1' : '+disagreement = 0');
    const range = timeRange(opts, '+ts', '+ts');
    where.push(...range.clauses);
    params.push(...range.params);
    const filters = where.join(' AND ');
    const items: UsageRecord[] = [];
    let upper = after; // exclusive: this window reads ids below it
    let read = 0;
    let span = FIRST_WINDOW;
    for (;;) {
      span = Math.min(span, SCAN_BUDGET - read);
      const below = upper === null ? '' : ' AND id < ?';
      const bound = upper === null ? [] : [upper];
      // The lowest id of this window, or undefined when fewer rows than `span` are left.
      const lower = ctx.stmt<unknown[], string>(`SELECT id FROM usage WHERE tenant_id = ?${below} ORDER BY id DESC LIMIT 1 OFFSET ?`).pluck().get(tenantId, ...bound, span - 1);
      const above = lower === undefined ? '' : ' AND id >= ?';
      const rows = ctx.rows<UsageRow>(
        `SELECT ${USAGE_COLUMNS.join(', ')} FROM usage WHERE tenant_id = ?${below}${above} AND ${filters} ORDER BY id DESC ${limitClause(limit + 1 - items.length)}`,
        [tenantId, ...bound, ...(lower === undefined ? [] : [lower]), ...params],
      );
      for (const row of rows) {
        // One more match than the page holds tells it is full and continues.
        if (items.length === limit) return { items, next_cursor: encodeCursor(items[limit - 1]!.id) };
        items.push(usageFromRow(row));
      }
      read += span;
      if (lower === undefined) return { items, next_cursor: null };
      upper = lower;
      if (read >= SCAN_BUDGET) {
        const last = items.length === limit ? items[limit - 1]!.id : lower;
        return { items, next_cursor: encodeCursor(last) };
      }
      span *= 4;
    }
  };

  const usage: Store['usage'] = {
    async recordBatch(input) {
      validateBatch(input);
      throttled.reset();
      const result = ctx.write(() => {
        refs.requireTenant(input.tenant_id);
        return writeBatch(input);
      });
      throttled.confirm();
      return result;
    },
    async recordBatches(inputs) {
      for (const input of inputs) validateBatch(input);
      // One commit for the whole group: per-commit WAL writes dominated the hot path when every
      // small batch had its own transaction.
      throttled.reset();
      const results = ctx.write(() => {
        const checked = new Set<string>();
        return inputs.map((input) => {
          if (!checked.has(input.tenant_id)) {
            refs.requireTenant(input.tenant_id);
            checked.add(input.tenant_id);
          }
          return writeBatch(input);
        });
      });
      throttled.confirm();
      return results;
    },
    async lastSeen(tenantId, deviceId) {
      return lastSeen.get(tenantId, deviceId) ?? null;
    },
    async list(tenantId, opts) {
      // Filters by device, user or tower have no index (each would cost every insert a page
      // write of its own; migrations 9 and 10): they scan newest-first within a budget per
      // request (see boundedScan).
      if (opts?.sort === undefined && (opts?.device_id !== undefined || opts?.user_id !== undefined || opts?.tower_id !== undefined)) {
        return boundedScan(tenantId, opts);
      }
      const filters = {
        tenant_id: tenantId,
        user_id: opts?.user_id,
        device_id: opts?.device_id,
        effect: opts?.effect,
        tower_id: opts?.tower_id,
        app: opts?.app,
      };
      const extra = timeRange(opts, 'ts', 'ts');
      // A literal, not a parameter, so the planner can use the partial index (disagreement = 1).
      if (opts?.disagreement !== undefined) extra.clauses.push(opts.disagreement ? 'disagreement = 1' : 'disagreement = 0');
      const page = ctx.listPage<UsageRow>('usage', USAGE_COLUMNS.join(', '), filters, opts, 'desc', extra);
      return { ...page, items: page.items.map(usageFromRow) };
    },
    async countByEffect(tenantId, window) {
      return ctx.read(() => {
        const counts: Record<Effect, number> = { allow: 0, deny: 0 };
        for (const effect of ['allow', 'deny'] as const) counts[effect] = countEffect.get(tenantId, effect, window.since, window.until) ?? 0;
        return counts;
      });
    },
  };

  const alertsRepo: Store['alerts'] = {
    async get(tenantId, id) {
      return getAlert.get(tenantId, id) ?? null;
    },
    async list(tenantId, opts) {
      const filters = {
        tenant_id: tenantId,
        status: opts?.status,
        device_id: opts?.device_id,
        app: opts?.app,
        severity: opts?.severity,
        assigned_to: opts?.assigned_to,
      };
      return ctx.listPage<Alert>('alerts', alertCols, filters, opts, 'desc', timeRange(opts, 'last_seen', 'first_seen'));
    },
    async count(tenantId, filter) {
      const where = ['tenant_id = ?'];
      const params: unknown[] = [tenantId];
      for (const field of ['status', 'device_id', 'app', 'severity', 'assigned_to'] as const) {
        const value = filter?.[field];
        if (value === undefined) continue;
        where.push(`${field} = ?`);
        params.push(value);
      }
      const range = timeRange(filter, 'last_seen', 'first_seen');
      where.push(...range.clauses);
      params.push(...range.params);
      return ctx.stmt<unknown[], number>(`SELECT count(*) AS n FROM alerts WHERE ${where.join(' AND ')}`).pluck().get(...params) ?? 0;
    },
    async act(tenantId, id, action) {
      return ctx.write(() => {
        const before = getAlert.get(tenantId, id);
        if (!before) return null;
        if (action.kind === 'assign' && action.assignee !== null && !consoleUserOfTenant.get(action.assignee, tenantId)) {
          throw notFound('assignee', 'no such console user in this tenant');
        }
        const { alert, event } = applyAlertAction(before, action, ctx.newId);
        if (event === null) return { alert, step: null };
        saveWorkflow.run(alert);
        insertAlertEvent.run(event);
        // The step's webhook deliveries commit with it (the outbox): an API killed before its
        // announcement loses none; a step that already held wrote nothing above, so none here.
        outbox(tenantId, ALERT_STEP_EVENTS[event.kind], [alert]);
        return { alert, step: event };
      });
    },
    async events(tenantId, id) {
      return listAlertEvents.all(tenantId, id);
    },
  };

  const discoveredRepo: Store['discovered'] = {
    async recordReports(towerId, batchId, reports, now) {
      return ctx.write(() => {
        if (markProcessed.run('discovery', towerId, batchId, now).changes === 0) return false;
        const sightings = reportSightings(towerId, reports);
        const existing = new Map<string, DiscoveredDevice>();
        for (const deviceId of sightedDevices(sightings)) {
          const row = findPlatformDiscovered.get(deviceId);
          if (row) existing.set(deviceId, row);
        }
        flushDiscovered(foldDiscovered(null, sightings, existing, ctx.newId));
        return true;
      });
    },
    async list(tenantId, opts) {
      return ctx.listPage<DiscoveredDevice>('discovered_devices', discoveredCols, { tenant_id: tenantId }, opts, 'asc');
    },
  };

  return { usage, alerts: alertsRepo, discovered: discoveredRepo, dashboard: createDashboard(ctx) };
}

/** `since` bounds `fromColumn` (inclusive), `until` bounds `toColumn` (exclusive). */
function timeRange(
  opts: Pick<UsageFilter & AlertFilter, 'since' | 'until'> | undefined,
  fromColumn: string,
  toColumn: string,
): { clauses: string[]; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  if (opts?.since !== undefined) {
    clauses.push(`${fromColumn} >= ?`);
    params.push(opts.since);
  }
  if (opts?.until !== undefined) {
    clauses.push(`${toColumn} < ?`);
    params.push(opts.until);
  }
  return { clauses, params };
}

function createDashboard(ctx: SqliteContext): (tenantId: string) => DashboardMetrics {
  const count = (sql: string): Stmt<[string], number> => ctx.db.prepare<[string], number>(sql).pluck();
  const devices = count('SELECT count(*) FROM devices WHERE tenant_id = ?');
  const users = count('SELECT count(*) FROM users WHERE tenant_id = ?');
  const policies = count('SELECT count(*) FROM policies WHERE tenant_id = ?');
  const rules = count('SELECT count(*) FROM rules WHERE tenant_id = ?');
  const alertsOpen = count("SELECT count(*) FROM alerts WHERE tenant_id = ? AND status = 'open'");
  const alertsAcknowledged = count("SELECT count(*) FROM alerts WHERE tenant_id = ? AND status = 'acknowledged'");
  const discovered = count('SELECT count(*) FROM discovered_devices WHERE tenant_id = ?');
  // Maintained by recordBatch so the dashboard never counts the usage table.
  const usageByEffect: Stmt<[string], { effect: string; n: number }> = ctx.db.prepare(
    'SELECT effect, count AS n FROM usage_counters WHERE tenant_id = ?',
  );

  return (tenantId) =>
    ctx.read(() => {
      let allowed = 0;
      let denied = 0;
      for (const { effect, n } of usageByEffect.all(tenantId)) {
        if (effect === 'allow') allowed = n;
        else if (effect === 'deny') denied = n;
      }
      return {
        devices: devices.get(tenantId) ?? 0,
        users: users.get(tenantId) ?? 0,
        policies: policies.get(tenantId) ?? 0,
        rules: rules.get(tenantId) ?? 0,
        alerts_open: alertsOpen.get(tenantId) ?? 0,
        alerts_acknowledged: alertsAcknowledged.get(tenantId) ?? 0,
        usage_total: allowed + denied,
        usage_allowed: allowed,
        usage_denied: denied,
        discovered_devices: discovered.get(tenantId) ?? 0,
      };
    });
}
