/**
 * The RADIUS accounting ingest plugin (RFC 2866): a UDP listener whose Accounting-Requests become
 * `sessions` messages for the pipeline (shared/ingest/plugin.ts).
 *
 * Credentials model: one shared secret per NAS, found by the packet's NAS-Identifier (else its
 * NAS-IP-Address or NAS-IPv6-Address, as text) among the RADIUS clients operators configure
 * through the API (`/radius/clients`); the client names the
 * tower the NAS serves. A packet from an unknown NAS, or whose Request Authenticator does not
 * verify with that NAS's secret, is silently discarded [RFC 2866 §3] and counted.
 *
 * "Acknowledged means durable": the Accounting-Response is sent only once `sink.accept` resolved
 * (stored, or durably queued in distributed mode). A request that could not be recorded gets no
 * response [RFC 2866 §3: the server MUST NOT reply if it cannot record], so the NAS retransmits.
 * UDP has no backpressure, so packets beyond `maxInflight` are dropped and counted; the NAS
 * retransmits those too.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { IngestPlugin, IngestPluginContext } from '../../shared/ingest/plugin.js';
import { encodePayload } from '../../shared/mqtt/payloads.js';
import type { SessionBatch } from '../../shared/mqtt/session-payloads.js';
import { topics } from '../../shared/mqtt/topics.js';
import type { Store } from '../../shared/store/port.js';
import { readAccountingRequest } from './accounting.js';
import {
  attrAddress,
  attrText,
  ATTR,
  CODE,
  decodePacket,
  encodeAccountingResponse,
  MalformedPacket,
  MAX_PACKET,
  verifyMessageAuthenticator,
  verifyRequestAuthenticator,
  type RadiusPacket,
} from './codec.js';

export interface RadiusPluginOptions {
  host: string;
  port: number;
  clients: Pick<Store['radiusClients'], 'findByNasIdentifier'>;
  /** Requests being recorded at once; more are dropped (counted) and retransmitted by the NAS. */
  maxInflight?: number;
}

export type RadiusOutcome =
  | 'recorded'
  | 'control'
  | 'malformed'
  | 'unsupported_code'
  | 'unknown_nas'
  | 'bad_authenticator'
  | 'unsupported_status'
  | 'no_session_id'
  | 'no_device'
  | 'overloaded'
  | 'store_unavailable'
  | 'sink_failed';

export class RadiusAccountingPlugin implements IngestPlugin {
  readonly name = 'radius';
  readonly #ctx: IngestPluginContext;
  readonly #o: RadiusPluginOptions;
  readonly #maxInflight: number;
  #socket: Socket | null = null;
  #port = 0;
  #inflight = 0;
  #stopping = false;
  readonly #idle: Array<() => void> = [];

  constructor(ctx: IngestPluginContext, opts: RadiusPluginOptions) {
    this.#ctx = ctx;
    this.#o = opts;
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

  #count(outcome: RadiusOutcome, detail?: Record<string, unknown>): void {
    this.#ctx.counters.inc('radius_requests_total', { outcome });
    this.#ctx.counters.message(outcome === 'recorded' || outcome === 'control' ? 'accepted' : outcome);
    if (detail && outcome !== 'recorded' && outcome !== 'control') this.#ctx.logger.debug({ outcome, ...detail }, 'radius request not recorded');
  }

  #onDatagram(datagram: Buffer, from: RemoteInfo): void {
    if (this.#stopping) return;
    if (datagram.length > MAX_PACKET) return this.#count('malformed', { from: from.address });
    if (this.#inflight >= this.#maxInflight) return this.#count('overloaded');
    this.#inflight++;
    this.#handle(datagram, from)
      .catch((err: unknown) => this.#ctx.logger.error({ err }, 'radius request failed'))
      .finally(() => {
        this.#inflight--;
        if (this.#inflight === 0) for (const r of this.#idle.splice(0)) r();
      });
  }

  async #handle(datagram: Buffer, from: RemoteInfo): Promise<void> {
    const receivedAt = this.#ctx.now();
    let packet: RadiusPacket;
    try {
      packet = decodePacket(datagram);
    } catch (err) {
      return this.#count('malformed', { from: from.address, err: (err as Error).message });
    }
    if (packet.code !== CODE.ACCOUNTING_REQUEST) return this.#count('unsupported_code', { code: packet.code });
    // [RFC 2866 §4.1] an Accounting-Request carries a NAS-Identifier or a NAS-IP-Address (or
    // NAS-IPv6-Address, RFC 3162): a client registered under either name is found by it, the
    // NAS-Identifier first.
    const names = [attrText(packet, ATTR.NAS_IDENTIFIER), attrAddress(packet, ATTR.NAS_IP_ADDRESS), attrAddress(packet, ATTR.NAS_IPV6_ADDRESS)];
    let nasIdentifier: string | undefined;
    let client: Awaited<ReturnType<RadiusPluginOptions['clients']['findByNasIdentifier']>> = null;
    try {
      for (const name of names) {
        if (name === undefined || name === '') continue;
        nasIdentifier ??= name;
        client = await this.#o.clients.findByNasIdentifier(name);
        if (client) {
          nasIdentifier = name;
          break;
        }
      }
    } catch (err) {
      // Not answered: the NAS retransmits, and we may be able to check it then.
      return this.#count('store_unavailable', { nas_identifier: nasIdentifier, err: (err as Error).message });
    }
    if (!client) return this.#count('unknown_nas', { from: from.address, nas_identifier: nasIdentifier });
    const secret = Buffer.from(client.secret, 'utf8');
    if (!verifyRequestAuthenticator(packet, secret)) return this.#count('bad_authenticator', { from: from.address, nas_identifier: nasIdentifier });
    if (!verifyMessageAuthenticator(packet, secret)) return this.#count('bad_authenticator', { from: from.address, nas_identifier: nasIdentifier, attribute: 'Message-Authenticator' });

    let request;
    try {
      request = readAccountingRequest(packet, receivedAt);
    } catch (err) {
      if (err instanceof MalformedPacket) return this.#count('malformed', { nas_identifier: nasIdentifier, err: err.message });
      throw err;
    }
    if (request.kind === 'unusable') return this.#count(request.reason, { nas_identifier: nasIdentifier });
    // Accounting-On/Off: the NAS restarted or stops, so what it had open has ended [RFC 2866 §5.1].
    const batch: SessionBatch =
      request.kind === 'record'
        ? { v: 1, id: this.#ctx.newId(), sent_at: receivedAt, source: this.name, records: [request.record] }
        : { v: 1, id: this.#ctx.newId(), sent_at: receivedAt, source: this.name, records: [], tower_reset: { at: request.at, reason: request.status } };
    try {
      await this.#ctx.sink.accept({
        topic: topics.sessions(client.tower_id),
        parsed: { kind: 'sessions', towerId: client.tower_id },
        payload: encodePayload(batch),
        tower_id: client.tower_id,
        received_at: receivedAt,
      });
    } catch (err) {
      return this.#count('sink_failed', { nas_identifier: nasIdentifier, err: (err as Error).message });
    }
    this.#count(request.kind === 'record' ? 'recorded' : 'control');
    const socket = this.#socket;
    // Awaited, so stop() (which waits for requests in flight) never closes under a response.
    if (socket) await new Promise<void>((r) => socket.send(encodeAccountingResponse(packet, secret), from.port, from.address, () => r()));
  }
}
