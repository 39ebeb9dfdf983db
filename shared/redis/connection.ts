/**
 * Redis connections for the distributed mode. One place decides the ioredis options: BullMQ
 * needs `maxRetriesPerRequest: null` on the connections it blocks on, and every connection
 * names itself so `CLIENT LIST` on the server tells the roles apart.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { redactUrl } from '../redact-url.js';

export interface RedisConnectOptions {
  /** Shown in CLIENT LIST, e.g. 'edgeplane-worker-bus'. */
  name: string;
  /** For connections BullMQ blocks on (workers, queue events). */
  blocking?: boolean;
}

export function createRedis(url: string, opts: RedisConnectOptions): Redis {
  const options: RedisOptions = {
    connectionName: opts.name,
    lazyConnect: true,
    // Commands wait while reconnecting instead of failing at once; BullMQ requires null on
    // blocking connections and handles retries itself.
    maxRetriesPerRequest: opts.blocking ? null : 20,
    enableReadyCheck: true,
  };
  return new Redis(url, options);
}

/** Connects (lazyConnect) and waits until the server answers; throws a message naming the URL. */
export async function connectRedis(redis: Redis, url: string): Promise<void> {
  try {
    if (redis.status === 'wait') await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`cannot reach Redis at ${redactUrl(url)} (--redis-url / EDGEPLANE_REDIS_URL): ${err instanceof Error ? err.message : String(err)}`);
  }
}
