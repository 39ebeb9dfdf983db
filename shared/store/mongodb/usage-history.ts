/**
 * Reads of recorded usage for explaining and replaying decisions (port: usageHistory). Usage
 * `_id`s are `${tenant}:${event}` (keys.ts), so a tenant's events sort by event id within its key
 * range: the scan is a range on `_id` with the window filtered on received_at.
 */
import type { ReplayRow, Store } from '../port.js';
import { C, type UsageDoc } from './collections.js';
import type { MongoContext } from './context.js';
import type { Filter } from './db-like.js';
import { usageKey } from './keys.js';
import { toUsage } from './usage-repo.js';

export function createUsageHistory(ctx: MongoContext): Store['usageHistory'] {
  const usage = ctx.coll<UsageDoc>(C.usage);
  return {
    async get(tenantId, eventId) {
      const doc = await usage.findOne({ _id: usageKey(tenantId, eventId), tenant_id: tenantId });
      return doc ? toUsage(doc) : null;
    },
    async scan(tenantId, window, after, limit) {
      const filter = {
        tenant_id: tenantId,
        _id: { $gt: usageKey(tenantId, after ?? '') },
        received_at: { $gte: window.since, $lt: window.until },
      } as Filter<UsageDoc>;
      const docs = await usage.find(filter, { sort: { _id: 1 }, limit: Math.max(1, Math.floor(limit)) }).toArray();
      return docs.map(
        (d): ReplayRow => ({
          id: d.id,
          received_at: d.received_at,
          ts: d.ts,
          device_id: d.device_id,
          user_id: d.user_id,
          app: d.app,
          action: d.action,
          tower_id: d.tower_id,
          effect: d.effect,
          reason: d.reason,
          rule_id: d.rule_id,
          policy_id: d.policy_id,
          policy_version: d.policy_version,
        }),
      );
    },
  };
}
