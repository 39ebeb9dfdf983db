/**
 * Migration 12: the cross-tenant index of due webhook deliveries goes.
 *
 * Why: webhook_deliveries_due (next_attempt_at, id) served the delivery sweep's old "oldest due
 * across tenants" query, which migration 11's per-tenant index and dueFair replaced (that query
 * let one tenant's backlog keep every other tenant's deliveries waiting). Nothing reads the old
 * index any more, and every queued, retried or finished delivery still paid a write to it.
 */
import type { Migration } from './migrations.js';

export const MIGRATION_12: Migration = {
  version: 12,
  name: 'webhook deliveries without the cross-tenant due index',
  sql: `
DROP INDEX IF EXISTS webhook_deliveries_due;
`,
};
