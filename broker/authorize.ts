/**
 * The aedes authorization hooks: what an authenticated principal may publish, subscribe to and
 * receive (DESIGN §3 ACL), the per-client limits, and the ingest hand-off. Every ACL question is
 * answered by shared/mqtt/topics.ts; nothing here writes or splits a topic string itself.
 */
import type { AedesOptions, AedesPublishPacket, Client, PublishPacket, Subscription } from 'aedes';
import type { Logger } from '../shared/logger.js';
import type { Counters } from '../shared/metrics.js';
import { mayPublish, maySubscribe, mqttIdentity, parseTopic, type MqttPrincipal } from '../shared/mqtt/topics.js';
import { isUplinkTopic, type UplinkSink } from '../shared/mqtt/transport.js';
import type { Sessions } from './sessions.js';

type AuthorizePublishHook = NonNullable<AedesOptions['authorizePublish']>;
type AuthorizeSubscribeHook = NonNullable<AedesOptions['authorizeSubscribe']>;
type AuthorizeForwardHook = NonNullable<AedesOptions['authorizeForward']>;

export type AclDenialReason = 'unauthenticated' | 'reserved_topic' | 'anonymous' | 'root_wildcard' | 'not_granted';

/** A label for `mqtt_acl_denied_total`: why `topic` (a name or a filter) was refused. */
export function aclDenialReason(principal: MqttPrincipal | undefined, topic: string): AclDenialReason {
  if (!principal) return 'unauthenticated';
  if (topic.startsWith('$')) return 'reserved_topic';
  if (principal.kind === 'anonymous') return 'anonymous';
  if (topic.startsWith('#') || topic.startsWith('+')) return 'root_wildcard';
  return 'not_granted';
}

export interface AuthorizeContext {
  sessions: Sessions;
  counters: Counters;
  logger: Logger;
  maxPayloadBytes: number;
  now: () => number;
  /** The ingest sink, or null while the workers are not built yet. */
  sink: () => UplinkSink | null;
  /** True once the broker is shutting down. */
  stopping: () => boolean;
}

/** Refusal of a PUBLISH. aedes closes the connection on it [MQTT-3.3.5-2]. */
export class PublishRefused extends Error {
  constructor(readonly reason: string) {
    super(`publish refused: ${reason}`);
    this.name = 'PublishRefused';
  }
}

export interface AuthorizeHooks {
  authorizePublish: AuthorizePublishHook;
  authorizeSubscribe: AuthorizeSubscribeHook;
  authorizeForward: AuthorizeForwardHook;
}

export function createAuthorizeHooks(ctx: AuthorizeContext): AuthorizeHooks {
  const { sessions, counters, logger } = ctx;

  function denyAcl(action: 'publish' | 'subscribe' | 'forward', client: Client | null, principal: MqttPrincipal | undefined, topic: string) {
    const reason = aclDenialReason(principal, topic);
    counters.inc('mqtt_acl_denied_total', { action, reason });
    logger.debug({ client_id: client?.id, principal: principal?.kind, topic, action, reason }, 'acl denied');
    return new PublishRefused(`acl ${reason}`);
  }

  /**
   * Hands an uplink message to the ingest sink and waits for it: aedes writes the QoS 1 PUBACK
   * only after this hook calls back, so a PUBACK means "processed" (or durably queued). On a
   * failure we refuse, the connection drops without a PUBACK, and the agent redelivers the
   * message on its next session [MQTT-4.4.0-1]; event ids make the redelivery idempotent.
   */
  async function handOff(topic: string, payload: Buffer, towerId: string): Promise<void> {
    const parsed = parseTopic(topic);
    if (!isUplinkTopic(parsed)) return;
    const sink = ctx.sink();
    if (!sink) {
      counters.inc('ingest_errors_total', { stage: 'broker', reason: 'no_sink' });
      logger.warn({ topic, tower_id: towerId }, 'uplink refused: ingest is not ready');
      throw new PublishRefused('ingest not ready');
    }
    try {
      await sink.accept({ topic, parsed, payload, tower_id: towerId, received_at: ctx.now() });
    } catch (err) {
      counters.inc('ingest_errors_total', { stage: 'broker', reason: 'sink_failed' });
      logger.error({ err, topic, tower_id: towerId }, 'uplink refused: ingest failed');
      throw new PublishRefused('ingest failed');
    }
  }

  /**
   * Wills of clients whose broker node died are republished by a surviving node with no client
   * attached (aedes `_clearWills`). Only a tower's status LWT is accepted then, and only when the
   * stored will's client id is that tower's reserved id (tower ids are bound at CONNECT).
   */
  async function authorizeOrphanWill(packet: PublishPacket, payload: Buffer): Promise<void> {
    if (ctx.stopping()) throw new PublishRefused('broker stopping');
    const parsed = parseTopic(packet.topic);
    const clientId = (packet as PublishPacket & { clientId?: unknown }).clientId;
    if (parsed?.kind !== 'status' || clientId !== mqttIdentity.towerClientId(parsed.towerId)) {
      throw denyAcl('publish', null, undefined, packet.topic);
    }
    if (payload.length > ctx.maxPayloadBytes) throw new PublishRefused('payload too large');
    await handOff(packet.topic, payload, parsed.towerId);
  }

  async function authorizePublishAsync(client: Client | null, packet: PublishPacket): Promise<void> {
    const topic = packet.topic;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (client === null) return authorizeOrphanWill(packet, payload);

    const session = sessions.get(client);
    // aedes publishes a client's will from Client#close, after marking the client closed
    // [MQTT-3.1.2-8]; an ordinary PUBLISH is only dispatched while the client is open.
    const isWill = client.closed;
    // On shutdown every client is closed by the broker, not lost by the tower: publishing their
    // offline LWTs would mark the whole fleet offline, and the sink is already stopped anyway.
    if (isWill && ctx.stopping()) throw new PublishRefused('broker stopping');
    if (!session) throw denyAcl('publish', client, undefined, topic);

    if (payload.length > ctx.maxPayloadBytes) {
      counters.inc('mqtt_rejected_total', { reason: 'payload_too_large' });
      logger.info({ client_id: client.id, topic, bytes: payload.length }, 'publish refused: payload too large');
      throw new PublishRefused('payload too large');
    }
    // The will is the broker's publish on the client's behalf, not client traffic.
    if (!isWill && session.bucket && !session.bucket.take()) {
      counters.inc('mqtt_rejected_total', { reason: 'rate_limited' });
      logger.info({ client_id: client.id }, 'publish refused: rate limit exceeded');
      throw new PublishRefused('rate limited');
    }
    if (!mayPublish(session.principal, topic)) throw denyAcl('publish', client, session.principal, topic);

    if (session.principal.kind === 'tower') await handOff(topic, payload, session.principal.towerId);
  }

  return {
    authorizePublish(client, packet, callback) {
      authorizePublishAsync(client, packet).then(
        () => callback(null),
        (err: unknown) => callback(err instanceof Error ? err : new PublishRefused(String(err))),
      );
    },

    authorizeSubscribe(client: Client, sub: Subscription, callback) {
      const principal = sessions.get(client)?.principal;
      if (principal && maySubscribe(principal, sub.topic)) {
        callback(null, sub);
        return;
      }
      denyAcl('subscribe', client, principal, sub.topic);
      // A null subscription makes aedes answer 0x80 (Failure) for this filter in the SUBACK
      // (MQTT 3.1.1 §3.9.3, in request order [MQTT-3.9.3-1]); the connection and the other
      // filters of the same SUBSCRIBE are unaffected.
      callback(null, null);
    },

    /**
     * Defence in depth: even if a subscription slipped past authorizeSubscribe (a persisted
     * session restored under changed rules, a bug), a message only reaches a client that may
     * subscribe to its exact topic. Also filters the offline queue replayed on reconnect.
     */
    authorizeForward(client: Client, packet: AedesPublishPacket) {
      const principal = sessions.get(client)?.principal;
      if (principal && maySubscribe(principal, packet.topic)) return packet;
      denyAcl('forward', client, principal, packet.topic);
      return null;
    },
  };
}
