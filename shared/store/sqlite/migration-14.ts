/**
 * Migration 14: a device session is one per (tenant, tower, NAS, Acct-Session-Id).
 *
 * Schema notes (why, not what):
 * - an Acct-Session-Id is the NAS's own name for a session, and two NASes of one tower number
 *   theirs alike ("00000001", a counter since boot): keyed without the NAS, their sessions were
 *   folded into one, and one NAS's Stop ended the other's session.
 * - device_sessions is rebuilt: UNIQUE (tenant_id, tower_id, session_id) is a table constraint,
 *   which SQLite cannot drop in place. No table references device_sessions.
 * - nas is the RADIUS client's id; '' for sessions whose source names no NAS (a tower's own
 *   reports) and for every session recorded before this migration.
 */
import type { Migration } from './migrations.js';

export const MIGRATION_14: Migration = {
  version: 14,
  name: 'device sessions per NAS',
  sql: `
CREATE TABLE device_sessions_v14 (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  tower_id TEXT NOT NULL,
  nas TEXT NOT NULL DEFAULT '',
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
  UNIQUE (tenant_id, tower_id, nas, session_id)
) STRICT;
INSERT INTO device_sessions_v14 (id, tenant_id, tower_id, device_id, session_id, status, started_at, last_update_at, stopped_at,
    input_octets, output_octets, session_time_s, terminate_cause, records)
  SELECT id, tenant_id, tower_id, device_id, session_id, status, started_at, last_update_at, stopped_at,
    input_octets, output_octets, session_time_s, terminate_cause, records FROM device_sessions;
DROP TABLE device_sessions;
ALTER TABLE device_sessions_v14 RENAME TO device_sessions;
CREATE INDEX device_sessions_tenant ON device_sessions (tenant_id, id);
CREATE INDEX device_sessions_device ON device_sessions (tenant_id, device_id, id);
CREATE INDEX device_sessions_tower ON device_sessions (tenant_id, tower_id, id);
CREATE INDEX device_sessions_retention ON device_sessions (tenant_id, status, last_update_at);
-- A NAS restart (Accounting-On) stops what is active at its tower, whichever tenants it serves.
CREATE INDEX device_sessions_tower_active ON device_sessions (tower_id, status);
`,
};
