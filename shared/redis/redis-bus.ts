/**
 * The bus across processes (distributed mode): Redis pub/sub on one channel. A publish reaches
 * this process' listeners at once (both scopes, as in-process) and the other processes'
 * cluster-scoped listeners through Redis. Arriving payloads are parsed with their schema
 * (BUS_EVENT_SCHEMAS); anything malformed or unknown is dropped and counted, never delivered.
 *
 * Pub/sub is at-most-once: a process that is disconnected misses events. What listens with
 * cluster scope is built for that: policy caches also rebuild on a version mismatch, live feeds are
 * best effort, and a revoked credential is refused at its next CONNECT by the store check.
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
  #started = false;

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
    await this.#o.subscriber.subscribe(this.#channel);
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    await this.#o.subscriber.unsubscribe(this.#channel).catch(() => undefined);
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
