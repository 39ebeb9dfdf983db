/**
 * The ingest plugins a process runs (shared/ingest/plugin.ts), built from its configuration and
 * fed into the same UplinkSink as its MQTT broker: the workers' pipeline (embedded) or the uplink
 * queue (the broker role). Each is off unless its port is set.
 */
import { LineIngestPlugin } from '../../broker/line-ingest/line-plugin.js';
import { RadiusAccountingPlugin } from '../../broker/radius/radius-plugin.js';
import { RadSecAccountingPlugin } from '../../broker/radius/radsec-plugin.js';
import { IngestPlugins, PluginCounters, type IngestPluginContext } from '../../shared/ingest/plugin.js';
import type { UplinkSink } from '../../shared/mqtt/transport.js';
import type { TlsMaterial } from '../preflight.js';
import type { Foundation } from './foundation.js';

export interface BuiltIngestPlugins {
  plugins: IngestPlugins;
  radius: RadiusAccountingPlugin | null;
  radsec: RadSecAccountingPlugin | null;
  line: LineIngestPlugin | null;
}

export function buildIngestPlugins(
  f: Pick<Foundation, 'config' | 'store' | 'counters' | 'logger' | 'now' | 'newId'>,
  sink: UplinkSink,
  tls: TlsMaterial | null,
): BuiltIngestPlugins {
  const { config, store } = f;
  const context = (name: string): IngestPluginContext => ({
    sink,
    counters: new PluginCounters(f.counters, name),
    logger: f.logger.child({ module: `ingest-${name}` }),
    now: f.now,
    newId: f.newId,
  });
  const clients = { findByNasIdentifier: (nas: string) => store.radiusClients.findByNasIdentifier(nas) };
  const radius =
    config.radius_acct_port === 0 ? null : new RadiusAccountingPlugin(context('radius'), { host: config.radius_acct_host, port: config.radius_acct_port, clients });
  // The configuration schema and the preflight make sure the TLS files are there with the port.
  const radsec =
    config.radsec_port === 0 || !tls?.radsecCa
      ? null
      : new RadSecAccountingPlugin(context('radsec'), { host: config.radsec_host, port: config.radsec_port, clients, cert: tls.cert, key: tls.key, ca: tls.radsecCa });
  const line =
    config.line_ingest_port === 0
      ? null
      : new LineIngestPlugin(context('line'), {
          host: config.mqtt_host,
          port: config.line_ingest_port,
          towerCredentials: { get: (id) => store.towerCredentials.get(id) },
          towers: { get: (id) => store.towers.get(id) },
        });
  return { plugins: new IngestPlugins([radius, radsec, line].filter((p) => p !== null)), radius, radsec, line };
}
