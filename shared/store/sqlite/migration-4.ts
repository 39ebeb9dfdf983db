/**
 * Migration 4: console account lifecycle (disable, session version) and e-mails unique per tenant.
 *
 * Schema notes (why, not what):
 * - console_users is rebuilt: the platform-wide UNIQUE (email) of migration 1 is a table
 *   constraint, which SQLite cannot drop in place. Foreign keys are off for the rebuild
 *   (refresh_tokens references the table by name, and keeps doing so after the rename); the runner
 *   checks them before commit.
 * - an e-mail is unique per tenant (console_users_tenant_email) and among operators
 *   (console_users_operator_email, partial: NULL tenant ids are distinct in a plain UNIQUE), so a
 *   tenant reusing another tenant's e-mail meets no constraint that would reveal it.
 * - console_users_email serves sign-in, which looks an e-mail up across every tenant.
 * - session_version starts at 0 for existing accounts, the version their unversioned tokens are
 *   read as.
 */
import type { Migration } from './migrations.js';

export const MIGRATION_4: Migration = {
  version: 4,
  name: 'console account lifecycle, e-mails unique per tenant',
  foreignKeysOff: true,
  sql: `
CREATE TABLE console_users_v4 (
  id TEXT PRIMARY KEY,
  tenant_id TEXT REFERENCES tenants (id) ON DELETE CASCADE,
  email TEXT NOT NULL,
  console_role TEXT NOT NULL CHECK (console_role IN ('operator', 'owner', 'admin', 'analyst', 'viewer')),
  password_hash TEXT NOT NULL,
  disabled_at INTEGER,
  session_version INTEGER NOT NULL DEFAULT 0 CHECK (session_version >= 0),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;
INSERT INTO console_users_v4 (id, tenant_id, email, console_role, password_hash, created_at, updated_at)
  SELECT id, tenant_id, email, console_role, password_hash, created_at, updated_at FROM console_users;
DROP TABLE console_users;
ALTER TABLE console_users_v4 RENAME TO console_users;
CREATE UNIQUE INDEX console_users_tenant_email ON console_users (tenant_id, email) WHERE tenant_id IS NOT NULL;
CREATE UNIQUE INDEX console_users_operator_email ON console_users (email) WHERE tenant_id IS NULL;
CREATE INDEX console_users_email ON console_users (email);
CREATE INDEX console_users_tenant ON console_users (tenant_id, id);
`,
};
