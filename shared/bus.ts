/**
 * The typed event bus (the realtime fan-out port). Listeners are registered with an owner so a
 * component's `stop()` removes exactly its own listeners.
 *
 * Two scopes, because with N processes "every listener gets every event" would multiply side
 * effects by N:
 * - 'local' (default): events published by this process. Every event is published exactly once in
 *   the cluster, by the process that caused it, so side effects that must happen once per event
 *   (audit entries, webhook deliveries, the Firebase mirror) listen locally and run in every role
 *   that can cause them.
 * - 'cluster': events published by any process (the Redis adapter, shared/redis/redis-bus.ts):
 *   caches (policy indexes), live feeds, session revocation.
 * In one process (embedded mode) the two are the same. Payloads crossing a process boundary are
 * checked against BUS_EVENT_SCHEMAS (shared/bus-events.ts) on arrival.
 */
import type { BusEvents } from './bus-events.js';

export type { BusEvents } from './bus-events.js';

export type BusScope = 'local' | 'cluster';
export type BusListener<K extends keyof BusEvents> = (payload: BusEvents[K]) => void;

export interface Bus {
  /**
   * Never throws: routes announce after their commit, so a throw would fail a request whose change
   * is stored. A listener's error goes to the adapter's error handler (the other listeners still
   * get the event); a failed send to other processes is counted (`bus_publish_errors_total`).
   */
  publish<K extends keyof BusEvents>(event: K, payload: BusEvents[K]): void;
  subscribe<K extends keyof BusEvents>(event: K, listener: BusListener<K>, owner?: object, scope?: BusScope): () => void;
  /**
   * Called when other processes' events may have been missed (the adapter lost its connection
   * and is subscribed again): a cache kept current by cluster events must not trust what it holds.
   * Adapters that cannot miss events (one process) never call it.
   */
  onMissedEvents?(listener: () => void, owner?: object): () => void;
  removeAllFor(owner: object): void;
}

export type BusErrorHandler = (err: unknown, event: keyof BusEvents) => void;

interface Entry {
  fn: (p: never) => void;
  owner: object | undefined;
  scope: BusScope;
}

/** Listener bookkeeping shared by the adapters. */
export class BusListeners {
  readonly #listeners = new Map<keyof BusEvents, Set<Entry>>();
  readonly #onError: BusErrorHandler;

  constructor(onError: BusErrorHandler) {
    this.#onError = onError;
  }

  /** Delivers to every listener, or (remote events) only to the cluster-scoped ones. */
  deliver<K extends keyof BusEvents>(event: K, payload: BusEvents[K], remote: boolean): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const l of [...set]) {
      if (remote && l.scope !== 'cluster') continue;
      // One failing listener must not stop delivery to the others, nor reach the publisher.
      try {
        (l.fn as BusListener<K>)(payload);
      } catch (err) {
        this.#onError(err, event);
      }
    }
  }

  add<K extends keyof BusEvents>(event: K, listener: BusListener<K>, owner: object | undefined, scope: BusScope): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    const entry: Entry = { fn: listener as (p: never) => void, owner, scope };
    set.add(entry);
    return () => set.delete(entry);
  }

  removeAllFor(owner: object): void {
    for (const set of this.#listeners.values()) {
      for (const e of set) if (e.owner === owner) set.delete(e);
    }
  }
}

export class InProcessBus implements Bus {
  readonly #listeners: BusListeners;

  constructor(onError: BusErrorHandler = () => {}) {
    this.#listeners = new BusListeners(onError);
  }

  publish<K extends keyof BusEvents>(event: K, payload: BusEvents[K]): void {
    this.#listeners.deliver(event, payload, false);
  }

  subscribe<K extends keyof BusEvents>(event: K, listener: BusListener<K>, owner?: object, scope: BusScope = 'local'): () => void {
    return this.#listeners.add(event, listener, owner, scope);
  }

  removeAllFor(owner: object): void {
    this.#listeners.removeAllFor(owner);
  }
}
