/**
 * Token lifecycle across a signing-key rotation: tokens signed before it keep verifying until they
 * expire, new ones carry the new kid, retiring a key ends its tokens, and refresh-token rotation,
 * reuse detection and logout behave the same on either side of a rotation.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
beforeEach(async () => {
  h = await startHarness();
  operator = await login(h.app, OPERATOR_EMAIL);
});
afterEach(async () => {
  await h.close();
});

const ACCESS_TTL_MS = 900_000;

function kidOf(jwt: string): string {
  const header = JSON.parse(Buffer.from(jwt.split('.')[0] ?? '', 'base64url').toString('utf8')) as { kid?: string };
  return header.kid ?? '';
}
const me = (access: string) => h.app.inject({ method: 'GET', url: '/api/v1/me', headers: { authorization: `Bearer ${access}` } });
const rotate = (s: Session) => h.app.inject({ method: 'POST', url: '/api/v1/signing-keys/rotate', headers: s.headers });
const jwksKids = async () =>
  json<{ keys: Array<{ kid: string }> }>(await h.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).keys.map((k) => k.kid);
const refresh = (refresh_token: string) => h.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refresh_token } });
const errorCode = (res: LightMyRequestResponse) => json<{ error: { code: string } }>(res).error.code;

describe('signing-key rotation', () => {
  it('new tokens carry the new kid; old tokens verify until they expire', async () => {
    const oldKid = kidOf(operator.access);
    h.clock.advance(10 * 60_000);
    const res = await rotate(operator);
    expect(res.statusCode, res.body).toBe(200);
    const { kid, jwks_keys } = json<{ kid: string; jwks_keys: number }>(res);
    expect(kid).not.toBe(oldKid);
    expect(jwks_keys).toBe(2);
    expect(await jwksKids()).toEqual([oldKid, kid]);

    const fresh = await login(h.app, OPERATOR_EMAIL);
    expect(kidOf(fresh.access)).toBe(kid);
    expect((await me(operator.access)).statusCode).toBe(200);
    expect((await me(fresh.access)).statusCode).toBe(200);

    // The old token was signed 10 minutes before the rotation: it expires 5 minutes after it.
    h.clock.advance(ACCESS_TTL_MS - 10 * 60_000);
    const expired = await me(operator.access);
    expect(expired.statusCode).toBe(401);
    expect(errorCode(expired)).toBe('TOKEN_EXPIRED');
    expect((await me(fresh.access)).statusCode).toBe(200);
  });

  it('is for operators only', async () => {
    const { owner } = await createTenant(h.app, operator, 'Acme');
    const res = await rotate(owner);
    expect(res.statusCode).toBe(403);
    expect((await h.app.inject({ method: 'POST', url: '/api/v1/signing-keys/rotate' })).statusCode).toBe(401);
    // Nor can any API key be given the permission.
    const key = await h.app.inject({
      method: 'POST',
      url: '/api/v1/api-keys',
      headers: owner.headers,
      payload: { name: 'k', scopes: ['signing-keys:write'] },
    });
    expect(key.statusCode).toBe(400);
    expect(await jwksKids()).toHaveLength(1);
  });

  it('retiring old keys ends the tokens they signed and keeps the signing key', async () => {
    const before = operator.access;
    h.clock.advance(1000);
    const { kid } = json<{ kid: string }>(await rotate(operator));
    const after = await login(h.app, OPERATOR_EMAIL);

    const retire = (payload: object) =>
      h.app.inject({ method: 'POST', url: '/api/v1/signing-keys/retire', headers: after.headers, payload });
    const bad = await retire({ before: 'yesterday' });
    expect(bad.statusCode).toBe(400);
    const res = await retire({ before: h.clock.now + 3_600_000 });
    expect(res.statusCode, res.body).toBe(200);
    expect(json(res)).toEqual({ kid, jwks_keys: 1 });
    expect(await jwksKids()).toEqual([kid]);

    const ended = await me(before);
    expect(ended.statusCode).toBe(401);
    expect(errorCode(ended)).toBe('UNAUTHENTICATED');
    expect((await me(after.access)).statusCode).toBe(200);
  });
});

describe('refresh tokens across a rotation', () => {
  it('refresh issues tokens with the new kid; reuse revokes the family; logout ends it', async () => {
    const { owner } = await createTenant(h.app, operator, 'Acme');
    const { kid } = json<{ kid: string }>(await rotate(operator));

    const first = await refresh(owner.refresh);
    expect(first.statusCode, first.body).toBe(200);
    const pair = json<{ access_token: string; refresh_token: string }>(first);
    expect(kidOf(pair.access_token)).toBe(kid);
    expect((await me(pair.access_token)).statusCode).toBe(200);

    // The consumed token presented again: the whole family is revoked, the newest token included.
    expect((await refresh(owner.refresh)).statusCode).toBe(401);
    expect((await refresh(pair.refresh_token)).statusCode).toBe(401);

    const again = await login(h.app, 'owner@acme.test');
    const out = await h.app.inject({ method: 'POST', url: '/api/v1/auth/logout', payload: { refresh_token: again.refresh } });
    expect(out.statusCode).toBe(204);
    expect((await refresh(again.refresh)).statusCode).toBe(401);
  });

  it('an API key is unaffected by a signing-key rotation', async () => {
    const { owner } = await createTenant(h.app, operator, 'Acme');
    const { key } = await post<{ key: string }>(h.app, owner, '/api/v1/api-keys', { name: 'k', scopes: ['session:read'] });
    await rotate(operator);
    await h.app.inject({ method: 'POST', url: '/api/v1/signing-keys/retire', headers: operator.headers, payload: { before: h.clock.now + 1 } });
    expect((await me(key)).statusCode).toBe(200);
  });
});
