/**
 * Request rate limits: a token bucket per key (principal, IP, or sign-in account), refilled
 * continuously, on an injectable clock so tests advance time instead of sleeping. In memory and
 * per process, which is exactly the embedded mode; a distributed deployment would move the
 * buckets behind a port (Redis) with the same interface.
 */
import type { FastifyReply } from 'fastify';
import { createError, type EdgeplaneError } from '../shared/errors.js';

export interface TokenBucketOptions {
  /** Burst size: requests a fresh key may make at once. */
  capacity: number;
  /** Time in which an empty bucket refills completely (capacity tokens). */
  windowMs: number;
  now: () => number;
  /**
   * Most keys remembered at once. Full buckets are forgotten first (they carry no state); beyond
   * that the least recently used go, so a flood of new keys (random e-mails, many IPs) costs bounded
   * memory.
   */
  maxKeys?: number;
}

export interface TakeResult {
  allowed: boolean;
  /** Whole requests left after this one. */
  remaining: number;
  /** Seconds until one more request would be allowed (0 when allowed). */
  retryAfterS: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

const DEFAULT_MAX_KEYS = 100_000;

export class TokenBucketLimiter {
  readonly #capacity: number;
  readonly #perMs: number;
  readonly #now: () => number;
  readonly #maxKeys: number;
  // Map iteration order is insertion order: re-inserting on use keeps it least-recently-used first.
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: TokenBucketOptions) {
    if (!(options.capacity >= 1) || !(options.windowMs > 0)) throw new Error('capacity >= 1 and windowMs > 0 required');
    this.#capacity = options.capacity;
    this.#perMs = options.capacity / options.windowMs;
    this.#now = options.now;
    this.#maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
  }

  get capacity(): number {
    return this.#capacity;
  }

  /** Spends one token of `key`'s bucket if it has one. A refused request spends nothing. */
  take(key: string): TakeResult {
    const now = this.#now();
    const tokens = this.#level(key, now);
    this.#buckets.delete(key);
    if (tokens >= 1) {
      this.#store(key, { tokens: tokens - 1, at: now });
      return { allowed: true, remaining: Math.floor(tokens - 1), retryAfterS: 0 };
    }
    this.#store(key, { tokens, at: now });
    return { allowed: false, remaining: 0, retryAfterS: Math.max(1, Math.ceil((1 - tokens) / this.#perMs / 1000)) };
  }

  /** Forgets `key`: its next request starts from a full bucket. */
  reset(key: string): void {
    this.#buckets.delete(key);
  }

  get size(): number {
    return this.#buckets.size;
  }

  #level(key: string, now: number): number {
    const b = this.#buckets.get(key);
    if (!b) return this.#capacity;
    // A clock that steps back must not mint tokens nor lock a key out.
    const elapsed = Math.max(0, now - b.at);
    return Math.min(this.#capacity, b.tokens + elapsed * this.#perMs);
  }

  #store(key: string, bucket: Bucket): void {
    this.#buckets.set(key, bucket);
    if (this.#buckets.size <= this.#maxKeys) return;
    const now = this.#now();
    for (const k of this.#buckets.keys()) {
      if (this.#buckets.size <= this.#maxKeys * 0.9) break;
      if (k !== key && this.#level(k, now) >= this.#capacity) this.#buckets.delete(k);
    }
    for (const k of this.#buckets.keys()) {
      if (this.#buckets.size <= this.#maxKeys) break;
      if (k !== key) this.#buckets.delete(k);
    }
  }
}

export const RATE_LIMIT_HEADER = 'x-ratelimit-remaining';

/**
 * Reports the quota on the reply. A request charged to several buckets (sign-in: the request
 * limit, the IP and the account) reports the smallest remainder.
 */
export function reportQuota(reply: FastifyReply, result: TakeResult): void {
  const previous = reply.hasHeader(RATE_LIMIT_HEADER) ? Number(reply.getHeader(RATE_LIMIT_HEADER)) : Infinity;
  reply.header(RATE_LIMIT_HEADER, Math.min(previous, result.remaining));
}

/** Charges `limiter` for `key`; over the limit, the RATE_LIMITED error to throw, with Retry-After set. */
export function charge(limiter: TokenBucketLimiter, key: string, reply: FastifyReply, message: string): EdgeplaneError | null {
  const result = limiter.take(key);
  reportQuota(reply, result);
  if (result.allowed) return null;
  reply.header('retry-after', result.retryAfterS);
  return createError('RATE_LIMITED', message);
}

/** Paths outside the limits: probes must answer while a client floods, and the docs are static. */
export function isRateLimitExempt(url: string | undefined): boolean {
  if (url === undefined) return false;
  return url === '/healthz' || url === '/readyz' || url === '/docs' || url.startsWith('/docs/');
}

export const REQUESTS_WINDOW_MS = 60_000;
export const DEFAULT_REQUESTS_PER_MIN = 100;

/** The general limit: every non-exempt request, charged to its principal or, unauthenticated, its IP. */
export class RequestRateLimits {
  readonly #limiter: TokenBucketLimiter;

  constructor(perMinute: number, now: () => number) {
    this.#limiter = new TokenBucketLimiter({ capacity: perMinute, windowMs: REQUESTS_WINDOW_MS, now });
  }

  /** `subject` is `user:<id>`, `api_key:<id>` or `ip:<address>`: separate namespaces. */
  charge(subject: string, reply: FastifyReply): void {
    const err = charge(this.#limiter, subject, reply, 'too many requests; retry after the time in Retry-After');
    if (err) throw err;
  }
}
