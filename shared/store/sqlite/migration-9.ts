/**
 * Migration 9: the ingest path's cost, measured (issue #10), and where a device was last seen.
 *
 * Schema notes (why, not what):
 * - usage loses its (tenant, device, ts) and (tenant, user, ts) indexes. Keys spread over every
 *   device or user put each inserted event in a different index page, so every event dirtied two
 *   more random pages in the WAL: measured 0.44 ms per 100-event commit without secondary indexes,
 *   3.8 ms with tower + effect + device, 6.1 ms with all four (16,000 events/s at most). Tower and
 *   effect stay (few distinct values: appends to a handful of pages, +0.5 ms). Device and user
 *   filters now read newest-first within a budget per page (usage-repo.ts `boundedScan`).
 * - device_presence keeps each device's latest tower by the time the cloud RECEIVED its events,
 *   so the "last seen" tower (where a manual remediation goes) cannot be chosen by a tower
 *   minting event ids or times in the future. Backfilled from usage by receive time.
 */
import type { Migration } from './migrations.js';

export const MIGRATION_9: Migration = {
  version: 9,
  name: 'usage without per-device/per-user indexes; device presence by receive time',
  sql: `
DROP INDEX IF EXISTS usage_device_ts;
DROP INDEX IF EXISTS usage_user_ts;
CREATE TABLE device_presence (
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  device_id TEXT NOT NULL,
  tower_id TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, device_id)
) STRICT, WITHOUT ROWID;
INSERT INTO device_presence (tenant_id, device_id, tower_id, received_at)
  SELECT tenant_id, device_id, tower_id, received_at FROM (
    SELECT tenant_id, device_id, tower_id, received_at,
           row_number() OVER (PARTITION BY tenant_id, device_id ORDER BY received_at DESC, id DESC) AS n
    FROM usage
  ) WHERE n = 1;
`,
};
