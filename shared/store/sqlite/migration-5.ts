/**
 * Migration 5: the alert workflow, unique natural keys, and the usage indexes of filtered reads.
 *
 * Schema notes (why, not what):
 * - alert workflow columns are added in place (nullable, no default needed); each step is also
 *   kept in alert_events, like command_events, since an alert's fields only hold the latest.
 * - name_key / email_key hold the normalised natural key (rules/names.ts). They are computed in
 *   JavaScript, not SQL: SQLite's lower() and NOCASE fold ASCII only, and the MongoDB adapter
 *   must agree byte for byte. Existing duplicates are renamed (or, for e-mails, cleared) before
 *   the unique indexes are built, each change recorded in the tenant's audit trail.
 * - usage gets one index per filter people use with a time bound: (tenant, device|user|tower|
 *   effect, ts). Each secondary index costs every insert on the hot path (measured and reported
 *   with this change); they turn filtered pages from a walk of the tenant's rows into an index
 *   range, and (tenant, effect, ts) counts the dashboard's time window without the table.
 */
import { createIdFactory } from '../../ids.js';
import { dedupeAuditEntry, dedupeEmails, dedupeNames, emailKey, nameKey, type EmailRow, type NamedRow } from '../rules/names.js';
import type { AuditInput } from '../port.js';
import type { Db } from './context.js';
import type { Migration } from './migrations.js';

const AUDIT_INSERT = `INSERT INTO audit_records (id, tenant_id, actor_kind, actor_id, actor_label, action, resource_type,
  resource_id, method, path, status_code, ip, user_agent, before_json, after_json, at)
  VALUES (@id, @tenant_id, @actor_kind, @actor_id, @actor_label, @action, @resource_type, @resource_id, @method, @path,
  @status_code, @ip, @user_agent, @before_json, @after_json, @at)`;

function recordAudit(db: Db, newId: () => string, entry: AuditInput): void {
  const { before, after, ...rest } = entry;
  db.prepare(AUDIT_INSERT).run({ ...rest, id: newId(), before_json: JSON.stringify(before), after_json: JSON.stringify(after) });
}

function uniqueNames(db: Db, table: 'roles' | 'policies', now: number, newId: () => string): void {
  const rows = db.prepare<[], NamedRow>(`SELECT id, tenant_id, name, created_at FROM ${table}`).all();
  const rename = db.prepare<[string, number, string]>(`UPDATE ${table} SET name = ?, updated_at = ? WHERE id = ?`);
  for (const { row, name } of dedupeNames(rows)) {
    rename.run(name, now, row.id);
    recordAudit(db, newId, dedupeAuditEntry(table === 'roles' ? 'role' : 'policy', row, { name: row.name }, { name }, now));
  }
  const setKey = db.prepare<[string, string]>(`UPDATE ${table} SET name_key = ? WHERE id = ?`);
  for (const row of db.prepare<[], { id: string; name: string }>(`SELECT id, name FROM ${table}`).all()) setKey.run(nameKey(row.name), row.id);
  db.exec(`CREATE UNIQUE INDEX ${table}_name_key ON ${table} (tenant_id, name_key)`);
}

function uniqueEmails(db: Db, now: number, newId: () => string): void {
  const rows = db.prepare<[], EmailRow>('SELECT id, tenant_id, email, created_at FROM users WHERE email IS NOT NULL').all();
  const clear = db.prepare<[number, string]>('UPDATE users SET email = NULL, updated_at = ? WHERE id = ?');
  for (const row of dedupeEmails(rows)) {
    clear.run(now, row.id);
    recordAudit(db, newId, dedupeAuditEntry('user', row, { email: row.email }, { email: null }, now));
  }
  const setKey = db.prepare<[string | null, string]>('UPDATE users SET email_key = ? WHERE id = ?');
  for (const row of db.prepare<[], { id: string; email: string | null }>('SELECT id, email FROM users').all()) {
    setKey.run(emailKey(row.email), row.id);
  }
  // NULL keys are distinct in a UNIQUE index: any number of users may have no e-mail.
  db.exec('CREATE UNIQUE INDEX users_email_key ON users (tenant_id, email_key)');
}

export const MIGRATION_5: Migration = {
  version: 5,
  name: 'alert workflow, unique names, usage filter indexes',
  sql: `
ALTER TABLE alerts ADD COLUMN acknowledged_by TEXT;
ALTER TABLE alerts ADD COLUMN acknowledged_at INTEGER;
ALTER TABLE alerts ADD COLUMN assigned_to TEXT;
ALTER TABLE alerts ADD COLUMN assigned_at INTEGER;
ALTER TABLE alerts ADD COLUMN assigned_by TEXT;
ALTER TABLE alerts ADD COLUMN resolved_by TEXT;
ALTER TABLE alerts ADD COLUMN resolved_at INTEGER;
ALTER TABLE alerts ADD COLUMN note TEXT;
CREATE INDEX alerts_assignee ON alerts (tenant_id, assigned_to, id);

CREATE TABLE alert_events (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  alert_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('acknowledged', 'assigned', 'unassigned', 'resolved')),
  at INTEGER NOT NULL,
  actor_id TEXT,
  assignee TEXT,
  note TEXT,
  FOREIGN KEY (tenant_id, alert_id) REFERENCES alerts (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX alert_events_alert ON alert_events (tenant_id, alert_id, id);

ALTER TABLE roles ADD COLUMN name_key TEXT;
ALTER TABLE policies ADD COLUMN name_key TEXT;
ALTER TABLE users ADD COLUMN email_key TEXT;

CREATE INDEX usage_device_ts ON usage (tenant_id, device_id, ts);
CREATE INDEX usage_user_ts ON usage (tenant_id, user_id, ts);
CREATE INDEX usage_tower_ts ON usage (tenant_id, tower_id, ts);
CREATE INDEX usage_effect_ts ON usage (tenant_id, effect, ts);
`,
  seed(db, now) {
    const newId = createIdFactory(() => now);
    uniqueNames(db, 'roles', now, newId);
    uniqueNames(db, 'policies', now, newId);
    uniqueEmails(db, now, newId);
  },
};
