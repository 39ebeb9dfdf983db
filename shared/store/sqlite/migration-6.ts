/**
 * Migration 6: policy version history, version rows and stored policy tests (issue #12).
 *
 * Schema notes (why, not what):
 * - policy_history holds each decision input over a version interval [valid_from, valid_to)
 *   (rules/policy-history.ts): a version costs the rows it changed, not a copy of the tenant.
 *   WITHOUT ROWID with the tenant leading the key: reading a version walks one tenant's range.
 * - at most one open interval per input (policy_history_open, partial on valid_to IS NULL); the
 *   ref indexes serve the scopes a change re-examines ("the links of role R", "user U's devices")
 *   and cover only open entries, so closed history never slows a write.
 * - no foreign keys to rules, devices…: history must outlive what it describes.
 * - tenants older than this migration get their history started at their current version
 *   (`seed`); earlier versions have no content and are reported as such.
 * - policy_tests.device_id/user_id are free text on purpose: a test may name a device that is not
 *   registered yet (expecting unknown_device) or a user about to be created.
 */
import type { Migration } from './migrations.js';
import { SqliteHistory } from './policy-history.js';

export const MIGRATION_6: Migration = {
  version: 6,
  name: 'policy version history and policy tests',
  sql: `
CREATE TABLE policy_history (
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('settings', 'policy', 'rule', 'role_policy', 'user_role', 'device')),
  key TEXT NOT NULL,
  valid_from INTEGER NOT NULL,
  valid_to INTEGER,
  ref1 TEXT,
  ref2 TEXT,
  content TEXT NOT NULL,
  info TEXT,
  PRIMARY KEY (tenant_id, kind, key, valid_from),
  CHECK (valid_to IS NULL OR valid_to > valid_from)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX policy_history_open ON policy_history (tenant_id, kind, key) WHERE valid_to IS NULL;
CREATE INDEX policy_history_open_ref1 ON policy_history (tenant_id, kind, ref1) WHERE valid_to IS NULL AND ref1 IS NOT NULL;
CREATE INDEX policy_history_open_ref2 ON policy_history (tenant_id, kind, ref2) WHERE valid_to IS NULL AND ref2 IS NOT NULL;

CREATE TABLE policy_versions (
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  change_count INTEGER NOT NULL CHECK (change_count >= 0),
  changes TEXT NOT NULL,
  restored_from INTEGER,
  actor_kind TEXT,
  actor_id TEXT,
  actor_label TEXT,
  PRIMARY KEY (tenant_id, version)
) STRICT, WITHOUT ROWID;

CREATE TABLE policy_tests (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  device_id TEXT,
  user_id TEXT,
  app TEXT NOT NULL,
  action TEXT NOT NULL,
  expected_effect TEXT NOT NULL CHECK (expected_effect IN ('allow', 'deny')),
  expected_rule_id TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (tenant_id, id),
  CHECK ((device_id IS NULL) <> (user_id IS NULL))
) STRICT;
CREATE INDEX policy_tests_tenant ON policy_tests (tenant_id, id);
`,
  seed(db, now) {
    const history = new SqliteHistory(db);
    const tenants = db.prepare<[], { id: string }>('SELECT id FROM tenants ORDER BY id').all();
    for (const { id } of tenants) history.baseline(id, now);
  },
};
