/**
 * SQLite side of the policy version history (rules/policy-history.ts): reads the live decision
 * inputs and the open history entries of a scope, and writes the diff as closed and opened
 * intervals plus the version's row, inside the transaction that bumped the version.
 */
import type { ChangeActor } from '../port.js';
import {
  deviceEntry,
  diffEntries,
  entryId,
  MAX_LISTED_CHANGES,
  missingKeys,
  policyEntry,
  rolePolicyEntry,
  ruleEntry,
  scopesOfAll,
  settingsEntry,
  userRoleEntry,
  type HistoryEntry,
  type HistoryKind,
  type PolicyTouch,
  type ScopeQuery,
} from '../rules/policy-history.js';
import type { Db, Stmt } from './context.js';
import { fromJson } from './json-column.js';
import type { Escalation, Remediation } from '../../domain.js';
import type { Effect, Severity } from '../../mqtt/payloads.js';

/** What a bump may say about itself beyond its touches. */
export interface VersionMeta {
  restored_from?: number;
  actor?: ChangeActor | null;
}

interface RuleRow {
  id: string;
  policy_id: string;
  role_id: string | null;
  app: string;
  action: string;
  permission: Effect;
  remediation: string | null;
  escalation: string | null;
}

/** The live table, its selected columns and the column behind key/ref1/ref2 of each kind. */
const LIVE: Record<Exclude<HistoryKind, 'settings'>, { sql: string; key: string[]; ref1: string | null; ref2: string | null }> = {
  policy: { sql: 'SELECT id, name, description, severity FROM policies WHERE tenant_id = ?', key: ['id'], ref1: null, ref2: null },
  rule: {
    sql: 'SELECT id, policy_id, role_id, app, action, permission, remediation, escalation FROM rules WHERE tenant_id = ?',
    key: ['id'],
    ref1: 'policy_id',
    ref2: 'role_id',
  },
  role_policy: { sql: 'SELECT role_id, policy_id FROM role_policies WHERE tenant_id = ?', key: ['role_id', 'policy_id'], ref1: 'role_id', ref2: 'policy_id' },
  user_role: { sql: 'SELECT user_id, role_id FROM user_roles WHERE tenant_id = ?', key: ['user_id', 'role_id'], ref1: 'user_id', ref2: 'role_id' },
  device: { sql: 'SELECT id, user_id FROM devices WHERE tenant_id = ?', key: ['id'], ref1: 'user_id', ref2: null },
};

const SETTINGS_SQL = `SELECT t.default_effect, p.id AS plan_id, p.auto_remediation, p.max_devices, p.max_events_per_s, p.retention_days
  FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.id = ?`;

type LiveRow = Record<string, unknown>;

function toEntry(kind: Exclude<HistoryKind, 'settings'>, row: LiveRow): HistoryEntry {
  switch (kind) {
    case 'policy':
      return policyEntry(row as { id: string; name: string; description: string | null; severity: Severity });
    case 'rule': {
      const r = row as unknown as RuleRow;
      return ruleEntry({
        ...r,
        remediation: fromJson<Remediation>(r.remediation),
        escalation: fromJson<Escalation>(r.escalation),
      });
    }
    case 'role_policy':
      return rolePolicyEntry(row['role_id'] as string, row['policy_id'] as string);
    case 'user_role':
      return userRoleEntry(row['user_id'] as string, row['role_id'] as string);
    case 'device':
      return deviceEntry(row as { id: string; user_id: string | null });
  }
}

const HISTORY_COLUMNS = 'kind, key, ref1, ref2, content, info';

export class SqliteHistory {
  readonly #db: Db;
  readonly #statements = new Map<string, Stmt<unknown[]>>();
  readonly #close: Stmt<[number, string, HistoryKind, string]>;
  readonly #insert: Stmt<[string, HistoryKind, string, number, string | null, string | null, string, string | null]>;
  readonly #insertVersion: Stmt<[string, number, number, number, string, number | null, string | null, string | null, string | null]>;
  readonly #versionOf: Stmt<[string], { policy_version: number }>;

  constructor(db: Db) {
    this.#db = db;
    this.#close = db.prepare(
      'UPDATE policy_history SET valid_to = ? WHERE tenant_id = ? AND kind = ? AND key = ? AND valid_to IS NULL',
    );
    this.#insert = db.prepare(
      `INSERT INTO policy_history (tenant_id, kind, key, valid_from, ref1, ref2, content, info) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#insertVersion = db.prepare(
      `INSERT INTO policy_versions (tenant_id, version, created_at, change_count, changes, restored_from, actor_kind, actor_id, actor_label)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#versionOf = db.prepare('SELECT policy_version FROM tenants WHERE id = ?');
  }

  #stmt<R>(sql: string): Stmt<unknown[], R> {
    let s = this.#statements.get(sql);
    if (!s) this.#statements.set(sql, (s = this.#db.prepare(sql)));
    return s as unknown as Stmt<unknown[], R>;
  }

  /** Live entries of a scope. */
  current(tenantId: string, q: ScopeQuery): HistoryEntry[] {
    if (q.kind === 'settings') {
      const row = this.#stmt<LiveRow>(SETTINGS_SQL).get(tenantId);
      if (!row) return [];
      return [
        settingsEntry({
          default_effect: row['default_effect'] as Effect,
          plan_id: row['plan_id'] as string,
          auto_remediation: row['auto_remediation'] === 1,
          max_devices: row['max_devices'] as number | null,
          max_events_per_s: row['max_events_per_s'] as number | null,
          retention_days: row['retention_days'] as number,
        }),
      ];
    }
    const live = LIVE[q.kind];
    let sql = live.sql;
    const params: unknown[] = [tenantId];
    if (q.by === 'key') {
      const parts = live.key.length === 2 ? q.value.split('\u0000') : [q.value];
      if (parts.length !== live.key.length) return [];
      sql += live.key.map((c) => ` AND ${c} = ?`).join('');
      params.push(...parts);
    } else if (q.by === 'ref1' || q.by === 'ref2') {
      const column = q.by === 'ref1' ? live.ref1 : live.ref2;
      if (column === null) return [];
      sql += ` AND ${column} = ?`;
      params.push(q.value);
    }
    return this.#stmt<LiveRow>(sql).all(...params).map((row) => toEntry(q.kind as Exclude<HistoryKind, 'settings'>, row));
  }

  /** Open history entries of a scope. */
  open(tenantId: string, q: ScopeQuery): HistoryEntry[] {
    // By reference: the partial index of open entries, named because without statistics the
    // planner prefers the primary key's (tenant_id, kind) prefix, i.e. every entry of the kind.
    const from = q.by === 'ref1' || q.by === 'ref2' ? `policy_history INDEXED BY policy_history_open_${q.by}` : 'policy_history';
    let sql = `SELECT ${HISTORY_COLUMNS} FROM ${from} WHERE tenant_id = ? AND kind = ? AND valid_to IS NULL`;
    const params: unknown[] = [tenantId, q.kind];
    if (q.by !== 'all') {
      sql += ` AND ${q.by} = ?`;
      params.push(q.value);
    }
    return this.#stmt<HistoryEntry>(sql).all(...params);
  }

  /**
   * Records `version` of the tenant: what the touched scopes changed since the open entries, as
   * closed and opened intervals, plus the version's row. Runs inside the bumping transaction.
   */
  record(tenantId: string, version: number, touches: readonly PolicyTouch[], now: number, meta: VersionMeta = {}): void {
    const current = new Map<string, HistoryEntry>();
    const open = new Map<string, HistoryEntry>();
    for (const q of scopesOfAll(touches)) {
      for (const e of this.current(tenantId, q)) current.set(entryId(e), e);
      for (const e of this.open(tenantId, q)) open.set(entryId(e), e);
    }
    const missing = missingKeys(current, open);
    for (const k of missing.current) for (const e of this.current(tenantId, { kind: k.kind, by: 'key', value: k.key })) current.set(entryId(e), e);
    for (const k of missing.open) for (const e of this.open(tenantId, { kind: k.kind, by: 'key', value: k.key })) open.set(entryId(e), e);
    const diff = diffEntries(current, open);
    for (const c of diff.close) this.#close.run(version, tenantId, c.kind, c.key);
    for (const e of diff.open) this.#insert.run(tenantId, e.kind, e.key, version, e.ref1, e.ref2, e.content, e.info);
    this.versionRow(tenantId, version, now, diff.changes.length, JSON.stringify(diff.changes.slice(0, MAX_LISTED_CHANGES)), meta);
  }

  /** A version that changed nothing of its own (an earlier bump of the same transaction). */
  versionRow(tenantId: string, version: number, now: number, count: number, changes: string, meta: VersionMeta): void {
    const actor = meta.actor ?? null;
    this.#insertVersion.run(tenantId, version, now, count, changes, meta.restored_from ?? null, actor?.kind ?? null, actor?.id ?? null, actor?.label ?? null);
  }

  /** Starts the tenant's history at its current version (tenant creation, or migration 6). */
  baseline(tenantId: string, now: number): void {
    const row = this.#versionOf.get(tenantId);
    if (!row) return;
    this.record(tenantId, row.policy_version, [{ kind: 'all' }], now);
  }
}
