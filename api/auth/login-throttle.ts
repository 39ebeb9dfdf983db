/**
 * Password-guessing limits, on top of the request limit, built so an attacker cannot lock a real
 * user out:
 *
 * - per (account, client address): a small bucket (5 attempts, refilled one every 200 s).
 *   Guessing at an account from one address slows to that pace, and only that address: the
 *   account's owner signing in from anywhere else is not affected. A correct password refills it.
 * - per client address, over every account: a larger bucket (100, refilled one every 10 s), so one address
 *   cannot spread guesses over many accounts. IPv6 addresses count per /64 (what one host gets).
 *
 * Nothing is counted per account alone: that bucket is exactly what would let anyone lock an
 * account by failing on purpose. Buckets refill continuously, so a throttled caller is slowed
 * (Retry-After says when the next attempt is admitted), never locked.
 *
 * The buckets live behind the RateBudgets port: in-process in the embedded mode, in Redis when
 * several API processes share the limits. Account keys are SHA-256 of the normalised e-mail, so
 * the shared store holds no e-mail addresses, and every e-mail gets a bucket whether or not it
 * has an account (the answers reveal nothing about which do). Outcomes are counted in
 * `login_attempts_total{outcome=success|failure|throttled}`.
 */
import { normalizeIP } from '@fastify/rate-limit';
import { sha256 } from '../../shared/auth/secrets.js';
import { createError, type EdgeplaneError } from '../../shared/errors.js';
import type { Counters } from '../../shared/metrics.js';
import type { BucketLimit, RateBudgets } from '../../shared/workflow/rate-budgets.js';

export interface LoginThrottleLimits {
  perAccountSource: BucketLimit;
  perSource: BucketLimit;
}

// Rates are short decimals on purpose: the Redis adapter stores a bucket's rate as Lua prints it
// (14 significant digits) and starts the bucket over when the rate read back differs.
export const DEFAULT_LOGIN_LIMITS: LoginThrottleLimits = {
  perAccountSource: { burst: 5, rate_per_s: 0.005 },
  perSource: { burst: 100, rate_per_s: 0.1 },
};

export const LOGIN_ATTEMPTS_COUNTER = 'login_attempts_total';

const MESSAGE = 'too many sign-in attempts; retry after the time in Retry-After';

/** Same normalisation as the store's e-mail lookup, so case and spaces do not open new buckets. */
function accountKey(email: string): string {
  return sha256(email.trim().toLowerCase()).slice(0, 32);
}

export interface LoginThrottleDeps {
  budgets: RateBudgets;
  counters: Counters;
  now: () => number;
  limits?: Partial<LoginThrottleLimits>;
}

/** A refused attempt: the error to throw and the seconds to put in Retry-After. */
export interface Throttled {
  error: EdgeplaneError;
  retryAfterS: number;
}

export class LoginThrottle {
  readonly #budgets: RateBudgets;
  readonly #counters: Counters;
  readonly #now: () => number;
  readonly #limits: LoginThrottleLimits;

  constructor(deps: LoginThrottleDeps) {
    this.#budgets = deps.budgets;
    this.#counters = deps.counters;
    this.#now = deps.now;
    this.#limits = { ...DEFAULT_LOGIN_LIMITS, ...deps.limits };
  }

  /**
   * Charges one attempt to the address, then to (account, address); null when admitted. The
   * address is charged first so one address cannot create buckets for accounts without limit.
   */
  async admit(email: string, ip: string): Promise<Throttled | null> {
    const now = this.#now();
    const source = this.#sourceKey(ip);
    const pair = `${source}:acct:${accountKey(email)}`;
    const refused =
      (await this.#take(source, this.#limits.perSource, now)) ?? (await this.#take(pair, this.#limits.perAccountSource, now));
    if (refused !== null) this.#counters.inc(LOGIN_ATTEMPTS_COUNTER, { outcome: 'throttled' });
    return refused;
  }

  /** A correct password: this address's guesses at this account start over. */
  async succeeded(email: string, ip: string): Promise<void> {
    this.#counters.inc(LOGIN_ATTEMPTS_COUNTER, { outcome: 'success' });
    await this.#budgets.reset(`${this.#sourceKey(ip)}:acct:${accountKey(email)}`);
  }

  failed(): void {
    this.#counters.inc(LOGIN_ATTEMPTS_COUNTER, { outcome: 'failure' });
  }

  #sourceKey(ip: string): string {
    let source = ip;
    try {
      source = normalizeIP(ip);
    } catch {
      // Not an address Fastify would produce; counted as written.
    }
    return `login:ip:${source}`;
  }

  async #take(key: string, limit: BucketLimit, now: number): Promise<Throttled | null> {
    if ((await this.#budgets.take(key, limit, 1, now)) === 1) return null;
    const level = await this.#budgets.level(key, limit, now);
    const retryAfterS = Math.max(1, Math.ceil((1 - level) / limit.rate_per_s));
    return { error: createError('RATE_LIMITED', MESSAGE), retryAfterS };
  }
}
