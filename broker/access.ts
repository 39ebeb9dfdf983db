/**
 * Who gets a session and how it ends: adapts authenticate.ts to aedes' `authenticate` hook,
 * opens the session (rate bucket, command-delivery tracking, token expiry), lets the wire guard
 * pass the client's frames, and closes sessions when the bus revokes what opened them
 * (credentials, deleted towers, console users; cluster scope, as any API process may revoke).
 */
import type { AuthenticateError, Client } from 'aedes';
import type { TokenService } from '../shared/auth/tokens.js';
import type { Bus } from '../shared/bus.js';
import type { Logger } from '../shared/logger.js';
import type { Counters } from '../shared/metrics.js';
import { subscriptionMaxQos, topics, type MqttPrincipal } from '../shared/mqtt/topics.js';
import type { Store } from '../shared/store/port.js';
import { authenticateConnection, CONNACK, towerLoginWithdrawn, type AuthOutcome, type ConnackRefusal } from './authenticate.js';
import type { BrokerConfig, BrokerDeps } from './broker.js';
import { CommandDeliveries, type CommandDelivery } from './command-deliveries.js';
import type { ConnectionGate } from './connection-gate.js';
import { PublishBuckets } from './limits.js';
import type { RefusalLog } from './refusal-log.js';
import { newSession, type Session, type Sessions } from './sessions.js';

/** The longest delay setTimeout honours (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2_147_483_647;

export interface AccessDeps {
  config: BrokerConfig;
  serviceSecret: string;
  counters: Counters;
  log: Logger;
  refusals: RefusalLog;
  sessions: Sessions;
  gate: ConnectionGate;
  towerCredentials: Pick<Store['towerCredentials'], 'get' | 'touch'>;
  towers: Pick<Store['towers'], 'get'>;
  carrierCredentials?: BrokerDeps['carrierCredentials'];
  tokens: Pick<TokenService, 'verify'>;
  consoleUsers: BrokerDeps['consoleUsers'];
  onCommandDelivered: BrokerDeps['onCommandDelivered'];
  storeFaults?: BrokerDeps['storeFaults'];
  now: () => number;
}

export class Access {
  readonly #d: AccessDeps;
  readonly #buckets: PublishBuckets;

  constructor(deps: AccessDeps) {
    this.#d = deps;
    this.#buckets = new PublishBuckets(deps.config.mqtt_publish_rate, deps.config.mqtt_publish_burst, deps.now);
  }

  /** Listens for revocations; `owner` removes the listeners (bus.removeAllFor). */
  listen(bus: Bus, owner: object): void {
    bus.subscribe('credential.revoked', (e) => this.#revokeCredential(e.credential_id), owner, 'cluster');
    bus.subscribe('tower.deleted', (e) => this.#towerDeleted(e.tower_id), owner, 'cluster');
    bus.subscribe('tower.retired', (e) => this.#towerRetired(e.tower_id), owner, 'cluster');
    bus.subscribe('console-user.revoked', (e) => this.#revokeUser(e.user_id), owner, 'cluster');
    bus.subscribe('carrier-credential.revoked', (e) => this.#revokeCredential(e.credential_id), owner, 'cluster');
    // Pub/sub is at most once: what was revoked while the bus was disconnected is read back from the store.
    bus.onMissedEvents?.(() => void this.recheckLive(), owner);
  }

  /**
   * Checks every live session against the store again, as its CONNECT was (a revocation, deletion
   * or retirement announced while the bus was disconnected never arrives), and closes those whose
   * credential, tower or account is gone. A session that cannot be checked (store unavailable)
   * stays open: the next CONNECT checks it.
   */
  async recheckLive(): Promise<void> {
    const { sessions, towerCredentials, towers, carrierCredentials, consoleUsers } = this.#d;
    for (const [client, p] of sessions.livePrincipals()) {
      try {
        if (p.kind === 'tower') {
          const withdrawn = await towerLoginWithdrawn({ towerCredentials, towers }, p.credentialId, p.towerId);
          if (withdrawn === 'credential revoked') this.#revokeCredential(p.credentialId);
          else if (withdrawn) this.close(client, 'tower retired or deleted');
        } else if (p.kind === 'carrier' && carrierCredentials) {
          const cred = await carrierCredentials.get(p.credentialId);
          if (!cred || cred.revoked_at !== null) this.#revokeCredential(p.credentialId);
        } else if (p.kind === 'console' && consoleUsers && !(await consoleUsers.isActive(p.userId, p.tenantId))) {
          this.close(client, 'console user no longer active');
        }
      } catch (err) {
        this.#d.log.warn({ err, client_id: client.id }, 'live session not rechecked');
      }
    }
  }

  /** Resolves null when the client may connect, or the error that refuses it. */
  async authenticate(client: Client, username: string | undefined, password: Buffer | undefined): Promise<AuthenticateError | null> {
    const { config, counters, sessions } = this.#d;
    const facts = sessions.connectFacts(client);
    const consoleUsers = this.#d.consoleUsers;
    let outcome: AuthOutcome = await authenticateConnection(
      {
        serviceSecret: this.#d.serviceSecret,
        allowAnonymous: config.allow_anonymous,
        towerCredentials: this.#d.towerCredentials,
        towers: this.#d.towers,
        ...(this.#d.carrierCredentials ? { carrierCredentials: this.#d.carrierCredentials } : {}),
        tokens: this.#d.tokens,
        isRevoked: (id) => sessions.isRevoked(id),
        userRevokedAt: (id) => sessions.userRevokedAt(id),
        ...(consoleUsers ? { isUserActive: (id: string, tenantId: string) => consoleUsers.isActive(id, tenantId) } : {}),
        now: this.#d.now,
        onTouchError: (err, credentialId) => {
          // A full store refuses every login's last-use stamp: counted, logged once per episode.
          if (!this.#d.storeFaults?.refused(err, 'credentials')) this.#d.log.warn({ err, credential_id: credentialId }, 'credential touch failed');
        },
      },
      { clientId: client.id, assignedClientId: facts.assignedClientId, username, password },
    );
    // A revocation or deletion may have arrived while we awaited the store.
    if (outcome.ok) outcome = this.#stillValid(outcome, client.id, facts.clean);
    if (!outcome.ok) {
      counters.inc('mqtt_auth_failures_total', { reason: outcome.reason });
      this.#d.refusals.refused(
        client.id,
        outcome.reason,
        'mqtt login refused',
        { event: 'mqtt_login_refused', username, return_code: outcome.returnCode },
        'warn',
      );
      return authError(outcome.returnCode, outcome.reason);
    }
    // The socket may have gone while we were checking; aedes drops the CONNECT itself then.
    if (client.closed) return null;
    const principal = outcome.principal;
    // The cloud's own fan-out is not throttled: that would throttle every tower's decisions.
    const rate = principal.kind === 'service' ? null : this.#buckets.acquire(publisherKey(principal));
    const statusWill = principal.kind === 'tower' && facts.willTopic === topics.status(principal.towerId);
    const deliveries = principal.kind === 'tower' ? new CommandDeliveries(principal.towerId, config.mqtt_max_payload_bytes) : null;
    const session = newSession({ principal, bucket: rate?.bucket ?? null, ...(rate ? { releaseBucket: rate.release } : {}), statusWill, deliveries });
    sessions.open(client, session);
    // The session lasts as long as the access token that opened it.
    if (outcome.expiresAt !== undefined) this.#expireAt(client, session, outcome.expiresAt);
    this.#d.gate.authenticated(client, {
      maxQos: (filter) => subscriptionMaxQos(principal, filter),
      onPuback: (packetId) => this.#delivered(deliveries?.acknowledged(packetId) ?? null),
      written: deliveries ? (chunk) => deliveries.written(chunk) : null,
    });
    this.#d.log.debug({ client_id: client.id, principal: principal.kind }, 'mqtt client authenticated');
    return null;
  }

  /**
   * Closes the session at `expiresAt`. A timer waits at most MAX_TIMER_MS; Node fires a longer
   * one at once (TimeoutOverflowWarning), which closed every console session right after its
   * CONNECT under an --access-token-ttl-s above 24.8 days. Such a wait is taken in steps.
   */
  #expireAt(client: Client, session: Session, expiresAt: number): void {
    const wait = Math.max(0, expiresAt - this.#d.now());
    session.expiry = setTimeout(() => (wait > MAX_TIMER_MS ? this.#expireAt(client, session, expiresAt) : this.close(client, 'access token expired')), Math.min(wait, MAX_TIMER_MS));
    session.expiry.unref();
  }

  close(client: Client, why: string): void {
    this.#d.log.info({ client_id: client.id, why }, 'closing mqtt session');
    client.close();
  }

  /** Checks made after the awaited part of authentication, against what the bus said since. */
  #stillValid(outcome: Extract<AuthOutcome, { ok: true }>, clientId: string, clean: boolean): AuthOutcome {
    const { sessions } = this.#d;
    const p = outcome.principal;
    if (p.kind === 'tower') {
      if (sessions.isRevoked(p.credentialId)) return { ok: false, returnCode: CONNACK.NOT_AUTHORIZED, reason: 'revoked' };
      if (sessions.isTowerDeleted(p.towerId)) return { ok: false, returnCode: CONNACK.NOT_AUTHORIZED, reason: 'unknown_tower' };
    }
    if (p.kind === 'carrier' && sessions.isRevoked(p.credentialId)) {
      return { ok: false, returnCode: CONNACK.NOT_AUTHORIZED, reason: 'revoked' };
    }
    if (p.kind === 'console') {
      const max = this.#d.config.mqtt_max_persistent_sessions_per_user;
      if (!sessions.admitConsoleSession(p.userId, clientId, clean, max)) {
        return { ok: false, returnCode: CONNACK.IDENTIFIER_REJECTED, reason: 'persistent_session_cap' };
      }
    }
    return outcome;
  }

  /**
   * A tower's PUBACK of a command is the "delivered" step of the command lifecycle: the tower's
   * MQTT client has it [MQTT-4.3.2]. Read from the wire (command-deliveries.ts explains why not
   * from aedes' 'ack' event) and reported to the command service (deps.onCommandDelivered).
   */
  #delivered(delivery: CommandDelivery | null): void {
    const report = this.#d.onCommandDelivered;
    if (!delivery || !report) return;
    report({ ...delivery, at: this.#d.now() }).catch((err: unknown) =>
      this.#d.log.warn({ err, command_id: delivery.command_id }, 'recording command delivery failed'),
    );
  }

  #revokeCredential(credentialId: string): void {
    this.#d.sessions.markRevoked(credentialId);
    for (const client of this.#d.sessions.withCredential(credentialId)) this.close(client, 'credential revoked');
  }

  #towerDeleted(towerId: string): void {
    this.#d.sessions.markTowerDeleted(towerId);
    for (const client of this.#d.sessions.ofTower(towerId)) this.close(client, 'tower deleted');
  }

  /** Not remembered as a deletion is: the store refuses the CONNECT until a feed brings it back. */
  #towerRetired(towerId: string): void {
    for (const client of this.#d.sessions.ofTower(towerId)) this.close(client, 'tower retired');
  }

  #revokeUser(userId: string): void {
    const now = this.#d.now();
    // Tokens older than their lifetime are refused anyway; so are revocations older than that.
    this.#d.sessions.markUserRevoked(userId, now, now - this.#d.config.access_token_ttl_s * 1000);
    for (const client of this.#d.sessions.ofUser(userId)) this.close(client, 'console user revoked');
  }
}

export function authError(returnCode: ConnackRefusal, message: string): AuthenticateError {
  // aedes copies `returnCode` (2..5) into the CONNACK (lib/handlers/connect.js).
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/** Whose publish rate a connection draws on: its tower, console user or carrier (null: its own). */
function publisherKey(p: MqttPrincipal): string | null {
  if (p.kind === 'tower') return `tower:${p.towerId}`;
  if (p.kind === 'console') return `user:${p.userId}`;
  if (p.kind === 'carrier') return `carrier:${p.carrierId}`;
  return null;
}
