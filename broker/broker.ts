/**
 * The MQTT broker (DESIGN §3): Aedes 1.x on TCP and WebSocket, with authentication, ACL, limits,
 * tower availability and the in-process ingest/downlink ports. The constructor does no I/O;
 * `start()` binds the listeners and `stop()` undoes it in reverse order.
 */
import type { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { Duplex } from 'node:stream';
import { Aedes, type AedesOptions, type AuthenticateError, type Client } from 'aedes';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import type { TokenService } from '../shared/auth/tokens.js';
import type { Bus } from '../shared/bus.js';
import type { Config } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import { createIdFactory } from '../shared/ids.js';
import type { Counters } from '../shared/metrics.js';
import { mqttIdentity, parseTopic, TOPIC_SPECS, topics } from '../shared/mqtt/topics.js';
import type { Downlink, UplinkSink } from '../shared/mqtt/transport.js';
import type { Store } from '../shared/store/port.js';
import { authenticateConnection, CONNACK, type AuthOutcome } from './authenticate.js';
import { deliverOutOfOrderPackets, memoryBackends, type BrokerBackends } from './backends.js';
import { createAuthorizeHooks, PublishRefused } from './authorize.js';
import { FrameSizeGuard, maxFrameBytes, TokenBucket } from './limits.js';
import { Sessions } from './sessions.js';

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
  tokens: Pick<TokenService, 'verify'>;
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
  now?: () => number;
  /**
   * PEM certificate and key: MQTT over TLS listens on `mqtt_tls_port` and the WebSocket listener
   * serves WSS instead of WS. The composition root reads the files (--tls-cert-file …).
   */
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer } | null;
}

export interface BrokerPorts {
  mqttPort: number;
  wsPort: number;
  /** MQTT over TLS; null without `tls`. */
  tlsPort: number | null;
}

/** Long enough for a slow link's TLS-less CONNECT, short enough that idle sockets do not pile up. */
const CONNECT_TIMEOUT_MS = 10_000;
/** MQTT 3.1.1 lets servers accept ids longer than 23 chars [MQTT-3.1.3-5]; towers use `tower-<64 chars>`. */
const MAX_CLIENT_ID_LENGTH = 128;
/** aedes reports a topic deeper than maxTopicLevels with this message (lib/utils.js). */
const TOPIC_TOO_DEEP_MESSAGE = 'topic has too many levels';

export class Broker {
  readonly #deps: BrokerDeps;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #backends: BrokerBackends;
  readonly #sessions = new Sessions();
  readonly #connections = new Set<Duplex>();
  #sink: UplinkSink | null;
  #aedes: Aedes | null = null;
  #tcp: NetServer | null = null;
  #http: HttpServer | null = null;
  #tlsServer: TlsServer | null = null;
  /** Sockets of the TLS listener, handshake included: aedes knows them only once MQTT starts. */
  readonly #tlsSockets = new Set<Socket>();
  #wss: WebSocketServer | null = null;
  #startPromise: Promise<BrokerPorts> | null = null;
  #stopPromise: Promise<void> | null = null;
  #stopping = false;

  /** Cloud → tower publishing for in-process workers (decisions, commands, retained policy). */
  readonly downlink: Downlink = {
    publish: (topic, payload, opts) => this.#publishDownlink(topic, payload, opts?.retain ?? false),
  };

  constructor(deps: BrokerDeps) {
    this.#deps = deps;
    // The composition root usually hands us a child logger already tagged with a module.
    this.#log = deps.logger.bindings()['module'] ? deps.logger : deps.logger.child({ module: 'broker' });
    this.#now = deps.now ?? Date.now;
    this.#backends = deps.backends ?? memoryBackends();
    this.#sink = deps.sink ?? null;
  }

  setSink(sink: UplinkSink | null): void {
    this.#sink = sink;
  }

  /** Number of authenticated connections currently open. */
  get connectionCount(): number {
    return this.#sessions.liveCount();
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
      const persistence = await this.#backends.persistence();
      const aedes = await Aedes.createBroker({ ...this.#aedesOptions(config.service_secret), persistence, mq: this.#backends.mq() });
      this.#aedes = aedes;
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
      aedes.on('ack', (packet, client) => this.#onAck(packet && 'topic' in packet ? packet : null, client));
      // Cluster scope: the credential may have been revoked through any API process.
      bus.subscribe('credential.revoked', (e) => this.#revoke(e.credential_id), this, 'cluster');

      const tcp = createNetServer((socket) => {
        // Decisions are small latency-sensitive frames: Nagle would hold them for the peer's ACK.
        socket.setNoDelay(true);
        this.#accept(socket, undefined, frameLimit);
      });
      this.#tcp = tcp;
      const mqttPort = await listen(tcp, config.mqtt_port, config.mqtt_host);
      // After listen, errors are per-accept (EMFILE…): log them rather than crash the process.
      tcp.on('error', (err) => this.#log.error({ err }, 'mqtt listener error'));

      const tls = this.#deps.tls ?? null;
      let tlsPort: number | null = null;
      if (tls) {
        const tlsServer = createTlsServer({ ...tls, handshakeTimeout: CONNECT_TIMEOUT_MS }, (socket) => {
          socket.setNoDelay(true);
          this.#accept(socket, undefined, frameLimit);
        });
        this.#tlsServer = tlsServer;
        tlsServer.on('connection', (socket: Socket) => {
          this.#tlsSockets.add(socket);
          socket.once('close', () => this.#tlsSockets.delete(socket));
        });
        // A failed handshake (wrong CA, plain MQTT on the TLS port) is the client's problem.
        tlsServer.on('tlsClientError', (err) => this.#log.debug({ err: err.message }, 'mqtt tls handshake failed'));
        tlsPort = await listen(tlsServer, config.mqtt_tls_port ?? 8883, config.mqtt_host);
        tlsServer.on('error', (err) => this.#log.error({ err }, 'mqtt tls listener error'));
      }

      // Our own HTTP server (rather than ws's) so stop() controls every socket's lifetime.
      const upgradeOnly = (_req: IncomingMessage, res: import('node:http').ServerResponse) => {
        res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n');
      };
      const http: HttpServer = tls ? createHttpsServer({ ...tls }, upgradeOnly) : createHttpServer(upgradeOnly);
      this.#http = http;
      // A WebSocket message never needs to exceed one MQTT frame; ws drops larger ones (1009).
      const wss = new WebSocketServer({ server: http, maxPayload: frameLimit });
      this.#wss = wss;
      wss.on('connection', (ws: WebSocket, req: IncomingMessage) => this.#acceptWebSocket(ws, req, frameLimit));
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

  #aedesOptions(serviceSecret: string): AedesOptions {
    const { config, counters } = this.#deps;
    const hooks = createAuthorizeHooks({
      sessions: this.#sessions,
      counters,
      logger: this.#log,
      maxPayloadBytes: config.mqtt_max_payload_bytes,
      now: this.#now,
      sink: () => this.#sink,
      stopping: () => this.#stopping,
    });
    return {
      // A ULID rather than aedes' random UUID: fresh per start (aedes restarts its message
      // counter at 0), and time-ordered, so a LevelDB session queue keyed by broker id and
      // counter replays what earlier runs queued before what this one queues (backends-level.ts).
      id: createIdFactory()(),
      connectTimeout: CONNECT_TIMEOUT_MS,
      // A subscriber that stops reading would otherwise stall delivery to everyone.
      drainTimeout: config.mqtt_drain_timeout_ms,
      maxTopicLevels: config.mqtt_max_topic_levels,
      maxClientsIdLength: MAX_CLIENT_ID_LENGTH,
      preConnect: (client, packet, callback) => {
        // aedes authorizes the will only when it publishes it; remember its topic now so the
        // session knows whether the tower declared its availability LWT.
        this.#sessions.noteWillTopic(client, packet.will?.topic ?? null);
        deliverOutOfOrderPackets(client);
        callback(null, true);
      },
      authenticate: (client, username, password, done) => {
        this.#authenticate(client, username, password, serviceSecret).then(
          (err) => (err ? done(err, false) : done(null, true)),
          (err: unknown) => {
            this.#log.error({ err, client_id: client.id }, 'authenticate failed unexpectedly');
            done(authError(CONNACK.SERVER_UNAVAILABLE, 'internal error'), false);
          },
        );
      },
      ...hooks,
    };
  }

  /** Resolves null when the client may connect, or the error that refuses it. */
  async #authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    serviceSecret: string,
  ): Promise<AuthenticateError | null> {
    const { config, counters } = this.#deps;
    let outcome: AuthOutcome = await authenticateConnection(
      {
        serviceSecret,
        allowAnonymous: config.allow_anonymous,
        towerCredentials: this.#deps.towerCredentials,
        towers: this.#deps.towers,
        tokens: this.#deps.tokens,
        isRevoked: (id) => this.#sessions.isRevoked(id),
        now: this.#now,
        onTouchError: (err, credentialId) => this.#log.warn({ err, credential_id: credentialId }, 'credential touch failed'),
      },
      { clientId: client.id, username, password },
    );
    // The revocation may have arrived while we awaited the store.
    if (outcome.ok && outcome.principal.kind === 'tower' && this.#sessions.isRevoked(outcome.principal.credentialId)) {
      outcome = { ok: false, returnCode: CONNACK.NOT_AUTHORIZED, reason: 'revoked' };
    }
    if (!outcome.ok) {
      counters.inc('mqtt_auth_failures_total', { reason: outcome.reason });
      this.#log.warn(
        { event: 'mqtt_login_refused', client_id: client.id, username, reason: outcome.reason, return_code: outcome.returnCode, remote: remoteAddress(client) },
        'mqtt login refused',
      );
      return authError(outcome.returnCode, outcome.reason);
    }
    // The socket may have gone while we were checking; aedes drops the CONNECT itself then.
    if (client.closed) return null;
    const principal = outcome.principal;
    const bucket =
      principal.kind === 'service'
        ? null // the cloud's own fan-out; throttling it would throttle every tower's decisions
        : new TokenBucket(config.mqtt_publish_rate, config.mqtt_publish_burst, this.#now);
    const statusWill = principal.kind === 'tower' && this.#sessions.willTopic(client) === topics.status(principal.towerId);
    this.#sessions.open(client, { principal, bucket, statusWill });
    this.#log.debug({ client_id: client.id, principal: principal.kind }, 'mqtt client authenticated');
    return null;
  }

  /**
   * A tower's PUBACK of a command is the "delivered" step of the command lifecycle: the tower's
   * MQTT client has it [MQTT-4.3.2]. Reported to the command service (deps.onCommandDelivered).
   */
  #onAck(packet: { topic?: string; payload?: unknown } | null | undefined, client: Client | null | undefined): void {
    if (!packet?.topic || !client) return;
    const parsed = parseTopic(packet.topic);
    if (parsed?.kind !== 'commands' || client.id !== mqttIdentity.towerClientId(parsed.towerId)) return;
    try {
      const raw = packet.payload;
      const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : typeof raw === 'string' ? raw : '';
      const id = (JSON.parse(text) as { id?: unknown }).id;
      if (typeof id !== 'string') return;
      const report = this.#deps.onCommandDelivered;
      if (!report) return;
      report({ tenant_id: parsed.tenantId, tower_id: parsed.towerId, command_id: id, at: this.#now() }).catch((err: unknown) =>
        this.#log.warn({ err, command_id: id }, 'recording command delivery failed'),
      );
    } catch {
      // Commands are built by the cloud; an unparseable one is not ours to report.
    }
  }

  #accept(conn: Duplex, req: IncomingMessage | undefined, frameLimit: number): void {
    const aedes = this.#aedes;
    if (!aedes || this.#stopping) {
      conn.destroy();
      return;
    }
    this.#connections.add(conn);
    const client = aedes.handle(conn, req);
    conn.once('close', () => {
      this.#connections.delete(conn);
      this.#onConnectionClosed(client);
    });
    // A passive tap: aedes reads the stream through 'readable', which keeps control of the flow
    // while a 'data' listener only observes the chunks aedes pulls into its parser.
    const guard = new FrameSizeGuard(frameLimit);
    const onData = (chunk: Buffer) => {
      const verdict = guard.feed(chunk);
      if (verdict === 'ok') return;
      conn.off('data', onData);
      const reason = verdict === 'too_large' ? 'payload_too_large' : 'malformed_frame';
      this.#deps.counters.inc('mqtt_rejected_total', { reason });
      this.#log.info({ client_id: client.id, reason }, 'connection dropped: oversized or malformed frame');
      conn.destroy();
    };
    conn.on('data', onData);
  }

  #acceptWebSocket(ws: WebSocket, req: IncomingMessage, frameLimit: number): void {
    const stream = createWebSocketStream(ws);
    this.#accept(stream, req, frameLimit);
  }

  #onConnectionClosed(client: Client): void {
    const session = this.#sessions.get(client);
    this.#sessions.closed(client);
    if (!session || session.principal.kind !== 'tower' || this.#stopping) return;
    // A tower with a status LWT reports its own availability: aedes publishes the will through
    // authorizePublish, which hands it to the sink. Only towers without one are marked here.
    if (session.statusWill) return;
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

  #revoke(credentialId: string): void {
    this.#sessions.markRevoked(credentialId);
    for (const client of this.#sessions.withCredential(credentialId)) {
      this.#log.info({ client_id: client.id, credential_id: credentialId }, 'closing session of revoked credential');
      client.close();
    }
  }

  #publishDownlink(topic: string, payload: Buffer, retain: boolean): Promise<void> {
    const aedes = this.#aedes;
    if (!aedes || this.#stopping) return Promise.reject(new Error('broker is not running'));
    const parsed = parseTopic(topic);
    if (!parsed || TOPIC_SPECS[parsed.kind].direction !== 'downlink') {
      return Promise.reject(new Error(`not a downlink topic: ${JSON.stringify(topic)}`));
    }
    // Published by the broker itself, so authorizePublish is not consulted; authorizeForward still
    // decides who receives it. Retained messages are kept by aedes' persistence [MQTT-3.3.1-5].
    return new Promise((resolve, reject) => {
      aedes.publish({ cmd: 'publish', topic, payload, qos: 1, retain, dup: false }, (err) => (err ? reject(err) : resolve()));
    });
  }

  async #doStop(): Promise<void> {
    this.#stopping = true;
    this.#deps.bus.removeAllFor(this);
    if (this.#startPromise) await this.#startPromise.catch(() => undefined);
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
    // aedes never destroys its persistence; sessions stay stored for the next start.
    await this.#backends.close().catch((err: unknown) => this.#log.error({ err }, 'closing the broker session store failed'));
    // Connections that never completed CONNECT are unknown to aedes.
    for (const conn of this.#connections) conn.destroy();
    for (const socket of this.#tlsSockets) socket.destroy();
    this.#http?.closeAllConnections();
    await Promise.all(closing);
  }
}

function authError(returnCode: (typeof CONNACK)[keyof typeof CONNACK], message: string): AuthenticateError {
  // aedes copies `returnCode` (2..5) into the CONNACK (lib/handlers/connect.js).
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/** Where a refused client connected from, for the log line (undefined when unknown). */
function remoteAddress(client: Client): string | undefined {
  const socket = (client.conn as Partial<Socket> | undefined)?.remoteAddress ? (client.conn as Socket) : client.req?.socket;
  return socket?.remoteAddress;
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
