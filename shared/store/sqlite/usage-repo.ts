/**
 * The hot path: decided usage batches, the alerts they raise and the unknown devices they reveal,
 * written in one transaction per batch (DESIGN §4, §5). Statements are prepared once here;
 * per-batch state (alerts and discovered devices touched so far) is folded in memory and written
 * once per row at the end, so a batch costs one INSERT per event plus one write per alert/device.
 */
import type { Alert, DiscoveredDevice, UsageRecord } from '../../domain.js';
import { createError } from '../../errors.js';
import type { DashboardMetrics, DecidedUsage, RecordUsageInput, RecordUsageResult, Store, StoredDecision } from '../port.js';
import type { SqliteContext, Stmt } from './context.js';
import type { TenantRefs } from './refs.js';

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
] as const;
const ALERT_COLUMNS = [
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
  'status',
] as const;
const DISCOVERED_COLUMNS = ['id', 'tenant_id', 'device_id', 'tower_id', 'first_seen', 'last_seen', 'count'] as const;

type Tracked<T> = { row: T; isNew: boolean };

export interface UsageRepos {
  usage: Store['usage'];
  alerts: Store['alerts'];
  discovered: Store['discovered'];
  dashboard: (tenantId: string) => DashboardMetrics;
}

export function createUsageRepos(ctx: SqliteContext, refs: TenantRefs): UsageRepos {
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
     WHERE tenant_id = ? AND device_id = ? AND rule_id = ? AND status = 'open' AND last_seen >= ?
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
  const seenAtTower: Stmt<[string, string, number, number]> = db.prepare(
    `INSERT INTO tenant_towers (tenant_id, tower_id, first_seen, last_seen) VALUES (?, ?, ?, ?)
     ON CONFLICT (tenant_id, tower_id) DO UPDATE SET
       first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)`,
  );
  const storedDecision: Stmt<[string, string], StoredDecision> = db.prepare(
    'SELECT id, effect, reason, rule_id, policy_id, policy_version FROM usage WHERE tenant_id = ? AND id = ?',
  );
  const getAlert: Stmt<[string, string], Alert> = db.prepare(
    `SELECT ${alertCols} FROM alerts WHERE tenant_id = ? AND id = ?`,
  );

  /** Folds one event into a device's discovered row: earliest first_seen, latest last_seen/tower. */
  const foldSighting = (
    row: DiscoveredDevice,
    sighting: { tower_id: string; first_seen: number; last_seen: number; count: number },
  ): DiscoveredDevice => ({
    ...row,
    first_seen: Math.min(row.first_seen, sighting.first_seen),
    last_seen: Math.max(row.last_seen, sighting.last_seen),
    count: row.count + sighting.count,
    tower_id: sighting.last_seen >= row.last_seen ? sighting.tower_id : row.tower_id,
  });

  const flushDiscovered = (tracked: Iterable<Tracked<DiscoveredDevice>>): void => {
    for (const { row, isNew } of tracked) {
      if (isNew) insertDiscovered.run(row);
      else updateDiscovered.run(row.first_seen, row.last_seen, row.count, row.tower_id, row.id);
    }
  };

  const writeBatch = (input: RecordUsageInput): RecordUsageResult => {
    const tenantId = input.tenant_id;
    const windowStart = input.now - input.alert_window_s * 1000;
    const alerts = new Map<string, Tracked<Alert>>();
    const discovered = new Map<string, Tracked<DiscoveredDevice>>();
    const towers = new Map<string, { first: number; last: number }>();
    let inserted = 0;
    let denied = 0;
    const storedDecisions: StoredDecision[] = [];

    for (const r of input.records) {
      const fresh =
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
        ).changes > 0;
      // A redelivered event already raised its alert and discovery the first time.
      if (!fresh) {
        const stored = storedDecision.get(tenantId, r.id);
        if (stored) storedDecisions.push(stored);
        continue;
      }
      inserted++;
      if (r.effect === 'deny') denied++;
      const tower = towers.get(r.tower_id);
      if (tower) {
        tower.first = Math.min(tower.first, r.ts);
        tower.last = Math.max(tower.last, r.ts);
      } else {
        towers.set(r.tower_id, { first: r.ts, last: r.ts });
      }

      // validateBatch guarantees rule_id and policy_id for reason 'rule'; the null checks narrow types.
      if (r.effect === 'deny' && r.reason === 'rule' && r.rule_id !== null && r.policy_id !== null) {
        const key = `${r.device_id}\u0000${r.rule_id}`;
        const seen = alerts.get(key);
        if (seen) {
          seen.row = { ...seen.row, count: seen.row.count + 1, last_seen: input.now, tower_id: r.tower_id };
        } else {
          const open = findOpenAlert.get(tenantId, r.device_id, r.rule_id, windowStart);
          alerts.set(
            key,
            open
              ? { row: { ...open, count: open.count + 1, last_seen: input.now, tower_id: r.tower_id }, isNew: false }
              : { row: newAlert(ctx.newId(), tenantId, r, r.rule_id, r.policy_id, input.now), isNew: true },
          );
        }
      }

      if (r.reason === 'unknown_device') {
        const sighting = { tower_id: r.tower_id, first_seen: r.ts, last_seen: r.ts, count: 1 };
        const seen = discovered.get(r.device_id);
        if (seen) {
          seen.row = foldSighting(seen.row, sighting);
        } else {
          const existing = findTenantDiscovered.get(tenantId, r.device_id);
          discovered.set(
            r.device_id,
            existing
              ? { row: foldSighting(existing, sighting), isNew: false }
              : {
                  row: { id: ctx.newId(), tenant_id: tenantId, device_id: r.device_id, ...sighting },
                  isNew: true,
                },
          );
        }
      }
    }

    const opened: Alert[] = [];
    const updated: Alert[] = [];
    for (const { row, isNew } of alerts.values()) {
      if (isNew) {
        insertAlert.run(row);
        opened.push(row);
      } else {
        bumpAlert.run(row.count, row.last_seen, row.tower_id, row.id);
        updated.push(row);
      }
    }
    flushDiscovered(discovered.values());
    if (inserted > denied) addCount.run(tenantId, 'allow', inserted - denied);
    if (denied > 0) addCount.run(tenantId, 'deny', denied);
    for (const [towerId, seen] of towers) seenAtTower.run(tenantId, towerId, seen.first, seen.last);

    return {
      inserted,
      duplicates: input.records.length - inserted,
      stored_decisions: storedDecisions,
      alerts_opened: opened,
      alerts_updated: updated,
      discovered: [...discovered.values()].map((t) => t.row),
    };
  };

  const usage: Store['usage'] = {
    async recordBatch(input) {
      validateBatch(input);
      return ctx.write(() => {
        refs.requireTenant(input.tenant_id);
        return writeBatch(input);
      });
    },
    async recordBatches(inputs) {
      for (const input of inputs) validateBatch(input);
      // One commit for the whole group: per-commit WAL writes dominated the hot path when every
      // small batch had its own transaction.
      return ctx.write(() => {
        const checked = new Set<string>();
        return inputs.map((input) => {
          if (!checked.has(input.tenant_id)) {
            refs.requireTenant(input.tenant_id);
            checked.add(input.tenant_id);
          }
          return writeBatch(input);
        });
      });
    },
    async list(tenantId, opts) {
      const filters = {
        tenant_id: tenantId,
        user_id: opts?.user_id,
        device_id: opts?.device_id,
        effect: opts?.effect,
        tower_id: opts?.tower_id,
      };
      const page = ctx.listPage<UsageRecord>('usage', USAGE_COLUMNS.join(', '), filters, opts, 'desc');
      return page;
    },
  };

  const alertsRepo: Store['alerts'] = {
    async get(tenantId, id) {
      return getAlert.get(tenantId, id) ?? null;
    },
    async list(tenantId, opts) {
      const filters = { tenant_id: tenantId, status: opts?.status, device_id: opts?.device_id };
      return ctx.listPage<Alert>('alerts', alertCols, filters, opts, 'desc');
    },
  };

  const discoveredRepo: Store['discovered'] = {
    async recordReports(towerId, batchId, reports, now) {
      return ctx.write(() => {
        if (markProcessed.run('discovery', towerId, batchId, now).changes === 0) return false;
        const touched = new Map<string, Tracked<DiscoveredDevice>>();
        for (const report of reports) {
          const sighting = { tower_id: towerId, ...report };
          const seen = touched.get(report.device_id);
          if (seen) {
            seen.row = foldSighting(seen.row, sighting);
            continue;
          }
          const existing = findPlatformDiscovered.get(report.device_id);
          touched.set(
            report.device_id,
            existing
              ? { row: foldSighting(existing, sighting), isNew: false }
              : { row: { id: ctx.newId(), tenant_id: null, ...sighting }, isNew: true },
          );
        }
        flushDiscovered(touched.values());
        return true;
      });
    },
    async list(tenantId, opts) {
      return ctx.listPage<DiscoveredDevice>('discovered_devices', discoveredCols, { tenant_id: tenantId }, opts, 'asc');
    },
  };

  return { usage, alerts: alertsRepo, discovered: discoveredRepo, dashboard: createDashboard(ctx) };
}

function newAlert(id: string, tenantId: string, r: DecidedUsage, ruleId: string, policyId: string, now: number): Alert {
  return {
    id,
    tenant_id: tenantId,
    device_id: r.device_id,
    user_id: r.user_id,
    rule_id: ruleId,
    policy_id: policyId,
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

/**
 * Rejects the whole batch up front: a record for another tenant must never land in this one, and
 * a rule decision without its rule and policy could not raise an explainable alert.
 */
function validateBatch(input: RecordUsageInput): void {
  const invalid = (field: string, message: string): Error =>
    createError('VALIDATION_FAILED', `${field}: ${message}`, [{ field, message }]);
  input.records.forEach((r, i) => {
    if (r.tenant_id !== input.tenant_id) throw invalid(`records.${i}.tenant_id`, 'does not match the batch tenant');
    if (r.reason === 'rule' && r.rule_id === null) throw invalid(`records.${i}.rule_id`, 'required when reason is rule');
    if (r.reason === 'rule' && r.policy_id === null) {
      throw invalid(`records.${i}.policy_id`, 'required when reason is rule');
    }
  });
}

function createDashboard(ctx: SqliteContext): (tenantId: string) => DashboardMetrics {
  const count = (sql: string): Stmt<[string], number> => ctx.db.prepare<[string], number>(sql).pluck();
  const devices = count('SELECT count(*) FROM devices WHERE tenant_id = ?');
  const users = count('SELECT count(*) FROM users WHERE tenant_id = ?');
  const policies = count('SELECT count(*) FROM policies WHERE tenant_id = ?');
  const rules = count('SELECT count(*) FROM rules WHERE tenant_id = ?');
  const alertsOpen = count("SELECT count(*) FROM alerts WHERE tenant_id = ? AND status = 'open'");
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
        usage_total: allowed + denied,
        usage_allowed: allowed,
        usage_denied: denied,
        discovered_devices: discovered.get(tenantId) ?? 0,
      };
    });
}
