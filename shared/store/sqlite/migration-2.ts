/**
 * Migration 2: plans, per-rule remediation, the command lifecycle, webhooks.
 *
 * Schema notes (why, not what):
 * - tenants.plan_id is added with ALTER TABLE … REFERENCES and a non-NULL default, which SQLite
 *   allows only while foreign keys are off; the runner turns them off for this migration and runs
 *   `PRAGMA foreign_key_check` before commit (the procedure in sqlite.org/lang_altertable.html).
 * - plans are seeded by `seed` (not SQL) so their timestamps come from the injected clock.
 * - usage is rebuilt to admit reason 'blocked' (an active remediation decided): a CHECK cannot be
 *   altered in place. Same columns, same WITHOUT ROWID key, so the ingest path is unchanged.
 * - rules.remediation/escalation are JSON text; the API validates their shape, the store only
 *   refuses text that is not JSON at all.
 * - commands keep no foreign key to devices, rules or towers: like usage they are history.
 *   command_events and webhook_deliveries reference their parent through (tenant_id, id), so the
 *   database refuses a cross-tenant parent and deleting the parent deletes them.
 * - commands_open and webhook_deliveries_due are partial indexes: the dispatcher and the delivery
 *   worker scan only what is still in flight, however much history accumulates.
 */
import { SEED_PLANS, type SeedPlan } from '../rules/defaults.js';
import type { Migration } from './migrations.js';

type SeedRow = Omit<SeedPlan, 'auto_remediation'> & { auto_remediation: 0 | 1; now: number };

export const MIGRATION_2: Migration = {
  version: 2,
  name: 'plans, remediation, commands, webhooks',
  foreignKeysOff: true,
  sql: `
CREATE TABLE plans (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  auto_remediation INTEGER NOT NULL CHECK (auto_remediation IN (0, 1)),
  max_devices INTEGER CHECK (max_devices >= 0),
  max_events_per_s INTEGER CHECK (max_events_per_s >= 0),
  retention_days INTEGER NOT NULL CHECK (retention_days >= 1),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;

ALTER TABLE tenants ADD COLUMN plan_id TEXT NOT NULL DEFAULT 'free' REFERENCES plans (id);
CREATE INDEX tenants_plan ON tenants (plan_id);

ALTER TABLE rules ADD COLUMN remediation TEXT CHECK (remediation IS NULL OR json_valid(remediation));
ALTER TABLE rules ADD COLUMN escalation TEXT CHECK (escalation IS NULL OR json_valid(escalation));

CREATE TABLE usage_v2 (
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
  reason TEXT NOT NULL CHECK (reason IN ('rule', 'default', 'unknown_device', 'blocked')),
  rule_id TEXT,
  policy_id TEXT,
  policy_version INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;
INSERT INTO usage_v2 (tenant_id, id, tower_id, batch_id, device_id, user_id, app, action, bytes, ts,
  received_at, effect, reason, rule_id, policy_id, policy_version)
SELECT tenant_id, id, tower_id, batch_id, device_id, user_id, app, action, bytes, ts,
  received_at, effect, reason, rule_id, policy_id, policy_version
FROM usage ORDER BY tenant_id, id;
DROP TABLE usage;
ALTER TABLE usage_v2 RENAME TO usage;

CREATE TABLE commands (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  tower_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  type TEXT NOT NULL,
  app TEXT,
  duration_s INTEGER,
  reason TEXT,
  source TEXT NOT NULL CHECK (source IN ('auto', 'escalation', 'manual')),
  rule_id TEXT,
  issued_by TEXT,
  status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'applied', 'failed', 'expired')),
  attempts INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  delivered_at INTEGER,
  acked_at INTEGER,
  ack_reason TEXT,
  UNIQUE (tenant_id, id)
) STRICT;
CREATE INDEX commands_device ON commands (tenant_id, device_id, id);
CREATE INDEX commands_open ON commands (id) WHERE status IN ('pending', 'delivered');

CREATE TABLE command_events (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  command_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('pending', 'delivered', 'applied', 'failed', 'expired', 'published')),
  at INTEGER NOT NULL,
  detail TEXT,
  FOREIGN KEY (tenant_id, command_id) REFERENCES commands (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX command_events_command ON command_events (tenant_id, command_id, id);

CREATE TABLE webhooks (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  url TEXT NOT NULL,
  events TEXT NOT NULL CHECK (json_valid(events)),
  secret TEXT NOT NULL,
  enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (tenant_id, id)
) STRICT;

CREATE TABLE webhook_deliveries (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  webhook_id TEXT NOT NULL,
  event TEXT NOT NULL,
  body TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts INTEGER NOT NULL,
  next_attempt_at INTEGER,
  last_status_code INTEGER,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (tenant_id, webhook_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id) WHERE status = 'pending';
`,
  seed(db, now) {
    const insert = db.prepare<[SeedRow]>(
      `INSERT INTO plans (id, name, auto_remediation, max_devices, max_events_per_s, retention_days, created_at, updated_at)
       VALUES (@id, @name, @auto_remediation, @max_devices, @max_events_per_s, @retention_days, @now, @now)`,
    );
    for (const plan of SEED_PLANS) insert.run({ ...plan, auto_remediation: plan.auto_remediation ? 1 : 0, now });
  },
};
