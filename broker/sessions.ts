/**
 * What the broker knows about each connection after authentication. Keyed by the aedes client
 * object in a WeakMap rather than monkey-patched onto it, so nothing else can forge a principal.
 */
import type { Client } from 'aedes';
import type { MqttPrincipal } from '../shared/mqtt/topics.js';
import type { TokenBucket } from './limits.js';

export interface Session {
  readonly principal: MqttPrincipal;
  /** Null for principals exempt from the publish rate limit (internal services). */
  readonly bucket: TokenBucket | null;
  /** True when CONNECT carried a will on the tower's own status topic (its availability LWT). */
  readonly statusWill: boolean;
}

export class Sessions {
  readonly #byClient = new WeakMap<Client, Session>();
  /** Will topics seen in CONNECT (preConnect), read back when authentication succeeds. */
  readonly #willTopics = new WeakMap<Client, string | null>();
  /** Authenticated clients whose network connection is still open, by tower id and credential id. */
  readonly #live = new Set<Client>();
  readonly #liveByTower = new Map<string, Set<Client>>();
  readonly #liveByCredential = new Map<string, Set<Client>>();
  /**
   * Credential ids revoked while this broker runs. A revocation event can arrive while a
   * CONNECT with that credential is between its store lookup and its registration; remembering
   * the id closes that window. Revocations are rare operator actions, so the set stays small.
   */
  readonly #revoked = new Set<string>();

  noteWillTopic(client: Client, topic: string | null): void {
    this.#willTopics.set(client, topic);
  }

  willTopic(client: Client): string | null {
    return this.#willTopics.get(client) ?? null;
  }

  open(client: Client, session: Session): void {
    this.#byClient.set(client, session);
    this.#live.add(client);
    const p = session.principal;
    if (p.kind === 'tower') {
      addTo(this.#liveByTower, p.towerId, client);
      addTo(this.#liveByCredential, p.credentialId, client);
    }
  }

  get(client: Client): Session | undefined {
    return this.#byClient.get(client);
  }

  /** The connection ended; the principal stays readable for hooks still in flight (e.g. the will). */
  closed(client: Client): void {
    if (!this.#live.delete(client)) return;
    const p = this.#byClient.get(client)?.principal;
    if (p?.kind === 'tower') {
      removeFrom(this.#liveByTower, p.towerId, client);
      removeFrom(this.#liveByCredential, p.credentialId, client);
    }
  }

  markRevoked(credentialId: string): void {
    this.#revoked.add(credentialId);
  }

  isRevoked(credentialId: string): boolean {
    return this.#revoked.has(credentialId);
  }

  /** Live clients authenticated with this tower credential. */
  withCredential(credentialId: string): Client[] {
    return [...(this.#liveByCredential.get(credentialId) ?? [])];
  }

  /** True when some other live connection is authenticated as this tower. */
  towerHasOtherLiveConnection(towerId: string, except: Client): boolean {
    for (const c of this.#liveByTower.get(towerId) ?? []) if (c !== except) return true;
    return false;
  }

  liveCount(): number {
    return this.#live.size;
  }
}

function addTo(index: Map<string, Set<Client>>, key: string, client: Client): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(client);
}

function removeFrom(index: Map<string, Set<Client>>, key: string, client: Client): void {
  const set = index.get(key);
  if (!set) return;
  set.delete(client);
  if (set.size === 0) index.delete(key);
}
