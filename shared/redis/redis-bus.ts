/**
 * The bus across processes (distributed mode): Redis pub/sub on one channel. A publish reaches
 * this process' listeners at once (both scopes, as in-process) and the other processes'
 * cluster-scoped listeners through Redis. Arriving payloads are parsed with their schema
 * (BUS_EVENT_SCHEMAS); anything malformed or unknown is dropped and counted, never delivered.
 *
 * Pub/sub is at-most-once: a process that is disconnected misses events. What listens with
 * cluster scope is built for that: once the subscriber is back (ioredis reconnects and subscribes
 * again), `onMissedEvents` listeners are told, so policy caches rebuild; live feeds are best
 * effort, and a revoked credential is refused at its next CONNECT by the store check.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { BusListeners, type Bus, type BusErrorHandler, type BusListener, type BusScope } from '../bus.js';
import { BUS_EVENT_SCHEMAS, type BusEvents } from '../bus-events.js';
import type { Counters } from '../metrics.js';

interface Envelope {
  /** Publishing process. */
  o: string;
  e: string;
  p: unknown;
}

export interface RedisBusOptions {
  /** Publishing connection (may be shared with other adapters). */
  publisher: Redis;
  /** A dedicated connection: a subscribed ioredis connection can do nothing else. */
  subscriber: Redis;
  /** Key/channel prefix of the deployment. */
  prefix: string;
  counters?: Counters;
  onError?: BusErrorHandler;
}

export class RedisBus implements Bus {
  readonly #o: RedisBusOptions;
  readonly #listeners: BusListeners;
  readonly #origin = randomUUID();
  readonly #channel: string;
  readonly #missed = new Set<{ fn: () => void; owner: object | undefined }>();
  #started = false;
  /** Subscribed once: a later 'ready' of the subscriber is a reconnection. */
  #subscribed = false;
  readonly #onReady = (): void => {
    if (this.#subscribed) void this.#resubscribed();
  };

  constructor(opts: RedisBusOptions) {
    this.#o = opts;
    this.#listeners = new BusListeners(opts.onError ?? (() => {}));
    this.#channel = `${opts.prefix}bus`;
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#o.subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.#channel) this.#receive(message);
    });
    this.#o.subscriber.on('ready', this.#onReady);
    await this.#o.subscriber.subscribe(this.#channel);
    this.#subscribed = true;
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#subscribed = false;
    this.#o.subscriber.off('ready', this.#onReady);
    await this.#o.subscriber.unsubscribe(this.#channel).catch(() => undefined);
  }

  onMissedEvents(listener: () => void, owner?: object): () => void {
    const entry = { fn: listener, owner };
    this.#missed.add(entry);
    return () => this.#missed.delete(entry);
  }

  /**
   * The subscriber reconnected: whatever was published while it was away never arrives. ioredis
   * subscribes again on its own; the listeners are told only once our own SUBSCRIBE is answered,
   * i.e. events flow again (a cache rebuilt before that could miss a change made in between).
   */
  async #resubscribed(): Promise<void> {
    try {
      await this.#o.subscriber.subscribe(this.#channel);
    } catch {
      // Lost again: the next 'ready' tries again.
      return;
    }
    if (!this.#started) return;
    this.#o.counters?.inc('bus_resubscribes_total');
    for (const l of [...this.#missed]) {
      try {
        l.fn();
      } catch {
        // One failing listener must not keep the others stale.
      }
    }
  }

  publish<K extends keyof BusEvents>(event: K, payload: BusEvents[K]): void {
    this.#listeners.deliver(event, payload, false);
    const envelope: Envelope = { o: this.#origin, e: event, p: payload };
    this.#o.publisher.publish(this.#channel, JSON.stringify(envelope)).catch((err: unknown) => {
      this.#o.counters?.inc('bus_publish_errors_total', { event });
      this.#o.onError?.(err, event);
    });
  }

  subscribe<K extends keyof BusEvents>(event: K, listener: BusListener<K>, owner?: object, scope: BusScope = 'local'): () => void {
    return this.#listeners.add(event, listener, owner, scope);
  }

  removeAllFor(owner: object): void {
    this.#listeners.removeAllFor(owner);
    for (const l of this.#missed) if (l.owner === owner) this.#missed.delete(l);
  }

  #receive(message: string): void {
    let env: Envelope;
    try {
      env = JSON.parse(message) as Envelope;
    } catch {
      this.#o.counters?.inc('bus_messages_dropped_total', { reason: 'invalid_json' });
      return;
    }
    if (env.o === this.#origin) return; // delivered locally when published
    const schema = (BUS_EVENT_SCHEMAS as Record<string, (typeof BUS_EVENT_SCHEMAS)[keyof BusEvents] | undefined>)[env.e];
    if (!schema) {
      this.#o.counters?.inc('bus_messages_dropped_total', { reason: 'unknown_event' });
      return;
    }
    const parsed = schema.safeParse(env.p);
    if (!parsed.success) {
      this.#o.counters?.inc('bus_messages_dropped_total', { reason: 'invalid_payload' });
      return;
    }
    this.#listeners.deliver(env.e as keyof BusEvents, parsed.data as BusEvents[keyof BusEvents], true);
  }
}
