/**
 * What the broker knows about each connection after authentication, and what it must remember
 * about revocations. Keyed by the aedes client object in a WeakMap rather than monkey-patched
 * onto it, so nothing else can forge a principal.
 */
import type { Client } from 'aedes';
import type { MqttPrincipal, ParsedTopic } from '../shared/mqtt/topics.js';
import type { CommandDeliveries } from './command-deliveries.js';
import type { TokenBucket } from './limits.js';

export interface Session {
  readonly principal: MqttPrincipal;
  /** Null for principals exempt from the publish rate limit (internal services). */
  readonly bucket: TokenBucket | null;
  /** Hands the bucket back when the connection ends (limits.ts, PublishBuckets). */
  readonly releaseBucket: () => void;
  /** True when CONNECT carried a will on the tower's own status topic (its availability LWT). */
  readonly statusWill: boolean;
  /** Filters granted on this connection (capped per client). */
  readonly subscriptions: Set<string>;
  /** Commands written to a tower connection, by packet id (null for other principals). */
  readonly deliveries: CommandDeliveries | null;
  /** Closes a console session when its access token expires. */
  expiry: NodeJS.Timeout | null;
  /**
   * Usage and acks topics this connection was allowed to publish to, parsed (authorize.ts), and
   * topics it may be answered on directly (Broker#answerOnConnection): what the ACL and the
   * subscriptions said the first time, for the few topics a tower uses (at most
   * TOPIC_VERDICTS_MAX each), so a busy tower's messages skip re-parsing and re-checking them.
   * Null until first used (an idle tower holds neither); the answerable set is dropped whenever
   * a subscription goes. The principal never changes.
   */
  published: Map<string, ParsedTopic | null> | null;
  answerable: Set<string> | null;
}

export const TOPIC_VERDICTS_MAX = 16;

/** A new session's state; `fields` is what authentication established. */
export function newSession(fields: Pick<Session, 'principal' | 'bucket' | 'statusWill' | 'deliveries'> & Partial<Pick<Session, 'releaseBucket'>>): Session {
  return { releaseBucket: () => undefined, ...fields, subscriptions: new Set(), expiry: null, published: null, answerable: null };
}

/** What preConnect saw in the CONNECT, read back when authentication succeeds. */
export interface ConnectFacts {
  willTopic: string | null;
  clean: boolean;
  /** The CONNECT carried an empty client id and the broker assigned one [MQTT-3.1.3-6]. */
  assignedClientId: boolean;
}

export class Sessions {
  readonly #byClient = new WeakMap<Client, Session>();
  readonly #connects = new WeakMap<Client, ConnectFacts>();
  /** Authenticated clients whose network connection is still open. */
  readonly #live = new Set<Client>();
  /** Live clients by `tower:<id>`, `credential:<id>` and `user:<id>`. */
  readonly #liveBy = new Map<string, Set<Client>>();
  /**
   * Credential and tower ids revoked or deleted while this broker runs. A revocation event can
   * arrive while a CONNECT is between its store lookup and its registration; remembering the
   * id closes that window. These are rare operator actions, so the sets stay small.
   */
  readonly #revokedCredentials = new Set<string>();
  readonly #deletedTowers = new Set<string>();
  /** Console users revoked, with when: access tokens issued before then are refused. */
  readonly #revokedUsers = new Map<string, number>();
  /** Live console and service clients: besides a tower, the only ACLs that reach tenants' downlinks. */
  #listeners = 0;
  /** Client ids of the persistent sessions each console user opened through this broker. */
  readonly #persistentByUser = new Map<string, Set<string>>();

  noteConnect(client: Client, facts: ConnectFacts): void {
    this.#connects.set(client, facts);
  }

  connectFacts(client: Client): ConnectFacts {
    return this.#connects.get(client) ?? { willTopic: null, clean: true, assignedClientId: false };
  }

  open(client: Client, session: Session): void {
    this.#byClient.set(client, session);
    this.#live.add(client);
    for (const key of indexKeys(session.principal)) addTo(this.#liveBy, key, client);
    if (listens(session.principal)) this.#listeners++;
  }

  /**
   * Live clients other than towers and carriers. A tower receives only its own downlinks and a
   * carrier only its feeds' results (topics.ts subscribeAcl), so while this is 0 a tower's
   * downlink has no other possible receiver.
   */
  get listeners(): number {
    return this.#listeners;
  }

  get(client: Client): Session | undefined {
    return this.#byClient.get(client);
  }

  /** The connection ended; the principal stays readable for hooks still in flight (e.g. the will). */
  closed(client: Client): void {
    if (!this.#live.delete(client)) return;
    const session = this.#byClient.get(client);
    if (!session) return;
    if (session.expiry) clearTimeout(session.expiry);
    session.expiry = null;
    session.releaseBucket();
    for (const key of indexKeys(session.principal)) removeFrom(this.#liveBy, key, client);
    if (listens(session.principal)) this.#listeners--;
  }

  markRevoked(credentialId: string): void {
    this.#revokedCredentials.add(credentialId);
  }

  isRevoked(credentialId: string): boolean {
    return this.#revokedCredentials.has(credentialId);
  }

  markTowerDeleted(towerId: string): void {
    this.#deletedTowers.add(towerId);
  }

  isTowerDeleted(towerId: string): boolean {
    return this.#deletedTowers.has(towerId);
  }

  /** Remembers a console user's revocation; entries older than `forgetBefore` are dropped. */
  markUserRevoked(userId: string, at: number, forgetBefore: number): void {
    for (const [id, when] of this.#revokedUsers) if (when < forgetBefore) this.#revokedUsers.delete(id);
    this.#revokedUsers.set(userId, at);
    this.#persistentByUser.delete(userId);
  }

  /** When the user was last revoked, if it was. */
  userRevokedAt(userId: string): number | undefined {
    return this.#revokedUsers.get(userId);
  }

  /**
   * Records a console user's persistent session under `clientId`, unless that would exceed
   * `max` sessions; a clean session under a known id ends that persistent session [MQTT-3.1.2-6].
   */
  admitConsoleSession(userId: string, clientId: string, clean: boolean, max: number): boolean {
    const held = this.#persistentByUser.get(userId);
    if (clean) {
      held?.delete(clientId);
      if (held?.size === 0) this.#persistentByUser.delete(userId);
      return true;
    }
    if (held?.has(clientId)) return true;
    if ((held?.size ?? 0) >= max) return false;
    addTo(this.#persistentByUser, userId, clientId);
    return true;
  }

  /** Live clients authenticated with this tower credential. */
  withCredential(credentialId: string): Client[] {
    return [...(this.#liveBy.get(`credential:${credentialId}`) ?? [])];
  }

  /** Live clients authenticated as this tower. */
  ofTower(towerId: string): Client[] {
    return [...(this.#liveBy.get(`tower:${towerId}`) ?? [])];
  }

  /** Live clients of this console user. */
  ofUser(userId: string): Client[] {
    return [...(this.#liveBy.get(`user:${userId}`) ?? [])];
  }

  /** True when some other live connection is authenticated as this tower. */
  towerHasOtherLiveConnection(towerId: string, except: Client): boolean {
    for (const c of this.#liveBy.get(`tower:${towerId}`) ?? []) if (c !== except) return true;
    return false;
  }

  liveCount(): number {
    return this.#live.size;
  }

  /** Every live client with its principal. */
  livePrincipals(): Array<[Client, MqttPrincipal]> {
    const out: Array<[Client, MqttPrincipal]> = [];
    for (const client of this.#live) {
      const session = this.#byClient.get(client);
      if (session) out.push([client, session.principal]);
    }
    return out;
  }
}

function listens(p: MqttPrincipal): boolean {
  return p.kind === 'console' || p.kind === 'service';
}

function indexKeys(p: MqttPrincipal): string[] {
  if (p.kind === 'tower') return [`tower:${p.towerId}`, `credential:${p.credentialId}`];
  if (p.kind === 'console') return [`user:${p.userId}`];
  if (p.kind === 'carrier') return [`carrier:${p.carrierId}`, `credential:${p.credentialId}`];
  return [];
}

function addTo<T>(index: Map<string, Set<T>>, key: string, value: T): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(value);
}

function removeFrom<T>(index: Map<string, Set<T>>, key: string, value: T): void {
  const set = index.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) index.delete(key);
}
