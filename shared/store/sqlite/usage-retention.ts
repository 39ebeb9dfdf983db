/**
 * Usage retention: deletes a tenant's usage rows received before a cutoff.
 *
 * usage_counters (the dashboard's usage totals) are NOT decremented: they count every event ever
 * decided for the tenant, while retention only governs which rows stay stored. tenant_towers,
 * alerts and discovered devices are not usage rows and stay as well.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { SqliteContext, Stmt } from './context.js';
import { limitClause } from './context.js';

/**
 * Rows deleted per transaction. better-sqlite3 is synchronous: one huge DELETE would hold the
 * write lock and the event loop while ingest waits, so the purge goes in slices with a yield
 * between them.
 */
const PURGE_SLICE = 5000;

export function createUsagePurge(ctx: SqliteContext): (tenantId: string, before: number) => Promise<number> {
  // usage has no index on received_at (ingest speed wins); the slice scans the tenant's key range.
  const purgeSlice: Stmt<[string, string, number]> = ctx.db.prepare(
    `DELETE FROM usage WHERE tenant_id = ? AND id IN (
       SELECT id FROM usage WHERE tenant_id = ? AND received_at < ? ${limitClause(PURGE_SLICE)})`,
  );

  return async (tenantId, before) => {
    let deleted = 0;
    for (;;) {
      const n = ctx.write(() => purgeSlice.run(tenantId, tenantId, before).changes);
      deleted += n;
      if (n < PURGE_SLICE) return deleted;
      await yieldToEventLoop();
    }
  };
}
