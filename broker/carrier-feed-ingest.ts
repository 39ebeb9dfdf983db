/**
 * Carrier feeds over MQTT: a carrier's PUBLISH on its own feed topic is applied (record by record,
 * shared/ingest/carrier-feeds.ts, the same code as the REST endpoint) before the broker
 * acknowledges it, and the result is published on the carrier's results topic. The feed message
 * never reaches another client (authorize.ts consumes it like a tower uplink).
 *
 * A message that is not a feed envelope (bad JSON, no id, too many records) is dropped and
 * counted: there is no feed id to answer under. A store failure refuses the PUBLISH, so the
 * carrier redelivers; re-applying is harmless (feeds are idempotent). A tower the feed retired is
 * announced on the bus ('tower.retired'), so every broker drops its live sessions at once.
 */
import type { Bus } from '../shared/bus.js';
import { announceRetired, applyCarrierFeed, type FeedKind } from '../shared/ingest/carrier-feeds.js';
import type { Logger } from '../shared/logger.js';
import type { Counters } from '../shared/metrics.js';
import { CarrierTowerFeedSchema } from '../shared/mqtt/carrier-payloads.js';
import { decodePayload, encodePayload } from '../shared/mqtt/payloads.js';
import { topics } from '../shared/mqtt/topics.js';
import type { Store } from '../shared/store/port.js';

export interface CarrierFeedSink {
  accept(carrierId: string, kind: FeedKind, payload: Buffer): Promise<void>;
}

export interface CarrierFeedIngestDeps {
  store: Pick<Store, 'carrierFeeds'>;
  /** Publishes the result (the broker's own downlink). */
  publish: (topic: string, payload: Buffer) => Promise<void>;
  /** Where retirements are announced (brokers close the retired towers' sessions). */
  bus: Pick<Bus, 'publish'>;
  counters: Counters;
  logger: Logger;
  now: () => number;
}

export class CarrierFeedIngest implements CarrierFeedSink {
  constructor(private readonly d: CarrierFeedIngestDeps) {}

  async accept(carrierId: string, kind: FeedKind, payload: Buffer): Promise<void> {
    const decoded = decodePayload(CarrierTowerFeedSchema, payload);
    if (!decoded.ok) {
      this.d.counters.inc('carrier_feeds_dropped_total', { carrier: carrierId, kind, reason: 'invalid_envelope' });
      this.d.logger.warn({ carrier_id: carrierId, kind, detail: decoded.error }, 'carrier feed dropped');
      return;
    }
    const feed = decoded.value;
    const result = await applyCarrierFeed(this.d.store, { carrierId, kind, feedId: feed.id, records: feed.records, now: this.d.now() });
    announceRetired(this.d.bus, result);
    this.d.counters.inc('carrier_feed_records_total', { kind, outcome: 'refused' }, result.counts.refused);
    this.d.counters.inc('carrier_feed_records_total', { kind, outcome: 'applied' }, feed.records.length - result.counts.refused);
    // Applied is what the PUBACK stands for; a lost result is recovered by resending the feed.
    await this.d.publish(topics.carrierResults(carrierId), encodePayload(result)).catch((err: unknown) =>
      this.d.logger.warn({ err, carrier_id: carrierId, feed_id: feed.id }, 'publishing a carrier feed result failed'),
    );
  }
}
