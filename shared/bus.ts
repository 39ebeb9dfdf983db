/**
 * A typed in-process event bus (the realtime fan-out port's embedded adapter). Listeners are
 * registered with an owner so a component's `stop()` removes exactly its own listeners.
 */
import type { Alert, CommandRecord, DiscoveredDevice, Tower, UsageRecord } from './domain.js';

export interface BusEvents {
  /** A committed change bumped the tenant's policy version: recompile its index. */
  'policy.changed': { tenant_id: string; version: number };
  /** Usage events were decided and stored (only first deliveries, never redeliveries). */
  'usage.decided': { tenant_id: string; tower_id: string; records: UsageRecord[] };
  'alert.opened': { tenant_id: string; alert: Alert };
  'alert.updated': { tenant_id: string; alert: Alert };
  'device.discovered': { tenant_id: string | null; device: DiscoveredDevice };
  'tower.status': { tower: Tower };
  /** A command was created or moved along its lifecycle (pending → delivered → applied|failed|expired). */
  'command.updated': { tenant_id: string; command: CommandRecord };
  /** The tower's MQTT client acknowledged (PUBACK) a command: reported by the broker. */
  'command.delivered': { tenant_id: string; tower_id: string; command_id: string; at: number };
  /** A tower credential was revoked: brokers must drop its live sessions. */
  'credential.revoked': { tower_id: string; credential_id: string };
}

export type BusListener<K extends keyof BusEvents> = (payload: BusEvents[K]) => void;

export interface Bus {
  publish<K extends keyof BusEvents>(event: K, payload: BusEvents[K]): void;
  subscribe<K extends keyof BusEvents>(event: K, listener: BusListener<K>, owner?: object): () => void;
  removeAllFor(owner: object): void;
}

export type BusErrorHandler = (err: unknown, event: keyof BusEvents) => void;

export class InProcessBus implements Bus {
  readonly #listeners = new Map<keyof BusEvents, Set<{ fn: (p: never) => void; owner: object | undefined }>>();
  readonly #onError: BusErrorHandler;

  constructor(onError: BusErrorHandler = () => {}) {
    this.#onError = onError;
  }

  publish<K extends keyof BusEvents>(event: K, payload: BusEvents[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const l of [...set]) {
      // One failing listener must not stop delivery to the others, nor reach the publisher.
      try {
        (l.fn as BusListener<K>)(payload);
      } catch (err) {
        this.#onError(err, event);
      }
    }
  }

  subscribe<K extends keyof BusEvents>(event: K, listener: BusListener<K>, owner?: object): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    const entry = { fn: listener as (p: never) => void, owner };
    set.add(entry);
    return () => set.delete(entry);
  }

  removeAllFor(owner: object): void {
    for (const set of this.#listeners.values()) {
      for (const e of set) if (e.owner === owner) set.delete(e);
    }
  }
}
