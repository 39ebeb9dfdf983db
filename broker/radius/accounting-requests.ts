/**
 * One RADIUS Accounting-Request, whatever carried it (RADIUS/UDP in radius-plugin.ts, RADIUS/TLS
 * in radsec-plugin.ts): decoded, its NAS found among the RADIUS clients operators configure
 * (`/radius/clients`, by NAS-Identifier, else NAS-IP-Address or NAS-IPv6-Address as text),
 * checked against what its transport may carry, authenticated with the secret the transport
 * uses, and handed to the pipeline's sink. The Accounting-Response is built only once
 * `sink.accept` resolved (stored, or durably queued in distributed mode): a request that could
 * not be recorded gets none [RFC 2866 §3: the server MUST NOT reply if it cannot record], so the
 * NAS sends it again. Every request is counted once in `radius_requests_total{outcome}`.
 */
import type { IngestPluginContext } from '../../shared/ingest/plugin.js';
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
  verifyMessageAuthenticator,
  verifyRequestAuthenticator,
  verifyStatusServer,
  type RadiusPacket,
} from './codec.js';

export type RadiusClientRecord = NonNullable<Awaited<ReturnType<Store['radiusClients']['findByNasIdentifier']>>>;
export type RadiusClientLookup = Pick<Store['radiusClients'], 'findByNasIdentifier'>;

export type RadiusOutcome =
  | 'recorded'
  | 'control'
  | 'status_server'
  | 'malformed'
  | 'unsupported_code'
  | 'unknown_nas'
  | 'wrong_transport'
  | 'identity_mismatch'
  | 'bad_authenticator'
  | 'unsupported_status'
  | 'no_session_id'
  | 'no_device'
  | 'overloaded'
  | 'store_unavailable'
  | 'sink_failed';

/** What a transport decides for the requests it carries. */
export interface RequestTransport {
  /** Names the peer in logs. */
  readonly peer: string;
  /** Why this transport may not carry `client`'s requests (counted, dropped), or null. */
  refuse(client: RadiusClientRecord): RadiusOutcome | null;
  /** The shared secret `client`'s requests are authenticated with on this transport. */
  secret(client: RadiusClientRecord): Buffer;
}

export interface RequestResult {
  outcome: RadiusOutcome;
  /** The Accounting-Response to send; null: none (dropped, or not recorded). */
  response: Buffer | null;
}

/** A request that was not recorded for want of the store or the sink (the NAS must resend it). */
export const NOT_RECORDED: ReadonlySet<RadiusOutcome> = new Set(['store_unavailable', 'sink_failed']);

export class AccountingRequests {
  readonly #ctx: IngestPluginContext;
  readonly #clients: RadiusClientLookup;
  readonly #source: string;

  /** `source` names the plugin in the session batches it sends (and their counters). */
  constructor(ctx: IngestPluginContext, clients: RadiusClientLookup, source: string) {
    this.#ctx = ctx;
    this.#clients = clients;
    this.#source = source;
  }

  count(outcome: RadiusOutcome, detail?: Record<string, unknown>): void {
    this.#ctx.counters.inc('radius_requests_total', { outcome });
    const taken = outcome === 'recorded' || outcome === 'control' || outcome === 'status_server';
    this.#ctx.counters.message(taken ? 'accepted' : outcome);
    if (detail && !taken) this.#ctx.logger.debug({ outcome, ...detail }, 'radius request not recorded');
  }

  #drop(outcome: RadiusOutcome, detail?: Record<string, unknown>): RequestResult {
    this.count(outcome, detail);
    return { outcome, response: null };
  }

  /** Handles one whole packet (its length already checked against MAX_PACKET); rejects only on a defect. */
  async handle(raw: Buffer, transport: RequestTransport): Promise<RequestResult> {
    const from = transport.peer;
    const receivedAt = this.#ctx.now();
    let packet: RadiusPacket;
    try {
      packet = decodePacket(raw);
    } catch (err) {
      return this.#drop('malformed', { from, err: (err as Error).message });
    }
    if (packet.code !== CODE.ACCOUNTING_REQUEST && packet.code !== CODE.STATUS_SERVER) return this.#drop('unsupported_code', { from, code: packet.code });
    // [RFC 2866 §4.1] an Accounting-Request carries a NAS-Identifier or a NAS-IP-Address (or
    // NAS-IPv6-Address, RFC 3162): a client registered under either name is found by it, the
    // NAS-Identifier first.
    const names = [attrText(packet, ATTR.NAS_IDENTIFIER), attrAddress(packet, ATTR.NAS_IP_ADDRESS), attrAddress(packet, ATTR.NAS_IPV6_ADDRESS)];
    let nasIdentifier: string | undefined;
    let client: RadiusClientRecord | null = null;
    try {
      for (const name of names) {
        if (name === undefined || name === '') continue;
        nasIdentifier ??= name;
        client = await this.#clients.findByNasIdentifier(name);
        if (client) {
          nasIdentifier = name;
          break;
        }
      }
    } catch (err) {
      // Not answered: the NAS sends it again, and we may be able to check it then.
      return this.#drop('store_unavailable', { from, nas_identifier: nasIdentifier, err: (err as Error).message });
    }
    if (!client) return this.#drop('unknown_nas', { from, nas_identifier: nasIdentifier });
    const refused = transport.refuse(client);
    if (refused !== null) return this.#drop(refused, { from, nas_identifier: nasIdentifier });
    const secret = transport.secret(client);
    if (packet.code === CODE.STATUS_SERVER) {
      // [RFC 5997] "are you alive?" from a NAS or a proxy (radsecproxy, FreeRADIUS with status
      // checks on): answered on the accounting port with an Accounting-Response, nothing recorded.
      if (!verifyStatusServer(packet, secret)) return this.#drop('bad_authenticator', { from, nas_identifier: nasIdentifier, attribute: 'Message-Authenticator' });
      this.count('status_server');
      return { outcome: 'status_server', response: encodeAccountingResponse(packet, secret, { messageAuthenticator: true }) };
    }
    if (!verifyRequestAuthenticator(packet, secret)) return this.#drop('bad_authenticator', { from, nas_identifier: nasIdentifier });
    if (!verifyMessageAuthenticator(packet, secret)) return this.#drop('bad_authenticator', { from, nas_identifier: nasIdentifier, attribute: 'Message-Authenticator' });

    let request;
    try {
      request = readAccountingRequest(packet, receivedAt, client.id);
    } catch (err) {
      if (err instanceof MalformedPacket) return this.#drop('malformed', { from, nas_identifier: nasIdentifier, err: err.message });
      throw err;
    }
    if (request.kind === 'unusable') {
      this.count(request.reason, { from, nas_identifier: nasIdentifier });
      // An authentic request we have no use for (a status type we do not keep, such as Failed or
      // the tunnel types; a station id that names no device) is answered, as FreeRADIUS answers
      // what its accounting section ignores: else the NAS resends it until it gives up and may
      // mark this server dead. One without Acct-Session-Id is malformed [RFC 2866 §5.5], dropped.
      return { outcome: request.reason, response: request.reason === 'no_session_id' ? null : encodeAccountingResponse(packet, secret) };
    }
    // Accounting-On/Off: the NAS restarted or stops, so what it had open has ended [RFC 2866 §5.1]
    // (only what it had open: another NAS of the tower keeps its sessions).
    const ctx = this.#ctx;
    const batch: SessionBatch =
      request.kind === 'record'
        ? { v: 1, id: ctx.newId(), sent_at: receivedAt, source: this.#source, records: [request.record] }
        : { v: 1, id: ctx.newId(), sent_at: receivedAt, source: this.#source, records: [], tower_reset: { at: request.at, reason: request.status, nas: client.id } };
    try {
      await ctx.sink.accept({
        topic: topics.sessions(client.tower_id),
        parsed: { kind: 'sessions', towerId: client.tower_id },
        payload: encodePayload(batch),
        tower_id: client.tower_id,
        received_at: receivedAt,
      });
    } catch (err) {
      return this.#drop('sink_failed', { from, nas_identifier: nasIdentifier, err: (err as Error).message });
    }
    const outcome = request.kind === 'record' ? 'recorded' : 'control';
    this.count(outcome);
    return { outcome, response: encodeAccountingResponse(packet, secret) };
  }
}
