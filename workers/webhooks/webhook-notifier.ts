/**
 * Turns bus events into webhook deliveries: for each enabled webhook of the event's tenant that
 * subscribed to it, one pending delivery whose body is fixed (and later signed) as
 *   { id, type, tenant_id, created_at, data }
 * `id` identifies the event (the same in every subscriber's delivery; receivers deduplicate on it),
 * `data` is the record as the REST API returns it. Then it pokes the deliverer.
 *
 * Deliveries are written to the store before any attempt, so a restart loses none; events of
 * devices no tenant claims yet (device.discovered with tenant_id null) notify nobody.
 */
import type { Bus } from '../../shared/bus.js';
import type { WebhookEventType } from '../../shared/domain.js';
import type { IdFactory } from '../../shared/ids.js';
import type { Counters } from '../../shared/metrics.js';
import type { Store } from '../../shared/store/port.js';

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

export interface WebhookEventBody {
  id: string;
  type: WebhookEventType;
  tenant_id: string;
  created_at: number;
  data: unknown;
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
    bus.subscribe('alert.opened', (e) => this.#notify('alert.opened', e.tenant_id, e.alert), this);
    bus.subscribe('alert.updated', (e) => this.#notify('alert.updated', e.tenant_id, e.alert), this);
    // Workflow steps carry the alert after the step (who/when/note are on it), like the others.
    for (const type of ['alert.acknowledged', 'alert.assigned', 'alert.resolved'] as const) {
      bus.subscribe(type, (e) => this.#notify(type, e.tenant_id, e.alert), this);
    }
    bus.subscribe('command.updated', (e) => this.#notify('command.updated', e.tenant_id, e.command), this);
    bus.subscribe(
      'device.discovered',
      (e) => {
        if (e.tenant_id !== null) this.#notify('device.discovered', e.tenant_id, e.device);
      },
      this,
    );
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
    const body: WebhookEventBody = { id: this.#opts.newId(), type, tenant_id: tenantId, created_at: now, data };
    const json = JSON.stringify(body);
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
