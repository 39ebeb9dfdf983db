/**
 * Turns the alert workflow's bus events (alert.acknowledged, alert.assigned, alert.resolved) into
 * webhook deliveries: for each enabled webhook of the event's tenant that subscribed to it, one
 * pending delivery whose body is fixed (and later signed) as
 *   { id, type, tenant_id, created_at, data }
 * `id` identifies the event (the same in every subscriber's delivery; receivers deduplicate on it),
 * `data` is the record as the REST API returns it. Then it pokes the deliverer.
 *
 * The events the store commits itself (alert.opened, alert.updated, command.updated,
 * device.discovered) have their deliveries written in the record's own transaction (the outbox,
 * shared/store/rules/webhook-outbox.ts), so a worker killed between the commit and the
 * announcement loses none: their announcement only pokes the deliverer here.
 *
 * Deliveries are written to the store before any attempt, so a restart loses none.
 */
import type { Bus } from '../../shared/bus.js';
import type { WebhookEventType } from '../../shared/domain.js';
import type { IdFactory } from '../../shared/ids.js';
import type { Counters } from '../../shared/metrics.js';
import type { Store } from '../../shared/store/port.js';
import { OUTBOX_EVENTS, webhookEventBody } from '../../shared/store/rules/webhook-outbox.js';

export type { WebhookEventBody } from '../../shared/store/rules/webhook-outbox.js';

export interface WebhookNotifierOptions {
  store: Store;
  bus: Bus;
  /** Told when new deliveries exist (WebhookDeliverer). */
  deliverer: { poke(): void };
  counters: Counters;
  newId: IdFactory;
  now?: () => number;
  /** Store failures while fanning out (the event is then not notified); the root logs them. */
  onError?: (err: unknown) => void;
}

export class WebhookNotifier {
  readonly #opts: WebhookNotifierOptions;
  readonly #now: () => number;
  readonly #inflight = new Set<Promise<void>>();
  #started = false;

  constructor(opts: WebhookNotifierOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const { bus } = this.#opts;
    // Workflow steps carry the alert after the step (who/when/note are on it), like the others.
    for (const type of ['alert.acknowledged', 'alert.assigned', 'alert.resolved'] as const) {
      bus.subscribe(type, (e) => this.#notify(type, e.tenant_id, e.alert), this);
    }
    // Stored with their record already: delivered now rather than at the next sweep.
    for (const type of OUTBOX_EVENTS) bus.subscribe(type, () => this.#opts.deliverer.poke(), this);
  }

  /** Unsubscribes and waits until the events already received are written as deliveries. */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#opts.bus.removeAllFor(this);
    await this.idle();
  }

  /** Resolves once every event received so far has its deliveries stored. */
  async idle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
  }

  #notify(type: WebhookEventType, tenantId: string, data: unknown): void {
    const p = this.#fanOut(type, tenantId, data)
      .catch((err: unknown) => {
        this.#opts.counters.inc('webhook_notify_errors_total', { event: type });
        this.#opts.onError?.(err);
      })
      .finally(() => this.#inflight.delete(p));
    this.#inflight.add(p);
  }

  async #fanOut(type: WebhookEventType, tenantId: string, data: unknown): Promise<void> {
    const { store } = this.#opts;
    const hooks = await store.webhooks.subscribers(tenantId, type);
    if (hooks.length === 0) return;
    const now = this.#now();
    const json = webhookEventBody(this.#opts.newId(), type, tenantId, now, data);
    for (const hook of hooks) {
      await store.webhookDeliveries.create({
        tenant_id: tenantId,
        webhook_id: hook.id,
        event: type,
        body: json,
        next_attempt_at: now,
      });
    }
    this.#opts.counters.inc('webhook_events_total', { event: type });
    this.#opts.deliverer.poke();
  }
}
