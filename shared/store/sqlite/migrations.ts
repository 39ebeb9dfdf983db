/**
 * Numbered schema migrations. Applied ones are recorded in `schema_migrations`; each runs in its
 * own IMMEDIATE transaction so two processes opening the same file cannot both apply it.
 *
 * Schema notes (why, not what):
 * - tenant-owned parents carry UNIQUE (tenant_id, id) so children can use composite foreign keys
 *   (tenant_id, x_id): the database itself refuses a reference to another tenant's row.
 * - every tenant-scoped index starts with tenant_id: all reads are tenant-scoped.
 * - devices.user_id has no ON DELETE action: a composite SET NULL would also null tenant_id, so the
 *   repository nulls user_id itself inside the user-delete transaction.
 * - usage/alerts/discovered keep no foreign key to devices, rules or towers: they are history and
 *   must outlive (or predate) the rows they mention.
 * - usage carries only its primary key (tenant_id, id): ingest speed wins over filtered reads,
 *   which walk the tenant's rows newest-first and stop at the page limit.
 * - STRICT tables so a wrongly typed value fails loudly instead of being stored as text.
 */
import { createError } from '../../errors.js';
import type { Db } from './context.js';
import { MIGRATION_2 } from './migration-2.js';
import { MIGRATION_3 } from './migration-3.js';
import { MIGRATION_4 } from './migration-4.js';
import { MIGRATION_5 } from './migration-5.js';
import { MIGRATION_6 } from './migration-6.js';
import { MIGRATION_8 } from './migration-8.js';
import { MIGRATION_9 } from './migration-9.js';
import { MIGRATION_10 } from './migration-10.js';
import { MIGRATION_11 } from './migration-11.js';
import { MIGRATION_12 } from './migration-12.js';
import { MIGRATION_13 } from './migration-13.js';
import { MIGRATION_14 } from './migration-14.js';
import { MIGRATION_15 } from './migration-15.js';
import { MIGRATION_7 } from './migration-7.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** Rows the schema needs (e.g. seed plans), written after `sql` in the same transaction. */
  seed?: (db: Db, now: number) => void;
  /**
   * Run with foreign keys off, as SQLite requires for some ALTER TABLE forms; the foreign keys
   * are checked before commit, so the migration still cannot leave a dangling reference.
   */
  foreignKeysOff?: boolean;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE tenants (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  default_effect TEXT NOT NULL CHECK (default_effect IN ('allow', 'deny')),
  policy_version INTEGER NOT NULL,
  alert_window_s INTEGER NOT NULL CHECK (alert_window_s >= 0),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE console_users (
  id TEXT PRIMARY KEY,
  tenant_id TEXT REFERENCES tenants (id) ON DELETE CASCADE,
  email TEXT NOT NULL UNIQUE,
  console_role TEXT NOT NULL CHECK (console_role IN ('operator', 'owner', 'admin', 'analyst', 'viewer')),
  password_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX console_users_tenant ON console_users (tenant_id, id);

CREATE TABLE refresh_tokens (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
  family_id TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  expires_at INTEGER NOT NULL,
  used_at INTEGER,
  revoked_at INTEGER
) STRICT;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE users (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  email TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (tenant_id, id)
) STRICT;

CREATE TABLE roles (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  description TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (tenant_id, id)
) STRICT;

CREATE TABLE policies (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  description TEXT,
  severity TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (tenant_id, id)
) STRICT;

CREATE TABLE rules (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  policy_id TEXT NOT NULL,
  role_id TEXT,
  app TEXT NOT NULL,
  action TEXT NOT NULL,
  permission TEXT NOT NULL CHECK (permission IN ('allow', 'deny')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (tenant_id, id),
  FOREIGN KEY (tenant_id, policy_id) REFERENCES policies (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX rules_policy ON rules (tenant_id, policy_id);
CREATE INDEX rules_role ON rules (tenant_id, role_id);

CREATE TABLE apps (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (tenant_id, id),
  UNIQUE (tenant_id, key)
) STRICT;

CREATE TABLE actions (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (tenant_id, id),
  UNIQUE (tenant_id, key)
) STRICT;

CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  user_id TEXT,
  name TEXT NOT NULL,
  os TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (tenant_id, id),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
) STRICT;
CREATE INDEX devices_user ON devices (tenant_id, user_id);

CREATE TABLE user_roles (
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  user_id TEXT NOT NULL,
  role_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, user_id, role_id),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX user_roles_role ON user_roles (tenant_id, role_id, user_id);

CREATE TABLE role_policies (
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  role_id TEXT NOT NULL,
  policy_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, role_id, policy_id),
  FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, policy_id) REFERENCES policies (tenant_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX role_policies_policy ON role_policies (tenant_id, policy_id, role_id);

CREATE TABLE towers (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  lat REAL,
  lon REAL,
  radius_m REAL,
  state TEXT NOT NULL CHECK (state IN ('online', 'offline', 'unknown')),
  agent_version TEXT,
  last_seen INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE carriers (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  mcc_mnc TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE tower_carriers (
  tower_id TEXT NOT NULL REFERENCES towers (id) ON DELETE CASCADE,
  carrier_id TEXT NOT NULL REFERENCES carriers (id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tower_id, carrier_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX tower_carriers_carrier ON tower_carriers (carrier_id, tower_id);

CREATE TABLE tower_credentials (
  id TEXT PRIMARY KEY,
  tower_id TEXT NOT NULL REFERENCES towers (id) ON DELETE CASCADE,
  secret_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER,
  last_used_at INTEGER
) STRICT;
CREATE INDEX tower_credentials_tower ON tower_credentials (tower_id, id);

CREATE TABLE usage (
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id TEXT NOT NULL,
  tower_id TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  user_id TEXT,
  app TEXT NOT NULL,
  action TEXT NOT NULL,
  bytes INTEGER,
  ts INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  effect TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
  reason TEXT NOT NULL CHECK (reason IN ('rule', 'default', 'unknown_device')),
  rule_id TEXT,
  policy_id TEXT,
  policy_version INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;
-- Running totals and tower sightings are folded per batch instead of indexing usage: each secondary
-- index on usage dirties one more random page per event, measured at ~0.3 ms per 100-event batch.
CREATE TABLE usage_counters (
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  effect TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
  count INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, effect)
) STRICT, WITHOUT ROWID;

CREATE TABLE tenant_towers (
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  tower_id TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, tower_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  device_id TEXT NOT NULL,
  user_id TEXT,
  rule_id TEXT NOT NULL,
  policy_id TEXT NOT NULL,
  app TEXT NOT NULL,
  action TEXT NOT NULL,
  tower_id TEXT NOT NULL,
  severity TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
  count INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
  UNIQUE (tenant_id, id)
) STRICT;
CREATE INDEX alerts_dedup ON alerts (tenant_id, device_id, rule_id, status, last_seen);
CREATE INDEX alerts_status ON alerts (tenant_id, status, id);

-- tenant_id NULL = reported on a tower's discovery topic, not yet claimed by any tenant.
CREATE TABLE discovered_devices (
  id TEXT PRIMARY KEY,
  tenant_id TEXT REFERENCES tenants (id) ON DELETE CASCADE,
  device_id TEXT NOT NULL,
  tower_id TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  count INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX discovered_tenant_device ON discovered_devices (tenant_id, device_id) WHERE tenant_id IS NOT NULL;
CREATE UNIQUE INDEX discovered_platform_device ON discovered_devices (device_id) WHERE tenant_id IS NULL;
CREATE INDEX discovered_tenant ON discovered_devices (tenant_id, id);

-- Message ids already processed, so an at-least-once redelivery is applied once.
CREATE TABLE processed_messages (
  kind TEXT NOT NULL,
  source_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  processed_at INTEGER NOT NULL,
  PRIMARY KEY (kind, source_id, message_id)
) STRICT, WITHOUT ROWID;
`,
  },
  MIGRATION_2,
  MIGRATION_3,
  MIGRATION_4,
  MIGRATION_5,
  MIGRATION_6,
  MIGRATION_7,
  MIGRATION_8,
  MIGRATION_9,
  MIGRATION_10,
  MIGRATION_11,
  MIGRATION_12,
  MIGRATION_13,
  MIGRATION_14,
  MIGRATION_15,
];

export interface MigrationReport {
  applied: number[];
  current: number;
}

export function runMigrations(db: Db, now: () => number, migrations: readonly Migration[] = MIGRATIONS): MigrationReport {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  ) STRICT`);
  const appliedStmt = db.prepare<[], { version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  const record = db.prepare<[number, string, number]>(
    'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
  );
  const latestKnown = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  const applied: number[] = [];

  const applyOne = db.transaction((migration: Migration) => {
    // Re-read under the write lock: another process may have applied it since we looked.
    const done = new Set(appliedStmt.all().map((r) => r.version));
    if (done.has(migration.version)) return;
    const at = now();
    db.exec(migration.sql);
    migration.seed?.(db, at);
    if (migration.foreignKeysOff) requireForeignKeysIntact(db, migration);
    record.run(migration.version, migration.name, at);
    applied.push(migration.version);
  });

  const existing = appliedStmt.all().map((r) => r.version);
  const newest = existing.reduce((max, v) => Math.max(max, v), 0);
  if (newest > latestKnown) {
    throw createError(
      'UNAVAILABLE',
      `database schema version ${newest} is newer than this build (${latestKnown}); upgrade EdgePlane`,
    );
  }
  const done = new Set(existing);
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (done.has(migration.version)) continue;
    if (migration.foreignKeysOff) withForeignKeysOff(db, () => applyOne.immediate(migration));
    else applyOne.immediate(migration);
  }
  return { applied, current: Math.max(newest, ...applied, 0) };
}

/** PRAGMA foreign_keys is a no-op inside a transaction, so it is switched around one. */
function withForeignKeysOff(db: Db, fn: () => void): void {
  const wasOn = db.pragma('foreign_keys', { simple: true }) === 1;
  db.pragma('foreign_keys = OFF');
  try {
    fn();
  } finally {
    if (wasOn) db.pragma('foreign_keys = ON');
  }
}

function requireForeignKeysIntact(db: Db, migration: Migration): void {
  const broken = db.pragma('foreign_key_check') as unknown[];
  if (broken.length > 0) {
    throw createError(
      'INTERNAL',
      `migration ${migration.version} (${migration.name}) would leave ${broken.length} dangling foreign key(s)`,
    );
  }
}
