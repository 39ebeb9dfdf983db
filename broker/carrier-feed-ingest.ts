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
 *
 * A feed is applied only while the credential of the session that published it stands: a
 * revocation cuts it at the next record (FeedCut; the records after it are counted in
 * `carrier_feed_records_total{outcome="cut"}`, those before are announced, and the PUBLISH is
 * refused: no PUBACK, no result). The session knows of a revocation from the bus
 * ('carrier-credential.revoked', access.ts), which is checked right before each record; since
 * pub/sub between processes is at most once, the credential is also read again from the store at
 * least every second or every 250 records while a feed is applied (shared/auth/bounded-recheck.ts).
 */
import { BoundedRecheck, DEFAULT_RECHECK } from '../shared/auth/bounded-recheck.js';
import { carrierCredentialActive } from '../shared/auth/carrier-keys.js';
import type { Bus } from '../shared/bus.js';
import { FeedCut, announceRetired, applyCarrierFeed, type FeedKind } from '../shared/ingest/carrier-feeds.js';
import type { Logger } from '../shared/logger.js';
import type { Counters } from '../shared/metrics.js';
import { CarrierTowerFeedSchema } from '../shared/mqtt/carrier-payloads.js';
import { decodePayload, encodePayload } from '../shared/mqtt/payloads.js';
import { topics } from '../shared/mqtt/topics.js';
import type { Store } from '../shared/store/port.js';

/** The credential a feed was published under, as the broker's session knows it. */
export interface FeedCredential {
  id: string;
  /** True once the broker learnt of its revocation (the bus); asked synchronously. */
  revoked: () => boolean;
}

export interface CarrierFeedSink {
  /** Applies the feed; throws FeedCut when the credential was revoked meanwhile (refuse the PUBLISH). */
  accept(carrierId: string, kind: FeedKind, payload: Buffer, credential: FeedCredential): Promise<void>;
}

export interface CarrierFeedIngestDeps {
  store: Pick<Store, 'carrierFeeds' | 'carrierCredentials'>;
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

  async accept(carrierId: string, kind: FeedKind, payload: Buffer, credential: FeedCredential): Promise<void> {
    const decoded = decodePayload(CarrierTowerFeedSchema, payload);
    if (!decoded.ok) {
      this.d.counters.inc('carrier_feeds_dropped_total', { carrier: carrierId, kind, reason: 'invalid_envelope' });
      this.d.logger.warn({ carrier_id: carrierId, kind, detail: decoded.error }, 'carrier feed dropped');
      return;
    }
    const feed = decoded.value;
    const recheck = new BoundedRecheck({
      read: () => carrierCredentialActive(credential.id, (id) => this.d.store.carrierCredentials.get(id)),
      now: this.d.now,
      ...DEFAULT_RECHECK,
      // Authenticated at CONNECT, possibly long ago: the first record reads the store.
      readAt: Number.NEGATIVE_INFINITY,
    });
    const authority = {
      stillValid: async () => !credential.revoked() && (await recheck.stillValid()),
      get revoked() {
        return credential.revoked() || recheck.revoked;
      },
    };
    let result;
    try {
      result = await applyCarrierFeed(this.d.store, { carrierId, kind, feedId: feed.id, records: feed.records, now: this.d.now(), authority });
    } catch (err) {
      if (err instanceof FeedCut) {
        announceRetired(this.d.bus, err.applied);
        this.d.counters.inc('carrier_feed_records_total', { kind, outcome: 'cut' }, err.total - err.at);
        this.d.logger.warn({ carrier_id: carrierId, credential_id: credential.id, feed_id: feed.id, applied: err.at, total: err.total }, 'carrier feed cut: credential revoked');
      }
      throw err;
    }
    announceRetired(this.d.bus, result);
    this.d.counters.inc('carrier_feed_records_total', { kind, outcome: 'refused' }, result.counts.refused);
    this.d.counters.inc('carrier_feed_records_total', { kind, outcome: 'applied' }, feed.records.length - result.counts.refused);
    // Applied is what the PUBACK stands for; a lost result is recovered by resending the feed.
    await this.d.publish(topics.carrierResults(carrierId), encodePayload(result)).catch((err: unknown) =>
      this.d.logger.warn({ err, carrier_id: carrierId, feed_id: feed.id }, 'publishing a carrier feed result failed'),
    );
  }
}
