/** Leases on Redis: a hash {o: owner, u: until} set by a Lua compare-and-set. */
import type { Redis } from 'ioredis';
import type { Leases } from '../leases.js';

// KEYS: lease. ARGV: owner, now, ttl
const ACQUIRE = `
local v = redis.call('HMGET', KEYS[1], 'o', 'u')
local now = tonumber(ARGV[2])
if v[1] and tonumber(v[2]) > now and v[1] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'u', tostring(now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(ARGV[3])))
return 1
`;

const RELEASE = `
if redis.call('HGET', KEYS[1], 'o') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

type Scripted = Redis & {
  edgeplaneLeaseAcquire(key: string, owner: string, now: number, ttlMs: number): Promise<number>;
  edgeplaneLeaseRelease(key: string, owner: string): Promise<number>;
};

export class RedisLeases implements Leases {
  readonly #redis: Scripted;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#prefix = `${prefix}lease:`;
    if (!('edgeplaneLeaseAcquire' in redis)) {
      redis.defineCommand('edgeplaneLeaseAcquire', { numberOfKeys: 1, lua: ACQUIRE });
      redis.defineCommand('edgeplaneLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
    }
    this.#redis = redis as Scripted;
  }

  async acquire(name: string, owner: string, now: number, ttlMs: number): Promise<boolean> {
    return (await this.#redis.edgeplaneLeaseAcquire(this.#prefix + name, owner, now, ttlMs)) === 1;
  }

  async release(name: string, owner: string): Promise<void> {
    await this.#redis.edgeplaneLeaseRelease(this.#prefix + name, owner);
  }
}
