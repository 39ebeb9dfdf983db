/**
 * Migration 11: pending webhook deliveries indexed per tenant, for a due query that is fair
 * between tenants (port: webhookDeliveries.dueFair).
 *
 * Why: the delivery sweep read the N oldest due deliveries across tenants (webhook_deliveries_due),
 * so a tenant with more than N due deliveries, all older than another tenant's (an unreachable
 * receiver plus a flood of alerts), kept that tenant out of every sweep. This index, partial on
 * pending like webhook_deliveries_due, lets dueFair skip from tenant to tenant (one seek each:
 * the distinct tenants with pending deliveries) and read each one's most overdue with a LIMIT,
 * never walking a tenant's backlog.
 */
import type { Migration } from './migrations.js';

export const MIGRATION_11: Migration = {
  version: 11,
  name: 'pending webhook deliveries per tenant',
  sql: `
CREATE INDEX webhook_deliveries_tenant_due ON webhook_deliveries (tenant_id, next_attempt_at, id) WHERE status = 'pending';
`,
};
