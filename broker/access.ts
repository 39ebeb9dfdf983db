/**
 * Who gets a session and how it ends: adapts authenticate.ts to aedes' `authenticate` hook,
 * opens the session (rate bucket, command-delivery tracking, token expiry), lets the wire guard
 * pass the client's frames, and closes sessions when the bus revokes what opened them
 * (credentials, deleted towers, console users, signed-out sign-ins; cluster scope, as any API
 * process may revoke).
 *
 * The bus is not enough alone: pub/sub between processes is at most once, and a message can be
 * dropped while the bus stays connected (no gap is reported then). So the live sessions are also
 * checked against the store as their CONNECT was, one read per distinct credential or account
 * (not per session), in rounds every `liveRecheckMs` (1 s by default): console accounts and
 * carrier credentials every round, the same policy as the API's live feeds (api/feeds.ts); tower
 * credentials, thousands on a node, each every TOWER_RECHECK_ROUNDS rounds (30 s), spread evenly
 * over them (better-sqlite3 reads block the event loop: 10,000 towers every second would take
 * about a third of it). A session whose revocation announcement was lost thus ends within that
 * bound instead of at its token's expiry (console, up to 15 min) or never (towers, carriers).
 * Every session closed for a revocation is counted (`mqtt_sessions_revoked_total`, by reason and
 * by who noticed: the bus or the re-check). The rounds themselves (one at a time, bounded reads,
 * an outage logged once) are shared/auth/credential-sweep.ts, as the API's feeds' are.
 */
import type { AuthenticateError, Client } from 'aedes';
import { carrierCredentialActive } from '../shared/auth/carrier-keys.js';
import { CredentialSweep, type SweepCheck } from '../shared/auth/credential-sweep.js';
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

/** Default period of the live sessions' re-check against the store. */
export const LIVE_RECHECK_MS = 1_000;
/** A tower credential is re-read once every this many periodic rounds (a bus gap re-reads all at once). */
export const TOWER_RECHECK_ROUNDS = 30;

type RevokedReason = 'credential_revoked' | 'tower_withdrawn' | 'user_revoked' | 'signed_out';
type NoticedBy = 'bus' | 'recheck';

/** What one store read found about a credential or account that opened live sessions. */
type Withdrawal = 'credential revoked' | 'tower retired' | 'user inactive' | null;

/** A tower's is read every TOWER_RECHECK_ROUNDS periodic rounds (`everyRounds`), not every round. */
interface LiveCheck extends SweepCheck<Withdrawal> {
  credentialId: string | null;
}

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
  /** Period of the live sessions' re-check against the store (default LIVE_RECHECK_MS). */
  liveRecheckMs?: number;
}

export class Access {
  readonly #d: AccessDeps;
  readonly #buckets: PublishBuckets;
  /**
   * The session version of the access token behind each console session (its `sv` claim) and the
   * sign-in it was issued for (its `sid`, absent in older tokens).
   */
  readonly #consoleSessions = new WeakMap<Client, { version: number; sessionId: string | undefined }>();
  /**
   * Sign-ins ended on the bus, by when: a CONNECT whose store read preceded the sign-out and that
   * completes after its announcement is refused. Forgotten once every token of theirs has expired.
   */
  readonly #signedOut = new Map<string, number>();
  /** The live sessions' re-check against the store. */
  readonly #sweep: CredentialSweep<Client, LiveCheck>;

  constructor(deps: AccessDeps) {
    this.#d = deps;
    this.#buckets = new PublishBuckets(deps.config.mqtt_publish_rate, deps.config.mqtt_publish_burst, deps.now);
    this.#sweep = new CredentialSweep({
      periodMs: deps.liveRecheckMs ?? LIVE_RECHECK_MS,
      live: () => this.#liveChecks(),
      settle: (withdrawn, clients, check) => {
        if (withdrawn) this.#withdraw(withdrawn, check, clients);
      },
      // Once per outage, not once a second per session for as long as the store is away.
      onFailure: (err) => deps.log.warn({ err, event: 'live_recheck_failed' }, 'live sessions not rechecked: store unavailable'),
      onRecovered: () => deps.log.info({ event: 'live_recheck_recovered' }, 'live sessions rechecked again'),
    });
  }

  /** Listens for revocations; `owner` removes the listeners (bus.removeAllFor). */
  listen(bus: Bus, owner: object): void {
    bus.subscribe('credential.revoked', (e) => this.#revokeCredential(e.credential_id, 'bus'), owner, 'cluster');
    bus.subscribe('tower.deleted', (e) => this.#towerDeleted(e.tower_id), owner, 'cluster');
    bus.subscribe('tower.retired', (e) => this.#towerRetired(e.tower_id), owner, 'cluster');
    bus.subscribe('console-user.revoked', (e) => this.#revokeUser(e.user_id), owner, 'cluster');
    bus.subscribe('console-session.ended', (e) => this.#signOut(e.user_id, e.session_id), owner, 'cluster');
    bus.subscribe('carrier-credential.revoked', (e) => this.#revokeCredential(e.credential_id, 'bus'), owner, 'cluster');
    // Pub/sub is at most once: what was revoked while the bus was disconnected is read back from the store.
    bus.onMissedEvents?.(() => void this.recheckLive(), owner);
    // And a message dropped while it stayed connected is never reported: the store is re-read anyway.
    this.#sweep.start();
  }

  /** Stops the periodic re-check; a round under way closes nothing more. */
  stop(): void {
    this.#sweep.stop();
  }

  /**
   * Checks every live session against the store again, as its CONNECT was (a revocation, deletion
   * or retirement whose announcement was lost never arrives), and closes those whose credential,
   * tower or account is gone. One round at a time: called while one is under way (whose reads may
   * predate what the caller knows changed), one more round follows it, never more, so a slow
   * store delays rounds and never piles them up. A session that cannot be checked (store
   * unavailable) stays open: the next round or CONNECT checks it.
   */
  recheckLive(): Promise<void> {
    return this.#sweep.requestRound();
  }

  /** The live sessions, each with the one read that checks what opened it (shared by the sessions it opened). */
  *#liveChecks(): Iterable<[Client, LiveCheck]> {
    const { sessions, towerCredentials, towers, carrierCredentials, consoleUsers } = this.#d;
    for (const [client, p] of sessions.livePrincipals()) {
      if (client.closed) continue;
      if (p.kind === 'tower') {
        const read = () => towerLoginWithdrawn({ towerCredentials, towers }, p.credentialId, p.towerId);
        yield [client, { key: `tower:${p.credentialId}:${p.towerId}`, credentialId: p.credentialId, read, everyRounds: TOWER_RECHECK_ROUNDS }];
      } else if (p.kind === 'carrier' && carrierCredentials) {
        const read = async (): Promise<Withdrawal> => ((await carrierCredentialActive(p.credentialId, (id) => carrierCredentials.get(id))) ? null : 'credential revoked');
        yield [client, { key: `carrier:${p.credentialId}`, credentialId: p.credentialId, read }];
      } else if (p.kind === 'console' && consoleUsers) {
        // Tokens of one account under another session version (re-roled since) or of another
        // sign-in (one may sign out and not the others) are checked apart.
        const { version, sessionId } = this.#consoleSessions.get(client) ?? { version: 0, sessionId: undefined };
        const read = async (): Promise<Withdrawal> => ((await consoleUsers.isActive(p.userId, p.tenantId, version, sessionId)) ? null : 'user inactive');
        yield [client, { key: `console:${p.userId}:${p.tenantId}:${version}:${sessionId ?? ''}`, credentialId: null, read }];
      }
    }
  }

  #withdraw(withdrawn: Exclude<Withdrawal, null>, check: LiveCheck, clients: readonly Client[]): void {
    if (withdrawn === 'credential revoked' && check.credentialId !== null) this.#revokeCredential(check.credentialId, 'recheck');
    else if (withdrawn === 'tower retired') for (const client of clients) this.#end(client, 'tower retired or deleted', 'tower_withdrawn', 'recheck');
    else for (const client of clients) this.#end(client, 'console user no longer active', 'user_revoked', 'recheck');
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
        ...(consoleUsers
          ? { isUserActive: (id: string, tenantId: string, version: number, sessionId?: string) => consoleUsers.isActive(id, tenantId, version, sessionId) }
          : {}),
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
        { event: 'mqtt_login_refused', username, return_code: outcome.returnCode, peer: this.#d.gate.peerOf(client) },
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
    if (outcome.sessionVersion !== undefined) this.#consoleSessions.set(client, { version: outcome.sessionVersion, sessionId: outcome.sessionId });
    // The session lasts as long as the access token that opened it.
    if (outcome.expiresAt !== undefined) this.#expireAt(client, session, outcome.expiresAt);
    this.#d.gate.authenticated(client, {
      maxQos: (filter) => subscriptionMaxQos(principal, filter),
      onPuback: (packetId) => this.#delivered(deliveries?.acknowledged(packetId) ?? null),
      watch: deliveries,
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

  /** Closes a session for a revocation, counted once: a session already closing is left be. */
  #end(client: Client, why: string, reason: RevokedReason, noticedBy: NoticedBy): void {
    if (client.closed) return;
    this.#d.counters.inc('mqtt_sessions_revoked_total', { reason, source: noticedBy });
    this.close(client, why);
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
      if (outcome.sessionId !== undefined && this.#signedOut.has(outcome.sessionId)) {
        return { ok: false, returnCode: CONNACK.NOT_AUTHORIZED, reason: 'user_revoked' };
      }
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

  #revokeCredential(credentialId: string, noticedBy: NoticedBy): void {
    this.#d.sessions.markRevoked(credentialId);
    for (const client of this.#d.sessions.withCredential(credentialId)) this.#end(client, 'credential revoked', 'credential_revoked', noticedBy);
  }

  #towerDeleted(towerId: string): void {
    this.#d.sessions.markTowerDeleted(towerId);
    for (const client of this.#d.sessions.ofTower(towerId)) this.#end(client, 'tower deleted', 'tower_withdrawn', 'bus');
  }

  /** Not remembered as a deletion is: the store refuses the CONNECT until a feed brings it back. */
  #towerRetired(towerId: string): void {
    for (const client of this.#d.sessions.ofTower(towerId)) this.#end(client, 'tower retired', 'tower_withdrawn', 'bus');
  }

  /** One sign-in ended: the sessions its access tokens opened close, the account's others stay. */
  #signOut(userId: string, sessionId: string): void {
    const now = this.#d.now();
    const forgetBefore = now - this.#d.config.access_token_ttl_s * 1000;
    for (const [id, at] of this.#signedOut) if (at < forgetBefore) this.#signedOut.delete(id);
    this.#signedOut.set(sessionId, now);
    for (const client of this.#d.sessions.ofUser(userId)) {
      if (this.#consoleSessions.get(client)?.sessionId === sessionId) this.#end(client, 'console user signed out', 'signed_out', 'bus');
    }
  }

  #revokeUser(userId: string): void {
    const now = this.#d.now();
    // Tokens older than their lifetime are refused anyway; so are revocations older than that.
    this.#d.sessions.markUserRevoked(userId, now, now - this.#d.config.access_token_ttl_s * 1000);
    for (const client of this.#d.sessions.ofUser(userId)) this.#end(client, 'console user revoked', 'user_revoked', 'bus');
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
