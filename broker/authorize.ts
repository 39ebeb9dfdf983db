/**
 * The aedes authorization hooks: what an authenticated principal may publish, subscribe to and
 * receive (DESIGN §3 ACL), the per-client limits, and the ingest hand-off. Every ACL question is
 * answered by shared/mqtt/topics.ts; nothing here writes or splits a topic string itself.
 *
 * A tower's uplinks are handed to the ingest sink here and, except its status, go no further:
 * they are marked `consumed` and the broker does not publish them (broker.ts), so they are
 * never stored as retained messages, never queued for a session and never delivered to
 * another client, whatever the PUBLISH's retain flag or the subscriptions that match it.
 */
import type { AedesOptions, AedesPublishPacket, Client, PublishPacket, Subscription } from 'aedes';
import { FeedCut } from '../shared/ingest/carrier-feeds.js';
import type { Logger } from '../shared/logger.js';
import type { Counters } from '../shared/metrics.js';
import { mayPublish, mayReceive, maySubscribe, mqttIdentity, parseTopic, subscriptionMaxQos, type MqttPrincipal, type ParsedTopic } from '../shared/mqtt/topics.js';
import { isUplinkTopic, type UplinkSink } from '../shared/mqtt/transport.js';
import type { StoreFaults } from '../shared/store/store-faults.js';
import type { CarrierFeedSink } from './carrier-feed-ingest.js';
import { MAX_FILTER_BYTES } from './frame-inspector.js';
import type { RefusalLog } from './refusal-log.js';
import type { RetainedQuota } from './retained-quota.js';
import { TOPIC_VERDICTS_MAX, type Session, type Sessions } from './sessions.js';

type AuthorizePublishHook = NonNullable<AedesOptions['authorizePublish']>;
type AuthorizeSubscribeHook = NonNullable<AedesOptions['authorizeSubscribe']>;
type AuthorizeForwardHook = NonNullable<AedesOptions['authorizeForward']>;
type Release = () => void;

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
  refusals: RefusalLog;
  retained: RetainedQuota;
  /** Tower uplinks handed to ingest, which the broker must not publish (see the header). */
  consumed: WeakSet<object>;
  /** Subscriptions refused, which the session store must not keep (guarded-persistence.ts). */
  refusedSubscriptions: WeakSet<object>;
  maxPayloadBytes: number;
  maxSubscriptionsPerClient: number;
  now: () => number;
  /** The ingest sink, or null while the workers are not built yet. */
  sink: () => UplinkSink | null;
  /** A store-full refusal is counted there and logged once per episode, not once per uplink. */
  storeFaults?: StoreFaults | null;
  /** Where carrier feeds go (carrier-feed-ingest.ts); null: carriers publish nothing. */
  carrierFeeds?: CarrierFeedSink | null;
  /** True once the broker is shutting down. */
  stopping: () => boolean;
  /** True for a tower connection closed because the tower connected to another broker node. */
  movedAway: (client: Client) => boolean;
  /**
   * Writes a QoS 0 message to `client`'s own connection at once, held until the PUBACK aedes
   * writes next (see `UplinkMessage.reply`); returns the release, or null when the message cannot
   * go that way (the caller then publishes it through aedes). Absent: uplinks carry no reply.
   */
  answer?: (client: Client, topic: string, payload: Buffer) => (() => void) | null;
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
  const { sessions, counters, logger, refusals } = ctx;

  /**
   * A retained PUBLISH the quota cannot hold is delivered and processed without its retain
   * flag: the message is not lost, only not stored (a tower's status still reaches ingest).
   */
  function admitRetained(client: Client | null, packet: PublishPacket, payload: Buffer, owner: string | null): void {
    if (!packet.retain) return;
    const verdict = ctx.retained.admit(packet.topic, payload.length, owner);
    if (verdict === 'ok') return;
    packet.retain = false;
    counters.inc('mqtt_rejected_total', { reason: 'retained_quota' });
    refusals.refused(client?.id ?? null, 'retained_quota', 'retained message not stored: quota', { topic: packet.topic, limit: verdict });
  }

  function denyAcl(action: 'publish' | 'subscribe' | 'forward', client: Client | null, principal: MqttPrincipal | undefined, topic: string) {
    const reason = aclDenialReason(principal, topic);
    counters.inc('mqtt_acl_denied_total', { action, reason });
    if (action === 'publish' && client !== null) {
      // The client is told nothing: MQTT 3.1.1 has no negative acknowledgement, so the refusal
      // closes its connection [MQTT-3.3.5-2], at every QoS, and a will is simply not published.
      // This line is the only place that says why (a debug line did, out of sight by default).
      const message = client.closed ? 'will not published: topic not allowed by the ACL' : 'publish refused: topic not allowed by the ACL; connection closed';
      refusals.refused(client.id, 'acl_denied', message, { event: 'mqtt_publish_refused', principal: principal?.kind, topic, acl: reason }, 'warn');
    } else {
      logger.debug({ client_id: client?.id, principal: principal?.kind, topic, action, reason }, 'acl denied');
    }
    return new PublishRefused(`acl ${reason}`);
  }

  /**
   * Hands an uplink message to the ingest sink and waits for it: aedes writes the QoS 1 PUBACK
   * only after this hook calls back, so a PUBACK means "processed" (or durably queued). On a
   * failure we refuse, the connection drops without a PUBACK, and the agent redelivers the
   * message on its next session [MQTT-4.4.0-1]; event ids make the redelivery idempotent.
   */
  async function handOff(topic: string, parsed: ParsedTopic | null, payload: Buffer, towerId: string, qos: number, client: Client | null = null): Promise<Release | null> {
    if (!isUplinkTopic(parsed)) return null;
    const sink = ctx.sink();
    if (!sink) {
      counters.inc('ingest_errors_total', { stage: 'broker', reason: 'no_sink' });
      logger.warn({ topic, tower_id: towerId }, 'uplink refused: ingest is not ready');
      throw new PublishRefused('ingest not ready');
    }
    // A QoS 1 PUBLISH of a connected tower is acknowledged on its own connection once `accept`
    // resolves: the answer may be written there too, at once and in the same write as the PUBACK.
    let release: Release | null = null;
    const answer = ctx.answer;
    const reply =
      answer && client !== null && qos >= 1
        ? (replyTopic: string, replyPayload: Buffer): boolean => {
            if (release !== null) return false;
            release = answer(client, replyTopic, replyPayload);
            return release !== null;
          }
        : undefined;
    try {
      await sink.accept({ topic, parsed, payload, tower_id: towerId, received_at: ctx.now(), publish_qos: qos, ...(reply && { reply }) });
      return release;
    } catch (err) {
      (release as Release | null)?.();
      // A full or busy store refuses every delivery alike: counted, logged once per episode.
      const fault = ctx.storeFaults?.refused(err, 'ingest');
      if (fault) {
        counters.inc('ingest_errors_total', { stage: 'broker', reason: `store_${fault}` });
        throw new PublishRefused(`store ${fault}`);
      }
      counters.inc('ingest_errors_total', { stage: 'broker', reason: 'sink_failed' });
      // Once per tower per interval: in an outage of what ingest needs (Redis, in distributed
      // mode) every tower's every resend lands here, and a line each flooded the log.
      refusals.refused(client?.id ?? towerId, 'ingest_failed', 'uplink refused: ingest failed', { err, topic, tower_id: towerId }, 'error');
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
    await handOff(packet.topic, parsed, payload, parsed.towerId, packet.qos);
    admitRetained(null, packet, payload, `tower:${parsed.towerId}`);
  }

  /**
   * `topic` parsed when the session may publish to it, undefined when not (mayPublish); the
   * verdict is kept on the session for the few usage and acks topics a tower publishes to.
   */
  function publishable(session: Session, topic: string): ParsedTopic | null | undefined {
    const known = session.published?.get(topic);
    if (known !== undefined) return known;
    if (!mayPublish(session.principal, topic)) return undefined;
    const parsed = parseTopic(topic);
    // Only what a tower sends all the time: an idle tower (status at connect) keeps no map.
    if (parsed?.kind === 'usage' || parsed?.kind === 'acks') {
      const cache = (session.published ??= new Map());
      if (cache.size < TOPIC_VERDICTS_MAX) cache.set(topic, parsed);
    }
    return parsed;
  }

  /** Resolves with the release of an answer held for the PUBACK (handOff), if any. */
  async function authorizePublishAsync(client: Client | null, packet: PublishPacket): Promise<Release | null | void> {
    const topic = packet.topic;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (client === null) return authorizeOrphanWill(packet, payload);

    const session = sessions.get(client);
    // aedes publishes a client's will from Client#close, after marking the client closed
    // [MQTT-3.1.2-8]; an ordinary PUBLISH is only dispatched while the client is open.
    const isWill = client.closed;
    // On shutdown every client is closed by the broker, not lost by the tower: publishing their
    // offline LWTs would mark the whole fleet offline, and the sink is already stopped anyway.
    if (isWill && ctx.stopping()) {
      counters.inc('mqtt_wills_suppressed_total', { reason: 'stopping' });
      throw new PublishRefused('broker stopping');
    }
    // A will of a tower that moved is refused below; whether it moved is learnt by the broker's
    // handler of the other node's announcement, which runs right after aedes' own (the one that
    // closed the client, and may have come here synchronously): decide a microtask later.
    if (isWill) await Promise.resolve();
    // The tower connected to another node, which closed this connection [MQTT-3.1.4-2]: it is not
    // gone, and its "offline" LWT, ordered against the new node's "online" only by the two hosts'
    // clocks (and published after it, since this node learns of the move second), would show a
    // connected tower offline and retain that cluster-wide. MQTT 5 names the same rule: a will is
    // not sent when the session continues on a new connection [MQTT-3.1.3-9].
    if (isWill && ctx.movedAway(client)) {
      counters.inc('mqtt_wills_suppressed_total', { reason: 'moved_away' });
      throw new PublishRefused('client connected to another node');
    }
    if (!session) throw denyAcl('publish', client, undefined, topic);

    if (payload.length > ctx.maxPayloadBytes) {
      counters.inc('mqtt_rejected_total', { reason: 'payload_too_large' });
      refusals.refused(client.id, 'payload_too_large', 'publish refused: payload too large', { topic, bytes: payload.length });
      throw new PublishRefused('payload too large');
    }
    // The will is the broker's publish on the client's behalf, not client traffic.
    if (!isWill && session.bucket && !session.bucket.take()) {
      counters.inc('mqtt_rejected_total', { reason: 'rate_limited' });
      refusals.refused(client.id, 'rate_limited', 'publish refused: rate limit exceeded');
      throw new PublishRefused('rate limited');
    }
    const principal = session.principal;
    const parsed = publishable(session, topic);
    if (parsed === undefined) throw denyAcl('publish', client, principal, topic);

    if (principal.kind === 'carrier') {
      const kind = parsed?.kind === 'carrierTowers' ? 'towers' : parsed?.kind === 'carrierDevices' ? 'devices' : null;
      if (!kind || !ctx.carrierFeeds) throw denyAcl('publish', client, principal, topic);
      try {
        // Applied before the PUBACK, and consumed: a feed is never relayed, retained or queued.
        const credentialId = principal.credentialId;
        await ctx.carrierFeeds.accept(principal.carrierId, kind, payload, { id: credentialId, revoked: () => sessions.isRevoked(credentialId) });
      } catch (err) {
        if (err instanceof FeedCut) throw new PublishRefused('carrier credential revoked');
        counters.inc('ingest_errors_total', { stage: 'broker', reason: 'carrier_feed_failed' });
        logger.error({ err, topic, carrier_id: principal.carrierId }, 'carrier feed refused: applying it failed');
        throw new PublishRefused('carrier feed failed');
      }
      ctx.consumed.add(packet);
      return;
    }
    if (principal.kind === 'tower') {
      const release = await handOff(topic, parsed, payload, principal.towerId, packet.qos, client);
      if (parsed?.kind !== 'status') {
        ctx.consumed.add(packet);
        return release;
      }
      release?.();
      admitRetained(client, packet, payload, `tower:${principal.towerId}`);
      return;
    }
    admitRetained(client, packet, payload, null);
  }

  return {
    authorizePublish(client, packet, callback) {
      authorizePublishAsync(client, packet).then(
        (release) => {
          // aedes writes the PUBACK inside this callback, behind the held answer: one write.
          callback(null);
          release?.();
        },
        (err: unknown) => callback(err instanceof Error ? err : new PublishRefused(String(err))),
      );
    },

    authorizeSubscribe(client: Client, sub: Subscription, callback) {
      const session = sessions.get(client);
      const principal = session?.principal;
      // A null subscription makes aedes answer 0x80 (Failure) for this filter in the SUBACK
      // (MQTT 3.1.1 §3.9.3, in request order [MQTT-3.9.3-1]); the connection and the other
      // filters of the same SUBSCRIBE are unaffected.
      const refuse = () => {
        ctx.refusedSubscriptions.add(sub);
        callback(null, null);
      };
      if (!session || !principal || !maySubscribe(principal, sub.topic)) {
        denyAcl('subscribe', client, principal, sub.topic);
        return refuse();
      }
      // A console user's or a service's ACL covers filters of any length under its prefix; the
      // wire guard bounds a SUBSCRIBE as a whole, so one filter may still be 16 KiB, kept for
      // the session (and stored, on a persistent one). Our filters are a few dozen bytes.
      if (Buffer.byteLength(sub.topic) > MAX_FILTER_BYTES) {
        counters.inc('mqtt_rejected_total', { reason: 'filter_too_long' });
        refusals.refused(client.id, 'filter_too_long', 'subscription refused: filter too long', { bytes: Buffer.byteLength(sub.topic), cap: MAX_FILTER_BYTES });
        return refuse();
      }
      if (!session.subscriptions.has(sub.topic) && session.subscriptions.size >= ctx.maxSubscriptionsPerClient) {
        counters.inc('mqtt_rejected_total', { reason: 'subscription_cap' });
        refusals.refused(client.id, 'subscription_cap', 'subscription refused: per-client cap', { topic: sub.topic, cap: ctx.maxSubscriptionsPerClient });
        return refuse();
      }
      // The wire guard already lowered the requested QoS (so the SUBACK states it); this holds
      // for subscriptions restored from a stored session too.
      const max = subscriptionMaxQos(principal, sub.topic);
      if (sub.qos > max) sub.qos = max;
      session.subscriptions.add(sub.topic);
      callback(null, sub);
    },

    /**
     * Defence in depth: even if a subscription slipped past authorizeSubscribe (a persisted
     * session restored under changed rules, a bug), a message only reaches a client whose ACL
     * covers its exact topic, and uplinks only reach services (mayReceive). Also filters the
     * offline queue replayed on reconnect and retained messages sent on SUBSCRIBE.
     */
    authorizeForward(client: Client, packet: AedesPublishPacket) {
      const principal = sessions.get(client)?.principal;
      if (principal && mayReceive(principal, packet.topic)) return packet;
      denyAcl('forward', client, principal, packet.topic);
      return null;
    },
  };
}
