/**
 * Request limits: the token bucket itself, the per-principal API limit (429 + Retry-After,
 * recovery on the injected clock, isolation between principals), exemptions, and the sign-in
 * limits per account and per address that answer the same for every e-mail.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { LOGIN_ATTEMPTS } from './auth/login-throttle.js';
import { TokenBucketLimiter } from './rate-limit.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

describe('TokenBucketLimiter', () => {
  const clock = { now: 0 };
  const limiter = () => new TokenBucketLimiter({ capacity: 3, windowMs: 3000, now: () => clock.now });

  it('allows a burst of capacity, then refills one token per window/capacity', () => {
    clock.now = 0;
    const l = limiter();
    expect([1, 2, 3].map(() => l.take('a'))).toEqual([
      { allowed: true, remaining: 2, retryAfterS: 0 },
      { allowed: true, remaining: 1, retryAfterS: 0 },
      { allowed: true, remaining: 0, retryAfterS: 0 },
    ]);
    expect(l.take('a')).toEqual({ allowed: false, remaining: 0, retryAfterS: 1 });
    expect(l.take('b').allowed).toBe(true);
    clock.now = 999;
    expect(l.take('a').allowed).toBe(false);
    clock.now = 1000;
    expect(l.take('a')).toEqual({ allowed: true, remaining: 0, retryAfterS: 0 });
    // Refused requests cost nothing, and a long pause refills only up to capacity.
    clock.now = 100_000;
    expect(l.take('a').remaining).toBe(2);
  });

  it('rounds Retry-After up to whole seconds and survives a clock stepping back', () => {
    clock.now = 0;
    const l = new TokenBucketLimiter({ capacity: 10, windowMs: 15 * 60_000, now: () => clock.now });
    for (let i = 0; i < 10; i++) l.take('k');
    expect(l.take('k').retryAfterS).toBe(90);
    clock.now = -50_000;
    expect(l.take('k')).toMatchObject({ allowed: false, retryAfterS: 90 });
  });

  it('reset forgets a key; memory stays bounded by maxKeys', () => {
    clock.now = 0;
    const l = new TokenBucketLimiter({ capacity: 1, windowMs: 1000, now: () => clock.now, maxKeys: 100 });
    l.take('a');
    expect(l.take('a').allowed).toBe(false);
    l.reset('a');
    expect(l.take('a').allowed).toBe(true);
    for (let i = 0; i < 1000; i++) l.take(`k${i}`);
    expect(l.size).toBeLessThanOrEqual(100);
  });
});

let h: Harness;
const closeHarness = async () => {
  await h.close();
};

interface ErrorReply {
  error: { code: string; message: string };
}
function expect429(res: LightMyRequestResponse): void {
  expect(res.statusCode, res.body).toBe(429);
  expect(json<ErrorReply>(res).error.code).toBe('RATE_LIMITED');
  expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  expect(res.headers['x-ratelimit-remaining']).toBe('0');
}

const me = (s: Session) => h.app.inject({ method: 'GET', url: '/api/v1/me', headers: s.headers });

describe('per-principal API limit', () => {
  afterEach(closeHarness);

  it('defaults to 100 requests a minute, answers 429 with Retry-After, recovers as the clock moves', async () => {
    h = await startHarness();
    const operator = await login(h.app, OPERATOR_EMAIL);
    for (let i = 0; i < 100; i++) {
      const res = await me(operator);
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-ratelimit-remaining']).toBe(String(99 - i));
    }
    const limited = await me(operator);
    expect429(limited);
    // 100 a minute refills one request every 0.6 s.
    expect(limited.headers['retry-after']).toBe('1');
    h.clock.advance(1000);
    expect((await me(operator)).statusCode).toBe(200);
    expect429(await me(operator));
    h.clock.advance(60_000);
    const recovered = await me(operator);
    expect(recovered.statusCode).toBe(200);
    expect(recovered.headers['x-ratelimit-remaining']).toBe('99');
  });

  it('is per principal: one user or key flooding does not limit another', async () => {
    h = await startHarness({ rateLimitPerMin: 5 });
    const operator = await login(h.app, OPERATOR_EMAIL);
    const { owner } = await createTenant(h.app, operator, 'Acme');
    await post(h.app, owner, '/api/v1/console-users', { email: 'viewer@acme.test', password: PASSWORD, console_role: 'viewer' });
    const viewer = await login(h.app, 'viewer@acme.test');
    const { key } = await post<{ key: string }>(h.app, owner, '/api/v1/api-keys', { name: 'k', scopes: ['session:read'] });
    const withKey = () => h.app.inject({ method: 'GET', url: '/api/v1/me', headers: { 'x-api-key': key } });

    // The owner has used 2 of its 5 (creating the console user and the key).
    for (let i = 0; i < 5; i++) expect((await me(viewer)).statusCode).toBe(200);
    expect429(await me(viewer));
    expect((await me(owner)).statusCode).toBe(200);
    for (let i = 0; i < 5; i++) expect((await withKey()).statusCode).toBe(200);
    expect429(await withKey());
    // The key's flood is not charged to the owner who created it.
    expect((await me(owner)).statusCode).toBe(200);
    // A fresh sign-in of the same user shares the user's bucket.
    expect429(await me(await login(h.app, 'viewer@acme.test')));
  });

  it('limits unauthenticated and failed requests per client address', async () => {
    h = await startHarness({ rateLimitPerMin: 5 });
    const operator = await login(h.app, OPERATOR_EMAIL);
    const bad = (remoteAddress: string) =>
      h.app.inject({ method: 'GET', url: '/api/v1/me', remoteAddress, headers: { authorization: 'Bearer not-a-token' } });
    for (let i = 0; i < 5; i++) expect((await bad('10.0.0.1')).statusCode).toBe(401);
    expect429(await bad('10.0.0.1'));
    expect429(await h.app.inject({ method: 'GET', url: '/.well-known/jwks.json', remoteAddress: '10.0.0.1' }));
    expect429(await h.app.inject({ method: 'GET', url: '/api/v1/no-such-route', remoteAddress: '10.0.0.1' }));
    expect((await bad('10.0.0.2')).statusCode).toBe(401);
    // A signed-in caller from the same address is charged to itself, not to the address.
    expect((await h.app.inject({ method: 'GET', url: '/api/v1/me', remoteAddress: '10.0.0.1', headers: operator.headers })).statusCode).toBe(200);
  });

  it('exempts health probes and the docs', async () => {
    h = await startHarness({ rateLimitPerMin: 2 });
    for (let i = 0; i < 10; i++) {
      for (const url of ['/healthz', '/readyz', '/docs/json']) {
        const res = await h.app.inject({ method: 'GET', url });
        expect(res.statusCode, url).toBe(200);
        expect(res.headers['x-ratelimit-remaining']).toBeUndefined();
      }
    }
  });
});

describe('sign-in limits', () => {
  afterEach(closeHarness);

  const attempt = (email: string, password: string, remoteAddress = '127.0.0.1') =>
    h.app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress, payload: { email, password } });

  /** Status, body and Retry-After: what a caller can observe. */
  const observed = (res: LightMyRequestResponse) => ({ status: res.statusCode, body: res.body, retryAfter: res.headers['retry-after'] });

  it('limits attempts per account, identically for known and unknown e-mails', async () => {
    h = await startHarness();
    const outcomes: Record<string, Array<ReturnType<typeof observed>>> = {};
    for (const email of [OPERATOR_EMAIL, 'nobody@edgeplane.test']) {
      // A new address each time: only the account limit applies.
      outcomes[email] = [];
      for (let i = 0; i <= LOGIN_ATTEMPTS; i++) outcomes[email].push(observed(await attempt(email, 'wrong password', `10.1.${email.length}.${i}`)));
    }
    const known = outcomes[OPERATOR_EMAIL]!;
    const unknown = outcomes['nobody@edgeplane.test']!;
    expect(known.slice(0, LOGIN_ATTEMPTS).every((o) => o.status === 401)).toBe(true);
    expect(known[LOGIN_ATTEMPTS]).toMatchObject({ status: 429, retryAfter: '90' });
    expect(unknown).toEqual(known);

    // The correct password is refused too while the account is limited (case does not help)…
    expect((await attempt(OPERATOR_EMAIL.toUpperCase(), PASSWORD, '10.2.0.1')).statusCode).toBe(429);
    // …and accepted once a token has refilled.
    h.clock.advance(90_000);
    expect((await attempt(OPERATOR_EMAIL, PASSWORD, '10.2.0.2')).statusCode).toBe(200);
  });

  it('a successful sign-in clears the account limit (its owner is not locked out by typos)', async () => {
    h = await startHarness();
    for (let i = 0; i < LOGIN_ATTEMPTS - 1; i++) await attempt(OPERATOR_EMAIL, 'wrong password', `10.3.0.${i}`);
    expect((await attempt(OPERATOR_EMAIL, PASSWORD, '10.3.1.0')).statusCode).toBe(200);
    for (let i = 0; i < LOGIN_ATTEMPTS - 1; i++) {
      expect((await attempt(OPERATOR_EMAIL, 'wrong password', `10.3.2.${i}`)).statusCode).toBe(401);
    }
  });

  it('limits attempts per address across accounts; success does not reset the address', async () => {
    h = await startHarness();
    const ip = '192.0.2.7';
    for (let i = 0; i < LOGIN_ATTEMPTS - 1; i++) {
      const res = await attempt(`guess${i}@edgeplane.test`, 'wrong password', ip);
      expect(res.statusCode).toBe(401);
      expect(res.headers['x-ratelimit-remaining']).toBe(String(LOGIN_ATTEMPTS - 1 - i));
    }
    expect((await attempt(OPERATOR_EMAIL, PASSWORD, ip)).statusCode).toBe(200);
    const limited = await attempt(OPERATOR_EMAIL, PASSWORD, ip);
    expect429(limited);
    // Same answer as an account-limited attempt: the caller cannot tell which limit it hit.
    expect(json<ErrorReply>(limited).error.message).toBe('too many sign-in attempts; retry after the time in Retry-After');
    expect429(await attempt('nobody@edgeplane.test', 'wrong password', ip));
    // Another address is unaffected; this one recovers as the clock moves.
    expect((await attempt(OPERATOR_EMAIL, PASSWORD, '192.0.2.8')).statusCode).toBe(200);
    h.clock.advance(90_000);
    expect((await attempt(OPERATOR_EMAIL, PASSWORD, ip)).statusCode).toBe(200);
  });
});
