/**
 * Tenant API keys end to end: shown once and stored hashed, scopes enforced by the one guard,
 * no key can mint keys, revocation and expiry, tenant isolation, usage tracking.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from '../shared/auth/secrets.js';
import type { ApiKey, CommandRecord } from '../shared/domain.js';
import { apiKeyScopeProblem } from './auth/permissions.js';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let owner: Session;
let ownerB: Session;
let tenantId: string;

beforeEach(async () => {
  h = await startHarness();
  operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Acme'));
  ({ owner: ownerB } = await createTenant(h.app, operator, 'Bravo'));
});
afterEach(async () => {
  await h.close();
});

interface Created {
  api_key: ApiKey;
  key: string;
}
interface ErrorReply {
  error: { code: string; message: string; issues?: Array<{ field: string; message: string }> };
}

const createKey = (session: Session, payload: object) =>
  h.app.inject({ method: 'POST', url: '/api/v1/api-keys', headers: session.headers, payload });

async function newKey(session: Session, scopes: string[], extra: object = {}): Promise<Created> {
  const res = await createKey(session, { name: 'integration', scopes, ...extra });
  expect(res.statusCode, res.body).toBe(201);
  return json<Created>(res);
}

const withKey = (key: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
  h.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(payload && { payload }) });

function expectError(res: LightMyRequestResponse, status: number, code: string): ErrorReply['error'] {
  expect(res.statusCode, res.body).toBe(status);
  const { error } = json<ErrorReply>(res);
  expect(error.code).toBe(code);
  return error;
}

describe('creating a key', () => {
  it('shows the key once and stores only its hash', async () => {
    const res = await createKey(owner, { name: 'SIEM export', scopes: ['devices:read', 'usage:read'] });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    const { api_key, key } = json<Created>(res);
    expect(key).toMatch(/^epk_[A-Za-z0-9_-]{43}$/);
    expect(api_key).toMatchObject({
      tenant_id: tenantId,
      name: 'SIEM export',
      prefix: key.slice(0, 12),
      scopes: ['devices:read', 'usage:read'],
      last_used_at: null,
      revoked_at: null,
      expires_at: null,
    });
    expect(api_key.created_by).toEqual(expect.any(String));
    expect(res.body).not.toContain('secret_hash');

    // Stored as sha256 of the whole key; never readable again through the API.
    expect((await h.store.apiKeys.findByHash(sha256(key)))?.id).toBe(api_key.id);
    const list = await h.app.inject({ method: 'GET', url: '/api/v1/api-keys', headers: owner.headers });
    expect(list.statusCode).toBe(200);
    expect(json<{ api_keys: ApiKey[] }>(list).api_keys.map((k) => k.id)).toEqual([api_key.id]);
    const one = await h.app.inject({ method: 'GET', url: `/api/v1/api-keys/${api_key.id}`, headers: owner.headers });
    expect(json<{ api_key: ApiKey }>(one).api_key).toEqual(api_key);
    for (const body of [list.body, one.body]) {
      expect(body).not.toContain(key);
      expect(body).not.toContain(sha256(key));
    }
  });

  it('lists keys with a cursor', async () => {
    for (let i = 0; i < 3; i++) await newKey(owner, ['devices:read']);
    const first = json<{ api_keys: ApiKey[]; next_cursor: string | null }>(
      await h.app.inject({ method: 'GET', url: '/api/v1/api-keys?limit=2', headers: owner.headers }),
    );
    expect(first.api_keys).toHaveLength(2);
    expect(first.next_cursor).not.toBeNull();
    const second = json<{ api_keys: ApiKey[]; next_cursor: string | null }>(
      await h.app.inject({ method: 'GET', url: `/api/v1/api-keys?limit=2&cursor=${first.next_cursor!}`, headers: owner.headers }),
    );
    expect(second.api_keys).toHaveLength(1);
    expect(second.next_cursor).toBeNull();
  });

  it.each([
    [['api-keys:write'], 0],
    [['devices:read', 'api-keys:read'], 1],
    [['devices:read', 'console-users:write'], 1],
    [['devices:read', 'usage:read', 'tenants:write'], 2],
    [['metrics:read'], 0],
    [['devices:read', 'no-such:permission'], 1],
  ])('rejects scopes %j naming body.scopes.%i', async (scopes, index) => {
    const error = expectError(await createKey(owner, { name: 'k', scopes }), 400, 'VALIDATION_FAILED');
    expect(error.issues?.map((i) => i.field)).toEqual([`body.scopes.${index}`]);
    expect(error.message).toContain(`body.scopes.${index}`);
    expect(json<{ api_keys: ApiKey[] }>(await h.app.inject({ method: 'GET', url: '/api/v1/api-keys', headers: owner.headers })).api_keys).toEqual([]);
  });

  it('a scope must be held by its creator', () => {
    expect(apiKeyScopeProblem('owner', 'devices:write')).toBeNull();
    expect(apiKeyScopeProblem('analyst', 'devices:write')).toContain("does not hold 'devices:write'");
    expect(apiKeyScopeProblem('operator', 'towers:write')).toContain('platform permission');
  });

  it('is for owners and admins only; operators have no tenant to put a key in', async () => {
    await post(h.app, owner, '/api/v1/console-users', { email: 'analyst@acme.test', password: PASSWORD, console_role: 'analyst' });
    await post(h.app, owner, '/api/v1/console-users', { email: 'admin@acme.test', password: PASSWORD, console_role: 'admin' });
    const analyst = await login(h.app, 'analyst@acme.test');
    const admin = await login(h.app, 'admin@acme.test');
    expectError(await createKey(analyst, { name: 'k', scopes: ['devices:read'] }), 403, 'FORBIDDEN');
    expectError(await createKey(operator, { name: 'k', scopes: ['devices:read'] }), 403, 'FORBIDDEN');
    await newKey(admin, ['devices:write', 'audit:read']);
  });

  it('validates name and expiry', async () => {
    expectError(await createKey(owner, { name: '', scopes: ['devices:read'] }), 400, 'VALIDATION_FAILED');
    expectError(await createKey(owner, { name: 'k', scopes: [] }), 400, 'VALIDATION_FAILED');
    const err = expectError(await createKey(owner, { name: 'k', scopes: ['devices:read'], expires_in_s: -5 }), 400, 'VALIDATION_FAILED');
    expect(err.issues?.[0]?.field).toBe('body.expires_in_s');
    expectError(await createKey(owner, { name: 'k', scopes: ['devices:read'], extra: 1 }), 400, 'VALIDATION_FAILED');
  });
});

describe('authenticating with a key', () => {
  it('allows exactly the routes whose permission is among its scopes', async () => {
    await post(h.app, owner, '/api/v1/devices', { id: 'dev-1', name: 'phone' });
    const { key } = await newKey(owner, ['devices:read']);

    const devices = await withKey(key, 'GET', '/api/v1/devices');
    expect(devices.statusCode, devices.body).toBe(200);
    expect(json<{ devices: Array<{ id: string }> }>(devices).devices.map((d) => d.id)).toEqual(['dev-1']);
    // The x-api-key header works the same.
    const viaHeader = await h.app.inject({ method: 'GET', url: '/api/v1/devices/dev-1', headers: { 'x-api-key': key } });
    expect(viaHeader.statusCode).toBe(200);

    expect(expectError(await withKey(key, 'POST', '/api/v1/devices', { id: 'dev-2', name: 'x' }), 403, 'FORBIDDEN').message).toBe(
      "API key lacks scope 'devices:write'",
    );
    expectError(await withKey(key, 'GET', '/api/v1/users'), 403, 'FORBIDDEN');
    expectError(await withKey(key, 'GET', '/api/v1/tenants'), 403, 'FORBIDDEN');
    expectError(await withKey(key, 'GET', '/metrics'), 403, 'FORBIDDEN');
    expectError(await withKey(key, 'GET', '/api/v1/me'), 403, 'FORBIDDEN');
  });

  it('can never mint keys, even with every scope its creator could give it', async () => {
    const { key } = await newKey(owner, ['devices:read', 'devices:write', 'users:write', 'tenant:write', 'webhooks:write']);
    expectError(await withKey(key, 'POST', '/api/v1/api-keys', { name: 'child', scopes: ['devices:read'] }), 403, 'FORBIDDEN');
    expectError(await withKey(key, 'GET', '/api/v1/api-keys'), 403, 'FORBIDDEN');
    expectError(
      await withKey(key, 'POST', '/api/v1/console-users', { email: 'x@acme.test', password: PASSWORD, console_role: 'owner' }),
      403,
      'FORBIDDEN',
    );
    expectError(await withKey(key, 'POST', '/api/v1/signing-keys/rotate'), 403, 'FORBIDDEN');
  });

  it('/me answers with the key when the key holds session:read', async () => {
    const { api_key, key } = await newKey(owner, ['session:read']);
    const me = await withKey(key, 'GET', '/api/v1/me');
    expect(me.statusCode, me.body).toBe(200);
    expect(json<{ api_key: ApiKey }>(me).api_key).toMatchObject({ id: api_key.id, scopes: ['session:read'] });
    expect(me.body).not.toContain('"user"');
  });

  it('a revoked key answers 401 exactly like a key that never existed', async () => {
    const { api_key, key } = await newKey(owner, ['devices:read']);
    expect((await withKey(key, 'GET', '/api/v1/devices')).statusCode).toBe(200);

    const del = await h.app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${api_key.id}`, headers: owner.headers });
    expect(del.statusCode).toBe(204);
    const revoked = await withKey(key, 'GET', '/api/v1/devices');
    const bogus = await withKey(`epk_${'x'.repeat(43)}`, 'GET', '/api/v1/devices');
    expectError(revoked, 401, 'UNAUTHENTICATED');
    expect(revoked.body).toBe(bogus.body);
    expectError(await h.app.inject({ method: 'GET', url: '/api/v1/devices', headers: { 'x-api-key': key } }), 401, 'UNAUTHENTICATED');

    const listed = json<{ api_key: ApiKey }>(
      await h.app.inject({ method: 'GET', url: `/api/v1/api-keys/${api_key.id}`, headers: owner.headers }),
    ).api_key;
    expect(listed.revoked_at).toBe(h.clock.now);
    // Revoking again is a no-op; an unknown id is 404.
    expect((await h.app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${api_key.id}`, headers: owner.headers })).statusCode).toBe(204);
    expectError(await h.app.inject({ method: 'DELETE', url: '/api/v1/api-keys/nope', headers: owner.headers }), 404, 'NOT_FOUND');
  });

  it('an expired key answers 401 exactly like a key that never existed', async () => {
    const { api_key, key } = await newKey(owner, ['devices:read'], { expires_in_s: 3600 });
    expect(api_key.expires_at).toBe(h.clock.now + 3_600_000);
    h.clock.advance(3_599_000);
    expect((await withKey(key, 'GET', '/api/v1/devices')).statusCode).toBe(200);
    h.clock.advance(1000);
    const expired = await withKey(key, 'GET', '/api/v1/devices');
    expectError(expired, 401, 'UNAUTHENTICATED');
    expect(expired.body).toBe((await withKey(`epk_${'y'.repeat(43)}`, 'GET', '/api/v1/devices')).body);
  });

  it('records last use at most once a minute', async () => {
    const { api_key, key } = await newKey(owner, ['devices:read']);
    const lastUsed = async () => (await h.store.apiKeys.get(tenantId, api_key.id))?.last_used_at;
    expect(await lastUsed()).toBeNull();
    const t0 = h.clock.now;
    await withKey(key, 'GET', '/api/v1/devices');
    expect(await lastUsed()).toBe(t0);
    h.clock.advance(30_000);
    await withKey(key, 'GET', '/api/v1/devices');
    expect(await lastUsed()).toBe(t0);
    h.clock.advance(30_000);
    await withKey(key, 'GET', '/api/v1/devices');
    expect(await lastUsed()).toBe(t0 + 60_000);
  });

  it('credits changes to the key: remedial actions are issued by api_key:<id>', async () => {
    await post(h.app, operator, '/api/v1/towers', { id: 'twr-1', name: 'twr-1' });
    await post(h.app, owner, '/api/v1/devices', { id: 'dev-1', name: 'phone' });
    await seedUsage(h.store, tenantId, 'twr-1', [{ device_id: 'dev-1', app: 'mail', action: 'send', effect: 'allow' }], h.clock.now);
    const { api_key, key } = await newKey(owner, ['remediation:write']);
    const res = await withKey(key, 'POST', '/api/v1/remedial-actions', { device_id: 'dev-1', type: 'notify' });
    expect(res.statusCode, res.body).toBe(201);
    expect(json<{ command: CommandRecord }>(res).command).toMatchObject({ issued_by: `api_key:${api_key.id}`, tower_id: 'twr-1' });
  });
});

describe('tenant isolation', () => {
  it("another tenant's key ids are 404 and its key sees only its own tenant", async () => {
    await post(h.app, owner, '/api/v1/devices', { id: 'dev-a', name: 'acme phone' });
    await post(h.app, ownerB, '/api/v1/devices', { id: 'dev-b', name: 'bravo phone' });
    const { api_key, key } = await newKey(owner, ['devices:read']);

    expectError(await h.app.inject({ method: 'GET', url: `/api/v1/api-keys/${api_key.id}`, headers: ownerB.headers }), 404, 'NOT_FOUND');
    expectError(await h.app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${api_key.id}`, headers: ownerB.headers }), 404, 'NOT_FOUND');
    expect(json<{ api_keys: ApiKey[] }>(await h.app.inject({ method: 'GET', url: '/api/v1/api-keys', headers: ownerB.headers })).api_keys).toEqual([]);

    // Still valid after the other tenant's attempt to revoke it.
    const devices = await withKey(key, 'GET', '/api/v1/devices');
    expect(json<{ devices: Array<{ id: string }> }>(devices).devices.map((d) => d.id)).toEqual(['dev-a']);
    expectError(await withKey(key, 'GET', '/api/v1/devices/dev-b'), 404, 'NOT_FOUND');
  });
});
