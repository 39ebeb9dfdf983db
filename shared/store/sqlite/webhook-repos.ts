/**
 * Tenant webhooks and their delivery queue. The signing secret is stored as given (HMAC needs
 * it) and leaves the store only through `subscribers`, the delivery worker's read.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Webhook, WebhookDelivery, WebhookEventType } from '../../domain.js';
import type { Store } from '../port.js';
import { interleaveDue, nextAttemptAfter } from '../rules/platform.js';
import { outboxDeliveries } from '../rules/webhook-outbox.js';
import { clampLimit } from './cursor.js';
import type { SqliteContext, Stmt } from './context.js';
import { limitClause, notFound } from './context.js';
import { EntityTable } from './entity-table.js';
import { fromJson, toJson } from './json-column.js';
import type { TenantRefs } from './refs.js';

/** Deliberately without `secret`: every generic read and RETURNING goes through this list. */
const WEBHOOK_COLUMNS = ['id', 'tenant_id', 'url', 'events', 'enabled', 'created_at', 'updated_at'] as const;

/** events is a JSON array and enabled is 0/1 on disk. */
type WebhookRow = Omit<Webhook, 'events' | 'enabled'> & { events: string; enabled: number };

const toWebhook = (row: WebhookRow): Webhook => ({
  ...row,
  events: fromJson<WebhookEventType[]>(row.events) ?? [],
  enabled: row.enabled === 1,
});

export function createWebhookRepo(ctx: SqliteContext, refs: TenantRefs): Store['webhooks'] {
  const table = new EntityTable<WebhookRow>(ctx, 'webhooks', WEBHOOK_COLUMNS, 'tenant', ['url', 'events', 'enabled']);
  const insert: Stmt<[WebhookRow & { secret: string }]> = ctx.db.prepare(
    `INSERT INTO webhooks (${table.columnList}, secret)
     VALUES (${WEBHOOK_COLUMNS.map((c) => `@${c}`).join(', ')}, @secret)`,
  );
  const subscribers: Stmt<[string, string], WebhookRow & { secret: string }> = ctx.db.prepare(
    `SELECT ${table.columnList}, secret FROM webhooks
     WHERE tenant_id = ? AND enabled = 1 AND EXISTS (SELECT 1 FROM json_each(webhooks.events) WHERE value = ?)
     ORDER BY id`,
  );

  return {
    async create(tenantId, input) {
      return ctx.write(() => {
        refs.requireTenant(tenantId);
        const now = ctx.now();
        const row: WebhookRow = {
          id: ctx.newId(),
          tenant_id: tenantId,
          url: input.url,
          events: JSON.stringify(input.events),
          enabled: 1,
          created_at: now,
          updated_at: now,
        };
        insert.run({ ...row, secret: input.secret });
        return toWebhook(row);
      });
    },
    async get(tenantId, id) {
      const row = table.get(tenantId, id);
      return row ? toWebhook(row) : null;
    },
    async list(tenantId, opts) {
      const page = table.list({ tenant_id: tenantId }, opts);
      return { items: page.items.map(toWebhook), next_cursor: page.next_cursor };
    },
    async update(tenantId, id, patch) {
      const row: Partial<WebhookRow> = {};
      if (patch.url !== undefined) row.url = patch.url;
      if (patch.events !== undefined) row.events = toJson(patch.events) ?? '[]';
      if (patch.enabled !== undefined) row.enabled = patch.enabled ? 1 : 0;
      const after = table.update(tenantId, id, row);
      return after ? toWebhook(after) : null;
    },
    async delete(tenantId, id) {
      // Its deliveries go with it (ON DELETE CASCADE).
      return table.delete(tenantId, id);
    },
    async subscribers(tenantId, event) {
      return subscribers.all(tenantId, event).map(({ secret, ...row }) => ({ ...toWebhook(row), secret }));
    },
  };
}

const DELIVERY_COLUMNS = [
  'id',
  'tenant_id',
  'webhook_id',
  'event',
  'body',
  'status',
  'attempts',
  'next_attempt_at',
  'last_status_code',
  'last_error',
  'created_at',
  'updated_at',
] as const;

/**
 * dueFair's statements, on webhook_deliveries_tenant_due (migration 11; its test checks their
 * plans). SQLite has no skip scan over a range, so the distinct tenants with pending deliveries
 * are found one index seek each (the first tenant after the last one), then each tenant's most
 * overdue are read with a LIMIT: a tenant's backlog is never walked.
 */
export const DUE_FAIR_SQL = {
  tenants: `WITH RECURSIVE tenants (tenant_id) AS (
      SELECT (SELECT tenant_id FROM webhook_deliveries WHERE status = 'pending' ORDER BY tenant_id LIMIT 1)
      UNION ALL
      SELECT (SELECT d.tenant_id FROM webhook_deliveries d
              WHERE d.status = 'pending' AND d.tenant_id > tenants.tenant_id ORDER BY d.tenant_id LIMIT 1)
      FROM tenants WHERE tenants.tenant_id IS NOT NULL
    )
    SELECT tenant_id FROM tenants WHERE tenant_id IS NOT NULL`,
  tenantDue: (limit: number): string =>
    `SELECT ${DELIVERY_COLUMNS.join(', ')} FROM webhook_deliveries
     WHERE tenant_id = ? AND status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id ${limitClause(limit)}`,
};

/**
 * Writes the deliveries of events the store commits (../rules/webhook-outbox.ts). Call inside
 * the write transaction of the records; one subscriber read per call, none for no records.
 */
export type SqliteOutbox = (tenantId: string, type: WebhookEventType, records: readonly unknown[]) => void;

export function createWebhookOutbox(ctx: SqliteContext): SqliteOutbox {
  const subscriberIds: Stmt<[string, string], string> = ctx.db
    .prepare<[string, string], string>(
      `SELECT id FROM webhooks
       WHERE tenant_id = ? AND enabled = 1 AND EXISTS (SELECT 1 FROM json_each(webhooks.events) WHERE value = ?)
       ORDER BY id`,
    )
    .pluck();
  const insert: Stmt<[WebhookDelivery]> = ctx.db.prepare(
    `INSERT INTO webhook_deliveries (${DELIVERY_COLUMNS.join(', ')}) VALUES (${DELIVERY_COLUMNS.map((c) => `@${c}`).join(', ')})`,
  );
  return (tenantId, type, records) => {
    if (records.length === 0) return;
    const hooks = subscriberIds.all(tenantId, type);
    if (hooks.length === 0) return;
    for (const d of outboxDeliveries(tenantId, type, records, hooks, ctx.now(), ctx.newId)) insert.run(d);
  };
}

/** Deliveries deleted per transaction by `purge` (the event loop runs between slices). */
const PURGE_SLICE = 5000;

export function createWebhookDeliveryRepo(ctx: SqliteContext): Store['webhookDeliveries'] {
  const table = new EntityTable<WebhookDelivery>(ctx, 'webhook_deliveries', DELIVERY_COLUMNS, 'tenant', []);
  const webhookExists: Stmt<[string, string], { id: string }> = ctx.db.prepare(
    'SELECT id FROM webhooks WHERE tenant_id = ? AND id = ?',
  );
  // Most overdue first; the WHERE repeats the partial index's condition so the planner uses it.
  const pendingTenants: Stmt<[], { tenant_id: string }> = ctx.db.prepare(DUE_FAIR_SQL.tenants);
  const tenantDue = (limit: number): Stmt<[string, number], WebhookDelivery> => ctx.stmt(DUE_FAIR_SQL.tenantDue(limit));
  const attempt: Stmt<[string, number | null, string | null, number | null, number, string]> = ctx.db.prepare(
    `UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_status_code = ?, last_error = ?,
       next_attempt_at = ?, updated_at = ? WHERE id = ?`,
  );

  const purgeOne: Stmt<[string, string, number]> = ctx.db.prepare(
    `DELETE FROM webhook_deliveries WHERE tenant_id = ? AND id IN (
       SELECT id FROM webhook_deliveries WHERE tenant_id = ? AND status != 'pending' AND updated_at < ? ${limitClause(PURGE_SLICE)})`,
  );

  return {
    async purge(tenantId, before) {
      let deleted = 0;
      for (;;) {
        const n = ctx.write(() => purgeOne.run(tenantId, tenantId, before).changes);
        deleted += n;
        if (n < PURGE_SLICE) return deleted;
        await yieldToEventLoop();
      }
    },
    async create(rec) {
      return ctx.write(() => {
        if (!webhookExists.get(rec.tenant_id, rec.webhook_id)) throw notFound('webhook_id', 'no such webhook');
        const now = ctx.now();
        return table.insert({
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
        });
      });
    },
    async get(tenantId, id) {
      return table.get(tenantId, id);
    },
    async dueFair(now, perTenant, limit) {
      const perTenantDue = tenantDue(clampLimit(perTenant));
      const lists = ctx.read(() => pendingTenants.all().map(({ tenant_id }) => perTenantDue.all(tenant_id, now)));
      return interleaveDue(lists, clampLimit(limit));
    },
    async recordAttempt(id, outcome) {
      attempt.run(outcome.status, outcome.status_code, outcome.error, nextAttemptAfter(outcome), outcome.at, id);
    },
    async list(tenantId, webhookId, opts) {
      return table.list({ tenant_id: tenantId, webhook_id: webhookId }, opts, 'desc');
    },
  };
}
