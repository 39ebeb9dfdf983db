/**
 * Wakes the webhook deliverer when an event is announced on the bus. Every webhook event
 * (alert.opened, alert.updated, alert.acknowledged, alert.assigned, alert.resolved,
 * command.updated, device.discovered) has its deliveries written by the store in the record's
 * own transaction (the outbox, shared/store/rules/webhook-outbox.ts), so a process killed between
 * the commit and the announcement loses none: the announcement only gets them delivered now
 * rather than at the deliverer's next sweep (1 s).
 */
import type { Bus } from '../../shared/bus.js';
import type { Counters } from '../../shared/metrics.js';
import { OUTBOX_EVENTS } from '../../shared/store/rules/webhook-outbox.js';

export type { WebhookEventBody } from '../../shared/store/rules/webhook-outbox.js';

export interface WebhookNotifierOptions {
  bus: Bus;
  /** Told when new deliveries exist (WebhookDeliverer). */
  deliverer: { poke(): void };
  counters: Counters;
}

export class WebhookNotifier {
  readonly #opts: WebhookNotifierOptions;
  #started = false;

  constructor(opts: WebhookNotifierOptions) {
    this.#opts = opts;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const { bus, deliverer, counters } = this.#opts;
    for (const type of OUTBOX_EVENTS) {
      bus.subscribe(
        type,
        () => {
          counters.inc('webhook_events_total', { event: type });
          deliverer.poke();
        },
        this,
      );
    }
  }

  /** Unsubscribes (the announcements hold no work of their own: their deliveries are stored). */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#opts.bus.removeAllFor(this);
  }
}
