/**
 * An API key acts on its creator's authority (auth/api-keys.ts): it answers 401 while the
 * creating account is disabled or once it is gone, holds only what the account's current role
 * may delegate, and says so in the key list. Another tenant's accounts never touch it.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateApiKey } from './auth/api-keys.js';
import { ApiKeyViewSchema, type ApiKeyView } from './routes/api-keys.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let owner: Session;
let ownerB: Session;
let tenantId: string;
let adminId: string;
let admin: Session;

beforeEach(async () => {
  h = await startHarness();
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Acme'));
  ({ owner: ownerB } = await createTenant(h.app, operator, 'Bravo'));
  adminId = (await post<{ user: { id: string } }>(h.app, owner, '/api/v1/console-users', { email: 'admin@acme.test', password: PASSWORD, console_role: 'admin' })).user.id;
  admin = await login(h.app, 'admin@acme.test');
  await post(h.app, owner, '/api/v1/devices', { id: 'dev-1', name: 'phone' });
});
afterEach(async () => {
  await h.close();
});

async function newKey(session: Session, scopes: string[]): Promise<{ api_key: ApiKeyView; key: string }> {
  return post(h.app, session, '/api/v1/api-keys', { name: 'integration', scopes });
}

const read = (key: string) => h.app.inject({ method: 'GET', url: '/api/v1/devices', headers: { authorization: `Bearer ${key}` } });
const write = (key: string, id: string) =>
  h.app.inject({ method: 'POST', url: '/api/v1/devices', headers: { 'x-api-key': key }, payload: { id, name: 'phone' } });
const patchAccount = async (session: Session, id: string, payload: object) => {
  const res = await h.app.inject({ method: 'PATCH', url: `/api/v1/console-users/${id}`, headers: session.headers, payload });
  expect(res.statusCode, res.body).toBe(200);
};
const listed = async (session: Session, keyId: string): Promise<ApiKeyView> => {
  const res = await h.app.inject({ method: 'GET', url: '/api/v1/api-keys', headers: session.headers });
  expect(res.statusCode, res.body).toBe(200);
  const one = await h.app.inject({ method: 'GET', url: `/api/v1/api-keys/${keyId}`, headers: session.headers });
  const view = json<{ api_keys: ApiKeyView[] }>(res).api_keys.find((k) => k.id === keyId)!;
  expect(json<{ api_key: ApiKeyView }>(one).api_key).toEqual(view);
  return view;
};

/** The same body as a key that never existed: no oracle for why a key stopped working. */
async function expectRefusedLikeUnknown(res: LightMyRequestResponse): Promise<void> {
  expect(res.statusCode, res.body).toBe(401);
  expect(res.body).toBe((await read(`epk_${'z'.repeat(43)}`)).body);
}

describe("a key and its creator's account", () => {
  it('answers 401 while its creator is disabled, and works again once the account is enabled', async () => {
    const { api_key, key } = await newKey(admin, ['devices:read', 'devices:write']);
    expect(api_key).toMatchObject({ status: 'active', effective_scopes: ['devices:read', 'devices:write'] });
    expect((await read(key)).statusCode).toBe(200);

    await patchAccount(owner, adminId, { disabled: true });
    await expectRefusedLikeUnknown(await read(key));
    await expectRefusedLikeUnknown(await write(key, 'dev-2'));
    expect(await listed(owner, api_key.id)).toMatchObject({ status: 'creator_disabled', effective_scopes: [], scopes: ['devices:read', 'devices:write'] });

    await patchAccount(owner, adminId, { disabled: false });
    expect((await read(key)).statusCode).toBe(200);
    expect((await write(key, 'dev-2')).statusCode).toBe(201);
    expect(await listed(owner, api_key.id)).toMatchObject({ status: 'active', effective_scopes: ['devices:read', 'devices:write'] });
  });

  it('answers 401 for good once its creator is deleted', async () => {
    const { api_key, key } = await newKey(admin, ['devices:read']);
    const del = await h.app.inject({ method: 'DELETE', url: `/api/v1/console-users/${adminId}`, headers: owner.headers });
    expect(del.statusCode, del.body).toBe(204);
    await expectRefusedLikeUnknown(await read(key));
    expect(await listed(owner, api_key.id)).toMatchObject({ status: 'creator_missing', effective_scopes: [], revoked_at: null });
  });

  it('holds only the scopes its creator’s current role may delegate: a demoted admin’s key reads but no longer writes', async () => {
    const { api_key, key } = await newKey(admin, ['devices:read', 'devices:write', 'policies:simulate', 'session:read']);
    expect((await write(key, 'dev-2')).statusCode).toBe(201);

    await patchAccount(owner, adminId, { console_role: 'viewer' });
    const refused = await write(key, 'dev-3');
    expect(refused.statusCode, refused.body).toBe(403);
    expect(json<{ error: { message: string } }>(refused).error.message).toBe("API key lacks scope 'devices:write'");
    expect((await read(key)).statusCode).toBe(200);
    expect(await listed(owner, api_key.id)).toMatchObject({
      status: 'active',
      scopes: ['devices:read', 'devices:write', 'policies:simulate', 'session:read'],
      effective_scopes: ['devices:read', 'session:read'],
    });
    // The key itself is told what it holds now, not what was stored.
    const me = await h.app.inject({ method: 'GET', url: '/api/v1/me', headers: { 'x-api-key': key } });
    expect(me.statusCode, me.body).toBe(200);
    expect(json<{ api_key: ApiKeyView }>(me).api_key).toMatchObject({ status: 'active', effective_scopes: ['devices:read', 'session:read'] });

    // analyst: reads and what-ifs, no writes.
    await patchAccount(owner, adminId, { console_role: 'analyst' });
    expect((await listed(owner, api_key.id)).effective_scopes).toEqual(['devices:read', 'policies:simulate', 'session:read']);
    expect((await write(key, 'dev-3')).statusCode).toBe(403);
    await patchAccount(owner, adminId, { console_role: 'admin' });
    expect((await write(key, 'dev-3')).statusCode).toBe(201);
  });

  it('a key naming no creator, or an account of another tenant, authenticates nothing', async () => {
    const bravoAdminId = (await post<{ user: { id: string } }>(h.app, ownerB, '/api/v1/console-users', { email: 'admin@bravo.test', password: PASSWORD, console_role: 'admin' })).user.id;
    const stored = async (created_by: string | null) => {
      const generated = generateApiKey();
      const apiKey = await h.store.apiKeys.create({ tenant_id: tenantId, name: 'stored', prefix: generated.prefix, scopes: ['devices:read'], secret_hash: generated.secretHash, created_by, expires_at: null });
      return { id: apiKey.id, key: generated.key };
    };
    for (const createdBy of [null, bravoAdminId, 'no-such-account']) {
      const { id, key } = await stored(createdBy);
      await expectRefusedLikeUnknown(await read(key));
      expect(await listed(owner, id)).toMatchObject({ status: 'creator_missing', effective_scopes: [] });
    }
    // The same stored key with this tenant's admin as creator works: the creator made the difference.
    const { key } = await stored(adminId);
    expect((await read(key)).statusCode).toBe(200);
  });

  it("another tenant's account changes never affect this tenant's keys", async () => {
    const { key } = await newKey(admin, ['devices:read', 'devices:write']);
    const bravoAdminId = (await post<{ user: { id: string } }>(h.app, ownerB, '/api/v1/console-users', { email: 'admin@bravo.test', password: PASSWORD, console_role: 'admin' })).user.id;
    const bravoAdmin = await login(h.app, 'admin@bravo.test');
    const { key: bravoKey } = await newKey(bravoAdmin, ['devices:read']);

    await patchAccount(ownerB, bravoAdminId, { console_role: 'viewer' });
    expect((await write(key, 'dev-2')).statusCode).toBe(201);
    await patchAccount(ownerB, bravoAdminId, { disabled: true });
    expect((await read(key)).statusCode).toBe(200);
    await expectRefusedLikeUnknown(await read(bravoKey));
    expect((await h.app.inject({ method: 'DELETE', url: `/api/v1/console-users/${bravoAdminId}`, headers: ownerB.headers })).statusCode).toBe(204);
    expect((await read(key)).statusCode).toBe(200);
    expect((await write(key, 'dev-3')).statusCode).toBe(201);

    // Nor can another tenant's owner reach this tenant's creator.
    const res = await h.app.inject({ method: 'PATCH', url: `/api/v1/console-users/${adminId}`, headers: ownerB.headers, payload: { disabled: true } });
    expect(res.statusCode).toBe(404);
    expect((await read(key)).statusCode).toBe(200);
  });

  it('documents the view with an example its schema accepts', () => {
    const example = ApiKeyViewSchema.meta()?.example;
    expect(example).toMatchObject({ status: 'active', created_by: expect.any(String) });
    expect(ApiKeyViewSchema.safeParse(example).success).toBe(true);
  });
});
