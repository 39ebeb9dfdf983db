/**
 * Adversarial audit: with trust_proxy off (the default) a client cannot pick the address its
 * request quota is charged to. Rotating X-Forwarded-For, X-Real-IP, Forwarded or
 * True-Client-IP, or guessing with a different made-up credential each time, still spends one
 * budget: the socket's address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './test-support.js';

const LIMIT = 5;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: LIMIT });
});
afterAll(async () => {
  await h.close();
});

function spoofed(i: number, remoteAddress: string) {
  const fake = `198.51.100.${i}`;
  const credentials = [
    { authorization: `Bearer eyJhbGciOiJFUzI1NiJ9.e30.${i}` },
    { authorization: `Bearer epk_guess${i}` },
    { 'x-api-key': `epk_guess${i}` },
    { authorization: `Bearer epc_01ARZ3NDEKTSV4RRFFQ69G5FAV.guess${i}` },
  ];
  return h.app.inject({
    method: 'GET',
    url: '/api/v1/devices',
    remoteAddress,
    headers: {
      'x-forwarded-for': fake,
      'x-real-ip': fake,
      forwarded: `for=${fake}`,
      'true-client-ip': fake,
      ...credentials[i % credentials.length],
    },
  });
}

describe('spoofed client addresses and rotating credentials (trust_proxy off)', () => {
  it('share the socket address’s budget: 401 until it is spent, then 429', async () => {
    for (let i = 0; i < LIMIT; i++) {
      expect((await spoofed(i, '203.0.113.50')).statusCode, `request ${i}`).toBe(401);
    }
    const over = await spoofed(LIMIT, '203.0.113.50');
    expect(over.statusCode).toBe(429);
    expect(over.headers['retry-after']).toBeDefined();
    // Another real address is unaffected.
    expect((await spoofed(LIMIT + 1, '203.0.113.51')).statusCode).toBe(401);
  });
});
