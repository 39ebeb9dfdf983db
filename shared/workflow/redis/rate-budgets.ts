/**
 * RateBudgets on Redis: the same token-bucket arithmetic as the in-process adapter
 * (rate-budgets.ts `refill`), in Lua so read-refill-take is one atomic step for every process.
 * Buckets are hashes {t: tokens, a: at}; a shared group keeps its members' last takes in a
 * sorted set. Keys expire once a bucket would be full again (nothing to remember then).
 */
import type { Redis } from 'ioredis';
import {
  OTHERS_HEADROOM,
  sharedGroupKey,
  sharedMemberKey,
  sharedOnceKey,
  type BucketLimit,
  type OnceGrant,
  type RateBudgets,
  type SharedTake,
  type TakeOnce,
} from '../rate-budgets.js';

// refill(b, rate, burst, now, reset) -> tokens, at   (mirrors rate-budgets.ts)
const REFILL = `
local function refill(key, rate, burst, now, reset)
  local v = redis.call('HMGET', key, 't', 'a', 'r')
  if not v[1] then return burst, now end
  -- Rates are stored with 17 significant digits (save), so an unchanged rate reads back equal.
  if reset and tonumber(v[3]) ~= rate then return burst, now end
  local tokens = tonumber(v[1])
  local at = tonumber(v[2])
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(burst, tokens + (elapsed / 1000) * rate)
  if now > at then at = now end
  return tokens, at
end
local function save(key, tokens, at, rate, burst)
  redis.call('HSET', key, 't', string.format('%.17g', tokens), 'a', string.format('%.17g', at), 'r', string.format('%.17g', rate))
  local ttl = 1000
  if rate > 0 then ttl = math.ceil(((burst - tokens) / rate) * 1000) + 1000 end
  redis.call('PEXPIRE', key, ttl)
end
`;

const TAKE = `${REFILL}
local rate = tonumber(ARGV[1]); local burst = tonumber(ARGV[2]); local wanted = tonumber(ARGV[3]); local now = tonumber(ARGV[4])
local tokens, at = refill(KEYS[1], rate, burst, now, true)
local granted = math.max(0, math.min(wanted, math.floor(tokens)))
save(KEYS[1], tokens - granted, at, rate, burst)
return granted
`;

// KEYS: group bucket, member bucket, members zset. ARGV: rate, window, wanted, now, member, headroom
// Mirrors InProcessRateBudgets.takeShared (memberCap and rollWindow in rate-budgets.ts).
const SHARED = `${REFILL}
local function roll(key, now)
  local v = redis.call('HMGET', key, 'ww', 'wc', 'wp')
  local sec = math.floor(now / 1000)
  local win = tonumber(v[1])
  if not win or sec > win + 1 then return sec, 0, 0 end
  if sec == win + 1 then return sec, 0, tonumber(v[2]) end
  return win, tonumber(v[2]), tonumber(v[3])
end
local function take_shared()
local rate = tonumber(ARGV[1]); local window = tonumber(ARGV[2]); local wanted = tonumber(ARGV[3]); local now = tonumber(ARGV[4])
local headroom = tonumber(ARGV[6])
redis.call('ZADD', KEYS[3], now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
redis.call('PEXPIRE', KEYS[3], window)
local active = redis.call('ZCARD', KEYS[3])
if active < 1 then active = 1 end
local gwin, gcur, gprev = roll(KEYS[1], now)
local mwin, mcur, mprev = roll(KEYS[2], now)
local others = math.max(gprev - mprev, gcur - mcur)
if others < 0 then others = 0 end
local cap = math.min(rate, math.max(rate / active, rate - headroom * others))
local prevRate = redis.call('HGET', KEYS[1], 'r')
local g, ga = refill(KEYS[1], rate, rate, now, true)
local m, ma
if prevRate and tonumber(prevRate) ~= rate then m, ma = cap, now else m, ma = refill(KEYS[2], cap, cap, now, false) end
if m > cap then m = cap end
local granted = math.max(0, math.min(wanted, math.floor(g), math.floor(m)))
save(KEYS[1], g - granted, ga, rate, rate)
save(KEYS[2], m - granted, ma, cap, cap)
redis.call('HSET', KEYS[1], 'ww', gwin, 'wc', gcur + wanted, 'wp', gprev)
redis.call('HSET', KEYS[2], 'ww', mwin, 'wc', mcur + wanted, 'wp', mprev)
redis.call('PEXPIRE', KEYS[1], math.max(window, 2000))
redis.call('PEXPIRE', KEYS[2], math.max(window, 2000))
return granted
end
`;

const TAKE_SHARED = `${SHARED}
return take_shared()
`;

// KEYS as TAKE_SHARED, then the take's grant key. ARGV as TAKE_SHARED, then how long to remember.
// Returns {granted, repeated (0/1)}: a remembered take is answered without touching the budget.
// Remembered until the caller's clock passes `u` (like every time here); the expiry collects it.
const TAKE_SHARED_ONCE = `${SHARED}
local seen = redis.call('HMGET', KEYS[4], 'g', 'u')
local now = tonumber(ARGV[4])
local untl = now + tonumber(ARGV[7])
if seen[1] and tonumber(seen[2]) > now then
  -- Remembered for remember_ms after the latest repeat too (InProcessRateBudgets.takeSharedOnce).
  if untl > tonumber(seen[2]) then redis.call('HSET', KEYS[4], 'u', string.format('%.17g', untl)) end
  redis.call('PEXPIRE', KEYS[4], ARGV[7])
  return {tonumber(seen[1]), 1}
end
local granted = take_shared()
redis.call('HSET', KEYS[4], 'g', granted, 'u', string.format('%.17g', untl))
redis.call('PEXPIRE', KEYS[4], ARGV[7])
return {granted, 0}
`;

const LEVEL = `${REFILL}
local tokens = refill(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), true)
return tostring(tokens)
`;

type Scripted = Redis & {
  edgeplaneTake(key: string, rate: number, burst: number, wanted: number, now: number): Promise<number>;
  edgeplaneTakeShared(g: string, m: string, z: string, rate: number, window: number, wanted: number, now: number, member: string, headroom: number): Promise<number>;
  edgeplaneTakeSharedOnce(
    g: string,
    m: string,
    z: string,
    once: string,
    rate: number,
    window: number,
    wanted: number,
    now: number,
    member: string,
    headroom: number,
    rememberMs: number,
  ): Promise<[number, number]>;
  edgeplaneLevel(key: string, rate: number, burst: number, now: number): Promise<string>;
};

export class RedisRateBudgets implements RateBudgets {
  readonly #redis: Scripted;
  readonly #prefix: string;

  /** `redis` is shared with other adapters of the process; `prefix` namespaces the keys. */
  constructor(redis: Redis, prefix: string) {
    this.#prefix = `${prefix}rb:`;
    // defineCommand sends EVALSHA and falls back to EVAL once per connection.
    if (!('edgeplaneTakeSharedOnce' in redis)) {
      redis.defineCommand('edgeplaneTake', { numberOfKeys: 1, lua: TAKE });
      redis.defineCommand('edgeplaneTakeSharedOnce', { numberOfKeys: 4, lua: TAKE_SHARED_ONCE });
      redis.defineCommand('edgeplaneTakeShared', { numberOfKeys: 3, lua: TAKE_SHARED });
      redis.defineCommand('edgeplaneLevel', { numberOfKeys: 1, lua: LEVEL });
    }
    this.#redis = redis as Scripted;
  }

  async take(key: string, limit: BucketLimit, wanted: number, now: number): Promise<number> {
    return this.#redis.edgeplaneTake(this.#prefix + key, limit.rate_per_s, limit.burst, wanted, now);
  }

  async takeShared(req: SharedTake, wanted: number, now: number): Promise<number> {
    const [g, m, z] = this.#sharedKeys(req);
    return this.#redis.edgeplaneTakeShared(g, m, z, req.rate_per_s, req.active_window_ms, wanted, now, req.member, OTHERS_HEADROOM);
  }

  async takeSharedOnce(req: SharedTake, once: TakeOnce, wanted: number, now: number): Promise<OnceGrant> {
    const [g, m, z] = this.#sharedKeys(req);
    const [granted, repeated] = await this.#redis.edgeplaneTakeSharedOnce(
      g,
      m,
      z,
      this.#prefix + sharedOnceKey(req.group, once.id),
      req.rate_per_s,
      req.active_window_ms,
      wanted,
      now,
      req.member,
      OTHERS_HEADROOM,
      Math.max(1, Math.ceil(once.remember_ms)),
    );
    return { granted, repeated: repeated === 1 };
  }

  /** A shared take's keys, as TAKE_SHARED's KEYS: the group bucket, the member bucket, the members zset. */
  #sharedKeys(req: SharedTake): [string, string, string] {
    const group = this.#prefix + sharedGroupKey(req.group);
    return [group, this.#prefix + sharedMemberKey(req.group, req.member), `${group}:members`];
  }

  async level(key: string, limit: BucketLimit, now: number): Promise<number> {
    return Number(await this.#redis.edgeplaneLevel(this.#prefix + key, limit.rate_per_s, limit.burst, now));
  }

  async reset(key: string): Promise<void> {
    await this.#redis.del(this.#prefix + key);
  }
}
