/**
 * Admission of network connections, before anyone is authenticated: at most `maxPending`
 * connections may be waiting for their CONNECT to be authenticated (a connection beyond that is
 * closed as it is accepted), and every connection reaches aedes through a WireGuard that bounds
 * and checks its frames. Each pending connection holds at most one CONNECT of
 * `maxConnectBytes` plus the socket's buffers, and aedes closes it after its CONNECT timeout.
 */
import type { Duplex } from 'node:stream';
import type { Client } from 'aedes';
import type { Counters } from '../shared/metrics.js';
import type { InspectorLimits, Violation } from './frame-inspector.js';
import type { RefusalLog } from './refusal-log.js';
import { WireGuard, type GuardSession } from './wire-guard.js';

export interface ConnectionGateOptions extends InspectorLimits {
  maxPending: number;
  /** WireGuardOptions.ackTimeoutMs for every connection (0: none). */
  ackTimeoutMs?: number;
  counters: Counters;
  refusals: RefusalLog;
}

export class ConnectionGate {
  readonly #opts: ConnectionGateOptions;
  readonly #guards = new WeakMap<Client, WireGuard>();
  readonly #releases = new WeakMap<WireGuard, () => void>();
  /** The peer of each connection not authenticated yet, for the refusal logs of its CONNECT. */
  readonly #peers = new WeakMap<WireGuard, string>();
  #pending = 0;

  constructor(opts: ConnectionGateOptions) {
    this.#opts = opts;
  }

  /** Connections accepted whose CONNECT is not authenticated yet. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * The stream to hand to aedes for `conn`, or null when the connection was refused (and
   * destroyed) because too many are pending. `peer` names the connection in logs until it has
   * a client id. `clientOf` gives the aedes client, once there is one, for logs.
   */
  admit(conn: Duplex, peer: string, clientOf: () => Client | null): WireGuard | null {
    const { counters, refusals } = this.#opts;
    const release = this.#count(conn, peer);
    if (!release) return null;
    const guard = new WireGuard(conn, {
      maxFrameBytes: this.#opts.maxFrameBytes,
      maxConnectBytes: this.#opts.maxConnectBytes,
      maxFiltersPerPacket: this.#opts.maxFiltersPerPacket,
      onViolation: (v: Violation) => {
        counters.inc('mqtt_rejected_total', { reason: v.reason });
        const { client_id: asked = null, ...detail } = v.detail ?? {};
        refusals.refused(clientOf()?.id ?? asked, v.reason, 'connection closed: protocol violation or limit', { peer, rule: v.rule, ...detail });
      },
      onReceived: () => keepAlive(clientOf()),
      onReadPaused: (paused) => unread.paused(paused, clientOf()),
      ackTimeoutMs: this.#opts.ackTimeoutMs ?? 0,
      onAckTimeout: () => {
        counters.inc('mqtt_rejected_total', { reason: 'ack_timeout' });
        refusals.refused(clientOf()?.id ?? null, 'ack_timeout', 'connection closed: the client answered nothing it owed', {
          peer,
          timeout_ms: this.#opts.ackTimeoutMs,
        });
      },
    });
    const unread = new UnreadKeepAlive();
    guard.once('close', () => {
      unread.paused(false, null);
      release();
    });
    this.#releases.set(guard, release);
    this.#peers.set(guard, peer);
    return guard;
  }

  /**
   * Counts `socket` as pending from its accept until `release` is called or it closes: a
   * WebSocket connection is unauthenticated during its HTTP upgrade too, before MQTT starts on
   * it (and `admit` counts it from then on). Returns null, having destroyed the socket, when
   * too many are pending.
   */
  reserve(socket: Duplex, peer: string): (() => void) | null {
    const release = this.#count(socket, peer);
    if (release) socket.once('close', release);
    return release;
  }

  /** Counts one more pending connection (its release, once), or refuses and destroys `conn` beyond the cap. */
  #count(conn: Duplex, peer: string): (() => void) | null {
    const { counters, refusals } = this.#opts;
    if (this.#pending >= this.#opts.maxPending) {
      counters.inc('mqtt_rejected_total', { reason: 'too_many_pending' });
      refusals.refused(null, 'too_many_pending', 'connection refused: too many unauthenticated connections', { peer, cap: this.#opts.maxPending });
      conn.destroy();
      return null;
    }
    this.#pending++;
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      this.#pending--;
    };
  }

  /** Remembers which guard serves `client`. */
  bind(client: Client, guard: WireGuard): void {
    this.#guards.set(client, guard);
  }

  /** The guard serving `client` (aedes reads and writes it instead of the socket). */
  guardOf(client: Client): WireGuard | undefined {
    return this.#guards.get(client);
  }

  /** The address and port `client` connected from, while its CONNECT is not authenticated. */
  peerOf(client: Client): string | null {
    const guard = this.#guards.get(client);
    return (guard && this.#peers.get(guard)) ?? null;
  }

  /** The CONNECT of `client` was authenticated: it stops counting as pending. */
  authenticated(client: Client, session: GuardSession): void {
    const guard = this.#guards.get(client);
    if (!guard) return;
    this.#peers.delete(guard);
    this.#releases.get(guard)?.();
    guard.authenticate(session);
  }
}

/**
 * Restarts aedes' keep-alive timer of `client` (armed at CONNECT, lib/handlers/connect.js), as
 * aedes does for each packet it handles (lib/handlers/index.js). Called for each packet the
 * guard receives: aedes reads none while packets it read earlier wait (uplinks held by ingest;
 * see WireGuard's PINGREQ), and would close a connection whose client is alive and pinging
 * [MQTT-3.1.2-24]. Its typings leave these fields out.
 */
function keepAlive(client: Client | null): void {
  const c = client as KeepAliveClient | null;
  if (c && (c._keepaliveInterval ?? 0) > 0) c._keepaliveTimer?.refresh();
}

type KeepAliveClient = Client & { _keepaliveInterval?: number; _keepaliveTimer?: NodeJS.Timeout | null };

/**
 * Holds aedes' keep-alive timer of a client while the guard does not read its connection (the
 * read-ahead is full behind packets aedes has not finished): the client may be pinging all along,
 * and its PINGREQs wait in TCP because the broker chose not to read them. The keep alive
 * [MQTT-3.1.2-24] counts what the server receives, and it received nothing by its own choice. The timer starts a
 * full period again when reading resumes, so a peer that died meanwhile is still found then.
 * A cleared Node timer cannot be re-armed with refresh() (aedes re-arms it that way for every
 * packet), so it is kept, and refreshed often enough that it never fires.
 */
class UnreadKeepAlive {
  #timer: NodeJS.Timeout | null = null;

  paused(paused: boolean, client: Client | null): void {
    if (this.#timer) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
    const c = client as KeepAliveClient | null;
    const interval = c?._keepaliveInterval ?? 0;
    if (!c || interval <= 0) return;
    c._keepaliveTimer?.refresh();
    if (!paused) return;
    this.#timer = setInterval(() => keepAlive(c), Math.max(1, Math.floor(interval / 3)));
    this.#timer.unref();
  }
}
