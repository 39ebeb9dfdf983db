/**
 * One tower's MQTT session: MQTT 3.1.1, persistent (clean: false), QoS 1, a retained will,
 * reconnects with exponential backoff and jitter, and PUBACK tracking. It knows nothing about
 * usage or decisions; EdgeAgent decides what to publish and when.
 */
import { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import { connect, ErrorWithReasonCode, type IClientOptions, type MqttClient } from 'mqtt';
// Before any packet is written: no 65,536-entry number cache (~7 MB) in this process.
import '../shared/mqtt/number-cache.js';
import { mqttClientLog } from '../shared/mqtt/client-log.js';
import WebSocket from 'ws';
import { backoffDelay } from './backoff.js';
import { PacketSizeGuard } from './packet-size-guard.js';

/**
 * Largest packet the agent takes from the broker, by default. Every downlink passed the broker's
 * payload limit (mqtt_max_payload_bytes, default 256 KiB; bundle and directory documents are split
 * into parts of ~128 KiB to fit it), so this leaves room for a deployment that raises that limit.
 */
export const DEFAULT_MAX_PACKET_BYTES = 16 * 1024 * 1024;

export interface TowerSessionOptions {
  /**
   * mqtt://host:port, or several broker nodes comma-separated (mqtt:// or mqtts://): each
   * reconnect goes to the next node, so a tower whose node died resumes on another [DESIGN §2].
   */
  url: string;
  towerId: string;
  password: string;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  connectTimeoutMs: number;
  random: () => number;
  /** Filters (QoS 1) subscribed on every connection. */
  subscriptions: string[];
  /** Built afresh for every connection attempt, so its timestamp is recent. */
  will: () => { topic: string; payload: Buffer; qos: 1; retain: true };
  /** PEM CA certificate(s) trusted for mqtts:// and wss:// (e.g. a private CA); default: the system's. */
  ca?: Buffer;
  /** A packet from the broker larger than this closes the connection (default DEFAULT_MAX_PACKET_BYTES). */
  maxPacketBytes?: number;
}

export interface TowerSessionEvents {
  /** CONNACK received and every subscription acknowledged. */
  up: [];
  down: [info: { wasUp: boolean }];
  /** `error`: why the last connection ended or failed, when known. */
  reconnecting: [info: { attempt: number; delayMs: number; error?: string }];
  message: [topic: string, payload: Buffer];
  /** Nothing is awaiting a PUBACK any more. */
  settled: [];
  error: [err: Error];
}

export class TowerSession extends EventEmitter<TowerSessionEvents> {
  readonly #opts: TowerSessionOptions;
  #client: MqttClient | null = null;
  #up = false;
  #closed = false;
  /** Bumped on every close so an async connect sequence can tell it was overtaken. */
  #generation = 0;
  /** A socket exists (connecting or connected): never open a second one. */
  #socketOpen = false;
  /**
   * Reconnect attempts since the last connection that stayed up. Not reset by a connection that
   * merely came up: one cut again at once (a flapping link, a broker that drops each new
   * session, two agents configured with the same tower id taking the session from each other)
   * reset it, and such a tower reconnected — TLS handshake, login, subscriptions, the retained
   * bundles resent — every reconnectMinMs for as long as that lasted, instead of backing off to
   * reconnectMaxMs. (A connection whose resent publishes are refused never comes up: mqtt.js
   * says 'connect' only once its stored publishes are acknowledged.)
   */
  #attempt = 0;
  /** When the current connection was acknowledged (performance.now()), while it is. */
  #connectedAt: number | null = null;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #outageHold = false;
  #outageTimer: NodeJS.Timeout | null = null;
  #inflight = 0;
  #opening: { resolve: () => void; reject: (err: Error) => void } | null = null;
  #lastError: Error | null = null;
  #oversizedPackets = 0;

  constructor(opts: TowerSessionOptions) {
    super();
    this.#opts = opts;
  }

  get up(): boolean {
    return this.#up && this.#client?.connected === true;
  }

  /** Connections closed because the broker sent a packet larger than maxPacketBytes. */
  get oversizedPackets(): number {
    return this.#oversizedPackets;
  }

  /** Publishes handed to mqtt.js and not yet PUBACKed (including ones it will resend). */
  get inflight(): number {
    return this.#inflight;
  }

  /**
   * Connects; resolves when first up. Unreachable brokers are retried with backoff (the promise
   * waits); a CONNACK refusal on the first attempt (bad credentials) rejects and closes.
   */
  open(): Promise<void> {
    if (this.#client) return Promise.reject(new Error('session already opened'));
    const opened = new Promise<void>((resolve, reject) => {
      this.#opening = { resolve, reject };
    });
    const servers = failoverServers(this.#opts.url);
    const options: IClientOptions = {
      clientId: `tower-${this.#opts.towerId}`,
      username: this.#opts.towerId,
      password: this.#opts.password,
      protocolVersion: 4,
      clean: false,
      keepalive: 30,
      // mqtt.js only offers a fixed reconnect period; we drive reconnects ourselves.
      reconnectPeriod: 0,
      connectTimeout: this.#opts.connectTimeoutMs,
      resubscribe: false,
      queueQoSZero: false,
      will: this.#opts.will(),
      createWebsocket: createWebSocket,
      ...mqttClientLog(),
      ...(this.#opts.ca ? { ca: this.#opts.ca } : {}),
    };
    const client = servers ? connect({ ...options, ...servers[0], servers }) : connect(this.#opts.url, options);
    this.#client = client;
    this.#socketOpen = true;
    this.#prepareStream(client);
    client.on('connect', () => void this.#onConnect(client));
    client.on('close', () => this.#onClose());
    client.on('message', (topic, payload) => this.emit('message', topic, payload));
    client.on('error', (err) => this.#onClientError(err));
    return opened;
  }

  /**
   * QoS 1 publish; resolves true on PUBACK, false on failure (reported as 'error', never thrown)
   * or when the session ended first.
   */
  publish(topic: string, payload: Buffer, retain: boolean): Promise<boolean> {
    const client = this.#client;
    if (!client || this.#closed) return Promise.resolve(false);
    this.#inflight++;
    return new Promise((resolve) => {
      client.publish(topic, payload, { qos: 1, retain }, (err) => {
        this.#inflight--;
        if (err && !this.#closed) this.#fail(err);
        if (this.#inflight === 0) this.emit('settled');
        resolve(!err);
      });
    });
  }

  /** Destroys the socket without DISCONNECT (the broker fires the will). See EdgeAgent. */
  simulateOutage(holdMs?: number): void {
    if (this.#closed || !this.#client) return;
    if (holdMs !== undefined) {
      this.#outageHold = true;
      this.#clearTimers();
      this.#outageTimer = setTimeout(() => this.endOutage(), holdMs);
    }
    this.#client.stream.destroy();
  }

  endOutage(): void {
    if (this.#outageTimer) clearTimeout(this.#outageTimer);
    this.#outageTimer = null;
    if (!this.#outageHold) return;
    this.#outageHold = false;
    if (!this.#closed && !this.#socketOpen && !this.#reconnectTimer) {
      this.#attempt = 0;
      this.#reconnectNow();
    }
  }

  /**
   * Ends the session: a DISCONNECT when up (suppressing the will [MQTT-3.14.4-3]), otherwise
   * the socket is simply dropped. Bounded: a peer that never closes cannot hang it.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimers();
    this.#opening?.reject(new Error('session closed before it came up'));
    this.#opening = null;
    const client = this.#client;
    if (!client) return;
    if (this.up) {
      const ended = await settlesWithin(client.endAsync(this.#inflight > 0), 1000);
      if (!ended) client.stream.destroy();
    } else {
      await client.endAsync(true);
    }
    this.#up = false;
  }

  async #onConnect(client: MqttClient): Promise<void> {
    const generation = this.#generation;
    this.#connectedAt = performance.now();
    try {
      // Subscribing again on a resumed session is harmless, and the broker then resends the
      // retained messages [MQTT-3.8.4-3], so retained state is fresh after every outage.
      const granted = await client.subscribeAsync(Object.fromEntries(this.#opts.subscriptions.map((f) => [f, { qos: 1 as const }])));
      const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
      if (refused.length > 0) this.#fail(new Error(`subscription refused: ${refused.join(', ')}`));
    } catch (err) {
      if (generation === this.#generation) this.#fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (generation !== this.#generation || !client.connected || this.#closed) return;
    this.#up = true;
    this.emit('up');
    this.#opening?.resolve();
    this.#opening = null;
  }

  #onClose(): void {
    const wasUp = this.#up;
    this.#up = false;
    this.#socketOpen = false;
    this.#generation++;
    // A connection that outlived the longest backoff was a good one: the next loss starts over.
    if (this.#connectedAt !== null && performance.now() - this.#connectedAt >= this.#opts.reconnectMaxMs) this.#attempt = 0;
    this.#connectedAt = null;
    this.emit('down', { wasUp });
    if (!this.#closed) this.#scheduleReconnect();
  }

  #onClientError(err: Error): void {
    this.#lastError = err;
    // A refused CONNACK before the first connection is a configuration error: fail open().
    if (err instanceof ErrorWithReasonCode && this.#opening) {
      const opening = this.#opening;
      this.#opening = null;
      this.#closed = true;
      this.#clearTimers();
      this.#client?.end(true);
      opening.reject(err);
      return;
    }
    this.#fail(err);
  }

  #scheduleReconnect(): void {
    if (this.#reconnectTimer || this.#outageHold || this.#socketOpen) return;
    const attempt = this.#attempt++;
    const delayMs = backoffDelay(attempt, this.#opts.reconnectMinMs, this.#opts.reconnectMaxMs, this.#opts.random);
    const error = this.#lastError?.message;
    this.#lastError = null;
    this.emit('reconnecting', { attempt, delayMs, ...(error ? { error } : {}) });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      this.#reconnectNow();
    }, delayMs);
  }

  #reconnectNow(): void {
    const client = this.#client;
    if (!client || this.#socketOpen || this.#closed) return;
    client.options.will = this.#opts.will();
    this.#socketOpen = true;
    // connect(), not reconnect(): reconnect() swaps in empty stores and would forget the QoS 1
    // publishes still awaiting a PUBACK, which the resumed session must resend [MQTT-4.4.0-1].
    client.connect();
    this.#prepareStream(client);
  }

  /** Every new socket: no Nagle, and a bound on the packets it may bring. */
  #prepareStream(client: MqttClient): void {
    noDelay(client);
    const stream = client.stream;
    const max = this.#opts.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
    const guard = new PacketSizeGuard(max);
    // In front of every reader, mqtt.js's parser included: a 'data' listener would see a chunk only
    // after the parser had taken it, and a packet that came whole in one chunk would be acted on.
    const emit = stream.emit.bind(stream) as (event: string | symbol, ...args: unknown[]) => boolean;
    let tripped = false;
    (stream as { emit: typeof emit }).emit = (event, ...args) => {
      const chunk = args[0];
      if (event !== 'data' || !(chunk instanceof Uint8Array)) return emit(event, ...args);
      if (tripped) return false;
      const over = guard.push(chunk);
      if (over === null) return emit(event, ...args);
      tripped = true;
      // The whole packets before it still count (a PUBACK, a command already complete).
      if (over.start > 0) emit('data', chunk.subarray(0, over.start));
      this.#oversizedPackets++;
      const err = new Error(`broker sent a packet of ${over.length} bytes or more, above the ${max} allowed: connection closed`);
      this.#lastError = err;
      this.#fail(err);
      stream.destroy();
      return false;
    };
  }

  #clearTimers(): void {
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    if (this.#outageTimer) clearTimeout(this.#outageTimer);
    this.#reconnectTimer = null;
    this.#outageTimer = null;
  }

  #fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }
}

/**
 * Several broker nodes (comma-separated mqtt:// or mqtts:// URLs) become mqtt.js `servers`,
 * which it rotates through on every (re)connect; a single URL (null here) is used as given.
 */
export function failoverServers(url: string): Array<{ host: string; port: number; protocol: 'mqtt' | 'mqtts' }> | null {
  const urls = url.split(',').map((u) => u.trim()).filter(Boolean);
  if (urls.length <= 1) return null;
  return urls.map((raw) => {
    const u = new URL(raw);
    if (u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') throw new Error(`--url: a failover list takes mqtt:// or mqtts:// URLs, got ${raw}`);
    return { host: u.hostname, port: Number(u.port) || (u.protocol === 'mqtts:' ? 8883 : 1883), protocol: u.protocol.replace(':', '') as 'mqtt' | 'mqtts' };
  });
}

/** Small latency-critical packets: don't let Nagle hold a batch back waiting for an ACK. */
function noDelay(client: MqttClient): void {
  if (client.stream instanceof Socket) client.stream.setNoDelay(true);
}

/**
 * For ws:// URLs. ws's stream wrapper listens for WebSocket errors with once(), so a later
 * socket error would find no listener and throw; mqtt.js still sees the first one through the
 * stream. Also disables Nagle on the underlying socket.
 */
function createWebSocket(url: string, protocols: string[], opts?: { ca?: unknown }): WebSocket {
  const ws = new WebSocket(url, protocols, opts?.ca ? { ca: opts.ca as Buffer } : {});
  ws.on('error', () => {});
  ws.on('upgrade', (res) => {
    if (res.socket instanceof Socket) res.socket.setNoDelay(true);
  });
  return ws;
}

/** Resolves true when `p` settles within `ms`, false otherwise (never rejects). */
export function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const done = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    p.then(done, done);
  });
}
