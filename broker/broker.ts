/**
 * The MQTT broker (DESIGN §3): Aedes 1.x on TCP and WebSocket, with authentication, ACL, limits,
 * tower availability and the in-process ingest/downlink ports. The constructor does no I/O;
 * `start()` binds the listeners and `stop()` undoes it in reverse order.
 *
 * Where each trust boundary is held:
 * - bytes: every connection reaches aedes through a WireGuard (connection-gate.ts), which
 *   checks frames against MQTT 3.1.1 and our size caps before aedes parses them, and passes
 *   nothing after a CONNECT until it is authenticated;
 * - who: authenticate.ts (client ids pinned to principals), revocations from the bus;
 * - what: authorize.ts (ACL, caps, tower uplinks consumed by ingest), the retained quota;
 * - how much is stored: guarded-persistence.ts (granted subscriptions once, queue caps).
 */
import type { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Aedes, AedesOptions, Client } from 'aedes';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import type { TokenService } from '../shared/auth/tokens.js';
import type { Bus } from '../shared/bus.js';
import type { Config } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import { createIdFactory } from '../shared/ids.js';
import type { Counters } from '../shared/metrics.js';
import { writeToStream } from 'mqtt-packet';
import { filters, filterWithin, mayReceive, mqttIdentity, parseTopic, TOPIC_SPECS } from '../shared/mqtt/topics.js';
import type { Downlink, UplinkSink } from '../shared/mqtt/transport.js';
import type { StoreFaults } from '../shared/store/store-faults.js';
import type { Store } from '../shared/store/port.js';
import { Access, authError } from './access.js';
import { CONNACK } from './authenticate.js';
import { deliverOutOfOrderPackets, memoryBackends, releaseConnectPacket, type BrokerBackends, type SessionPersistence } from './backends.js';
import { createAuthorizeHooks, PublishRefused } from './authorize.js';
import type { CarrierFeedSink } from './carrier-feed-ingest.js';
import { ConnectionGate } from './connection-gate.js';
import { EdgeplaneAedes } from './edgeplane-aedes.js';
import { MAX_CLIENT_ID_BYTES } from './frame-inspector.js';
import { guardPersistence, type GuardedPersistence } from './guarded-persistence.js';
import { maxFrameBytes } from './limits.js';
import { RefusalLog } from './refusal-log.js';
import { RetainedQuota } from './retained-quota.js';
import { Sessions, TOPIC_VERDICTS_MAX } from './sessions.js';
import { SubackPerFilter } from './suback-per-filter.js';
import { TlsHandshakes } from './tls-handshakes.js';

export type BrokerConfig = Pick<
  Config,
  | 'mqtt_host'
  | 'mqtt_port'
  | 'mqtt_ws_port'
  | 'allow_anonymous'
  | 'mqtt_max_payload_bytes'
  | 'mqtt_max_topic_levels'
  | 'mqtt_publish_rate'
  | 'mqtt_publish_burst'
  | 'mqtt_drain_timeout_ms'
  | 'mqtt_ack_timeout_s'
  | 'mqtt_max_connect_bytes'
  | 'mqtt_max_pending_connections'
  | 'mqtt_max_filters_per_subscribe'
  | 'mqtt_max_subscriptions_per_client'
  | 'mqtt_max_persistent_sessions_per_user'
  | 'mqtt_max_queued_per_session'
  | 'mqtt_max_retained_bytes_per_client'
  | 'mqtt_max_retained_messages'
  | 'mqtt_max_retained_bytes'
  | 'access_token_ttl_s'
  | 'service_secret'
> &
  /** Used only with `BrokerDeps.tls`; default 8883. */
  Partial<Pick<Config, 'mqtt_tls_port'>>;

export interface BrokerDeps {
  /** `service_secret` is optional in Config but required here: `start()` refuses without it. */
  config: BrokerConfig;
  logger: Logger;
  counters: Counters;
  bus: Bus;
  towerCredentials: Pick<Store['towerCredentials'], 'get' | 'touch'>;
  towers: Pick<Store['towers'], 'get' | 'setStatus'>;
  /** Carrier feed credentials and where carrier feeds go; without them carriers cannot log in. */
  carrierCredentials?: Pick<Store['carrierCredentials'], 'get' | 'touch'>;
  carrierFeeds?: CarrierFeedSink;
  tokens: Pick<TokenService, 'verify'>;
  /**
   * Whether a console user may still use MQTT: it exists, belongs to the tenant, is not
   * disabled, is still at `sessionVersion` (the token's `sv`: no role or password change since),
   * and the token's sign-in (`sessionId`, its `sid`; absent in older tokens) was not signed out.
   * Checked at CONNECT and, for live sessions, every second (access.ts; revocations also arrive
   * on the bus). Without it, only revocations seen on the bus since start are refused.
   */
  consoleUsers?: { isActive(userId: string, tenantId: string, sessionVersion: number, sessionId?: string): Promise<boolean> };
  /**
   * Session store and emitter (broker/backends.ts). Default: in memory, sessions lost on
   * restart; `edgeplane start` passes the durable one. The broker closes it when it stops.
   */
  backends?: BrokerBackends;
  /** Where tower uplinks go. Usually set later with `setSink` (workers are built after the broker). */
  sink?: UplinkSink | null;
  /**
   * A tower's MQTT client acknowledged (PUBACK) a command: the command service records the
   * 'delivered' step. Errors are the callee's to count; the broker only logs them.
   */
  onCommandDelivered?: (e: { tenant_id: string; tower_id: string; command_id: string; at: number }) => Promise<void>;
  /**
   * Store-full refusals (an uplink the sink could not store, a credential's last-use stamp):
   * counted and logged once per episode instead of once each. Without it, each is logged.
   */
  storeFaults?: StoreFaults | null;
  now?: () => number;
  /**
   * PEM certificate and key: MQTT over TLS listens on `mqtt_tls_port` and the WebSocket listener
   * serves WSS instead of WS. The composition root reads the files (--tls-cert-file …).
   */
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer } | null;
  /** How often repeated refusals are summed up in one log line (default 10 s). */
  refusalLogIntervalMs?: number;
}

export interface BrokerPorts {
  mqttPort: number;
  wsPort: number;
  /** MQTT over TLS; null without `tls`. */
  tlsPort: number | null;
}

/** Long enough for a slow link's TLS-less CONNECT, short enough that idle sockets do not pile up. */
const CONNECT_TIMEOUT_MS = 10_000;
/**
 * TCP keepalive on every accepted socket (MQTT, TLS, WS, WSS), probing after this much silence.
 * A client with MQTT keep alive 0 asks the broker never to time it out [MQTT-3.1.2-23]: if its
 * link dies without a FIN or RST (power cut, NAT or radio link gone), nothing was ever written to
 * the socket again, so it stayed open, its session live and its tower "online", for good. With
 * keepalive, the kernel probes the idle peer (Linux: tcp_keepalive_intvl, 75 s apart, up to
 * tcp_keepalive_probes, 9) and, unanswered, resets the socket (ETIMEDOUT): the connection closes
 * as any other (the will is published, or the tower marked offline).
 */
const TCP_KEEPALIVE_MS = 60_000;
const keepAliveOptions = { keepAlive: true, keepAliveInitialDelay: TCP_KEEPALIVE_MS };
/** How often the WebSocket listener looks for connections past their upgrade timeout. */
const UPGRADE_CHECK_INTERVAL_MS = 1_000;
/** aedes reports a topic deeper than maxTopicLevels with this message (lib/utils.js). */
const TOPIC_TOO_DEEP_MESSAGE = 'topic has too many levels';
/** Repeated refusals of one client are summed up in one log line per interval. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;
/** What every aedes node publishes, on the shared emitter, when a client connects to it (aedes.js). */
const NEW_CLIENTS_TOPIC = '$SYS/+/new/clients';

export class Broker {
  readonly #deps: BrokerDeps;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #backends: BrokerBackends;
  readonly #sessions = new Sessions();
  readonly #connections = new Set<Duplex>();
  readonly #refusals: RefusalLog;
  readonly #retained: RetainedQuota;
  readonly #gate: ConnectionGate;
  readonly #subacks = new SubackPerFilter();
  /** Tower uplinks handed to ingest that aedes must not publish (authorize.ts). */
  readonly #consumed = new WeakSet<object>();
  readonly #refusedSubscriptions = new WeakSet<object>();
  /** Answers written to a tower's connection directly (#answerOnConnection), by payload: aedes must not deliver them to it again. */
  readonly #answeredOn = new WeakMap<Buffer, Client>();
  /** Tower connections closed because the tower connected to another broker node (see #onClientElsewhere). */
  readonly #movedAway = new WeakSet<Client>();
  #persistence: GuardedPersistence | null = null;
  #sink: UplinkSink | null;
  #aedes: Aedes | null = null;
  #access: Access | null = null;
  #tcp: NetServer | null = null;
  #http: HttpServer | null = null;
  #tlsServer: TlsServer | null = null;
  /** Raw sockets of the TLS listeners (MQTT, WSS), handshake included: aedes knows them only once MQTT starts. */
  readonly #tlsSockets = new Set<Socket>();
  readonly #handshakes: TlsHandshakes;
  #wss: WebSocketServer | null = null;
  #startPromise: Promise<BrokerPorts> | null = null;
  #stopPromise: Promise<void> | null = null;
  #stopping = false;

  /** Cloud → tower publishing for in-process workers (decisions, commands, retained policy). */
  readonly downlink: Downlink = {
    publish: (topic, payload, opts) => this.#publishDownlink(topic, payload, opts?.retain ?? false, opts?.qos ?? 1),
    retainedUnder: (prefix) => this.#retainedUnder(prefix),
    retainedEdgeDocuments: () => this.#retainedTopics(filters.edgeDocuments),
  };

  constructor(deps: BrokerDeps) {
    this.#deps = deps;
    // The composition root usually hands us a child logger already tagged with a module.
    this.#log = deps.logger.bindings()['module'] ? deps.logger : deps.logger.child({ module: 'broker' });
    this.#now = deps.now ?? Date.now;
    this.#backends = deps.backends ?? memoryBackends();
    this.#sink = deps.sink ?? null;
    const { config, counters } = deps;
    this.#refusals = new RefusalLog(this.#log, deps.refusalLogIntervalMs ?? REFUSAL_LOG_INTERVAL_MS);
    this.#retained = new RetainedQuota({
      perOwnerBytes: config.mqtt_max_retained_bytes_per_client,
      totalMessages: config.mqtt_max_retained_messages,
      totalBytes: config.mqtt_max_retained_bytes,
    });
    this.#gate = new ConnectionGate({
      maxFrameBytes: maxFrameBytes(config.mqtt_max_payload_bytes),
      maxConnectBytes: config.mqtt_max_connect_bytes,
      maxFiltersPerPacket: config.mqtt_max_filters_per_subscribe,
      maxPending: config.mqtt_max_pending_connections,
      // TCP keepalive does not probe a socket with unacknowledged data (the kernel retransmits it
      // for tcp_retries2, ~15 min), and Node 20 offers no TCP_USER_TIMEOUT: a client that owes an
      // answer to a QoS 1/2 PUBLISH (or PUBREL) written to it and sends nothing for this long is
      // closed as dead (ack-deadline.ts). The default (60 s) is long enough for a slow link's
      // PUBACK; a client with MQTT keep alive pings within it anyway.
      ackTimeoutMs: config.mqtt_ack_timeout_s * 1000,
      counters,
      refusals: this.#refusals,
    });
    this.#handshakes = new TlsHandshakes(this.#gate, CONNECT_TIMEOUT_MS);
  }

  setSink(sink: UplinkSink | null): void {
    this.#sink = sink;
  }

  /** Number of authenticated connections currently open. */
  get connectionCount(): number {
    return this.#sessions.liveCount();
  }

  /**
   * Readiness: every MQTT listener (TCP, WebSocket, TLS when configured) is bound and new
   * connections are taken. False before start() has bound them, from the moment stop() begins,
   * and when a listener has closed under a process that otherwise runs on.
   */
  get accepting(): boolean {
    if (!this.#aedes || this.#aedes.closed || this.#stopping) return false;
    const listeners = [this.#tcp, this.#http, ...(this.#deps.tls ? [this.#tlsServer] : [])];
    return listeners.every((server) => server?.listening === true);
  }

  /** Number of connections whose CONNECT is not authenticated yet. */
  get pendingConnectionCount(): number {
    return this.#gate.pending;
  }

  /** Retained messages and payload bytes the broker holds (this process's view). */
  get retainedUsage(): { messages: number; bytes: number } {
    return { messages: this.#retained.messages, bytes: this.#retained.bytes };
  }

  /** Towers with at least one authenticated connection open (the mqtt_connected_towers gauge). */
  get connectedTowers(): number {
    const towers = new Set<string>();
    // aedes keeps its connected clients by id; its typings leave the map out.
    const clients = (this.#aedes as unknown as { clients?: Record<string, Client> } | null)?.clients ?? {};
    for (const client of Object.values(clients)) {
      const p = this.#sessions.get(client)?.principal;
      if (p?.kind === 'tower' && !client.closed) towers.add(p.towerId);
    }
    return towers.size;
  }

  start(): Promise<BrokerPorts> {
    if (this.#stopPromise) return Promise.reject(new Error('broker was stopped; create a new one'));
    this.#startPromise ??= this.#doStart();
    return this.#startPromise;
  }

  stop(): Promise<void> {
    this.#stopPromise ??= this.#doStop();
    return this.#stopPromise;
  }

  async #doStart(): Promise<BrokerPorts> {
    const { config, counters, bus } = this.#deps;
    if (!config.service_secret) throw new Error('broker: service_secret is required (--service-secret / EDGEPLANE_SERVICE_SECRET)');
    const frameLimit = maxFrameBytes(config.mqtt_max_payload_bytes);
    try {
      const persistence = guardPersistence(await this.#backends.persistence(), {
        maxQueuedPerSession: config.mqtt_max_queued_per_session,
        refused: this.#refusedSubscriptions,
        ...(this.#backends.queueLength ? { queueLength: this.#backends.queueLength } : {}),
        onQueueFull: (clientId) => {
          counters.inc('mqtt_dropped_total', { reason: 'session_queue_full' });
          this.#refusals.refused(clientId, 'session_queue_full', 'message not queued: session queue full', { cap: config.mqtt_max_queued_per_session });
        },
        onRetainedStreamError: (err) => {
          // Expected while stopping: the store closes under streams still reading.
          if (this.#stopping) return;
          counters.inc('mqtt_store_errors_total', { op: 'retained_stream' });
          this.#log.error({ err, event: 'retained_stream_failed' }, 'reading retained messages for a subscription failed');
        },
        now: this.#now,
      });
      this.#persistence = persistence;
      await this.#seedRetained(persistence);
      const access = new Access({
        config,
        serviceSecret: config.service_secret,
        counters,
        log: this.#log,
        refusals: this.#refusals,
        sessions: this.#sessions,
        gate: this.#gate,
        towerCredentials: this.#deps.towerCredentials,
        towers: this.#deps.towers,
        carrierCredentials: this.#deps.carrierCredentials,
        tokens: this.#deps.tokens,
        consoleUsers: this.#deps.consoleUsers,
        onCommandDelivered: this.#deps.onCommandDelivered,
        storeFaults: this.#deps.storeFaults ?? null,
        now: this.#now,
      });
      this.#access = access;
      const aedes = new EdgeplaneAedes({ ...this.#aedesOptions(access), persistence, mq: this.#backends.mq() }, this.#consumed, this.#backends.durability ?? null);
      this.#aedes = aedes;
      await aedes.listen();
      this.#refusals.start();
      // aedes emits 'error' for persistence failures; its typings omit the event, an
      // EventEmitter's unhandled 'error' would crash the process.
      const emitter: EventEmitter = aedes;
      emitter.on('error', (err: unknown) => this.#log.error({ err }, 'aedes error'));
      const onClientError = (client: Client, err: Error) => {
        if (err.message === TOPIC_TOO_DEEP_MESSAGE) counters.inc('mqtt_rejected_total', { reason: 'topic_too_deep' });
        if (!(err instanceof PublishRefused)) this.#log.debug({ client_id: client.id, err: err.message }, 'client error');
      };
      aedes.on('clientError', onClientError);
      aedes.on('connectionError', onClientError);
      this.#backends.mq().on(NEW_CLIENTS_TOPIC, (packet, done) => {
        this.#onClientElsewhere(aedes.id, packet);
        done();
      });
      aedes.on('subscribe', (subs, client) => this.#subacks.subscribed(subs, client));
      aedes.on('unsubscribe', (filters, client) => {
        const session = this.#sessions.get(client);
        if (!session) return;
        for (const f of filters) session.subscriptions.delete(f);
        session.answerable = null;
      });
      access.listen(bus, this);

      const tcp = createNetServer(keepAliveOptions, (socket) => {
        // Decisions are small latency-sensitive frames: Nagle would hold them for the peer's ACK.
        socket.setNoDelay(true);
        this.#accept(socket, undefined, `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`);
      });
      this.#tcp = tcp;
      const mqttPort = await listen(tcp, config.mqtt_port, config.mqtt_host);
      // After listen, errors are per-accept (EMFILE…): log them rather than crash the process.
      tcp.on('error', (err) => this.#log.error({ err }, 'mqtt listener error'));

      const tls = this.#deps.tls ?? null;
      let tlsPort: number | null = null;
      if (tls) {
        const tlsServer = createTlsServer({ ...tls, ...keepAliveOptions, handshakeTimeout: CONNECT_TIMEOUT_MS }, (socket) => {
          socket.setNoDelay(true);
          // Counted from its accept until here; admit() counts it from now on.
          this.#handshakes.secured(socket);
          this.#handshakes.release(socket);
          this.#accept(socket, undefined, `${peerOf(socket)} (tls)`);
        });
        this.#tlsServer = tlsServer;
        // Unauthenticated from its TCP accept, handshake included: counted against the pending
        // cap (refused beyond it) and closed unless the handshake completes within the CONNECT
        // timeout (tls-handshakes.ts).
        tlsServer.on('connection', (socket: Socket) => this.#acceptTlsSocket(socket, `${peerOf(socket)} (tls)`));
        // A failed handshake (wrong CA, plain MQTT on the TLS port) is the client's problem. Node
        // leaves the socket open after some of these (its handshake timeout among them).
        tlsServer.on('tlsClientError', (err, socket) => {
          this.#log.debug({ err: err.message }, 'mqtt tls handshake failed');
          socket.destroy();
        });
        tlsPort = await listen(tlsServer, config.mqtt_tls_port ?? 8883, config.mqtt_host);
        tlsServer.on('error', (err) => this.#log.error({ err }, 'mqtt tls listener error'));
      }

      // Our own HTTP server (rather than ws's) so stop() controls every socket's lifetime.
      const upgradeOnly = (_req: IncomingMessage, res: import('node:http').ServerResponse) => {
        res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n');
      };
      // Until its upgrade, a WebSocket connection is as unauthenticated as a TCP one before its
      // CONNECT: it counts against the same pending cap and must upgrade within the CONNECT
      // timeout (Node's defaults let a silent or trickling request hold its socket 60–300 s,
      // and a TLS handshake 120 s).
      const upgradeWithin = {
        headersTimeout: CONNECT_TIMEOUT_MS,
        requestTimeout: CONNECT_TIMEOUT_MS,
        connectionsCheckingInterval: UPGRADE_CHECK_INTERVAL_MS,
      };
      const http: HttpServer = tls
        ? createHttpsServer({ ...tls, ...upgradeWithin, ...keepAliveOptions, handshakeTimeout: CONNECT_TIMEOUT_MS }, upgradeOnly)
        : createHttpServer({ ...upgradeWithin, ...keepAliveOptions }, upgradeOnly);
      this.#http = http;
      const upgrading = new WeakMap<Duplex, () => void>();
      if (tls) {
        // WSS: counted from the TCP accept (not only once the handshake is done), as above;
        // after the handshake, the HTTP timeouts bound the upgrade.
        http.on('connection', (socket: Socket) => this.#acceptTlsSocket(socket, `${peerOf(socket)} (wss)`));
        http.on('secureConnection', (socket: Socket) => {
          this.#handshakes.secured(socket);
          upgrading.set(socket, () => this.#handshakes.release(socket));
        });
      } else {
        http.on('connection', (socket: Socket) => {
          const release = this.#gate.reserve(socket, `${peerOf(socket)} (ws)`);
          if (release) upgrading.set(socket, release);
        });
      }
      // Before ws takes the socket over (and admit() counts it as a connection of its own).
      http.prependListener('upgrade', (req: IncomingMessage) => upgrading.get(req.socket)?.());
      // A WebSocket message never needs to exceed one MQTT frame; ws drops larger ones (1009).
      const wss = new WebSocketServer({ server: http, maxPayload: frameLimit });
      this.#wss = wss;
      wss.on('connection', (ws: WebSocket, req: IncomingMessage) => this.#acceptWebSocket(ws, req));
      wss.on('error', (err) => this.#log.warn({ err }, 'websocket server error'));
      const wsPort = await listen(http, config.mqtt_ws_port, config.mqtt_host);
      http.on('error', (err) => this.#log.error({ err }, 'websocket listener error'));

      this.#log.info(
        { host: config.mqtt_host, mqtt_port: mqttPort, ws_port: wsPort, ws_tls: tls !== null, tls_port: tlsPort, sessions: this.#backends.kind },
        'broker listening',
      );
      if (config.allow_anonymous) this.#log.warn('anonymous MQTT clients are accepted (development only; they are granted nothing)');
      return { mqttPort, wsPort, tlsPort };
    } catch (err) {
      this.#stopping = true;
      bus.removeAllFor(this);
      await this.#teardown();
      throw err;
    }
  }

  /** What the retained store already holds (a durable one keeps it across restarts). */
  async #seedRetained(persistence: SessionPersistence): Promise<void> {
    for await (const packet of persistence.createRetainedStreamCombi(['#'])) {
      const { topic, payload } = packet as { topic?: unknown; payload?: unknown };
      if (typeof topic !== 'string' || !Buffer.isBuffer(payload)) continue;
      const parsed = parseTopic(topic);
      this.#retained.seed(topic, payload.length, parsed?.kind === 'status' ? `tower:${parsed.towerId}` : null);
    }
  }

  #aedesOptions(access: Access): AedesOptions {
    const { config, counters } = this.#deps;
    const hooks = createAuthorizeHooks({
      sessions: this.#sessions,
      counters,
      logger: this.#log,
      refusals: this.#refusals,
      retained: this.#retained,
      consumed: this.#consumed,
      refusedSubscriptions: this.#refusedSubscriptions,
      maxPayloadBytes: config.mqtt_max_payload_bytes,
      maxSubscriptionsPerClient: config.mqtt_max_subscriptions_per_client,
      now: this.#now,
      sink: () => this.#sink,
      storeFaults: this.#deps.storeFaults ?? null,
      carrierFeeds: this.#deps.carrierFeeds ?? null,
      stopping: () => this.#stopping,
      movedAway: (client) => this.#movedAway.has(client),
      answer: (client, topic, payload) => this.#answerOnConnection(client, topic, payload),
    });
    const authorizeForward = hooks.authorizeForward;
    return {
      // A ULID rather than aedes' random UUID: fresh per start (aedes restarts its message
      // counter at 0), and time-ordered, so a LevelDB session queue keyed by broker id and
      // counter replays what earlier runs queued before what this one queues (backends-level.ts).
      id: createIdFactory()(),
      connectTimeout: CONNECT_TIMEOUT_MS,
      // A subscriber that stops reading would otherwise stall delivery to everyone.
      drainTimeout: config.mqtt_drain_timeout_ms,
      maxTopicLevels: config.mqtt_max_topic_levels,
      // The wire guard refuses longer ids at every protocol level; aedes checks MQTT 3.1 only.
      maxClientsIdLength: MAX_CLIENT_ID_BYTES,
      preConnect: (client, packet, callback) => {
        // aedes authorizes the will only when it publishes it; remember its topic now so the
        // session knows whether the tower declared its availability LWT.
        this.#sessions.noteConnect(client, {
          willTopic: packet.will?.topic ?? null,
          clean: packet.clean !== false,
          assignedClientId: !packet.clientId,
        });
        deliverOutOfOrderPackets(client);
        releaseConnectPacket(client, packet);
        this.#subacks.watch(client);
        callback(null, true);
      },
      ...hooks,
      authorizeForward: (client, packet) => (this.#answeredOn.get(packet.payload as Buffer) === client ? null : authorizeForward(client, packet)),
      authenticate: (client, username, password, done) => {
        access.authenticate(client, username, password).then(
          (err) => (err ? done(err, false) : done(null, true)),
          (err: unknown) => {
            this.#log.error({ err, client_id: client.id }, 'authenticate failed unexpectedly');
            done(authError(CONNACK.SERVER_UNAVAILABLE, 'internal error'), false);
          },
        );
      },
    };
  }

  /**
   * A tower's answer written to its own connection at once (UplinkMessage.reply), rather than
   * through aedes, which writes a QoS 0 delivery a loop iteration later and calls back another
   * one later still, so the PUBACK that must follow the answer went out in a separate write two
   * iterations on. The connection is held (WireGuard.hold) until the PUBACK is written, so both
   * leave in one write. The tower gets it only where aedes would have delivered it: the
   * connection is open and not backed up, the tower is subscribed to the topic and its ACL
   * covers it (what authorizeForward checks). Other subscribers (console users, services) still
   * get it through aedes, which skips this connection for this payload.
   */
  #answerOnConnection(client: Client, topic: string, payload: Buffer): (() => void) | null {
    const aedes = this.#aedes;
    const guard = this.#gate.guardOf(client);
    if (!aedes || this.#stopping || client.closed || !guard || guard.destroyed || guard.writableNeedDrain) return null;
    const session = this.#sessions.get(client);
    if (!session) return null;
    if (!session.answerable?.has(topic)) {
      if (!mayReceive(session.principal, topic)) return null;
      let subscribed = false;
      for (const filter of session.subscriptions) {
        if (filterWithin(topic, filter)) {
          subscribed = true;
          break;
        }
      }
      if (!subscribed) return null;
      const known = (session.answerable ??= new Set());
      if (known.size < TOPIC_VERDICTS_MAX) known.add(topic);
    }
    const release = guard.hold();
    writeToStream({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false }, guard);
    if (this.#sessions.listeners > 0) {
      this.#answeredOn.set(payload, client);
      aedes.publish({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false }, (err) => {
        if (err) this.#log.warn({ err, topic }, 'answer not published to other subscribers');
      });
    }
    return release;
  }

  #accept(conn: Duplex, req: IncomingMessage | undefined, peer: string): void {
    const aedes = this.#aedes;
    if (!aedes || this.#stopping) {
      conn.destroy();
      return;
    }
    let client: Client | null = null;
    const guard = this.#gate.admit(conn, peer, () => client);
    if (!guard) return;
    this.#connections.add(conn);
    client = aedes.handle(guard, req);
    this.#gate.bind(client, guard);
    const accepted = client;
    conn.once('close', () => {
      this.#connections.delete(conn);
      this.#onConnectionClosed(accepted);
    });
  }

  /** The raw TCP socket of a TLS connection (MQTT over TLS or WSS), as it is accepted. */
  #acceptTlsSocket(socket: Socket, peer: string): void {
    if (this.#stopping) {
      socket.destroy();
      return;
    }
    this.#tlsSockets.add(socket);
    socket.once('close', () => this.#tlsSockets.delete(socket));
    this.#handshakes.accepted(socket, peer);
  }

  #acceptWebSocket(ws: WebSocket, req: IncomingMessage): void {
    const stream = createWebSocketStream(ws);
    // Without a listener, an error on the wrapped socket would be thrown.
    stream.on('error', () => undefined);
    this.#accept(stream, req, `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'} (ws)`);
  }

  /**
   * A client connected to a broker node. When it is a tower connected here too and the node is
   * another one, aedes closes the connection here [MQTT-3.1.4-2] (aedes.js `closeSameClients`,
   * called for the same message just before this, in the same synchronous pass over the
   * handlers, marks the client closed at once): the tower moved to that node and is not offline —
   * this node neither marks it offline (#onConnectionClosed) nor publishes its will (authorize.ts
   * decides about a will a microtask later, after this has run). Runs before the socket's
   * 'close', which Node emits on a later turn.
   */
  #onClientElsewhere(ownId: string, packet: { topic: string; payload?: unknown }): void {
    const payload = packet.payload;
    if (packet.topic.split('/')[1] === ownId || !Buffer.isBuffer(payload)) return;
    const clientId = payload.toString('utf8');
    if (!clientId.startsWith(mqttIdentity.towerClientIdPrefix)) return;
    for (const client of this.#sessions.ofTower(clientId.slice(mqttIdentity.towerClientIdPrefix.length))) {
      if (client.id === clientId && client.closed) this.#movedAway.add(client);
    }
  }

  #onConnectionClosed(client: Client): void {
    const session = this.#sessions.get(client);
    this.#sessions.closed(client);
    if (!session || session.principal.kind !== 'tower' || this.#stopping) return;
    // It connected to another node, which now reports its availability.
    if (this.#movedAway.has(client)) return;
    // A tower with a status LWT reports its own availability: aedes publishes the will through
    // authorizePublish, which hands it to the sink. Towers without one are marked here, and so
    // are those that ended with a DISCONNECT, whose will is discarded [MQTT-3.1.2-10] (a client
    // that says nothing more would otherwise stay online for good).
    if (session.statusWill && !(client as Client & { _disconnected?: boolean })._disconnected) return;
    const towerId = session.principal.towerId;
    if (this.#sessions.towerHasOtherLiveConnection(towerId, client)) return;
    this.#markOffline(towerId).catch((err: unknown) => this.#log.warn({ err, tower_id: towerId }, 'marking tower offline failed'));
  }

  async #markOffline(towerId: string): Promise<void> {
    const { towers, bus } = this.#deps;
    const before = await towers.get(towerId);
    if (!before || before.state === 'offline') return;
    const changed = await towers.setStatus(towerId, { state: 'offline', agent_version: before.agent_version, at: this.#now() });
    if (!changed) return;
    const tower = await towers.get(towerId);
    if (tower) bus.publish('tower.status', { tower });
  }

  async #retainedUnder(prefix: string): Promise<string[]> {
    // A downlink topic only: no wildcard, no uplink (a tower's claims are never retained anyway).
    const refused = notDownlink(prefix);
    if (refused) throw refused;
    return this.#retainedTopics([`${prefix}/+`]);
  }

  /** The topics matching `patterns` that hold a retained message (not an empty one). */
  async #retainedTopics(patterns: readonly string[]): Promise<string[]> {
    const persistence = this.#persistence;
    if (!persistence || this.#stopping) throw new Error('broker is not running');
    const out: string[] = [];
    for await (const packet of persistence.createRetainedStreamCombi([...patterns])) {
      const { topic, payload } = packet as { topic?: unknown; payload?: unknown };
      if (typeof topic === 'string' && Buffer.isBuffer(payload) && payload.length > 0) out.push(topic);
    }
    return out;
  }

  #publishDownlink(topic: string, payload: Buffer, retain: boolean, qos: 0 | 1): Promise<void> {
    const aedes = this.#aedes;
    if (!aedes || this.#stopping) return Promise.reject(new Error('broker is not running'));
    const refused = notDownlink(topic);
    if (refused) return Promise.reject(refused);
    // Published by the broker itself, so authorizePublish is not consulted; authorizeForward still
    // decides who receives it. Retained messages are kept by aedes' persistence [MQTT-3.3.1-5],
    // within the retained quota (beyond it the message is delivered but not kept, and counted).
    if (retain && this.#retained.admit(topic, payload.length, null) !== 'ok') {
      retain = false;
      this.#deps.counters.inc('mqtt_rejected_total', { reason: 'retained_quota' });
      this.#refusals.refused(null, 'retained_quota', 'retained message not stored: quota', { topic });
    }
    return new Promise((resolve, reject) => {
      aedes.publish({ cmd: 'publish', topic, payload, qos, retain, dup: false }, (err) => (err ? reject(err) : resolve()));
    });
  }

  async #doStop(): Promise<void> {
    this.#stopping = true;
    this.#deps.bus.removeAllFor(this);
    this.#refusals.stop();
    if (this.#startPromise) await this.#startPromise.catch(() => undefined);
    // After the start it may have interrupted, which set the re-check going.
    this.#access?.stop();
    await this.#teardown();
    this.#log.info('broker stopped');
  }

  async #teardown(): Promise<void> {
    // Stop accepting first; server.close() resolves once the last connection is gone.
    const closing = [closeServer(this.#tcp), closeServer(this.#http), closeServer(this.#tlsServer)];
    this.#wss?.close();
    const aedes = this.#aedes;
    // Closes every registered client (their wills are suppressed while stopping, see authorize.ts).
    if (aedes) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    // aedes never destroys its persistence; sessions stay stored for the next start, with the
    // writes already started (a PUBACK clearing its message) completed first.
    await this.#persistence?.settled();
    await this.#backends.close().catch((err: unknown) => this.#log.error({ err }, 'closing the broker session store failed'));
    // Connections that never completed CONNECT are unknown to aedes.
    for (const conn of this.#connections) conn.destroy();
    for (const socket of this.#tlsSockets) socket.destroy();
    this.#http?.closeAllConnections();
    await Promise.all(closing);
  }
}

function peerOf(socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}

function listen(server: NetServer | HttpServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: NetServer | HttpServer | TlsServer | null): Promise<void> {
  if (!server || !server.listening) return Promise.resolve();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** The error for a topic the cloud may not publish to (or read back) towards the towers; null for a downlink topic. */
function notDownlink(topic: string): Error | null {
  const parsed = parseTopic(topic);
  return parsed && TOPIC_SPECS[parsed.kind].direction === 'downlink' ? null : new Error(`not a downlink topic: ${JSON.stringify(topic)}`);
}
