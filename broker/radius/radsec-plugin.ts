/**
 * RADIUS accounting over TLS (RadSec, RFC 6614; its TCP framing, RFC 6613): a TLS listener with
 * mutual authentication whose Accounting-Requests go through the same AccountingRequests as
 * RADIUS/UDP (accounting-requests.ts) into the pipeline.
 *
 * Trust. The peer (a NAS, or the proxy that carries many NAS, e.g. radsecproxy) must present a
 * client certificate issued by `--radsec-ca-file`; its identity is its certificate's DNS
 * subjectAltNames, or its subject CN when it has none (compared case-insensitively). A request
 * is recorded only for a RADIUS client (`/radius/clients`, found by the packet's NAS-Identifier
 * as over UDP) whose `radsec_identity` is one of them: a peer certified for one carrier's NAS
 * cannot report for another's tower, and a client without a RadSec identity (a UDP client) is
 * not reachable over TLS. The shared secret is "radsec", as RFC 6614 §2.3 requires: TLS, not
 * the MD5 authenticators, authenticates the peer.
 *
 * Framing. Packets follow each other on the stream, each as long as its Length field says.
 * A Length outside 20..4096 cannot be resynchronised: the connection is closed (counted
 * `malformed`). Requests on a connection are recorded concurrently (the Identifier tells their
 * responses apart); a connection holding `maxInflightPerConnection` of them, or the listener
 * `maxInflight`, or unread responses past the socket's high-water mark, stops being read until
 * that drains: TCP pushes back, nothing is dropped.
 *
 * Acknowledged means durable, as over UDP: the Accounting-Response is written only once the
 * request is stored (or durably queued). A request that could not be recorded (store or queue
 * unavailable) gets none, and its connection is closed once the others in flight are answered:
 * a TCP client does not resend on the connection it sent on, it resends what was not answered on
 * its next one.
 *
 * Bounds: at most `maxConnections` connections (beyond: closed at accept); a TLS handshake not
 * done within `handshakeTimeoutMs` of the accept is closed (Node's own handshakeTimeout is reset
 * by any byte and leaves the socket open, see broker/tls-handshakes.ts); a connection with
 * nothing in flight that sends nothing for `idleTimeoutMs` is closed.
 */
import type { Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { IngestPlugin, IngestPluginContext } from '../../shared/ingest/plugin.js';
import { TlsHandshakes } from '../tls-handshakes.js';
import { AccountingRequests, NOT_RECORDED, type RadiusClientLookup, type RadiusClientRecord, type RequestTransport } from './accounting-requests.js';
import { MAX_PACKET } from './codec.js';

/** RFC 6614 §2.3: the shared secret of RADIUS/TLS. */
const RADSEC_SECRET = Buffer.from('radsec', 'utf8');
const HEADER = 20;

export interface RadSecPluginOptions {
  host: string;
  port: number;
  clients: RadiusClientLookup;
  /** PEM: the listener's certificate (chain) and key (--tls-cert-file / --tls-key-file). */
  cert: Buffer;
  key: Buffer;
  /** PEM: the CA(s) that issue the peers' client certificates (--radsec-ca-file). */
  ca: Buffer;
  maxConnections?: number;
  handshakeTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** Requests of one connection being recorded at once (its Identifier space is 256). */
  maxInflightPerConnection?: number;
  /** Requests of all connections being recorded at once. */
  maxInflight?: number;
}

type Limits = 'maxConnections' | 'handshakeTimeoutMs' | 'idleTimeoutMs' | 'maxInflightPerConnection' | 'maxInflight';
type ResolvedOptions = RadSecPluginOptions & Required<Pick<RadSecPluginOptions, Limits>>;

export type RadSecConnectionOutcome = 'accepted' | 'refused_capacity' | 'handshake_timeout' | 'handshake_failed' | 'no_identity';

/**
 * The identities a peer's certificate names: its DNS subjectAltNames, else its subject CN(s),
 * lowercased. Node prints subjectaltname as `DNS:a, DNS:b, IP Address:…`, quoting (JSON) an
 * entry that holds a comma; a DNS name never does, so quoted entries are not DNS names we match.
 */
export function peerIdentities(cert: { subject?: Partial<Record<string, string | string[]>> | null; subjectaltname?: string | undefined } | null | undefined): string[] {
  if (!cert) return [];
  const dns = (cert.subjectaltname ?? '')
    .split(', ')
    .filter((e) => e.startsWith('DNS:') && !e.startsWith('DNS:"'))
    .map((e) => e.slice(4).toLowerCase())
    .filter((e) => e !== '');
  if (dns.length > 0) return dns;
  const cn = cert.subject?.['CN'];
  return (Array.isArray(cn) ? cn : cn === undefined ? [] : [cn]).map((c) => c.toLowerCase()).filter((c) => c !== '');
}

export class RadSecAccountingPlugin implements IngestPlugin {
  readonly name = 'radsec';
  readonly #ctx: IngestPluginContext;
  readonly #o: ResolvedOptions;
  readonly #requests: AccountingRequests;
  /** The handshake deadline from each TCP accept (broker/tls-handshakes.ts, as for MQTT over TLS). */
  readonly #handshakes: TlsHandshakes;
  readonly #connections = new Set<RadSecConnection>();
  /** Connections that stopped reading because the listener's in-flight cap was reached. */
  readonly #waiting = new Set<RadSecConnection>();
  readonly #idle: Array<() => void> = [];
  #server: Server | null = null;
  #port = 0;
  #open = 0;
  #inflight = 0;
  #stopping = false;

  constructor(ctx: IngestPluginContext, opts: RadSecPluginOptions) {
    this.#ctx = ctx;
    this.#o = {
      maxConnections: 256,
      handshakeTimeoutMs: 10_000,
      idleTimeoutMs: 120_000,
      maxInflightPerConnection: 256,
      maxInflight: 1024,
      ...opts,
    };
    // Session records say they came from RADIUS accounting, whatever carried them.
    this.#requests = new AccountingRequests(ctx, opts.clients, 'radius');
    // A connection counts against maxConnections from its accept to its close (its count is
    // never handed on, unlike MQTT's pending one).
    this.#handshakes = new TlsHandshakes({ reserve: (raw) => this.#admit(raw) }, this.#o.handshakeTimeoutMs, (raw) =>
      this.#countConnection('handshake_timeout', { from: raw.remoteAddress }),
    );
  }

  /** The bound TCP port (after start). */
  get port(): number {
    return this.#port;
  }

  /** Open connections (TCP accepted, handshake done or not). */
  get connections(): number {
    return this.#open;
  }

  async start(): Promise<void> {
    const server = createServer({
      cert: this.#o.cert,
      key: this.#o.key,
      ca: this.#o.ca,
      // The peer's certificate is checked in 'secureConnection' (authorized), before anything it
      // sent is read: Node's rejectUnauthorized drops such a TLS 1.3 peer without telling why.
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    });
    this.#server = server;
    server.on('connection', (raw: Socket) => this.#handshakes.accepted(raw, raw.remoteAddress ?? '?'));
    server.on('secureConnection', (socket: TLSSocket) => this.#secured(socket));
    server.on('tlsClientError', (err, socket) => {
      // ECONNRESET: the TCP connection closed before the handshake was done, by the peer or by
      // us (refused at capacity, or past the deadline: both counted as such). Anything else is a
      // handshake TLS refused (a protocol error; an untrusted certificate is refused above).
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') this.#countConnection('handshake_failed', { from: socket.remoteAddress, err: err.message });
      socket.destroy();
    });
    server.on('error', (err) => this.#ctx.logger.error({ err }, 'radsec listener error'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.port, this.#o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    this.#port = typeof address === 'object' && address !== null ? address.port : 0;
    this.#ctx.logger.info({ host: this.#o.host, port: this.#port }, 'radsec accounting listening');
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    const server = this.#server;
    this.#server = null;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    this.#handshakes.destroyPending();
    // Nothing more is read; requests already handed to the sink still get their response.
    for (const c of this.#connections) c.pauseForStop();
    if (this.#inflight > 0) await new Promise<void>((r) => this.#idle.push(r));
    for (const c of this.#connections) c.end();
    await closed;
  }

  #countConnection(outcome: RadSecConnectionOutcome, detail?: Record<string, unknown>): void {
    this.#ctx.counters.inc('radsec_connections_total', { outcome });
    if (detail) this.#ctx.logger.debug({ outcome, ...detail }, 'radsec connection refused');
  }

  /** At accept: a place among maxConnections (released at close), or refused and destroyed. */
  #admit(raw: Socket): (() => void) | null {
    if (this.#stopping || this.#open >= this.#o.maxConnections) {
      this.#countConnection('refused_capacity', { from: raw.remoteAddress });
      raw.destroy();
      return null;
    }
    this.#open++;
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      this.#open--;
    };
  }

  #secured(socket: TLSSocket): void {
    this.#handshakes.secured(socket);
    if (this.#stopping) {
      socket.destroy();
      return;
    }
    if (!socket.authorized) {
      this.#countConnection('handshake_failed', { from: socket.remoteAddress, err: String(socket.authorizationError ?? 'no client certificate') });
      socket.destroy();
      return;
    }
    const identities = peerIdentities(socket.getPeerCertificate());
    if (identities.length === 0) {
      this.#countConnection('no_identity', { from: socket.remoteAddress });
      socket.destroy();
      return;
    }
    this.#countConnection('accepted');
    const connection = new RadSecConnection(this, socket, identities);
    this.#connections.add(connection);
    socket.once('close', () => {
      this.#connections.delete(connection);
      this.#waiting.delete(connection);
    });
  }

  // --- for RadSecConnection -----------------------------------------------------------------

  get requests(): AccountingRequests {
    return this.#requests;
  }

  get options(): Readonly<ResolvedOptions> {
    return this.#o;
  }

  get logger(): IngestPluginContext['logger'] {
    return this.#ctx.logger;
  }

  /** Takes a place for one request, or answers false (the connection then waits, unread). */
  reserve(connection: RadSecConnection): boolean {
    if (this.#inflight >= this.#o.maxInflight) {
      this.#waiting.add(connection);
      return false;
    }
    this.#inflight++;
    return true;
  }

  release(): void {
    this.#inflight--;
    if (this.#inflight === 0) for (const r of this.#idle.splice(0)) r();
    if (this.#waiting.size > 0 && this.#inflight < this.#o.maxInflight && !this.#stopping) {
      const waiting = [...this.#waiting];
      this.#waiting.clear();
      for (const c of waiting) c.resumeIfDue();
    }
  }
}

/** One secured RadSec connection: frames in, responses out, in-flight requests bounded. */
class RadSecConnection {
  readonly #plugin: RadSecAccountingPlugin;
  readonly #socket: TLSSocket;
  readonly #identities: ReadonlySet<string>;
  readonly #transport: RequestTransport;
  /** Bytes of a packet not yet whole. */
  #partial: Buffer = Buffer.alloc(0);
  /** Whole packets read but not yet started (the caps were reached). */
  readonly #queued: Buffer[] = [];
  #inflight = 0;
  /** No more requests are started: the connection ends once those in flight are answered. */
  #closing = false;
  #stopping = false;

  constructor(plugin: RadSecAccountingPlugin, socket: TLSSocket, identities: string[]) {
    this.#plugin = plugin;
    this.#socket = socket;
    this.#identities = new Set(identities);
    const peer = `${socket.remoteAddress ?? '?'} (${identities.join(', ')})`;
    this.#transport = {
      peer,
      refuse: (client: RadiusClientRecord) =>
        client.radsec_identity === null ? 'wrong_transport' : this.#identities.has(client.radsec_identity.toLowerCase()) ? null : 'identity_mismatch',
      secret: () => RADSEC_SECRET,
    };
    // Every idle period is checked, not only the first: setTimeout's own callback is a `once`
    // listener, so a first timeout that found work in flight left the connection open for good.
    // One that finds work re-arms the timer (a request answered with nothing written moves none).
    const idleMs = plugin.options.idleTimeoutMs;
    socket.setTimeout(idleMs);
    socket.on('timeout', () => {
      if (this.#inflight === 0 && this.#queued.length === 0) this.end();
      else socket.setTimeout(idleMs);
    });
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.resumeIfDue());
    socket.on('error', (err) => plugin.logger.debug({ err: err.message, from: peer }, 'radsec connection error'));
  }

  #onData(chunk: Buffer): void {
    let buf = this.#partial.length === 0 ? chunk : Buffer.concat([this.#partial, chunk]);
    while (buf.length >= 4) {
      const length = buf.readUInt16BE(2);
      if (length < HEADER || length > MAX_PACKET) {
        // The stream cannot be resynchronised: what follows is not a packet boundary.
        this.#plugin.requests.count('malformed', { from: this.#transport.peer, length });
        this.#socket.destroy();
        return;
      }
      if (buf.length < length) break;
      this.#queued.push(buf.subarray(0, length));
      buf = buf.subarray(length);
    }
    // A copy, so a short remainder does not hold a whole chunk.
    this.#partial = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
    this.#pump();
  }

  /** Starts queued requests while the caps allow, and reads only while nothing is held back. */
  #pump(): void {
    const cap = this.#plugin.options.maxInflightPerConnection;
    while (this.#queued.length > 0 && !this.#closing && !this.#stopping && this.#inflight < cap && !this.#socket.writableNeedDrain) {
      if (!this.#plugin.reserve(this)) break;
      this.#start(this.#queued.shift()!);
    }
    const hold = this.#queued.length > 0 || this.#closing || this.#stopping || this.#inflight >= cap || this.#socket.writableNeedDrain;
    if (hold) this.#socket.pause();
    else this.#socket.resume();
  }

  resumeIfDue(): void {
    if (!this.#socket.destroyed) this.#pump();
  }

  #start(packet: Buffer): void {
    this.#inflight++;
    this.#plugin.requests
      .handle(packet, this.#transport)
      .then(({ outcome, response }) => {
        if (response && !this.#socket.destroyed) this.#socket.write(response);
        if (NOT_RECORDED.has(outcome)) this.#closing = true;
      })
      .catch((err: unknown) => {
        this.#plugin.logger.error({ err }, 'radsec request failed');
        this.#closing = true;
      })
      .finally(() => {
        this.#inflight--;
        this.#plugin.release();
        if ((this.#closing || this.#stopping) && this.#inflight === 0) this.end();
        else this.resumeIfDue();
      });
  }

  /** The listener stops: nothing more is read or started. */
  pauseForStop(): void {
    this.#stopping = true;
    this.#socket.pause();
  }

  /** Ends the connection once what was written is flushed; bounded, a peer that never reads is cut. */
  end(): void {
    if (this.#socket.destroyed) return;
    this.#socket.pause();
    this.#socket.end(() => this.#socket.destroy());
    setTimeout(() => this.#socket.destroy(), 2_000).unref();
  }
}
