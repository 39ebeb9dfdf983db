/**
 * The hot path: decided usage batches, the alerts they raise and the unknown devices they reveal,
 * written in one transaction per batch (port: usage.recordBatch). The folding rules are
 * ../rules/usage-batch.ts; this file reads what they need and writes what they return.
 *
 * Every filter names tenant_id (the shard key), so each write and upsert targets one shard.
 *
 * Idempotency by event id: the batch's ids are looked up first and only new events are inserted,
 * with one unordered insertMany. A duplicate-key error cannot simply be skipped inside a
 * transaction (the server aborts the transaction on any write error), so an 11000 from that
 * insert means another writer committed the same event in between: the whole batch is run again
 * (ConcurrentInsert) and then sees those events as the duplicates they are. Everything else fails
 * the call, and the transaction leaves nothing half-written.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { ALERT_STEP_EVENTS } from '../../bus-events.js';
import type { Alert, AlertEvent, DiscoveredDevice, Effect, UsageRecord } from '../../domain.js';
import type { AlertFilter, DashboardMetrics, DecidedUsage, RecordUsageInput, RecordUsageResult, Store, StoredDecision } from '../port.js';
import { ACTIVE_ALERT_STATUSES, ALERT_WORKFLOW_FIELDS, NO_WORKFLOW, alertKey, applyAlertAction, severityRank } from '../rules/alerts.js';
import { foldDiscovered, reportSightings, sightedDevices, type Tracked } from '../rules/discovery.js';
import { notFound } from '../rules/errors.js';
import { batchLookups, batchResult, foldBatch, localFields, partitionFresh, PresenceThrottle, storedDecisionOf, ThrottledWrites, TowerSightingThrottle, validateBatch } from '../rules/usage-batch.js';
import {
  C,
  type AlertDoc,
  type AlertEventDoc,
  type AlertKeyDoc,
  type ConsoleUserDoc,
  type DeviceDoc,
  type DiscoveredDoc,
  type PolicyDoc,
  type ProcessedDoc,
  type RuleDoc,
  type TenantDoc,
  type DevicePresenceDoc,
  type TenantTowerDoc,
  type UsageCounterDoc,
  type UsageDoc,
  type UserDoc,
} from './collections.js';
import { insertChecked, strip, type MongoContext } from './context.js';
import type { Document, SessionLike } from './db-like.js';
import { compositeKey, counterSlotKey, counterSlotOf, usageKey } from './keys.js';
import type { MongoOutbox } from './webhook-repos.js';

/** Rows deleted per purge round, for the same reason as the audit purge. */
const PURGE_SLICE = 5000;

/** Events stored before schema version 8 carry no local decision: they read as none. */
export const toUsage = (d: UsageDoc): UsageRecord => {
  const r = strip(d);
  return { ...r, local_effect: r.local_effect ?? null, local_policy_version: r.local_policy_version ?? null, disagreement: r.disagreement ?? false };
};
/** Alerts stored before the workflow existed carry none of its fields: they read as unset. */
export const toAlert = (d: AlertDoc): Alert => ({ ...NO_WORKFLOW, ...strip(d, 'severity_rank') });
const toAlertEvent = (d: AlertEventDoc): AlertEvent => strip(d);

/** `since` bounds `from` (inclusive), `until` bounds `to` (exclusive). */
function timeRange(filter: Document, opts: { since?: number; until?: number } | undefined, from: string, to: string): void {
  if (opts?.since !== undefined) filter[from] = { ...(filter[from] as Document | undefined), $gte: opts.since };
  if (opts?.until !== undefined) filter[to] = { ...(filter[to] as Document | undefined), $lt: opts.until };
}
const toDiscovered = (d: DiscoveredDoc): DiscoveredDevice => strip(d);

function toUsageDoc(r: DecidedUsage): UsageDoc {
  const { severity: _severity, ...record } = r;
  return { _id: usageKey(r.tenant_id, r.id), ...record, ...localFields(r) };
}

function alertFilter(tenantId: string, opts: AlertFilter | undefined): Document {
  const filter: Document = { tenant_id: tenantId };
  for (const field of ['status', 'device_id', 'app', 'severity', 'assigned_to'] as const) {
    const value = opts?.[field];
    if (value !== undefined) filter[field] = value;
  }
  timeRange(filter, opts, 'last_seen', 'first_seen');
  return filter;
}

export interface UsageRepos {
  usage: Store['usage'];
  alerts: Store['alerts'];
  discovered: Store['discovered'];
  dashboard: (tenantId: string) => Promise<DashboardMetrics>;
  purgeUsage: (tenantId: string, before: number) => Promise<number>;
}

export function createUsageRepos(ctx: MongoContext, outbox: MongoOutbox): UsageRepos {
  const usageColl = ctx.coll<UsageDoc>(C.usage);
  const alerts = ctx.coll<AlertDoc>(C.alerts);
  const alertKeys = ctx.coll<AlertKeyDoc>(C.alertKeys);
  const alertEvents = ctx.coll<AlertEventDoc>(C.alertEvents);
  const consoleUsers = ctx.coll<ConsoleUserDoc>(C.consoleUsers);
  const discovered = ctx.coll<DiscoveredDoc>(C.discovered);
  const counters = ctx.coll<UsageCounterDoc>(C.usageCounters);
  const tenantTowers = ctx.coll<TenantTowerDoc>(C.tenantTowers);
  const presenceColl = ctx.coll<DevicePresenceDoc>(C.devicePresence);
  const presence = new PresenceThrottle();
  const sightings = new TowerSightingThrottle();
  // Throttled writes of the running transaction, confirmed to their throttles after commit.
  const throttled = new ThrottledWrites();
  const tenants = ctx.coll<TenantDoc>(C.tenants);

  const writeDiscovered = async (tracked: Array<Tracked<DiscoveredDevice>>, session: SessionLike): Promise<void> => {
    for (const { row, isNew } of tracked) {
      if (isNew) {
        // Unique (tenant_id, device_id): a concurrent first sighting makes this batch run again.
        await insertChecked(() => discovered.insertOne({ _id: row.id, ...row }, { session }));
      } else {
        const { first_seen, last_seen, count, tower_id } = row;
        await discovered.updateOne({ _id: row.id, tenant_id: row.tenant_id }, { $set: { first_seen, last_seen, count, tower_id } }, { session });
      }
    }
  };

  const writeBatch = async (input: RecordUsageInput, session: SessionLike): Promise<RecordUsageResult> => {
    const tenantId = input.tenant_id;
    const keys = [...new Set(input.records.map((r) => usageKey(tenantId, r.id)))];
    const stored = new Map<string, StoredDecision>();
    const hasLocal = new Set<string>();
    if (keys.length > 0) {
      for (const doc of await usageColl.find({ tenant_id: tenantId, _id: { $in: keys } }, { session }).toArray()) {
        stored.set(doc.id, storedDecisionOf(doc));
        if ((doc.local_effect ?? null) !== null) hasLocal.add(doc.id);
      }
    }
    const { fresh, storedDecisions } = partitionFresh(input.records, stored);
    if (fresh.length > 0) await insertChecked(() => usageColl.insertMany(fresh.map(toUsageDoc), { session, ordered: false }));
    // A local decision reported after the event was stored: recorded once, against the stored decision.
    const localRecorded: RecordUsageResult['local_recorded'] = [];
    for (const r of input.records) {
      const before = stored.get(r.id);
      const local = localFields(r).local_effect;
      if (!before || local === null || hasLocal.has(r.id)) continue;
      hasLocal.add(r.id);
      const disagreement = local !== before.effect;
      await usageColl.updateOne(
        { _id: usageKey(tenantId, r.id), tenant_id: tenantId },
        { $set: { local_effect: local, local_policy_version: r.local_policy_version ?? null, disagreement } },
        { session },
      );
      localRecorded.push({ id: r.id, local_effect: local, effect: before.effect, disagreement });
    }

    const lookups = batchLookups(input, fresh);
    const openAlerts = new Map<string, Alert>();
    for (const { device_id, rule_id } of lookups.alerts) {
      const open = await alerts.findOne(
        { tenant_id: tenantId, device_id, rule_id, status: { $in: [...ACTIVE_ALERT_STATUSES] }, last_seen: { $gte: lookups.windowStart } },
        { sort: { last_seen: -1, _id: -1 }, session },
      );
      if (open) openAlerts.set(alertKey(device_id, rule_id), toAlert(open));
    }
    const found = new Map<string, DiscoveredDevice>();
    if (lookups.discoveredDevices.length > 0) {
      const rows = await discovered.find({ tenant_id: tenantId, device_id: { $in: lookups.discoveredDevices } }, { session }).toArray();
      for (const row of rows) found.set(row.device_id, toDiscovered(row));
    }
    const fold = foldBatch(input, fresh, { openAlerts, discovered: found }, ctx.newId);

    if (fold.alertsOpened.length > 0) {
      const docs = fold.alertsOpened.map((a) => ({ _id: a.id, ...a, severity_rank: severityRank(a.severity) }));
      await alerts.insertMany(docs, { session });
    }
    for (const a of fold.alertsUpdated) {
      await alerts.updateOne({ _id: a.id, tenant_id: tenantId }, { $set: { count: a.count, last_seen: a.last_seen, tower_id: a.tower_id } }, { session });
    }
    for (const a of [...fold.alertsOpened, ...fold.alertsUpdated]) {
      await alertKeys.updateOne(
        { _id: compositeKey(tenantId, a.device_id, a.rule_id), tenant_id: tenantId },
        { $set: { alert_id: a.id, last_seen: a.last_seen } },
        { session, upsert: true },
      );
    }
    await writeDiscovered(fold.discovered, session);
    // Their webhook deliveries commit with them (the outbox): a crash before the announcement
    // loses none, and a redelivered batch folds no alert again, so writes none twice.
    await outbox(tenantId, 'alert.opened', fold.alertsOpened, session);
    await outbox(tenantId, 'alert.updated', fold.alertsUpdated, session);
    await outbox(tenantId, 'device.discovered', fold.discovered.map((t) => t.row), session);
    if (fresh.length > 0) {
      await counters.updateOne(
        { _id: counterSlotKey(tenantId, counterSlotOf(input.batch_id)), tenant_id: tenantId },
        { $inc: { allow: fold.counts.allow, deny: fold.counts.deny } },
        { session, upsert: true },
      );
    }
    // Newer receipt wins, whatever order concurrent batches commit in (read in the transaction).
    const due = presence.due(tenantId, fold.presence);
    for (const [deviceId, p] of due) {
      const _id = compositeKey(tenantId, deviceId);
      const current = await presenceColl.findOne({ _id, tenant_id: tenantId }, { session });
      if (current && current.received_at > p.received_at) continue;
      await presenceColl.updateOne(
        { _id, tenant_id: tenantId },
        { $set: { tenant_id: tenantId, device_id: deviceId, tower_id: p.tower_id, received_at: p.received_at } },
        { session, upsert: true },
      );
    }
    throttled.add(presence, tenantId, due);
    const seenDue = sightings.due(tenantId, fold.towers);
    throttled.add(sightings, tenantId, seenDue);
    for (const [towerId, seen] of seenDue) {
      await tenantTowers.updateOne(
        { _id: compositeKey(tenantId, towerId), tenant_id: tenantId },
        { $min: { first_seen: seen.first_seen }, $max: { last_seen: seen.last_seen }, $setOnInsert: { tower_id: towerId } },
        { session, upsert: true },
      );
    }
    return batchResult(input, fresh.length, storedDecisions, fold, localRecorded);
  };

  const requireTenant = async (tenantId: string, session: SessionLike): Promise<void> => {
    // A plain read: the batch's counter-slot write (created with the tenant) is what conflicts
    // with a concurrent deletion, without making every batch of a tenant write one document.
    if (!(await tenants.findOne({ _id: tenantId }, { session }))) throw notFound('tenant_id', 'no such tenant');
  };

  const usage: Store['usage'] = {
    async recordBatch(input) {
      validateBatch(input);
      const result = await ctx.write(async ({ session }) => {
        // A retried transaction starts over: only the committed attempt's writes count.
        throttled.reset();
        await requireTenant(input.tenant_id, session);
        return writeBatch(input, session);
      });
      throttled.confirm();
      return result;
    },
    async recordBatches(inputs) {
      for (const input of inputs) validateBatch(input);
      if (inputs.length === 0) return [];
      const group = await ctx.write(async ({ session }) => {
        throttled.reset();
        const checked = new Set<string>();
        const results: RecordUsageResult[] = [];
        for (const input of inputs) {
          if (!checked.has(input.tenant_id)) {
            await requireTenant(input.tenant_id, session);
            checked.add(input.tenant_id);
          }
          results.push(await writeBatch(input, session));
        }
        return results;
      });
      throttled.confirm();
      return group;
    },
    list(tenantId, opts) {
      const filter: Document = { tenant_id: tenantId };
      for (const field of ['user_id', 'device_id', 'effect', 'tower_id', 'app'] as const) {
        const value = opts?.[field];
        if (value !== undefined) filter[field] = value;
      }
      // Events stored before schema version 8 have no flag: they count as no disagreement.
      if (opts?.disagreement !== undefined) filter.disagreement = opts.disagreement ? true : { $ne: true };
      timeRange(filter, opts, 'ts', 'ts');
      return ctx.listPage(usageColl, filter, opts, 'usage', 'desc', toUsage, { keyOf: (id) => usageKey(tenantId, id) });
    },
    async lastSeen(tenantId, deviceId) {
      const doc = await presenceColl.findOne({ _id: compositeKey(tenantId, deviceId), tenant_id: tenantId });
      return doc ? { tower_id: doc.tower_id, at: doc.received_at } : null;
    },
    async countByEffect(tenantId, window) {
      const counts: Record<Effect, number> = { allow: 0, deny: 0 };
      for (const effect of ['allow', 'deny'] as const) {
        counts[effect] = await usageColl.countDocuments({ tenant_id: tenantId, effect, ts: { $gte: window.since, $lt: window.until } });
      }
      return counts;
    },
  };

  const alertsRepo: Store['alerts'] = {
    async get(tenantId, id) {
      const doc = await alerts.findOne({ _id: id, tenant_id: tenantId });
      return doc ? toAlert(doc) : null;
    },
    list(tenantId, opts) {
      return ctx.listPage(alerts, alertFilter(tenantId, opts), opts, 'alerts', 'desc', toAlert);
    },
    count: (tenantId, filter) => alerts.countDocuments(alertFilter(tenantId, filter)),
    async act(tenantId, id, action) {
      return ctx.write(async ({ session }) => {
        const doc = await alerts.findOne({ _id: id, tenant_id: tenantId }, { session });
        if (!doc) return null;
        if (action.kind === 'assign' && action.assignee !== null) {
          // A guard write, not a read: under snapshot isolation a read would let the account's
          // delete commit beside this step (each writing other documents), leaving the alert
          // assigned to a deleted account; the write makes the two conflict, and the retry
          // finds no account.
          const assignee = await consoleUsers.updateOne({ _id: action.assignee, tenant_id: tenantId }, { $inc: { write_guard: 1 } }, { session });
          if (assignee.matchedCount === 0) throw notFound('assignee', 'no such console user in this tenant');
        }
        const { alert, event } = applyAlertAction(toAlert(doc), action, ctx.newId);
        if (event === null) return { alert, step: null };
        const set: Document = {};
        for (const field of ALERT_WORKFLOW_FIELDS) set[field] = alert[field];
        await alerts.updateOne({ _id: id, tenant_id: tenantId }, { $set: set }, { session });
        await alertEvents.insertOne({ _id: event.id, ...event }, { session });
        // The step's webhook deliveries commit with it (the outbox): an API killed before its
        // announcement loses none; a step that already held wrote nothing above, so none here.
        await outbox(tenantId, ALERT_STEP_EVENTS[event.kind], [alert], session);
        return { alert, step: event };
      });
    },
    async events(tenantId, id) {
      const docs = await alertEvents.find({ tenant_id: tenantId, alert_id: id }, { sort: { _id: 1 } }).toArray();
      return docs.map(toAlertEvent);
    },
  };

  const processed = ctx.coll<ProcessedDoc>(C.processed);
  const discoveredRepo: Store['discovered'] = {
    async recordReports(towerId, batchId, reports, now) {
      return ctx.write(async ({ session }) => {
        const _id = compositeKey('discovery', towerId, batchId);
        if (await processed.findOne({ _id }, { session })) return false;
        await insertChecked(() => processed.insertOne({ _id, processed_at: now }, { session }));
        const sightings = reportSightings(towerId, reports);
        const existing = new Map<string, DiscoveredDevice>();
        const devices = sightedDevices(sightings);
        if (devices.length > 0) {
          for (const row of await discovered.find({ tenant_id: null, device_id: { $in: devices } }, { session }).toArray()) {
            existing.set(row.device_id, toDiscovered(row));
          }
        }
        await writeDiscovered(foldDiscovered(null, sightings, existing, ctx.newId), session);
        return true;
      });
    },
    list: (tenantId, opts) => ctx.listPage(discovered, { tenant_id: tenantId }, opts, 'discovered_devices', 'asc', toDiscovered),
  };

  const dashboard = (tenantId: string): Promise<DashboardMetrics> =>
    ctx.read(async (session) => {
      const t = { tenant_id: tenantId };
      const count = (name: typeof C.devices | typeof C.users | typeof C.policies | typeof C.rules, filter: Document = t) =>
        ctx.coll<DeviceDoc | UserDoc | PolicyDoc | RuleDoc>(name).countDocuments(filter, { session });
      const devices = await count(C.devices);
      const users = await count(C.users);
      const policies = await count(C.policies);
      const rules = await count(C.rules);
      const alertsOpen = await alerts.countDocuments({ tenant_id: tenantId, status: 'open' }, { session });
      const alertsAcknowledged = await alerts.countDocuments({ tenant_id: tenantId, status: 'acknowledged' }, { session });
      const discoveredDevices = await discovered.countDocuments(t, { session });
      let allowed = 0;
      let denied = 0;
      // Maintained by recordBatch so the dashboard never counts the usage collection.
      for (const slot of await counters.find(t, { session }).toArray()) {
        allowed += slot.allow;
        denied += slot.deny;
      }
      return {
        devices,
        users,
        policies,
        rules,
        alerts_open: alertsOpen,
        alerts_acknowledged: alertsAcknowledged,
        usage_total: allowed + denied,
        usage_allowed: allowed,
        usage_denied: denied,
        discovered_devices: discoveredDevices,
      };
    });

  /**
   * Deletes a tenant's usage received before a cutoff, in bounded slices. The dashboard's counters
   * are not decremented: they count every event ever decided, retention only governs rows.
   */
  const purgeUsage = async (tenantId: string, before: number): Promise<number> => {
    let deleted = 0;
    for (;;) {
      const slice = await usageColl.find({ tenant_id: tenantId, received_at: { $lt: before } }, { limit: PURGE_SLICE }).toArray();
      if (slice.length === 0) return deleted;
      deleted += (await usageColl.deleteMany({ tenant_id: tenantId, _id: { $in: slice.map((d) => d._id) } })).deletedCount;
      if (slice.length < PURGE_SLICE) return deleted;
      await yieldToEventLoop();
    }
  };

  return { usage, alerts: alertsRepo, discovered: discoveredRepo, dashboard, purgeUsage };
}
