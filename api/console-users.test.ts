/**
 * Console account lifecycle over the API: role changes, disabling, deletion and password changes
 * end the account's sessions at once (access tokens refused at the next request, refresh tokens
 * revoked, 'console-user.revoked' published); who may manage whom; a tenant keeps an active owner;
 * operators manage tenant owners; and an e-mail another tenant uses is accepted like a fresh one.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BusEvents } from '../shared/bus.js';
import type { ConsoleUser } from '../shared/domain.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, startHarness, type Harness, type Session } from './test-support.js';

const NEW_PASSWORD = 'a brand new long passphrase';

let h: Harness;
let operator: Session;
let owner: Session;
let tenantId: string;
let revoked: Array<BusEvents['console-user.revoked']>;

const call = (session: Session | null, method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, payload?: object) =>
  h.app.inject({ method, url, ...(session && { headers: session.headers }), ...(payload && { payload }) });

async function createUser(by: Session, email: string, role: string): Promise<ConsoleUser> {
  const res = await call(by, 'POST', '/api/v1/console-users', { email, password: PASSWORD, console_role: role });
  expect(res.statusCode, res.body).toBe(201);
  return json<{ user: ConsoleUser }>(res).user;
}

const me = (s: Session) => call(s, 'GET', '/api/v1/me');
const refresh = (s: Session) => call(null, 'POST', '/api/v1/auth/refresh', { refresh_token: s.refresh });
const signIn = (email: string, password: string, extra: object = {}) =>
  call(null, 'POST', '/api/v1/auth/login', { email, password, ...extra });

beforeEach(async () => {
  h = await startHarness({ rateLimitPerMin: 1_000_000 });
  revoked = [];
  h.bus.subscribe('console-user.revoked', (e) => revoked.push(e), undefined, 'cluster');
  operator = await login(h.app, OPERATOR_EMAIL);
  const t = await createTenant(h.app, operator, 'Acme');
  [owner, tenantId] = [t.owner, t.tenantId];
});
afterEach(async () => {
  await h.close();
});

describe('ending a console account’s sessions', () => {
  it.each([
    ['a role change', { console_role: 'viewer' }, 'role_changed'],
    ['disabling', { disabled: true }, 'disabled'],
  ] as const)('%s refuses its access token at once and revokes its refresh tokens', async (_name, patch, reason) => {
    const user = await createUser(owner, 'ann@acme.test', 'admin');
    const session = await login(h.app, 'ann@acme.test');
    const other = await login(h.app, 'ann@acme.test');
    expect((await me(session)).statusCode).toBe(200);

    const res = await call(owner, 'PATCH', `/api/v1/console-users/${user.id}`, patch);
    expect(res.statusCode, res.body).toBe(200);
    const after = json<{ user: ConsoleUser }>(res).user;
    expect(after.session_version).toBe(1);
    expect('disabled' in patch ? after.disabled_at !== null : after.console_role === patch.console_role).toBe(true);

    // The token is still well signed and unexpired: the account's session version refuses it.
    expect(json(await me(session))).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    expect((await refresh(session)).statusCode).toBe(401);
    expect((await refresh(other)).statusCode).toBe(401);
    expect(revoked).toEqual([{ user_id: user.id, tenant_id: tenantId, reason }]);
    // The owner's own session is untouched.
    expect((await me(owner)).statusCode).toBe(200);
  });

  it('a disabled account cannot sign in (same answer as a wrong password) until enabled again', async () => {
    const user = await createUser(owner, 'ann@acme.test', 'analyst');
    await call(owner, 'PATCH', `/api/v1/console-users/${user.id}`, { disabled: true });
    const refusedRight = await signIn('ann@acme.test', PASSWORD);
    const refusedWrong = await signIn('ann@acme.test', 'not the password');
    expect(refusedRight.statusCode).toBe(401);
    expect(refusedRight.body).toBe(refusedWrong.body);

    const enabled = await call(owner, 'PATCH', `/api/v1/console-users/${user.id}`, { disabled: false });
    expect(json<{ user: ConsoleUser }>(enabled).user.disabled_at).toBeNull();
    expect((await signIn('ann@acme.test', PASSWORD)).statusCode).toBe(200);
    // Enabling ends nothing (there was nothing to end): one event, for the disable.
    expect(revoked.map((e) => e.reason)).toEqual(['disabled']);
  });

  it('deleting an account refuses its tokens and frees its e-mail in the tenant', async () => {
    const user = await createUser(owner, 'ann@acme.test', 'viewer');
    const session = await login(h.app, 'ann@acme.test');
    expect((await call(owner, 'DELETE', `/api/v1/console-users/${user.id}`)).statusCode).toBe(204);
    expect((await me(session)).statusCode).toBe(401);
    expect((await refresh(session)).statusCode).toBe(401);
    expect((await call(owner, 'GET', `/api/v1/console-users/${user.id}`)).statusCode).toBe(404);
    expect((await call(owner, 'DELETE', `/api/v1/console-users/${user.id}`)).statusCode).toBe(404);
    expect(revoked).toEqual([{ user_id: user.id, tenant_id: tenantId, reason: 'deleted' }]);
    await createUser(owner, 'ann@acme.test', 'viewer');
  });

  it('an owner resets a password: the old one and every session stop, the new one signs in', async () => {
    const user = await createUser(owner, 'ann@acme.test', 'admin');
    const session = await login(h.app, 'ann@acme.test');
    const res = await call(owner, 'PUT', `/api/v1/console-users/${user.id}/password`, { password: NEW_PASSWORD });
    expect(res.statusCode, res.body).toBe(204);
    expect((await me(session)).statusCode).toBe(401);
    expect((await refresh(session)).statusCode).toBe(401);
    expect((await signIn('ann@acme.test', PASSWORD)).statusCode).toBe(401);
    expect((await signIn('ann@acme.test', NEW_PASSWORD)).statusCode).toBe(200);
    expect(revoked.map((e) => e.reason)).toEqual(['password_changed']);
    // Too short a password names the field.
    const short = await call(owner, 'PUT', `/api/v1/console-users/${user.id}/password`, { password: 'short' });
    expect(json(short)).toMatchObject({ error: { code: 'VALIDATION_FAILED', issues: [{ field: 'body.password' }] } });
  });

  it('a user changes their own password: other sessions end, the caller gets a fresh pair', async () => {
    await createUser(owner, 'ann@acme.test', 'viewer');
    const first = await login(h.app, 'ann@acme.test');
    const second = await login(h.app, 'ann@acme.test');
    const wrong = await call(second, 'POST', '/api/v1/me/password', { current_password: 'not it at all', new_password: NEW_PASSWORD });
    expect(json(wrong)).toMatchObject({ error: { code: 'INVALID_CREDENTIALS', issues: [{ field: 'body.current_password' }] } });
    expect((await me(first)).statusCode).toBe(200);

    const res = await call(second, 'POST', '/api/v1/me/password', { current_password: PASSWORD, new_password: NEW_PASSWORD });
    expect(res.statusCode, res.body).toBe(200);
    const pair = json<{ access_token: string; refresh_token: string }>(res);
    expect((await me(first)).statusCode).toBe(401);
    expect((await me(second)).statusCode).toBe(401);
    expect((await refresh(first)).statusCode).toBe(401);
    const fresh: Session = { access: pair.access_token, refresh: pair.refresh_token, headers: { authorization: `Bearer ${pair.access_token}` } };
    expect((await me(fresh)).statusCode).toBe(200);
    expect((await refresh(fresh)).statusCode).toBe(200);
    expect((await signIn('ann@acme.test', NEW_PASSWORD)).statusCode).toBe(200);
    expect(revoked.map((e) => e.reason)).toEqual(['password_changed']);
  });

  it('an API key cannot change a password or manage accounts', async () => {
    const created = json<{ key: string }>(
      await call(owner, 'POST', '/api/v1/api-keys', { name: 'k', scopes: ['session:read', 'console-users:read'] }),
    );
    const key = { access: created.key, refresh: '', headers: { authorization: `Bearer ${created.key}` } };
    const res = await call(key, 'POST', '/api/v1/me/password', { current_password: PASSWORD, new_password: NEW_PASSWORD });
    expect(res.statusCode).toBe(403);
    const scope = await call(owner, 'POST', '/api/v1/api-keys', { name: 'k2', scopes: ['console-users:credentials'] });
    expect(scope.statusCode).toBe(400);
  });
});

describe('who manages whom', () => {
  it('admins manage only roles they could grant; only owners set passwords', async () => {
    const admin = await createUser(owner, 'admin@acme.test', 'admin');
    const adminSession = await login(h.app, 'admin@acme.test');
    const viewer = await createUser(owner, 'viewer@acme.test', 'viewer');
    const ownerId = json<{ user: ConsoleUser }>(await me(owner)).user.id;

    expect((await call(adminSession, 'PATCH', `/api/v1/console-users/${viewer.id}`, { console_role: 'analyst' })).statusCode).toBe(200);
    expect((await call(adminSession, 'PATCH', `/api/v1/console-users/${viewer.id}`, { console_role: 'owner' })).statusCode).toBe(403);
    expect((await call(adminSession, 'PATCH', `/api/v1/console-users/${ownerId}`, { disabled: true })).statusCode).toBe(403);
    expect((await call(adminSession, 'DELETE', `/api/v1/console-users/${ownerId}`)).statusCode).toBe(403);
    expect((await call(adminSession, 'PUT', `/api/v1/console-users/${viewer.id}/password`, { password: NEW_PASSWORD })).statusCode).toBe(403);
    const viewerSession = await login(h.app, 'viewer@acme.test');
    expect((await call(viewerSession, 'PATCH', `/api/v1/console-users/${admin.id}`, { disabled: true })).statusCode).toBe(403);
  });

  it('a tenant keeps an active owner: the last one cannot be disabled, demoted or deleted', async () => {
    const ownerId = json<{ user: ConsoleUser }>(await me(owner)).user.id;
    for (const [method, payload] of [
      ['PATCH', { disabled: true }],
      ['PATCH', { console_role: 'admin' }],
      ['DELETE', undefined],
    ] as const) {
      const res = await call(owner, method, `/api/v1/console-users/${ownerId}`, payload);
      expect(json(res), `${method} ${JSON.stringify(payload)}`).toMatchObject({ error: { code: 'CONFLICT' } });
    }
    expect((await me(owner)).statusCode).toBe(200);
    expect(revoked).toEqual([]);
  });

  it('another tenant’s accounts are 404 for every operation', async () => {
    const other = await createTenant(h.app, operator, 'Globex');
    const theirs = await createUser(other.owner, 'bob@globex.test', 'viewer');
    for (const [method, url, payload] of [
      ['GET', `/api/v1/console-users/${theirs.id}`, undefined],
      ['PATCH', `/api/v1/console-users/${theirs.id}`, { disabled: true }],
      ['DELETE', `/api/v1/console-users/${theirs.id}`, undefined],
      ['PUT', `/api/v1/console-users/${theirs.id}/password`, { password: NEW_PASSWORD }],
    ] as const) {
      expect((await call(owner, method, url, payload)).statusCode, `${method} ${url}`).toBe(404);
    }
    expect((await login(h.app, 'bob@globex.test')).access).toBeTruthy();
  });
});

describe('operators and tenant owners', () => {
  it('list, add, disable, reset and delete a tenant’s owners; other accounts are not theirs', async () => {
    const ownerId = json<{ user: ConsoleUser }>(await me(owner)).user.id;
    const admin = await createUser(owner, 'admin@acme.test', 'admin');
    const list = json<{ users: ConsoleUser[] }>(await call(operator, 'GET', `/api/v1/tenants/${tenantId}/owners`));
    expect(list.users.map((u) => u.id)).toEqual([ownerId]);

    const added = await call(operator, 'POST', `/api/v1/tenants/${tenantId}/owners`, { email: 'second@acme.test', password: PASSWORD });
    expect(added.statusCode, added.body).toBe(201);
    const second = json<{ user: ConsoleUser }>(added).user;
    expect(second).toMatchObject({ tenant_id: tenantId, console_role: 'owner' });

    expect((await call(operator, 'PATCH', `/api/v1/tenants/${tenantId}/owners/${ownerId}`, { disabled: true })).statusCode).toBe(200);
    expect((await me(owner)).statusCode).toBe(401);
    expect((await call(operator, 'PUT', `/api/v1/tenants/${tenantId}/owners/${second.id}/password`, { password: NEW_PASSWORD })).statusCode).toBe(204);
    expect((await signIn('second@acme.test', NEW_PASSWORD)).statusCode).toBe(200);
    // The last active owner stays.
    expect(json(await call(operator, 'DELETE', `/api/v1/tenants/${tenantId}/owners/${second.id}`))).toMatchObject({ error: { code: 'CONFLICT' } });
    expect((await call(operator, 'DELETE', `/api/v1/tenants/${tenantId}/owners/${ownerId}`)).statusCode).toBe(204);
    expect(revoked.map((e) => [e.user_id, e.reason])).toEqual([
      [ownerId, 'disabled'],
      [second.id, 'password_changed'],
      [ownerId, 'deleted'],
    ]);
    // An admin is the tenant's business, and tenants' own users cannot reach these routes.
    expect((await call(operator, 'PATCH', `/api/v1/tenants/${tenantId}/owners/${admin.id}`, { disabled: true })).statusCode).toBe(404);
    expect((await call(operator, 'GET', `/api/v1/tenants/no-such-tenant/owners`)).statusCode).toBe(404);
    const secondSession = await login(h.app, 'second@acme.test', NEW_PASSWORD);
    expect((await call(secondSession, 'GET', `/api/v1/tenants/${tenantId}/owners`)).statusCode).toBe(403);
  });
});

describe('e-mails of other tenants', () => {
  it('creating an account with another tenant’s e-mail answers like a fresh one, and both sign in', async () => {
    const other = await createTenant(h.app, operator, 'Globex');
    const fresh = await call(owner, 'POST', '/api/v1/console-users', { email: 'nobody-else@x.test', password: PASSWORD, console_role: 'viewer' });
    const taken = await call(owner, 'POST', '/api/v1/console-users', { email: other.ownerEmail, password: NEW_PASSWORD, console_role: 'viewer' });
    expect(taken.statusCode).toBe(fresh.statusCode);
    expect(Object.keys(json<{ user: object }>(taken).user)).toEqual(Object.keys(json<{ user: object }>(fresh).user));
    const mine = json<{ user: ConsoleUser }>(taken).user;
    expect(mine.tenant_id).toBe(tenantId);

    // Each password signs in to its own account; an explicit tenant picks one as well.
    const asMine = json<{ user: ConsoleUser }>(await me(await login(h.app, other.ownerEmail, NEW_PASSWORD))).user;
    expect(asMine.id).toBe(mine.id);
    const asTheirs = json<{ user: ConsoleUser }>(await me(await login(h.app, other.ownerEmail, PASSWORD))).user;
    expect(asTheirs.tenant_id).toBe(other.tenantId);
    expect((await signIn(other.ownerEmail, PASSWORD, { tenant_id: tenantId })).statusCode).toBe(401);
    expect((await signIn(other.ownerEmail, NEW_PASSWORD, { tenant_id: tenantId })).statusCode).toBe(200);

    // The accounts share one salt: sign-in derives one key whatever their number.
    const hashes = await h.store.consoleUsers.findAllByEmail(other.ownerEmail);
    expect(new Set(hashes.map((u) => u.password_hash.split('$')[4])).size).toBe(1);
    // Within one tenant the e-mail is taken: that the caller can see for itself.
    const again = await call(owner, 'POST', '/api/v1/console-users', { email: other.ownerEmail, password: PASSWORD, console_role: 'viewer' });
    expect(json(again)).toMatchObject({ error: { code: 'CONFLICT', issues: [{ field: 'body.email' }] } });
  });

  it('a failed sign-in is audited in every tenant that has the e-mail, a success only in its own', async () => {
    const other = await createTenant(h.app, operator, 'Globex');
    await call(owner, 'POST', '/api/v1/console-users', { email: other.ownerEmail, password: NEW_PASSWORD, console_role: 'viewer' });
    await h.app.auditTrail.flush();
    const count = async (t: string) => (await h.store.audit.list(t, { action: 'auth.login' })).items.length;
    const [mineBefore, theirsBefore] = [await count(tenantId), await count(other.tenantId)];
    expect((await signIn(other.ownerEmail, 'wrong password here')).statusCode).toBe(401);
    await h.app.auditTrail.flush();
    expect([await count(tenantId), await count(other.tenantId)]).toEqual([mineBefore + 1, theirsBefore + 1]);
    await login(h.app, other.ownerEmail, NEW_PASSWORD);
    await h.app.auditTrail.flush();
    expect([await count(tenantId), await count(other.tenantId)]).toEqual([mineBefore + 2, theirsBefore + 1]);
  });
});
