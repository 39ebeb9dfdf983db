/**
 * Adversarial audit: `POST /me/password` checks the current password, so it answers whether a
 * guess is right exactly like sign-in does. Someone holding a stolen session (an access token and
 * its refresh token) could guess the account's password there at the request rate (100 a minute),
 * around the sign-in throttle (5 per e-mail and address, then one every 200 s). The check now
 * draws on the same budgets as sign-in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let owner: Session;
let ownerEmail: string;

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 100_000 });
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, ownerEmail } = await createTenant(h.app, operator, 'Alpha'));
});
afterAll(async () => {
  await h.close();
});

function change(session: Session, current: string, remoteAddress = '203.0.113.7') {
  return h.app.inject({
    method: 'POST',
    url: '/api/v1/me/password',
    remoteAddress,
    headers: session.headers,
    payload: { current_password: current, new_password: 'a brand new long passphrase' },
  });
}

describe('guessing the current password through POST /me/password', () => {
  it('is throttled like sign-in: a few wrong guesses, then 429 with Retry-After, even for the right one', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await change(owner, `wrong guess ${i}`);
      expect(res.statusCode, `guess ${i}`).toBe(401);
      expect(json(res)).toMatchObject({ error: { code: 'INVALID_CREDENTIALS' } });
    }
    const blocked = await change(owner, PASSWORD);
    expect(blocked.statusCode).toBe(429);
    expect(json(blocked)).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    // The guesses count against sign-in from that address too (one budget per e-mail and address).
    const signIn = await h.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      remoteAddress: '203.0.113.7',
      payload: { email: ownerEmail, password: PASSWORD },
    });
    expect(signIn.statusCode).toBe(429);
    // Nothing changed: the password is still the old one.
    expect((await change(owner, PASSWORD, '198.51.100.9')).statusCode).toBe(200);
  });
});
