/**
 * RemediationState on Redis. A violation window is a sorted set (member = event id, score = time),
 * so counting an event twice is impossible by construction; an action in force is a hash
 * {o: owner, u: until} claimed by a Lua compare-and-set. Times are the caller's; key expiry only
 * collects garbage once a window or a claim can no longer matter.
 */
import type { Redis } from 'ioredis';
import { actionKey, violationKey, type ActionKey, type ClaimResult, type RemediationState, type ViolationKey } from '../remediation-state.js';

// KEYS: window zset. ARGV: event id, at, windowMs
const COUNT = `
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
local from = tonumber(ARGV[2]) - tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', from)
redis.call('PEXPIRE', KEYS[1], math.max(1000, tonumber(ARGV[3])))
return redis.call('ZCOUNT', KEYS[1], '(' .. from, ARGV[2])
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
};

export class RedisRemediationState implements RemediationState {
  readonly #redis: Scripted;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#prefix = `${prefix}rem:`;
    if (!('edgeplaneCountViolation' in redis)) {
      redis.defineCommand('edgeplaneCountViolation', { numberOfKeys: 1, lua: COUNT });
      redis.defineCommand('edgeplaneClaimAction', { numberOfKeys: 1, lua: CLAIM });
    }
    this.#redis = redis as Scripted;
  }

  async countViolation(key: ViolationKey, eventId: string, at: number, windowMs: number): Promise<number> {
    return this.#redis.edgeplaneCountViolation(`${this.#prefix}w:${violationKey(key)}`, eventId, at, windowMs);
  }

  async resetViolations(key: ViolationKey): Promise<void> {
    await this.#redis.del(`${this.#prefix}w:${violationKey(key)}`);
  }

  async claimAction(key: ActionKey, owner: string, at: number, until: number): Promise<ClaimResult> {
    const [granted, holder] = await this.#redis.edgeplaneClaimAction(`${this.#prefix}a:${actionKey(key)}`, owner, at, until);
    return { granted: granted === 1, holder };
  }
}
