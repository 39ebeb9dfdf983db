/**
 * Types for the two aedes persistences, which ship none. Both export a factory returning
 * aedes-persistence's callback layer (callBackPersistence.js) around their async implementation.
 */
declare module 'aedes-persistence-level' {
  import type { SessionPersistence } from './backends.js';
  /** `db`: an abstract-level database, opened or not (aedes-persistence-level 9 takes it as is). */
  export default function levelPersistence(db: unknown): SessionPersistence;
}

declare module 'aedes-persistence-redis' {
  import type { Redis } from 'ioredis';
  import type { SessionPersistence } from './backends.js';
  export interface RedisPersistenceOptions {
    /** An ioredis connection to use instead of opening one (its keyPrefix applies to every key). */
    conn?: Redis;
    /** Queued messages sent at most per CONNECT (aedes-persistence-redis default 1000). */
    maxSessionDelivery?: number;
    /** Seconds a queued message lives; 0 (default) keeps it until delivered. */
    packetTTL?: (packet: unknown) => number;
  }
  export default function redisPersistence(opts: RedisPersistenceOptions): SessionPersistence;
}

declare module 'msgpack-lite' {
  /** The encoding aedes-persistence-level stores packets in (backends-level.ts reads retained ones). */
  const msgpack: { encode(value: unknown): Buffer; decode(buffer: Buffer): unknown };
  export default msgpack;
}
