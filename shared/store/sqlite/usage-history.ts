/**
 * Reads of recorded usage for explaining and replaying decisions (port: usageHistory). The scan
 * walks the tenant's primary-key range in event-id order and filters the window in SQLite, so
 * rows outside the window never reach JavaScript (usage carries no secondary index, by design:
 * migrations.ts).
 */
import type { ReplayRow, Store } from '../port.js';
import type { SqliteContext, Stmt } from './context.js';
import { limitClause } from './context.js';
import { usageFromRow, type UsageRow } from './usage-repo.js';

const REPLAY_COLUMNS = 'id, received_at, ts, device_id, user_id, app, action, tower_id, effect, reason, rule_id, policy_id, policy_version';
const USAGE_COLUMNS = `tenant_id, batch_id, bytes, ${REPLAY_COLUMNS}, local_effect, local_policy_version, disagreement`;

/** REPLAY_COLUMNS, in order. */
type ReplayTuple = [
  string,
  number,
  number,
  string,
  string | null,
  string,
  string,
  string,
  ReplayRow['effect'],
  ReplayRow['reason'],
  string | null,
  string | null,
  number,
];

export function createUsageHistory(ctx: SqliteContext): Store['usageHistory'] {
  const get: Stmt<[string, string], UsageRow> = ctx.db.prepare(`SELECT ${USAGE_COLUMNS} FROM usage WHERE tenant_id = ? AND id = ?`);
  // Rows as arrays, made into objects here: objects of one literal shape are built several times
  // faster than better-sqlite3's per-row property objects, which a million-row replay feels.
  // The chunk size is in the SQL (limitClause): a replay asks with its page size, a shorter last
  // page and a probe of 1, so a few statements serve it.
  const scan = (limit: number): Stmt<[string, string, number, number], unknown[]> =>
    ctx
      .stmt<[string, string, number, number], unknown[]>(
        `SELECT ${REPLAY_COLUMNS} FROM usage
         WHERE tenant_id = ? AND id > ? AND received_at >= ? AND received_at < ?
         ORDER BY id ${limitClause(limit)}`,
      )
      .raw(true);
  return {
    async get(tenantId, eventId) {
      const row = get.get(tenantId, eventId);
      return row ? usageFromRow(row) : null;
    },
    async scan(tenantId, window, after, limit) {
      // '' sorts before every id: no lower bound.
      const rows = scan(Math.max(1, Math.floor(limit))).all(tenantId, after ?? '', window.since, window.until) as ReplayTuple[];
      const out: ReplayRow[] = new Array<ReplayRow>(rows.length);
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i]!;
        out[i] = {
          id: r[0],
          received_at: r[1],
          ts: r[2],
          device_id: r[3],
          user_id: r[4],
          app: r[5],
          action: r[6],
          tower_id: r[7],
          effect: r[8],
          reason: r[9],
          rule_id: r[10],
          policy_id: r[11],
          policy_version: r[12],
        };
      }
      return out;
    },
  };
}
