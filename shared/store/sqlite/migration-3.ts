/**
 * Migration 3: the audit log, tenant API keys, per-tenant audit retention.
 *
 * Schema notes (why, not what):
 * - tenants.audit_retention_days is added in place: ADD COLUMN may carry a CHECK and a constant
 *   default (no foreign key here), so existing tenants get 365 days without a table rebuild.
 * - audit_records.tenant_id is NULL for platform-level changes (tenants, towers, carriers, plans).
 *   A tenant's records cascade with the tenant, like everything else it owns: keeping them would
 *   mean keeping rows no tenant-scoped read can reach and no retention job would ever purge.
 *   Deleting a tenant is itself recorded at platform level (tenant_id NULL), so it outlives it.
 * - audit_records keeps no foreign key to actors or resources: it is history and must outlive them.
 * - before/after are named before_json/after_json: BEFORE and AFTER are SQL keywords.
 * - indexes all start with tenant_id (NULL included) to match the only reads: the tenant's
 *   newest-first list, one resource's history, and the retention purge by `at`.
 * - api_keys.secret_hash is UNIQUE: authentication finds a key by it, platform-wide. created_by
 *   is plain text (a console user may be deleted; the key and its history stay).
 */
import { DEFAULT_AUDIT_RETENTION_DAYS } from '../rules/defaults.js';
import type { Migration } from './migrations.js';

export const MIGRATION_3: Migration = {
  version: 3,
  name: 'audit log, api keys',
  sql: `
ALTER TABLE tenants ADD COLUMN audit_retention_days INTEGER NOT NULL DEFAULT ${DEFAULT_AUDIT_RETENTION_DAYS}
  CHECK (audit_retention_days > 0);

CREATE TABLE audit_records (
  id TEXT PRIMARY KEY,
  tenant_id TEXT REFERENCES tenants (id) ON DELETE CASCADE,
  actor_kind TEXT NOT NULL CHECK (actor_kind IN ('console_user', 'api_key', 'system')),
  actor_id TEXT,
  actor_label TEXT,
  action TEXT NOT NULL,
  resource_type TEXT NOT NULL,
  resource_id TEXT,
  method TEXT,
  path TEXT,
  status_code INTEGER,
  ip TEXT,
  user_agent TEXT,
  before_json TEXT CHECK (before_json IS NULL OR json_valid(before_json)),
  after_json TEXT CHECK (after_json IS NULL OR json_valid(after_json)),
  at INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_records_tenant ON audit_records (tenant_id, id);
CREATE INDEX audit_records_resource ON audit_records (tenant_id, resource_type, resource_id, id);
CREATE INDEX audit_records_at ON audit_records (tenant_id, at);

CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  prefix TEXT NOT NULL,
  scopes TEXT NOT NULL CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
  secret_hash TEXT NOT NULL UNIQUE,
  created_by TEXT,
  created_at INTEGER NOT NULL,
  last_used_at INTEGER,
  revoked_at INTEGER,
  expires_at INTEGER,
  UNIQUE (tenant_id, id)
) STRICT;
`,
};
