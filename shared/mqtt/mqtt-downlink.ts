/**
 * Downlink over MQTT (distributed mode): a worker publishes decisions, commands and retained
 * policy bundles through a broker node, as an internal service (`service:<name>`). The node's
 * PUBACK means it has queued the message for every persistent session that subscribes to it
 * and handed it to mqemitter-redis, which carries it to the node holding the tower's connection
 * (our broker publishes a QoS 1 message before acknowledging it: broker/edgeplane-aedes.ts).
 * With several URLs the client fails over to the next node, and resends what was not
 * acknowledged.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { mqttClientLog } from './client-log.js';
// Before any packet is written: no 65,536-entry number cache (~7 MB) in this process.
import './number-cache.js';
import { mqttIdentity } from './topics.js';
import type { Downlink, DownlinkOptions } from './transport.js';

export interface MqttDownlinkOptions {
  /** Broker node URLs, tried in order (mqtt://host:port). */
  urls: string[];
  /** Service name (unique per process): its client id is `service-<name>`. */
  name: string;
  serviceSecret: string;
  connectTimeoutMs?: number;
  /**
   * Reads the broker's retained store (Downlink.retainedUnder) where this process can: the
   * worker role reads the broker nodes' Redis index (broker/retained-redis.ts).
   */
  retainedUnder?: (prefix: string) => Promise<string[]>;
  /** Downlink.retainedEdgeDocuments, likewise. */
  retainedEdgeDocuments?: () => Promise<string[]>;
}

export class MqttDownlink implements Downlink {
  readonly #o: MqttDownlinkOptions;
  #client: MqttClient | null = null;
  readonly retainedUnder?: (prefix: string) => Promise<string[]>;
  readonly retainedEdgeDocuments?: () => Promise<string[]>;

  constructor(opts: MqttDownlinkOptions) {
    if (opts.urls.length === 0) throw new Error('--mqtt-url: at least one broker URL is required');
    this.#o = opts;
    if (opts.retainedUnder) this.retainedUnder = opts.retainedUnder;
    if (opts.retainedEdgeDocuments) this.retainedEdgeDocuments = opts.retainedEdgeDocuments;
  }

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  async start(): Promise<void> {
    const servers = this.#o.urls.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port || (url.protocol === 'mqtts:' ? 8883 : 1883)), protocol: url.protocol.replace(':', '') as 'mqtt' | 'mqtts' };
    });
    const first = servers[0]!;
    // mqtt.connect, not connectAsync: connectAsync gives up at the first refused connection, so a
    // worker started beside its brokers (before they listen) exited at once, without trying the
    // next URL. This waits for the first CONNACK from any node while mqtt.js reconnects, in turn;
    // the caller bounds the wait and stops the client when it gives up.
    const client = mqtt.connect({
      ...first,
      servers,
      protocolVersion: 4,
      clientId: mqttIdentity.serviceClientId(this.#o.name),
      username: mqttIdentity.serviceUsername(this.#o.name),
      password: this.#o.serviceSecret,
      clean: true,
      reconnectPeriod: 500,
      connectTimeout: this.#o.connectTimeoutMs ?? 10_000,
      // Publishes made while reconnecting wait in the client's outgoing store and go out (QoS 1,
      // same packet id) once connected, so a broker node's death does not lose a decision.
      queueQoSZero: false,
      ...mqttClientLog(),
    });
    // mqtt.js emits 'error' for transient socket errors (a refused connection included); it
    // reconnects by itself, to the next URL.
    client.on('error', () => {});
    this.#client = client;
    await new Promise<void>((resolve, reject) => {
      const settle = () => {
        client.off('connect', onConnect);
        client.off('end', onEnd);
        client.off('error', onRefused);
      };
      const onConnect = () => {
        settle();
        resolve();
      };
      const onEnd = () => {
        settle();
        reject(new Error('the downlink was stopped before a broker node took its connection'));
      };
      // A CONNACK refusal (a wrong service secret) carries a numeric reason code, and mqtt.js
      // does not reconnect after it: fail now, with its reason, as before.
      const onRefused = (err: Error & { code?: unknown }) => {
        if (typeof err.code !== 'number') return;
        settle();
        this.#client = null;
        client.end(true);
        reject(err);
      };
      client.on('connect', onConnect);
      client.on('end', onEnd);
      client.on('error', onRefused);
    });
  }

  async publish(topic: string, payload: Buffer, opts?: DownlinkOptions): Promise<void> {
    const client = this.#client;
    if (!client) throw new Error('downlink is not started');
    await client.publishAsync(topic, payload, { qos: opts?.qos ?? 1, retain: opts?.retain ?? false });
  }

  async stop(): Promise<void> {
    const c = this.#client;
    this.#client = null;
    await c?.endAsync().catch(() => c.end(true));
  }
}
