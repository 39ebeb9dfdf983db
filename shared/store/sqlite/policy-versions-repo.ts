/**
 * Policy versions of a tenant (port: policyVersions): the version rows, any version's content
 * rebuilt from the interval history, restore, and what the history costs.
 */
import { contentFromSnapshot, type PolicyContent } from '../../policy/content.js';
import type { AuditActorKind } from '../../domain.js';
import type { PolicyVersionInfo, Store } from '../port.js';
import {
  contentOfEntries,
  decodeVersionCursor,
  encodeVersionCursor,
  versionPageLimit,
  type HistoryChange,
  type HistoryEntry,
} from '../rules/policy-history.js';
import { nameKey } from '../rules/names.js';
import { isEmptyPlan, planRestore, restoredNameTaken, type RestorePlan } from '../rules/policy-restore.js';
import type { SqliteContext, Stmt } from './context.js';
import { insertOrConflict, limitClause } from './context.js';
import { toJson } from './json-column.js';
import type { SnapshotReader } from './policy-repos.js';

interface VersionRow {
  version: number;
  created_at: number;
  change_count: number;
  changes: string;
  restored_from: number | null;
  actor_kind: AuditActorKind | null;
  actor_id: string | null;
  actor_label: string | null;
}

const VERSION_COLUMNS = 'version, created_at, change_count, changes, restored_from, actor_kind, actor_id, actor_label';

function toInfo(r: VersionRow): PolicyVersionInfo {
  return {
    version: r.version,
    created_at: r.created_at,
    change_count: r.change_count,
    changes: JSON.parse(r.changes) as HistoryChange[],
    restored_from: r.restored_from,
    actor: r.actor_kind === null ? null : { kind: r.actor_kind, id: r.actor_id, label: r.actor_label },
  };
}

export function createPolicyVersionsRepo(ctx: SqliteContext, snapshot: SnapshotReader): Store['policyVersions'] {
  const db = ctx.db;
  const getVersion: Stmt<[string, number], VersionRow> = db.prepare(
    `SELECT ${VERSION_COLUMNS} FROM policy_versions WHERE tenant_id = ? AND version = ?`,
  );
  // The page size is in the SQL (limitClause): one cached statement per size a client asks for.
  const listFirst = (limit: number): Stmt<[string], VersionRow> =>
    ctx.stmt(`SELECT ${VERSION_COLUMNS} FROM policy_versions WHERE tenant_id = ? ORDER BY version DESC ${limitClause(limit)}`);
  const listAfter = (limit: number): Stmt<[string, number], VersionRow> =>
    ctx.stmt(`SELECT ${VERSION_COLUMNS} FROM policy_versions WHERE tenant_id = ? AND version < ? ORDER BY version DESC ${limitClause(limit)}`);
  const entriesAt: Stmt<[string, number, number], HistoryEntry> = db.prepare(
    `SELECT kind, key, ref1, ref2, content, info FROM policy_history
     WHERE tenant_id = ? AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)`,
  );
  const storage: Stmt<[string], { entries: number; bytes: number | null }> = db.prepare(
    `SELECT count(*) AS entries,
            sum(length(key) + length(content) + coalesce(length(info), 0) + coalesce(length(ref1), 0) + coalesce(length(ref2), 0) + 16) AS bytes
     FROM policy_history WHERE tenant_id = ?`,
  );
  const versionStats: Stmt<[string], { versions: number; first: number | null }> = db.prepare(
    'SELECT count(*) AS versions, min(version) AS first FROM policy_versions WHERE tenant_id = ?',
  );
  const liveIds = (table: 'users' | 'roles'): Stmt<[string], string> =>
    db.prepare<[string], string>(`SELECT id FROM ${table} WHERE tenant_id = ?`).pluck();
  const userIds = liveIds('users');
  const roleIds = liveIds('roles');
  const apply = restoreStatements(ctx);

  const contentAt = (tenantId: string, version: number): PolicyContent | null =>
    ctx.read(() => {
      if (!getVersion.get(tenantId, version)) return null;
      return contentOfEntries(tenantId, version, entriesAt.all(tenantId, version, version));
    });

  return {
    async list(tenantId, opts) {
      const limit = versionPageLimit(opts?.limit);
      const after = decodeVersionCursor(opts?.cursor);
      const rows = after === null ? listFirst(limit + 1).all(tenantId) : listAfter(limit + 1).all(tenantId, after);
      const items = rows.slice(0, limit).map(toInfo);
      return { items, next_cursor: rows.length > limit ? encodeVersionCursor(items[items.length - 1]!.version) : null };
    },
    async get(tenantId, version) {
      const row = getVersion.get(tenantId, version);
      return row ? toInfo(row) : null;
    },
    async content(tenantId, version) {
      return contentAt(tenantId, version);
    },
    async restore(tenantId, version, actor) {
      const outcome = ctx.write((scope) => {
        const target = contentAt(tenantId, version);
        const snap = snapshot(tenantId);
        if (target === null || snap === null) return null;
        const current = contentFromSnapshot(snap);
        const plan = planRestore(current, target, { users: new Set(userIds.all(tenantId)), roles: new Set(roleIds.all(tenantId)) });
        if (isEmptyPlan(plan)) return { version: current.version, created: false, plan };
        apply(tenantId, plan);
        scope.bumpPolicy(tenantId, { kind: 'all' }, { restored_from: version, actor });
        return { version: current.version + 1, created: true, plan };
      });
      if (outcome === null) return null;
      const info = getVersion.get(tenantId, outcome.version);
      if (!info) return null;
      return { version: toInfo(info), created: outcome.created, not_restored: outcome.plan.not_restored };
    },
    async storage(tenantId) {
      const s = storage.get(tenantId);
      const v = versionStats.get(tenantId);
      return { versions: v?.versions ?? 0, first_version: v?.first ?? null, entries: s?.entries ?? 0, bytes: s?.bytes ?? 0 };
    },
  };
}

/** Applies a restore plan in the order rules/policy-restore.ts prescribes. */
function restoreStatements(ctx: SqliteContext): (tenantId: string, plan: RestorePlan) => void {
  const db = ctx.db;
  const deleteRule = db.prepare<[string, string]>('DELETE FROM rules WHERE tenant_id = ? AND id = ?');
  const removeRp = db.prepare<[string, string, string]>('DELETE FROM role_policies WHERE tenant_id = ? AND role_id = ? AND policy_id = ?');
  const removeUr = db.prepare<[string, string, string]>('DELETE FROM user_roles WHERE tenant_id = ? AND user_id = ? AND role_id = ?');
  const deletePolicy = db.prepare<[string, string]>('DELETE FROM policies WHERE tenant_id = ? AND id = ?');
  // With its natural key, as policies.create writes it: unique per tenant and found by name.
  const createPolicy = db.prepare<[string, string, string, string, string | null, string, number, number]>(
    'INSERT INTO policies (id, tenant_id, name, name_key, description, severity, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const updatePolicy = db.prepare<[string, number, string, string]>('UPDATE policies SET severity = ?, updated_at = ? WHERE tenant_id = ? AND id = ?');
  const createRule = db.prepare<[string, string, string, string | null, string, string, string, string | null, string | null, number, number]>(
    `INSERT INTO rules (id, tenant_id, policy_id, role_id, app, action, permission, remediation, escalation, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const updateRule = db.prepare<[string | null, string, string, string, string | null, string | null, number, string, string]>(
    `UPDATE rules SET role_id = ?, app = ?, action = ?, permission = ?, remediation = ?, escalation = ?, updated_at = ?
     WHERE tenant_id = ? AND id = ?`,
  );
  const addRp = db.prepare<[string, string, string, number]>(
    'INSERT INTO role_policies (tenant_id, role_id, policy_id, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
  );
  const addUr = db.prepare<[string, string, string, number]>(
    'INSERT INTO user_roles (tenant_id, user_id, role_id, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
  );
  const setOwner = db.prepare<[string | null, number, string, string]>('UPDATE devices SET user_id = ?, updated_at = ? WHERE tenant_id = ? AND id = ?');
  const setDefault = db.prepare<[string, number, string]>('UPDATE tenants SET default_effect = ?, updated_at = ? WHERE id = ?');

  return (t, plan) => {
    const now = ctx.now();
    for (const id of plan.rules.delete) deleteRule.run(t, id);
    for (const l of plan.role_policies.remove) removeRp.run(t, l.role_id, l.policy_id);
    for (const l of plan.user_roles.remove) removeUr.run(t, l.user_id, l.role_id);
    for (const id of plan.policies.delete) deletePolicy.run(t, id);
    for (const p of plan.policies.create) {
      insertOrConflict(() => createPolicy.run(p.id, t, p.name, nameKey(p.name), p.description, p.severity, now, now), 'name', restoredNameTaken(p));
    }
    for (const p of plan.policies.update) updatePolicy.run(p.severity, now, t, p.id);
    for (const r of plan.rules.create) {
      createRule.run(r.id, t, r.policy_id, r.role_id, r.app, r.action, r.permission, toJson(r.remediation), toJson(r.escalation), now, now);
    }
    for (const r of plan.rules.update) updateRule.run(r.role_id, r.app, r.action, r.permission, toJson(r.remediation), toJson(r.escalation), now, t, r.id);
    for (const l of plan.role_policies.add) addRp.run(t, l.role_id, l.policy_id, now);
    for (const l of plan.user_roles.add) addUr.run(t, l.user_id, l.role_id, now);
    for (const d of plan.device_owners) setOwner.run(d.user_id, now, t, d.id);
    if (plan.default_effect !== null) setDefault.run(plan.default_effect, now, t);
  };
}
