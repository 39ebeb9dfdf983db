/**
 * The RADIUS accounting ingest plugin (RFC 2866) over UDP: a listener whose Accounting-Requests
 * become `sessions` messages for the pipeline (shared/ingest/plugin.ts) through
 * AccountingRequests (accounting-requests.ts), which radsec-plugin.ts (RADIUS/TLS) shares.
 *
 * Credentials model: one shared secret per NAS, found by the packet's NAS-Identifier (else its
 * NAS-IP-Address or NAS-IPv6-Address, as text) among the RADIUS clients operators configure
 * through the API (`/radius/clients`); the client names the tower the NAS serves. A packet from
 * an unknown NAS, or whose Request Authenticator does not verify with that NAS's secret, is
 * silently discarded [RFC 2866 §3] and counted; so is one for a client that reports over
 * RADIUS/TLS (it has a `radsec_identity`): its secret must not be accepted over plain UDP.
 *
 * "Acknowledged means durable": the Accounting-Response is sent only once the request is stored
 * (or durably queued in distributed mode); one that could not be recorded gets none, so the NAS
 * retransmits. UDP has no backpressure, so packets beyond `maxInflight` are dropped and counted;
 * the NAS retransmits those too.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { IngestPlugin, IngestPluginContext } from '../../shared/ingest/plugin.js';
import { AccountingRequests, type RadiusClientLookup, type RequestTransport } from './accounting-requests.js';
import { MAX_PACKET } from './codec.js';

export type { RadiusOutcome } from './accounting-requests.js';

export interface RadiusPluginOptions {
  host: string;
  port: number;
  clients: RadiusClientLookup;
  /** Requests being recorded at once; more are dropped (counted) and retransmitted by the NAS. */
  maxInflight?: number;
}

export class RadiusAccountingPlugin implements IngestPlugin {
  readonly name = 'radius';
  readonly #ctx: IngestPluginContext;
  readonly #o: RadiusPluginOptions;
  readonly #requests: AccountingRequests;
  readonly #maxInflight: number;
  #socket: Socket | null = null;
  #port = 0;
  #inflight = 0;
  #stopping = false;
  readonly #idle: Array<() => void> = [];

  constructor(ctx: IngestPluginContext, opts: RadiusPluginOptions) {
    this.#ctx = ctx;
    this.#o = opts;
    this.#requests = new AccountingRequests(ctx, opts.clients, this.name);
    this.#maxInflight = opts.maxInflight ?? 1024;
  }

  /** The bound UDP port (after start). */
  get port(): number {
    return this.#port;
  }

  async start(): Promise<void> {
    const socket = createSocket({ type: isIPv6(this.#o.host) ? 'udp6' : 'udp4' });
    this.#socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.#o.port, this.#o.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('error', (err) => this.#ctx.logger.error({ err }, 'radius socket error'));
    socket.on('message', (msg, from) => this.#onDatagram(msg, from));
    this.#port = socket.address().port;
    this.#ctx.logger.info({ host: this.#o.host, port: this.#port }, 'radius accounting listening');
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    // Requests already handed to the sink still get their response once recorded.
    if (this.#inflight > 0) await new Promise<void>((r) => this.#idle.push(r));
    const socket = this.#socket;
    this.#socket = null;
    if (socket) await new Promise<void>((r) => socket.close(() => r()));
  }

  #onDatagram(datagram: Buffer, from: RemoteInfo): void {
    if (this.#stopping) return;
    if (datagram.length > MAX_PACKET) return this.#requests.count('malformed', { from: from.address });
    if (this.#inflight >= this.#maxInflight) return this.#requests.count('overloaded');
    this.#inflight++;
    this.#handle(datagram, from)
      .catch((err: unknown) => this.#ctx.logger.error({ err }, 'radius request failed'))
      .finally(() => {
        this.#inflight--;
        if (this.#inflight === 0) for (const r of this.#idle.splice(0)) r();
      });
  }

  async #handle(datagram: Buffer, from: RemoteInfo): Promise<void> {
    const { response } = await this.#requests.handle(datagram, udpTransport(from.address));
    const socket = this.#socket;
    // Awaited, so stop() (which waits for requests in flight) never closes under a response.
    if (response && socket) await new Promise<void>((r) => socket.send(response, from.port, from.address, () => r()));
  }
}

/** RADIUS/UDP: the NAS's own shared secret; a client that reports over RADIUS/TLS is refused. */
function udpTransport(peer: string): RequestTransport {
  return {
    peer,
    refuse: (client) => (client.radsec_identity === null ? null : 'wrong_transport'),
    secret: (client) => Buffer.from(client.secret, 'utf8'),
  };
}
