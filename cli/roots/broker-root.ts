/**
 * The broker as every root that runs one builds it (embedded, `edgeplane broker`): the store's
 * credentials and towers, carrier feeds answered on the broker's own downlink, console users
 * checked at CONNECT, command deliveries reported to the command service. The roots differ only
 * in where sessions live, where uplinks go, and TLS.
 */
import { Broker, type BrokerDeps } from '../../broker/broker.js';
import type { CommandService } from '../../shared/commands/command-service.js';
import { CarrierFeedIngest } from '../../broker/carrier-feed-ingest.js';
import { consoleUserActive, type Foundation } from './foundation.js';

export function buildBroker(
  f: Foundation,
  commands: CommandService,
  opts: Pick<BrokerDeps, 'backends' | 'tls' | 'sink'>,
): Broker {
  const { store, counters, logger } = f;
  const broker: Broker = new Broker({
    config: { ...f.config, service_secret: f.serviceSecret },
    logger: logger.child({ module: 'broker' }),
    counters,
    bus: f.bus,
    towerCredentials: { get: (id) => store.towerCredentials.get(id), touch: (id, at) => store.towerCredentials.touch(id, at) },
    towers: { get: (id) => store.towers.get(id), setStatus: (id, s) => store.towers.setStatus(id, s) },
    carrierCredentials: { get: (id) => store.carrierCredentials.get(id), touch: (id, at) => store.carrierCredentials.touch(id, at) },
    carrierFeeds: new CarrierFeedIngest({
      store,
      // The broker answers the carrier itself: the result topic is its own downlink.
      publish: (topic, payload) => broker.downlink.publish(topic, payload),
      bus: f.bus,
      counters,
      logger: logger.child({ module: 'carrier-feeds' }),
      now: f.now,
    }),
    tokens: f.tokens,
    // Deleted, disabled or re-roled users, users moved to another tenant, or a signed-out sign-in cannot open or keep MQTT sessions with a token they still hold.
    consoleUsers: { isActive: (id, tenantId, sessionVersion, sessionId) => consoleUserActive(store, id, tenantId, sessionVersion, sessionId) },
    now: f.now,
    storeFaults: f.storeFaults,
    onCommandDelivered: (e) => commands.reportDelivered(e.tenant_id, e.tower_id, e.command_id, e.at),
    ...opts,
  });
  return broker;
}
