/**
 * RemediationState on Redis. A violation window is a sorted set (member = event id, score = time;
 * minus the time once a reset took the event out of the count, so its id stays known), so
 * counting an event twice is impossible by construction; an action in force is a hash
 * {o: owner, u: until} claimed by a Lua compare-and-set. Times are the caller's; key expiry only
 * collects garbage once a window or a claim can no longer matter.
 */
import type { Redis } from 'ioredis';
import { actionKey, violationKey, type ActionKey, type ClaimResult, type RemediationState, type ViolationKey } from '../remediation-state.js';

// KEYS: window zset. ARGV: event id, at, windowMs
// Scores: > 0 counted violations; < 0 (minus their time) violations a reset took out of the count.
const COUNT = `
local prev = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
local from = tonumber(ARGV[2]) - tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '(0', from)
redis.call('ZREMRANGEBYSCORE', KEYS[1], -from, '(0')
redis.call('PEXPIRE', KEYS[1], math.max(1000, tonumber(ARGV[3])))
if prev and tonumber(prev) < 0 then return 0 end
return redis.call('ZCOUNT', KEYS[1], '(' .. math.max(from, 0), ARGV[2])
`;

// KEYS: window zset. Counted violations become known-but-not-counted ones.
const RESET = `
local m = redis.call('ZRANGEBYSCORE', KEYS[1], '(0', '+inf', 'WITHSCORES')
for i = 1, #m, 2 do redis.call('ZADD', KEYS[1], -tonumber(m[i + 1]), m[i]) end
return #m / 2
`;

// KEYS: action hash. ARGV: owner, at, until
const CLAIM = `
local v = redis.call('HMGET', KEYS[1], 'o', 'u')
local at = tonumber(ARGV[2]); local untilMs = tonumber(ARGV[3])
if v[1] and tonumber(v[2]) > at and v[1] ~= ARGV[1] then return {0, v[1]} end
if v[1] == ARGV[1] and tonumber(v[2]) > untilMs then untilMs = tonumber(v[2]) end
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'u', tostring(untilMs))
redis.call('PEXPIRE', KEYS[1], math.max(1000, untilMs - at))
return {1, ARGV[1]}
`;

type Scripted = Redis & {
  edgeplaneCountViolation(key: string, eventId: string, at: number, windowMs: number): Promise<number>;
  edgeplaneClaimAction(key: string, owner: string, at: number, until: number): Promise<[number, string]>;
  edgeplaneResetViolations(key: string): Promise<number>;
};

export class RedisRemediationState implements RemediationState {
  readonly #redis: Scripted;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#prefix = `${prefix}rem:`;
    if (!('edgeplaneCountViolation' in redis)) {
      redis.defineCommand('edgeplaneCountViolation', { numberOfKeys: 1, lua: COUNT });
      redis.defineCommand('edgeplaneClaimAction', { numberOfKeys: 1, lua: CLAIM });
      redis.defineCommand('edgeplaneResetViolations', { numberOfKeys: 1, lua: RESET });
    }
    this.#redis = redis as Scripted;
  }

  async countViolation(key: ViolationKey, eventId: string, at: number, windowMs: number): Promise<number> {
    return this.#redis.edgeplaneCountViolation(`${this.#prefix}w:${violationKey(key)}`, eventId, at, windowMs);
  }

  async resetViolations(key: ViolationKey): Promise<void> {
    await this.#redis.edgeplaneResetViolations(`${this.#prefix}w:${violationKey(key)}`);
  }

  async claimAction(key: ActionKey, owner: string, at: number, until: number): Promise<ClaimResult> {
    const [granted, holder] = await this.#redis.edgeplaneClaimAction(`${this.#prefix}a:${actionKey(key)}`, owner, at, until);
    return { granted: granted === 1, holder };
  }
}
