/**
 * Reads of recorded usage for explaining and replaying decisions (port: usageHistory). The scan
 * walks the tenant's primary-key range in event-id order and filters the window in SQLite, so
 * rows outside the window never reach JavaScript (usage carries no secondary index, by design:
 * migrations.ts).
 */
import type { UsageRecord } from '../../domain.js';
import type { ReplayRow, Store } from '../port.js';
import type { SqliteContext, Stmt } from './context.js';

const REPLAY_COLUMNS = 'id, received_at, ts, device_id, user_id, app, action, tower_id, effect, reason, rule_id, policy_id, policy_version';
const USAGE_COLUMNS = `tenant_id, batch_id, bytes, ${REPLAY_COLUMNS}`;

export function createUsageHistory(ctx: SqliteContext): Store['usageHistory'] {
  const get: Stmt<[string, string], UsageRecord> = ctx.db.prepare(`SELECT ${USAGE_COLUMNS} FROM usage WHERE tenant_id = ? AND id = ?`);
  const scan: Stmt<[string, string, number, number, number], ReplayRow> = ctx.db.prepare(
    `SELECT ${REPLAY_COLUMNS} FROM usage
     WHERE tenant_id = ? AND id > ? AND received_at >= ? AND received_at < ?
     ORDER BY id LIMIT ?`,
  );
  return {
    async get(tenantId, eventId) {
      return get.get(tenantId, eventId) ?? null;
    },
    async scan(tenantId, window, after, limit) {
      // '' sorts before every id: no lower bound.
      return scan.all(tenantId, after ?? '', window.since, window.until, Math.max(1, Math.floor(limit)));
    },
  };
}
