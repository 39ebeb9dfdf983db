/**
 * The ingest plugins a process runs (shared/ingest/plugin.ts), built from its configuration and
 * fed into the same UplinkSink as its MQTT broker: the workers' pipeline (embedded) or the uplink
 * queue (the broker role). Each is off unless its port is set.
 */
import { LineIngestPlugin } from '../../broker/line-ingest/line-plugin.js';
import { RadiusAccountingPlugin } from '../../broker/radius/radius-plugin.js';
import { IngestPlugins, PluginCounters, type IngestPluginContext } from '../../shared/ingest/plugin.js';
import type { UplinkSink } from '../../shared/mqtt/transport.js';
import type { Foundation } from './foundation.js';

export interface BuiltIngestPlugins {
  plugins: IngestPlugins;
  radius: RadiusAccountingPlugin | null;
  line: LineIngestPlugin | null;
}

export function buildIngestPlugins(f: Pick<Foundation, 'config' | 'store' | 'counters' | 'logger' | 'now' | 'newId'>, sink: UplinkSink): BuiltIngestPlugins {
  const { config, store } = f;
  const context = (name: string): IngestPluginContext => ({
    sink,
    counters: new PluginCounters(f.counters, name),
    logger: f.logger.child({ module: `ingest-${name}` }),
    now: f.now,
    newId: f.newId,
  });
  const radius =
    config.radius_acct_port === 0
      ? null
      : new RadiusAccountingPlugin(context('radius'), {
          host: config.radius_acct_host,
          port: config.radius_acct_port,
          clients: { findByNasIdentifier: (nas) => store.radiusClients.findByNasIdentifier(nas) },
        });
  const line =
    config.line_ingest_port === 0
      ? null
      : new LineIngestPlugin(context('line'), {
          host: config.mqtt_host,
          port: config.line_ingest_port,
          towerCredentials: { get: (id) => store.towerCredentials.get(id) },
          towers: { get: (id) => store.towers.get(id) },
        });
  return { plugins: new IngestPlugins([radius, line].filter((p) => p !== null)), radius, line };
}
