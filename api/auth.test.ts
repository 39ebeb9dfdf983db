import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from '../shared/auth/secrets.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, startHarness, type Harness } from './test-support.js';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

const loginReq = (email: string, password: string) =>
  h.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } });
const refreshReq = (refresh_token: string) =>
  h.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refresh_token } });

describe('login', () => {
  it('returns a bearer token pair and /me answers with the account', async () => {
    const res = await loginReq(OPERATOR_EMAIL, PASSWORD);
    expect(res.statusCode).toBe(200);
    const body = json(res);
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 900 });
    expect(typeof body.access_token).toBe('string');
    expect(typeof body.refresh_token).toBe('string');

    const me = await h.app.inject({
      method: 'GET',
      url: '/api/v1/me',
      headers: { authorization: `Bearer ${String(body.access_token)}` },
    });
    expect(me.statusCode).toBe(200);
    expect(json(me).user).toMatchObject({ email: OPERATOR_EMAIL, console_role: 'operator', tenant_id: null });
    expect(me.body).not.toContain('password');
  });

  it('answers a wrong password and an unknown email identically', async () => {
    const wrong = await loginReq(OPERATOR_EMAIL, 'not the password at all');
    const unknown = await loginReq('nobody@edgeplane.test', PASSWORD);
    expect(wrong.statusCode).toBe(401);
    expect(unknown.statusCode).toBe(401);
    expect(json(wrong)).toEqual({ error: { code: 'INVALID_CREDENTIALS', message: 'email or password is incorrect' } });
    expect(unknown.body).toBe(wrong.body);
  });

  it('stores refresh tokens only as hashes', async () => {
    const s = await login(h.app, OPERATOR_EMAIL);
    const rec = await h.store.refreshTokens.findByHash(sha256(s.refresh));
    expect(rec).not.toBeNull();
    expect(rec!.token_hash).not.toBe(s.refresh);
  });
});

describe('refresh', () => {
  it('rotates: the new pair works and the old refresh token is consumed', async () => {
    const s = await login(h.app, OPERATOR_EMAIL);
    const res = await refreshReq(s.refresh);
    expect(res.statusCode).toBe(200);
    const next = json<{ access_token: string; refresh_token: string }>(res);
    expect(next.refresh_token).not.toBe(s.refresh);

    const oldRec = await h.store.refreshTokens.findByHash(sha256(s.refresh));
    const newRec = await h.store.refreshTokens.findByHash(sha256(next.refresh_token));
    expect(oldRec!.used_at).not.toBeNull();
    expect(newRec!.family_id).toBe(oldRec!.family_id);

    const me = await h.app.inject({
      method: 'GET',
      url: '/api/v1/me',
      headers: { authorization: `Bearer ${next.access_token}` },
    });
    expect(me.statusCode).toBe(200);
  });

  it('reusing a consumed token revokes the whole family', async () => {
    const s = await login(h.app, OPERATOR_EMAIL);
    const rotated = json<{ refresh_token: string }>(await refreshReq(s.refresh));

    const reuse = await refreshReq(s.refresh);
    expect(reuse.statusCode).toBe(401);
    expect(json(reuse)).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });

    // The legitimate successor dies with the family.
    const successor = await refreshReq(rotated.refresh_token);
    expect(successor.statusCode).toBe(401);
  });

  it('refuses an unknown or expired refresh token', async () => {
    expect((await refreshReq('made-up-token')).statusCode).toBe(401);
    const s = await login(h.app, OPERATOR_EMAIL);
    h.clock.advance(3601 * 1000);
    expect((await refreshReq(s.refresh)).statusCode).toBe(401);
  });
});

describe('logout', () => {
  it('revokes the family, answers 204, and is idempotent', async () => {
    const s = await login(h.app, OPERATOR_EMAIL);
    const rotated = json<{ refresh_token: string }>(await refreshReq(s.refresh));
    const out = await h.app.inject({
      method: 'POST',
      url: '/api/v1/auth/logout',
      payload: { refresh_token: rotated.refresh_token },
    });
    expect(out.statusCode).toBe(204);
    expect(out.body).toBe('');
    expect((await refreshReq(rotated.refresh_token)).statusCode).toBe(401);
    const again = await h.app.inject({ method: 'POST', url: '/api/v1/auth/logout', payload: { refresh_token: 'gone' } });
    expect(again.statusCode).toBe(204);
  });
});

describe('access tokens', () => {
  it('an expired token is 401 TOKEN_EXPIRED', async () => {
    const s = await login(h.app, OPERATOR_EMAIL);
    h.clock.advance(901 * 1000);
    const res = await h.app.inject({ method: 'GET', url: '/api/v1/me', headers: s.headers });
    expect(res.statusCode).toBe(401);
    expect(json(res)).toMatchObject({ error: { code: 'TOKEN_EXPIRED' } });
  });

  it('a missing, malformed or forged token is 401 UNAUTHENTICATED', async () => {
    const s = await login(h.app, OPERATOR_EMAIL);
    const [head, payload] = s.access.split('.');
    const forged = `${head}.${payload}.${Buffer.from('x'.repeat(64)).toString('base64url')}`;
    for (const authorization of [undefined, 'Bearer', 'Basic abc', 'Bearer not.a.jwt', `Bearer ${forged}`]) {
      const res = await h.app.inject({
        method: 'GET',
        url: '/api/v1/me',
        headers: authorization === undefined ? {} : { authorization },
      });
      expect(res.statusCode, String(authorization)).toBe(401);
      expect(json(res)).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    }
  });

  it('tenant owners sign in with their tenant in the token', async () => {
    const operator = await login(h.app, OPERATOR_EMAIL);
    const { tenantId, owner } = await createTenant(h.app, operator, 'Acme');
    const me = await h.app.inject({ method: 'GET', url: '/api/v1/me', headers: owner.headers });
    expect(json(me).user).toMatchObject({ tenant_id: tenantId, console_role: 'owner' });
  });
});
