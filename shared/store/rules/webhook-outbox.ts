/**
 * The webhook outbox: the deliveries of every webhook event are written in the transaction of
 * the record it announces, one pending delivery per enabled subscriber of the tenant:
 * alert.opened, alert.updated, device.discovered from usage.recordBatch; command.updated from
 * commands.create, createIfAbsent and transition; alert.acknowledged, alert.assigned,
 * alert.resolved from alerts.act and (the unassignments) consoleUsers.delete. A process killed
 * after the commit therefore loses none, and a redelivered batch (its events stored already, so
 * no alert or discovery folded) or a repeated workflow step (nothing changed, no step recorded)
 * writes none again: each event has its deliveries exactly once. The bus announcement that
 * follows only pokes the deliverer; its sweep finds them anyway.
 *
 * Every delivery's body is fixed here as { id, type, tenant_id, created_at, data }: `id`
 * identifies the event (the same in every subscriber's delivery; receivers deduplicate on it),
 * `data` is the record as the REST API returns it.
 */
import type { WebhookDelivery, WebhookEventType } from '../../domain.js';

/** The event types whose deliveries the store writes with the record (see above): all of them. */
export const OUTBOX_EVENTS = [
  'alert.opened',
  'alert.updated',
  'alert.acknowledged',
  'alert.assigned',
  'alert.resolved',
  'device.discovered',
  'command.updated',
] as const satisfies readonly WebhookEventType[];

export interface WebhookEventBody {
  id: string;
  type: WebhookEventType;
  tenant_id: string;
  created_at: number;
  data: unknown;
}

/** The signed body of one event: `id` is minted once per event, for all its subscribers. */
export function webhookEventBody(id: string, type: WebhookEventType, tenantId: string, now: number, data: unknown): string {
  const body: WebhookEventBody = { id, type, tenant_id: tenantId, created_at: now, data };
  return JSON.stringify(body);
}

/** The pending deliveries of `records` (each one event of `type`) to the tenant's `hookIds`. */
export function outboxDeliveries(
  tenantId: string,
  type: WebhookEventType,
  records: readonly unknown[],
  hookIds: readonly string[],
  now: number,
  newId: () => string,
): WebhookDelivery[] {
  const out: WebhookDelivery[] = [];
  for (const data of records) {
    const body = webhookEventBody(newId(), type, tenantId, now, data);
    for (const webhook_id of hookIds) {
      out.push({
        id: newId(),
        tenant_id: tenantId,
        webhook_id,
        event: type,
        body,
        status: 'pending',
        attempts: 0,
        next_attempt_at: now,
        last_status_code: null,
        last_error: null,
        created_at: now,
        updated_at: now,
      });
    }
  }
  return out;
}
