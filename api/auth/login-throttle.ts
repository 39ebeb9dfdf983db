/**
 * Password guessing limits, on top of the general request limit: attempts per account (e-mail)
 * and per client IP. The account key is the normalised e-mail whether or not an account exists,
 * and both limits answer with the same error, so the limits reveal nothing about which e-mails
 * have accounts.
 */
import type { FastifyReply } from 'fastify';
import { charge, TokenBucketLimiter } from '../rate-limit.js';

export const LOGIN_ATTEMPTS = 10;
export const LOGIN_WINDOW_MS = 15 * 60_000;

const MESSAGE = 'too many sign-in attempts; retry after the time in Retry-After';

/** Same normalisation as the store's e-mail lookup, so case and spaces do not open new buckets. */
function accountKey(email: string): string {
  return email.trim().toLowerCase();
}

export class LoginThrottle {
  readonly #byAccount: TokenBucketLimiter;
  readonly #byIp: TokenBucketLimiter;

  constructor(now: () => number, attempts = LOGIN_ATTEMPTS, windowMs = LOGIN_WINDOW_MS) {
    this.#byAccount = new TokenBucketLimiter({ capacity: attempts, windowMs, now });
    this.#byIp = new TokenBucketLimiter({ capacity: attempts, windowMs, now });
  }

  /**
   * Charges one attempt to the IP, then to the account; throws RATE_LIMITED (Retry-After set) when
   * either is exhausted. The IP is checked first so one address cannot fill memory with accounts.
   */
  admit(email: string, ip: string, reply: FastifyReply): void {
    const err = charge(this.#byIp, ip, reply, MESSAGE) ?? charge(this.#byAccount, accountKey(email), reply, MESSAGE);
    if (err) throw err;
  }

  /**
   * A correct password clears the account's failures (its owner is not locked out by their own
   * typos). The IP bucket stays: one valid account must not buy an address fresh guesses at others.
   */
  succeeded(email: string): void {
    this.#byAccount.reset(accountKey(email));
  }
}
