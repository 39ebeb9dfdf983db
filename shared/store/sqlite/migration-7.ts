/**
 * Migration 7: carrier feeds and credentials, device metadata, RADIUS clients and device sessions.
 *
 * Schema notes (why, not what):
 * - towers.managed_by names the carrier whose feed owns the tower (rules/carrier-feeds.ts); SET
 *   NULL when the carrier is deleted hands the tower back to operators. The polygon lives in its
 *   own table: it is only read by the coverage view, never with every tower row.
 * - device_metadata is platform-level and keyed (device, carrier): a carrier overwrites only what
 *   it said itself; readers take the newest. No foreign key to devices: carriers describe devices
 *   whether or not (yet) registered or discovered, and must not learn which.
 * - radius_clients.secret is stored as is, like webhook secrets: the Request Authenticator is an
 *   MD5 keyed with the secret itself, so a hash could not verify it.
 * - accounting_records keeps only (tower, key): enough to recognise a retransmission. The key is
 *   tower-scoped so one NAS cannot shadow another's records.
 * - session_totals are folded per record (like usage_counters) instead of summing sessions per read.
 */
import type { Migration } from './migrations.js';

export const MIGRATION_7: Migration = {
  version: 7,
  name: 'carrier feeds, device metadata, RADIUS accounting sessions',
  sql: `
ALTER TABLE towers ADD COLUMN managed_by TEXT REFERENCES carriers (id) ON DELETE SET NULL;
ALTER TABLE towers ADD COLUMN retired_at INTEGER;
CREATE INDEX towers_managed_by ON towers (managed_by, id);

CREATE TABLE tower_polygons (
  tower_id TEXT PRIMARY KEY REFERENCES towers (id) ON DELETE CASCADE,
  polygon TEXT NOT NULL
) STRICT;

CREATE TABLE carrier_credentials (
  id TEXT PRIMARY KEY,
  carrier_id TEXT NOT NULL REFERENCES carriers (id) ON DELETE CASCADE,
  secret_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER,
  last_used_at INTEGER
) STRICT;
CREATE INDEX carrier_credentials_carrier ON carrier_credentials (carrier_id, id);

CREATE TABLE device_metadata (
  device_id TEXT NOT NULL,
  carrier_id TEXT NOT NULL REFERENCES carriers (id) ON DELETE CASCADE,
  os TEXT,
  os_version TEXT,
  model TEXT,
  device_type TEXT CHECK (device_type IN ('phone', 'tablet', 'laptop', 'router', 'iot', 'wearable', 'other')),
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (device_id, carrier_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE radius_clients (
  id TEXT PRIMARY KEY,
  nas_identifier TEXT NOT NULL UNIQUE,
  tower_id TEXT NOT NULL REFERENCES towers (id) ON DELETE CASCADE,
  secret TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX radius_clients_tower ON radius_clients (tower_id, id);

CREATE TABLE device_sessions (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  tower_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'stopped')),
  started_at INTEGER,
  last_update_at INTEGER NOT NULL,
  stopped_at INTEGER,
  input_octets INTEGER NOT NULL,
  output_octets INTEGER NOT NULL,
  session_time_s INTEGER,
  terminate_cause TEXT,
  records INTEGER NOT NULL,
  UNIQUE (tenant_id, tower_id, session_id)
) STRICT;
CREATE INDEX device_sessions_tenant ON device_sessions (tenant_id, id);
CREATE INDEX device_sessions_device ON device_sessions (tenant_id, device_id, id);
CREATE INDEX device_sessions_tower ON device_sessions (tenant_id, tower_id, id);
CREATE INDEX device_sessions_retention ON device_sessions (tenant_id, status, last_update_at);
-- A NAS restart (Accounting-On) stops what is active at its tower, whichever tenants it serves.
CREATE INDEX device_sessions_tower_active ON device_sessions (tower_id, status);

CREATE TABLE accounting_records (
  tower_id TEXT NOT NULL,
  key TEXT NOT NULL,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  processed_at INTEGER NOT NULL,
  PRIMARY KEY (tower_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX accounting_records_tenant ON accounting_records (tenant_id, processed_at);

CREATE TABLE session_totals (
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  dim TEXT NOT NULL CHECK (dim IN ('device', 'tower')),
  key TEXT NOT NULL,
  sessions INTEGER NOT NULL,
  active INTEGER NOT NULL,
  input_octets INTEGER NOT NULL,
  output_octets INTEGER NOT NULL,
  last_update_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, dim, key)
) STRICT, WITHOUT ROWID;
`,
};
