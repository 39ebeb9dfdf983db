/**
 * Adversarial audit of access-token verification through the real API: algorithm confusion
 * ("none", HS256 keyed with the published public key), a foreign key presented under a real kid or
 * embedded in the header, wrong issuer or audience, a token not yet valid, and claims that
 * contradict the account (another tenant, a higher role) even when signed with the real key.
 * Every one is a 401 and reads nothing.
 */
import { SignJWT, base64url, exportJWK, generateKeyPair, importJWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyRing, TOKEN_AUDIENCE, TOKEN_ISSUER } from '../shared/auth/tokens.js';
import { OPERATOR_EMAIL, createTenant, json, login, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let ring: KeyRing;
let ownerA: Session;
let tenantB: string;
let claimsA: JWTPayload & { tenant_id: string; role: string; sv?: number };

beforeAll(async () => {
  ring = await KeyRing.open(null);
  h = await startHarness({ keyRing: ring });
  const operator = await login(h.app, OPERATOR_EMAIL);
  ownerA = (await createTenant(h.app, operator, 'Alpha')).owner;
  tenantB = (await createTenant(h.app, operator, 'Bravo')).tenantId;
  claimsA = JSON.parse(Buffer.from(ownerA.access.split('.')[1]!, 'base64url').toString('utf8')) as typeof claimsA;
});
afterAll(async () => {
  await h.close();
});

async function devicesWith(token: string) {
  return h.app.inject({ method: 'GET', url: '/api/v1/devices', headers: { authorization: `Bearer ${token}` } });
}

/** Signs `payload` with the ring's real private key under its real kid. */
async function signedByUs(payload: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  const key = ring.current();
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT', ...header })
    .sign(await importJWK(key.private_jwk, 'ES256'));
}

describe('forged access tokens', () => {
  it('the real token works (the probes below differ from it in one way each)', async () => {
    expect((await devicesWith(ownerA.access)).statusCode).toBe(200);
    expect((await devicesWith(await signedByUs({ ...claimsA }))).statusCode).toBe(200);
  });

  it('refuses algorithm confusion and foreign keys', async () => {
    const kid = ring.current().kid;
    const enc = (o: object) => base64url.encode(JSON.stringify(o));
    const attacker = await generateKeyPair('ES256', { extractable: true });
    const publicJwk = ring.current().public_jwk;
    const forged: Record<string, string> = {
      'alg none': `${enc({ alg: 'none', typ: 'JWT', kid })}.${enc(claimsA)}.`,
      'alg none, upper case': `${enc({ alg: 'NONE', typ: 'JWT', kid })}.${enc(claimsA)}.`,
      'HS256 keyed with the public JWK': await new SignJWT({ ...claimsA })
        .setProtectedHeader({ alg: 'HS256', kid })
        .sign(new TextEncoder().encode(JSON.stringify(publicJwk))),
      'HS256 keyed with the public x coordinate': await new SignJWT({ ...claimsA })
        .setProtectedHeader({ alg: 'HS256', kid })
        .sign(new TextEncoder().encode(String(publicJwk.x))),
      "attacker's key under our kid": await new SignJWT({ ...claimsA }).setProtectedHeader({ alg: 'ES256', kid }).sign(attacker.privateKey),
      "attacker's key embedded in the header": await new SignJWT({ ...claimsA })
        .setProtectedHeader({ alg: 'ES256', kid, jwk: await exportJWK(attacker.publicKey) })
        .sign(attacker.privateKey),
      'unknown kid': await new SignJWT({ ...claimsA }).setProtectedHeader({ alg: 'ES256', kid: '../../jwt-keys' }).sign(attacker.privateKey),
    };
    for (const [what, token] of Object.entries(forged)) {
      const res = await devicesWith(token);
      expect(res.statusCode, what).toBe(401);
      expect(json(res), what).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    }
  });

  it('refuses our own signature on a token for another issuer or audience, not valid yet, or that never expires', async () => {
    const now = Math.floor(h.clock.now / 1000);
    const cases: Record<string, JWTPayload> = {
      'wrong issuer': { ...claimsA, iss: 'someone-else' },
      'wrong audience': { ...claimsA, aud: 'broker' },
      'no audience': { ...claimsA, aud: undefined },
      'no issuer': { ...claimsA, iss: undefined },
      'not valid for an hour': { ...claimsA, nbf: now + 3600 },
      // Every token we issue expires; one that does not was not issued by us as it is.
      'no expiry': { ...claimsA, exp: undefined },
    };
    expect(claimsA).toMatchObject({ iss: TOKEN_ISSUER, aud: TOKEN_AUDIENCE });
    for (const [what, payload] of Object.entries(cases)) {
      const res = await devicesWith(await signedByUs(payload));
      expect(res.statusCode, what).toBe(401);
    }
  });

  it('refuses claims that contradict the account, even under our signature', async () => {
    const cases: Record<string, JWTPayload> = {
      "another tenant's id": { ...claimsA, tenant_id: tenantB },
      'operator role without a tenant': { ...claimsA, role: 'operator', tenant_id: null },
      'operator role with the tenant': { ...claimsA, role: 'operator' },
      'an older session version': { ...claimsA, sv: (claimsA.sv ?? 0) + 1 },
      'a user that does not exist': { ...claimsA, sub: '01ARZ3NDEKTSV4RRFFQ69G5FAV' },
      'a role that does not exist': { ...claimsA, role: 'root' },
      'a numeric subject': { ...claimsA, sub: 1 as unknown as string },
    };
    for (const [what, payload] of Object.entries(cases)) {
      const res = await devicesWith(await signedByUs(payload));
      expect(res.statusCode, what).toBe(401);
      expect(json(res), what).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    }
  });

  it("answers with the account's role, not the token's: a viewer token claiming owner cannot write", async () => {
    const created = await h.app.inject({
      method: 'POST',
      url: '/api/v1/console-users',
      headers: ownerA.headers,
      payload: { email: 'viewer@alpha.test', password: 'correct horse battery staple', console_role: 'viewer' },
    });
    expect(created.statusCode).toBe(201);
    const viewer = await login(h.app, 'viewer@alpha.test');
    const viewerClaims = JSON.parse(Buffer.from(viewer.access.split('.')[1]!, 'base64url').toString('utf8')) as JWTPayload;
    const promoted = await signedByUs({ ...viewerClaims, role: 'owner' });
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: { authorization: `Bearer ${promoted}` },
      payload: { id: 'dev-escalated', name: 'x' },
    });
    expect(res.statusCode).toBe(403);
  });
});
