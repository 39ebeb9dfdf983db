/**
 * Audit (concurrent requests): admins never touch owners' accounts, also when an account becomes
 * an owner while an admin's request about it is in flight.
 *
 * The console-users routes decided whether the caller may manage the account on a copy read
 * before the write; the store then changed or deleted the account whatever its role had become.
 * An owner promoting an admin to owner at the same moment as another admin deleted (or disabled)
 * that admin let the second admin delete (or disable) an owner: 204/200 where the same request a
 * moment later is a 403. The role is now checked again inside the store's transaction.
 *
 * Likewise an operator, who manages a tenant's owners only, could delete an account the tenant had
 * just made an admin (404 for the same request a moment later).
 *
 * The interleaving is made deterministic: the promotion is committed through the API between the
 * admin's route check and its store call (fault injection on that one store call).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ConsoleUser } from '../shared/domain.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let tenantId: string;
let owner: Session;
let admin: Session;
let seq = 0;

beforeAll(async () => {
  h = await startHarness();
  operator = await login(h.app, OPERATOR_EMAIL);
  const created = await createTenant(h.app, operator, 'RoleRace');
  tenantId = created.tenantId;
  owner = created.owner;
  await post(h.app, owner, '/api/v1/console-users', { email: 'admin@rolerace.test', password: PASSWORD, console_role: 'admin' });
  admin = await login(h.app, 'admin@rolerace.test');
});

afterAll(async () => {
  vi.restoreAllMocks();
  await h?.close();
});

async function newAdminAccount(): Promise<string> {
  const email = `target-${++seq}@rolerace.test`;
  return (await post<{ user: ConsoleUser }>(h.app, owner, '/api/v1/console-users', { email, password: PASSWORD, console_role: 'admin' })).user.id;
}

/** The owner makes `id` an owner, through the API, and it commits. */
async function promote(id: string): Promise<void> {
  await setRole(id, 'owner');
}

async function setRole(id: string, console_role: string): Promise<void> {
  const res = await h.app.inject({ method: 'PATCH', url: `/api/v1/console-users/${id}`, headers: owner.headers, payload: { console_role } });
  expect(res.statusCode, res.body).toBe(200);
}

async function accountOf(id: string): Promise<ConsoleUser | null> {
  const res = await h.app.inject({ method: 'GET', url: `/api/v1/console-users/${id}`, headers: owner.headers });
  return res.statusCode === 404 ? null : json<{ user: ConsoleUser }>(res).user;
}

describe('a request about a console account racing a change of its role', () => {
  it('DELETE: the admin is refused (403) and the new owner stays', async () => {
    const target = await newAdminAccount();
    const repo = h.store.consoleUsers;
    const original = repo.delete.bind(repo);
    vi.spyOn(repo, 'delete').mockImplementationOnce(async (scope, id, check) => {
      await promote(target);
      return original(scope, id, check);
    });
    const res = await h.app.inject({ method: 'DELETE', url: `/api/v1/console-users/${target}`, headers: admin.headers });
    vi.restoreAllMocks();
    expect(res.statusCode, res.body).toBe(403);
    expect(await accountOf(target)).toMatchObject({ id: target, console_role: 'owner', disabled_at: null });
  });

  it('PATCH disable: the admin is refused (403) and the new owner stays enabled, its sessions intact', async () => {
    const target = await newAdminAccount();
    const repo = h.store.consoleUsers;
    const original = repo.update.bind(repo);
    // Only the admin's call is intercepted; the promotion inside it goes to the real update.
    vi.spyOn(repo, 'update').mockImplementationOnce(async (scope, id, patch, check) => {
      await promote(target);
      return original(scope, id, patch, check);
    });
    const res = await h.app.inject({ method: 'PATCH', url: `/api/v1/console-users/${target}`, headers: admin.headers, payload: { disabled: true } });
    vi.restoreAllMocks();
    expect(res.statusCode, res.body).toBe(403);
    const after = await accountOf(target);
    expect(after).toMatchObject({ console_role: 'owner', disabled_at: null });
  });

  it('operator DELETE of an owner the tenant demoted meanwhile: 404, the account stays', async () => {
    const target = await newAdminAccount();
    await setRole(target, 'owner');
    const repo = h.store.consoleUsers;
    const original = repo.delete.bind(repo);
    vi.spyOn(repo, 'delete').mockImplementationOnce(async (scope, id, check) => {
      await setRole(target, 'admin');
      return original(scope, id, check);
    });
    const res = await h.app.inject({ method: 'DELETE', url: `/api/v1/tenants/${tenantId}/owners/${target}`, headers: operator.headers });
    vi.restoreAllMocks();
    expect(res.statusCode, res.body).toBe(404);
    expect(await accountOf(target)).toMatchObject({ id: target, console_role: 'admin' });
  });
});
