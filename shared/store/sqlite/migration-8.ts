/**
 * Migration 8: the tower's local decision on usage records (issue #11: edge autonomy).
 *
 * Schema notes (why, not what):
 * - local_effect / local_policy_version are set when the tower decided the event itself (uplink
 *   down, or the cloud's answer later than its deadline); the row's effect stays the cloud's.
 * - disagreement is derived (rules/usage-batch.ts: localFields) and stored, so "where did the
 *   edge decide otherwise" is an index read: the partial index holds only those rows, so the
 *   ordinary insert path pays nothing for it.
 * - numbered 8 next to 6 on purpose: 7 is another change developed in parallel; migrations are
 *   independent and applied in order of number, whichever existed first.
 */
import type { Migration } from './migrations.js';

export const MIGRATION_8: Migration = {
  version: 8,
  name: 'local decisions and disagreements on usage',
  sql: `
ALTER TABLE usage ADD COLUMN local_effect TEXT CHECK (local_effect IN ('allow', 'deny'));
ALTER TABLE usage ADD COLUMN local_policy_version INTEGER;
ALTER TABLE usage ADD COLUMN disagreement INTEGER NOT NULL DEFAULT 0 CHECK (disagreement IN (0, 1));
CREATE INDEX usage_disagreement_ts ON usage (tenant_id, ts) WHERE disagreement = 1;
`,
};
