/**
 * Live feeds over WebSocket: the hub that connects a tenant's sockets to the bus.
 *
 * Each connection subscribes to the bus with itself as owner, so closing it removes exactly its
 * listeners. Listeners never await and never block: a message is handed to the socket's send
 * buffer or the connection is dropped. A consumer that cannot keep up (its `bufferedAmount` would
 * pass `maxBufferedBytes`) is closed with 1013 and counted in `feed_clients_dropped_total`; the
 * pipeline publishing on the bus never waits for it. A heartbeat pings every socket and
 * terminates those that did not answer the previous ping.
 *
 * A feed never outlives the credential that opened it (4401): a timer closes it when the access
 * token (or API key) expires, and the hub listens, cluster-wide, for 'console-user.revoked' (a
 * disabled, deleted, re-roled or re-passworded account), 'console-session.ended' (one sign-in
 * signed out: the feeds of its access tokens) and 'api-key.revoked', closing those feeds on every
 * API process at once. The heartbeat checks expiry again against the injected clock.
 *
 * Pub/sub between processes is at most once, so a revocation made through another API process is
 * not left to its announcement alone: every `credentialRecheckMs` (1 s by default) each open
 * credential is authenticated again against the store, as the guard would (one read per distinct
 * credential, not per feed nor per message), and its feeds close (4401) when it no longer
 * authenticates; when the bus reports missed events a round runs at once (after the one under way,
 * whose reads may predate the gap). So after a revocation is answered, its feeds emit nothing more
 * in the process that made it, and at most `credentialRecheckMs` plus one store read of messages
 * elsewhere. Every feed closed for a revocation is counted (`feed_clients_dropped_total{reason="revoked"}`).
 * A credential that cannot be checked (store unavailable) keeps its feeds and the next round asks
 * again; the outage is reported once, and its end once. The rounds are shared/auth/credential-sweep.ts.
 *
 * Authentication is the API's guard; the token lift and the Fastify wiring are feed-transport.ts.
 */
import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';
import type { Bus, BusEvents } from '../shared/bus.js';
import { CredentialSweep, type SweepCheck } from '../shared/auth/credential-sweep.js';
import type { CredentialRecheck } from './credential-recheck.js';
import type { Effect } from '../shared/domain.js';
import type { Counters } from '../shared/metrics.js';
import { AlertEventSchema, AlertSchema, CommandRecordSchema, UsageRecordSchema } from '../shared/schemas/records.js';

export type FeedName = 'alerts' | 'stream';

export interface FeedLimits {
  /** A socket whose send buffer would pass this is a slow consumer and is dropped. */
  maxBufferedBytes: number;
  /** Ping period; a socket that missed one ping is terminated at the next. */
  heartbeatIntervalMs: number;
  /** How long a dropped or closed socket gets to finish the close handshake before it is cut. */
  closeGraceMs: number;
  /** Open feed connections per tenant; more are refused with 4429. */
  maxConnectionsPerTenant: number;
  /** How often each open credential is authenticated again against the store. */
  credentialRecheckMs: number;
}

export const DEFAULT_FEED_LIMITS: FeedLimits = {
  maxBufferedBytes: 1024 * 1024,
  heartbeatIntervalMs: 30_000,
  closeGraceMs: 5_000,
  maxConnectionsPerTenant: 200,
  credentialRecheckMs: 1_000,
};

/** Close codes sent to feed clients (4xxx mirror the HTTP status a REST call would get). */
export const FEED_CLOSE = {
  shuttingDown: 1001,
  /** 1013 Try Again Later: the client fell too far behind; reconnect and catch up over REST. */
  slowConsumer: 1013,
  /** The access token or API key expired, or was revoked (the reason says which). */
  tokenExpired: 4401,
  forbidden: 4403,
  tooManyConnections: 4429,
} as const;

export const FEED_DROPPED_COUNTER = 'feed_clients_dropped_total';

export interface StreamFilter {
  device_id?: string;
  effect?: Effect;
}

/**
 * Who opened a feed: a console account or an API key (what a revocation names). `sessionId`: the
 * sign-in of the access token (its `sid`), what a sign-out names.
 */
export type FeedPrincipal = { kind: 'user'; id: string; sessionId?: string } | { kind: 'api_key'; id: string };

export interface FeedClient {
  tenantId: string;
  principal: FeedPrincipal;
  /** Epoch ms after which the credential that opened the feed is no longer valid; null if never. */
  expiresAt: number | null;
  /**
   * Whether the credential still verifies (an access token: its signing key may have been
   * retired since). Asked at every heartbeat and by `recheck`; absent: nothing to ask.
   */
  stillValid?: () => Promise<boolean>;
  /**
   * Authenticates the credential again against the store (revoked key, disabled or re-roled
   * account…), every `credentialRecheckMs`; `key` names the credential, so feeds opened with the
   * same one share a read. Throws when it cannot tell (store unavailable).
   */
  authorization?: CredentialRecheck;
}

const principalKey = (p: FeedPrincipal): string => `${p.kind}:${p.id}`;

/** setTimeout's longest delay; a later expiry is left to the heartbeat. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface FeedHubEvents {
  opened: [feed: FeedName, tenantId: string];
  closed: [feed: FeedName, tenantId: string];
  dropped: [feed: FeedName, tenantId: string, reason: DropReason];
}

export type DropReason = 'slow_consumer' | 'heartbeat_timeout' | 'revoked';

export interface FeedHubDeps {
  bus: Bus;
  counters: Counters;
  clock: () => number;
  limits?: Partial<FeedLimits>;
  /**
   * A message that could not be shaped (a record drifted from its schema; skipped), or the first
   * credential re-check of a store outage that failed (the feeds stay): reported.
   */
  onError?: (err: unknown) => void;
  /** Credential re-checks read the store again after an outage `onError` reported. */
  onRecheckRecovered?: () => void;
}

/** One connected socket: its bus listeners, liveness and close bookkeeping. */
class FeedConnection {
  alive = true;
  #closing = false;
  #graceTimer: NodeJS.Timeout | null = null;
  #expiryTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly hub: FeedHub,
    readonly socket: WebSocket,
    readonly feed: FeedName,
    readonly client: FeedClient,
  ) {}

  get closing(): boolean {
    return this.#closing;
  }

  /** Hands one serialized message to the socket, or drops the connection if it is too far behind. */
  push(message: string): void {
    if (this.#closing || this.socket.readyState !== this.socket.OPEN) return;
    const buffered = this.socket.bufferedAmount;
    // An empty buffer always takes one message, so a single large batch is never a reason to drop.
    if (buffered > 0 && buffered + Buffer.byteLength(message) > this.hub.limits.maxBufferedBytes) {
      this.hub.drop(this, 'slow_consumer');
      return;
    }
    this.socket.send(message);
  }

  /**
   * Starts the close handshake and stops listening to the bus at once. The close frame queues
   * behind whatever the client has not read; if the handshake does not finish within the grace
   * period, the socket is cut so a stalled peer cannot hold memory.
   */
  /** Closes the feed when its credential expires, by the wall clock (`delayMs` from now). */
  expireIn(delayMs: number): void {
    if (delayMs > MAX_TIMER_MS) return;
    this.#expiryTimer = setTimeout(() => this.close(FEED_CLOSE.tokenExpired, 'credential expired'), Math.max(0, delayMs));
    this.#expiryTimer.unref();
  }

  close(code: number, reason: string): void {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.hub.detach(this);
    if (this.socket.readyState === this.socket.OPEN || this.socket.readyState === this.socket.CONNECTING) {
      this.socket.close(code, reason);
    }
    this.#graceTimer = setTimeout(() => this.socket.terminate(), this.hub.limits.closeGraceMs);
    this.#graceTimer.unref();
  }

  /** The socket is gone (either side closed it, or it was terminated). */
  ended(): void {
    this.#closing = true;
    if (this.#graceTimer) clearTimeout(this.#graceTimer);
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.hub.detach(this);
  }
}

function send(type: string, data: unknown): string {
  return JSON.stringify({ type, data });
}

export class FeedHub extends EventEmitter<FeedHubEvents> {
  readonly limits: FeedLimits;
  readonly #bus: Bus;
  readonly #counters: Counters;
  readonly #clock: () => number;
  readonly #onError: (err: unknown) => void;
  readonly #connections = new Set<FeedConnection>();
  readonly #perTenant = new Map<string, number>();
  /** Open connections by principal (principalKey), for revocations. */
  readonly #byPrincipal = new Map<string, Set<FeedConnection>>();
  /** One serialization per published event and message type, shared by every receiving connection. */
  readonly #serialized = new Map<string, WeakMap<object, string>>();
  #heartbeat: NodeJS.Timeout | null = null;
  /** The credential rounds: one read per distinct credential, never two rounds at once. */
  readonly #sweep: CredentialSweep<FeedConnection, SweepCheck<boolean>>;
  /** After stop(), late upgrades (a keep-alive connection during shutdown) are closed at once. */
  #stopped = false;

  constructor(deps: FeedHubDeps) {
    super();
    this.#bus = deps.bus;
    this.#counters = deps.counters;
    this.#clock = deps.clock;
    this.#onError = deps.onError ?? (() => {});
    this.limits = { ...DEFAULT_FEED_LIMITS, ...deps.limits };
    this.#sweep = new CredentialSweep({
      periodMs: this.limits.credentialRecheckMs,
      live: () => this.#liveCredentials(),
      settle: (stands, conns) => {
        if (!stands) for (const conn of conns) if (this.#connections.has(conn)) this.#revoked(conn, 'credential revoked');
      },
      onFailure: (err) => this.#onError(err),
      onRecovered: deps.onRecheckRecovered ?? (() => {}),
    });
  }

  /** Open connections (all feeds, all tenants). */
  get size(): number {
    return this.#connections.size;
  }

  start(): void {
    this.#stopped = false;
    if (this.#heartbeat) return;
    this.#heartbeat = setInterval(() => this.sweep(), this.limits.heartbeatIntervalMs);
    this.#heartbeat.unref();
    this.#sweep.start();
    // Announcements missed while the bus was away: do not wait for the next round.
    this.#bus.onMissedEvents?.(() => void this.#sweep.requestRound(), this);
    // Cluster scope: the revocation may have been made through another API process.
    this.#bus.subscribe(
      'console-user.revoked',
      (e) => this.revoke({ kind: 'user', id: e.user_id }, `console account ${e.reason.replace('_', ' ')}`),
      this,
      'cluster',
    );
    this.#bus.subscribe('api-key.revoked', (e) => this.revoke({ kind: 'api_key', id: e.key_id }, 'API key revoked'), this, 'cluster');
    // One sign-in ended: only its feeds, not those of the account's other sign-ins.
    this.#bus.subscribe('console-session.ended', (e) => this.#signedOut(e.user_id, e.session_id), this, 'cluster');
  }

  /** Closes every connection (1001) and stops the heartbeat. */
  stop(): void {
    this.#stopped = true;
    this.#bus.removeAllFor(this);
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    this.#sweep.stop();
    for (const conn of [...this.#connections]) conn.close(FEED_CLOSE.shuttingDown, 'server shutting down');
  }

  /** Closes every feed `principal` has open in this process (4401). */
  revoke(principal: FeedPrincipal, reason: string): void {
    for (const conn of [...(this.#byPrincipal.get(principalKey(principal)) ?? [])]) this.#revoked(conn, reason);
  }

  #signedOut(userId: string, sessionId: string): void {
    for (const conn of [...(this.#byPrincipal.get(principalKey({ kind: 'user', id: userId })) ?? [])]) {
      const p = conn.client.principal;
      if (p.kind === 'user' && p.sessionId === sessionId) this.#revoked(conn, 'signed out');
    }
  }

  /**
   * One credential round (the timer runs its own; a bus gap and tests ask for one): authenticates
   * each distinct open credential again and closes (4401) the feeds of those that no longer
   * authenticate. Resolves when the round is over; asked during a round, it runs after that one,
   * whose reads may predate what the caller knows changed.
   */
  recheckAuthorizations(): Promise<void> {
    return this.#sweep.requestRound();
  }

  *#liveCredentials(): Iterable<[FeedConnection, SweepCheck<boolean>]> {
    for (const conn of this.#connections) {
      const recheck = conn.client.authorization;
      if (recheck) yield [conn, { key: recheck.key, read: recheck.stillAuthorized }];
    }
  }

  #revoked(conn: FeedConnection, reason: string): void {
    if (conn.closing) return;
    this.#count(conn, 'revoked');
    conn.close(FEED_CLOSE.tokenExpired, reason);
  }

  /**
   * Closes (4401) every feed whose credential no longer verifies: the signing key of its access
   * token was retired, here (the retire route calls this) or by another process (found within
   * the key file's reload interval, at a heartbeat).
   */
  async recheck(): Promise<void> {
    await Promise.all(
      [...this.#connections].map(async (conn) => {
        const check = conn.client.stillValid;
        if (check && !(await check()) && this.#connections.has(conn)) conn.close(FEED_CLOSE.tokenExpired, 'credential no longer valid');
      }),
    );
  }

  /**
   * One heartbeat round (the timer calls it; tests call it directly instead of waiting): closes
   * connections whose credential expired, terminates those that did not answer the last ping,
   * pings the rest, and rechecks the credentials (`recheck`).
   */
  sweep(): void {
    const now = this.#clock();
    for (const conn of [...this.#connections]) {
      if (conn.client.expiresAt !== null && now >= conn.client.expiresAt) {
        conn.close(FEED_CLOSE.tokenExpired, 'credential expired');
      } else if (!conn.alive) {
        this.#count(conn, 'heartbeat_timeout');
        conn.ended();
        conn.socket.terminate();
      } else {
        conn.alive = false;
        conn.socket.ping();
      }
    }
    void this.recheck().catch((err: unknown) => this.#onError(err));
  }

  /** `/ws/alerts`: alert.opened, alert.updated and command.updated (as 'remediation') of the tenant. */
  openAlerts(socket: WebSocket, client: FeedClient): void {
    const conn = this.#attach(socket, 'alerts', client);
    if (!conn) return;
    const { tenantId } = client;
    const relay =
      (type: 'alert.opened' | 'alert.updated') =>
      (p: BusEvents['alert.opened']): void => {
        if (p.tenant_id === tenantId) this.#deliver(conn, type, p, () => send(type, AlertSchema.parse(p.alert)));
      };
    // Cluster scope: alerts and commands are raised by whichever worker decided the event.
    this.#bus.subscribe('alert.opened', relay('alert.opened'), conn, 'cluster');
    this.#bus.subscribe('alert.updated', relay('alert.updated'), conn, 'cluster');
    // Workflow steps (acknowledged, (un)assigned, resolved): the alert after the step and the step.
    for (const type of ['alert.acknowledged', 'alert.assigned', 'alert.resolved'] as const) {
      const build = (p: BusEvents[typeof type]) => () => send(type, { alert: AlertSchema.parse(p.alert), step: AlertEventSchema.parse(p.step) });
      this.#bus.subscribe(type, (p) => void (p.tenant_id === tenantId && this.#deliver(conn, type, p, build(p))), conn, 'cluster');
    }
    this.#bus.subscribe(
      'command.updated',
      (p) => {
        if (p.tenant_id === tenantId) this.#deliver(conn, 'remediation', p, () => send('remediation', CommandRecordSchema.parse(p.command)));
      },
      conn,
      'cluster',
    );
    conn.push(send('ready', { feed: 'alerts', tenant_id: tenantId }));
  }

  /** `/api/v1/stream`: the tenant's decided usage, one message per stored batch, optionally filtered. */
  openStream(socket: WebSocket, client: FeedClient, filter: StreamFilter): void {
    const conn = this.#attach(socket, 'stream', client);
    if (!conn) return;
    const { tenantId } = client;
    const filtered = filter.device_id !== undefined || filter.effect !== undefined;
    this.#bus.subscribe(
      'usage.decided',
      (p) => {
        if (p.tenant_id !== tenantId) return;
        const message = (records: BusEvents['usage.decided']['records']) =>
          send('usage.decided', { tower_id: p.tower_id, records: records.map((r) => UsageRecordSchema.parse(r)) });
        if (!filtered) {
          this.#deliver(conn, 'usage.decided', p, () => message(p.records));
          return;
        }
        const records = p.records.filter(
          (r) =>
            (filter.device_id === undefined || r.device_id === filter.device_id) &&
            (filter.effect === undefined || r.effect === filter.effect),
        );
        if (records.length > 0) this.#deliver(conn, 'usage.decided', null, () => message(records));
      },
      conn,
      'cluster',
    );
    conn.push(send('ready', { feed: 'stream', tenant_id: tenantId, filter }));
  }

  /** Called by a connection that cannot keep up. */
  drop(conn: FeedConnection, reason: DropReason): void {
    if (conn.closing) return;
    this.#count(conn, reason);
    conn.close(FEED_CLOSE.slowConsumer, 'slow consumer: too far behind');
  }

  /** Removes the connection from the bus and the hub; idempotent. */
  detach(conn: FeedConnection): void {
    if (!this.#connections.delete(conn)) return;
    this.#bus.removeAllFor(conn);
    const n = (this.#perTenant.get(conn.client.tenantId) ?? 1) - 1;
    if (n > 0) this.#perTenant.set(conn.client.tenantId, n);
    else this.#perTenant.delete(conn.client.tenantId);
    const key = principalKey(conn.client.principal);
    const same = this.#byPrincipal.get(key);
    same?.delete(conn);
    if (same?.size === 0) this.#byPrincipal.delete(key);
    this.emit('closed', conn.feed, conn.client.tenantId);
  }

  #attach(socket: WebSocket, feed: FeedName, client: FeedClient): FeedConnection | null {
    if (this.#stopped) {
      socket.close(FEED_CLOSE.shuttingDown, 'server shutting down');
      return null;
    }
    if ((this.#perTenant.get(client.tenantId) ?? 0) >= this.limits.maxConnectionsPerTenant) {
      socket.close(FEED_CLOSE.tooManyConnections, 'too many feed connections for this tenant');
      return null;
    }
    const conn = new FeedConnection(this, socket, feed, client);
    this.#connections.add(conn);
    this.#perTenant.set(client.tenantId, (this.#perTenant.get(client.tenantId) ?? 0) + 1);
    const key = principalKey(client.principal);
    let same = this.#byPrincipal.get(key);
    if (!same) {
      same = new Set();
      this.#byPrincipal.set(key, same);
    }
    same.add(conn);
    if (client.expiresAt !== null) conn.expireIn(client.expiresAt - this.#clock());
    socket.on('pong', () => {
      conn.alive = true;
    });
    // Clients have nothing to say on a feed; anything they send only proves they are alive.
    socket.on('message', () => {
      conn.alive = true;
    });
    socket.on('close', () => conn.ended());
    this.emit('opened', feed, client.tenantId);
    return conn;
  }

  /**
   * Serializes once per (message type, event) — `key` is the bus payload, null when the message
   * is specific to this connection — then pushes. A record that fails its schema is skipped.
   */
  #deliver(conn: FeedConnection, type: string, key: object | null, build: () => string): void {
    let cache = this.#serialized.get(type);
    if (!cache) {
      cache = new WeakMap();
      this.#serialized.set(type, cache);
    }
    let message = key ? cache.get(key) : undefined;
    if (message === undefined) {
      try {
        message = build();
      } catch (err) {
        this.#onError(err);
        return;
      }
      if (key) cache.set(key, message);
    }
    conn.push(message);
  }

  #count(conn: FeedConnection, reason: DropReason): void {
    this.#counters.inc(FEED_DROPPED_COUNTER, { feed: conn.feed, reason });
    this.emit('dropped', conn.feed, conn.client.tenantId, reason);
  }
}
