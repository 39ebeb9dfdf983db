/**
 * The request rate limit (@fastify/rate-limit behind the guard): per principal, per address when
 * unauthenticated, exempt probes and docs, the API's error shape and headers, recovery when the
 * window ends, and one limit shared by two API processes through Redis. The in-process counters
 * run on the API's injected clock, which the tests move; nothing sleeps.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import { KeyRing } from '../shared/auth/tokens.js';
import { createRedis } from '../shared/redis/connection.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

interface ErrorReply {
  error: { code: string; message: string };
}
function expect429(res: LightMyRequestResponse): void {
  expect(res.statusCode, res.body).toBe(429);
  expect(json<ErrorReply>(res).error.code).toBe('RATE_LIMITED');
  expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  expect(res.headers['x-ratelimit-remaining']).toBe('0');
}

const me = (h: Harness, s: Session) => h.app.inject({ method: 'GET', url: '/api/v1/me', headers: s.headers });

describe('request limit, in process', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  it('defaults to 100 requests a minute, answers 429 with Retry-After, recovers when the window ends', async () => {
    h = await startHarness();
    const operator = await login(h.app, OPERATOR_EMAIL);
    for (let i = 0; i < 100; i++) {
      const res = await me(h, operator);
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-ratelimit-limit']).toBe('100');
      expect(res.headers['x-ratelimit-remaining']).toBe(String(99 - i));
    }
    const limited = await me(h, operator);
    expect429(limited);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(Number(limited.headers['x-ratelimit-reset'])).toBe(Number(limited.headers['retry-after']));
    h.clock.advance(59_000);
    expect429(await me(h, operator));
    // A clock stepping back does not open a new window.
    h.clock.advance(-120_000);
    expect429(await me(h, operator));
    h.clock.advance(121_000);
    const recovered = await me(h, operator);
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
    for (let i = 0; i < 5; i++) expect((await me(h, viewer)).statusCode).toBe(200);
    expect429(await me(h, viewer));
    expect((await me(h, owner)).statusCode).toBe(200);
    for (let i = 0; i < 5; i++) expect((await withKey()).statusCode).toBe(200);
    expect429(await withKey());
    // The key's flood is not charged to the owner who created it.
    expect((await me(h, owner)).statusCode).toBe(200);
    // A fresh sign-in of the same user shares the user's counter.
    expect429(await me(h, await login(h.app, 'viewer@acme.test')));
  });

  it('limits unauthenticated and failed requests per client address (IPv6 per /64)', async () => {
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
    // Addresses of one IPv6 /64 are one client.
    for (let i = 1; i <= 5; i++) expect((await bad(`2001:db8:1:2::${i}`)).statusCode).toBe(401);
    expect429(await bad('2001:db8:1:2:ffff::9'));
    expect((await bad('2001:db8:1:3::1')).statusCode).toBe(401);
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

describeWithRedis('request limit shared by two API processes through Redis', (url) => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close();
  });

  it('counts a principal’s requests on both processes against one limit', async () => {
    const prefix = uniquePrefix();
    const keyRing = await KeyRing.open(null);
    const redisA = createRedis(url, { name: 'rl-a' });
    cleanup.push(() => redisA.quit());
    const first = await startHarness({ rateLimitPerMin: 5, keyRing, redis: { connection: redisA, prefix } });
    cleanup.push(() => first.close());
    const store = first.store;
    const processes = [first];
    const redisB = createRedis(url, { name: 'rl-b' });
    const second = await startHarness({ rateLimitPerMin: 5, keyRing, store, redis: { connection: redisB, prefix } });
    cleanup.push(() => second.close(), () => redisB.quit());
    processes.push(second);

    const operator = await login(first.app, OPERATOR_EMAIL);
    const [a, b] = processes as [Harness, Harness];
    for (const h of [a, b, a, b, a]) expect((await me(h, operator)).statusCode).toBe(200);
    expect429(await me(b, operator));
    expect429(await me(a, operator));
    // Another deployment prefix is another limit.
    const redisC = createRedis(url, { name: 'rl-c' });
    const other = await startHarness({ rateLimitPerMin: 5, keyRing, store, redis: { connection: redisC, prefix: uniquePrefix() } });
    cleanup.push(() => other.close(), () => redisC.quit());
    expect((await me(other, operator)).statusCode).toBe(200);
  });
});
