/**
 * Tenant webhooks and their delivery queue. The signing secret leaves the store only through
 * `subscribers`, the delivery worker's read.
 */
import type { Webhook, WebhookDelivery, WebhookEventType } from '../../domain.js';
import type { Store } from '../port.js';
import { notFound } from '../rules/errors.js';
import { clampLimit } from '../rules/pagination.js';
import { interleaveDue, nextAttemptAfter } from '../rules/platform.js';
import { outboxDeliveries } from '../rules/webhook-outbox.js';
import { C, type DeliveryDoc, type WebhookDoc } from './collections.js';
import { strip, type MongoContext } from './context.js';
import type { Filter, SessionLike } from './db-like.js';
import { MongoEntity, type TenantRefs } from './entity.js';

const toWebhook = (d: WebhookDoc): Webhook => strip(d, 'secret');
const toDelivery = (d: DeliveryDoc): WebhookDelivery => strip(d);

export function createWebhookRepo(ctx: MongoContext, refs: TenantRefs): Store['webhooks'] {
  const table = new MongoEntity<WebhookDoc, Webhook>(ctx, C.webhooks, 'tenant', ['url', 'events', 'enabled'], toWebhook);
  return {
    async create(tenantId, input) {
      return ctx.write(async ({ session }) => {
        await refs.requireTenant(session, tenantId);
        const now = ctx.now();
        const hook: Webhook = {
          id: ctx.newId(),
          tenant_id: tenantId,
          url: input.url,
          events: [...input.events],
          enabled: true,
          created_at: now,
          updated_at: now,
        };
        await table.coll.insertOne({ _id: hook.id, ...hook, secret: input.secret }, { session });
        return hook;
      });
    },
    get: (tenantId, id) => table.get(tenantId, id),
    list: (tenantId, opts) => table.list({ tenant_id: tenantId }, opts),
    update: (tenantId, id, patch) => table.update(tenantId, id, { url: patch.url, events: patch.events, enabled: patch.enabled }),
    async delete(tenantId, id) {
      return ctx.write(async ({ session }) => {
        if (!(await table.delete(tenantId, id, session))) return false;
        await ctx.coll<DeliveryDoc>(C.deliveries).deleteMany({ tenant_id: tenantId, webhook_id: id }, { session });
        return true;
      });
    },
    async subscribers(tenantId, event) {
      const rows = await table.coll.find({ tenant_id: tenantId, enabled: true, events: event }, { sort: { _id: 1 } }).toArray();
      return rows.map((d) => ({ ...toWebhook(d), secret: d.secret }));
    },
  };
}

/**
 * Writes the deliveries of events the store commits (../rules/webhook-outbox.ts), in the
 * transaction of `session`: one subscriber read and one insert per call, none for no records.
 * Unlike `create`, no guard write on the webhooks: every deny batch of a tenant would then write
 * its webhook documents, and concurrent batches would conflict there. A webhook deleted beside
 * the batch leaves a delivery nobody reads but the deliverer, which fails it ('webhook removed')
 * without sending anything.
 */
export type MongoOutbox = (tenantId: string, type: WebhookEventType, records: readonly unknown[], session: SessionLike) => Promise<void>;

export function createWebhookOutbox(ctx: MongoContext): MongoOutbox {
  const webhooks = ctx.coll<WebhookDoc>(C.webhooks);
  const deliveries = ctx.coll<DeliveryDoc>(C.deliveries);
  return async (tenantId, type, records, session) => {
    if (records.length === 0) return;
    const hooks = await webhooks.find({ tenant_id: tenantId, enabled: true, events: type }, { sort: { _id: 1 }, session }).toArray();
    if (hooks.length === 0) return;
    const ids = hooks.map((h) => h._id);
    const docs = outboxDeliveries(tenantId, type, records, ids, ctx.now(), () => ctx.newId()).map((d) => ({ _id: d.id, ...d }));
    await deliveries.insertMany(docs, { session });
  };
}

/** Deliveries deleted per round trip by `purge`. */
const PURGE_SLICE = 5000;

export function createWebhookDeliveryRepo(ctx: MongoContext): Store['webhookDeliveries'] {
  const deliveries = ctx.coll<DeliveryDoc>(C.deliveries);
  const webhooks = ctx.coll<WebhookDoc>(C.webhooks);
  return {
    async create(rec) {
      return ctx.write(async ({ session }) => {
        // A guard write: a webhook deleted concurrently conflicts instead of orphaning a delivery.
        const hook = await webhooks.updateOne(
          { _id: rec.webhook_id, tenant_id: rec.tenant_id },
          { $inc: { write_guard: 1 } },
          { session },
        );
        if (hook.matchedCount === 0) throw notFound('webhook_id', 'no such webhook');
        const now = ctx.now();
        const delivery: WebhookDelivery = {
          id: ctx.newId(),
          tenant_id: rec.tenant_id,
          webhook_id: rec.webhook_id,
          event: rec.event,
          body: rec.body,
          status: 'pending',
          attempts: 0,
          next_attempt_at: rec.next_attempt_at,
          last_status_code: null,
          last_error: null,
          created_at: now,
          updated_at: now,
        };
        await deliveries.insertOne({ _id: delivery.id, ...delivery }, { session });
        return delivery;
      });
    },
    async get(tenantId, id) {
      const d = await deliveries.findOne({ _id: id, tenant_id: tenantId });
      return d ? toDelivery(d) : null;
    },
    async dueFair(now, perTenant, limit) {
      // Tenant by tenant on the partial index (tenant_id, next_attempt_at, _id): each read starts
      // after the last tenant, and its bounds skip a tenant's not-yet-due keys with one seek, so a
      // backlog is never walked. Rows of the following tenant in a read are dropped (read with it).
      const per = clampLimit(perTenant);
      const lists: DeliveryDoc[][] = [];
      let after: string | null = null;
      for (;;) {
        const filter: Filter<DeliveryDoc> = { status: 'pending', next_attempt_at: { $lte: now } };
        if (after !== null) filter.tenant_id = { $gt: after };
        const rows: DeliveryDoc[] = await deliveries.find(filter, { sort: { tenant_id: 1, next_attempt_at: 1, _id: 1 }, limit: per }).toArray();
        const tenant: string | undefined = rows[0]?.tenant_id;
        if (tenant === undefined) break;
        lists.push(rows.filter((d) => d.tenant_id === tenant));
        after = tenant;
      }
      return interleaveDue(lists, clampLimit(limit)).map(toDelivery);
    },
    async recordAttempt(id, outcome) {
      await deliveries.updateOne(
        { _id: id },
        {
          $set: {
            status: outcome.status,
            last_status_code: outcome.status_code,
            last_error: outcome.error,
            next_attempt_at: nextAttemptAfter(outcome),
            updated_at: outcome.at,
          },
          $inc: { attempts: 1 },
        },
      );
    },
    list: (tenantId, webhookId, opts) =>
      ctx.listPage(deliveries, { tenant_id: tenantId, webhook_id: webhookId }, opts, 'webhook_deliveries', 'desc', toDelivery),
    async purge(tenantId, before) {
      let deleted = 0;
      const filter = { tenant_id: tenantId, status: { $ne: 'pending' as const }, updated_at: { $lt: before } };
      for (;;) {
        const slice = await deliveries.find(filter, { limit: PURGE_SLICE }).toArray();
        if (slice.length > 0) deleted += (await deliveries.deleteMany({ tenant_id: tenantId, _id: { $in: slice.map((d) => d._id) } })).deletedCount;
        if (slice.length < PURGE_SLICE) return deleted;
      }
    },
  };
}
