/**
 * Contract: console accounts. E-mails are unique per tenant and among operators, not across the
 * platform; role, disable and password changes end the account's sessions in the same write; a
 * tenant always keeps an active owner.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { ConsoleRole } from '../../domain.js';
import type { Store } from '../port.js';
import { expectError, ids, must, T0, type ContractState } from './harness.js';

export function describeConsoleUserContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });

  const account = (tenantId: string | null, email: string, role: ConsoleRole, hash = 'h') =>
    store.consoleUsers.create({ tenant_id: tenantId, email, console_role: role, password_hash: hash });

  /** A refresh token of `userId` in its own family; returns its id. */
  let tokens = 0;
  const refreshToken = async (userId: string): Promise<string> => {
    const id = `rt-${++tokens}`;
    await store.refreshTokens.create({ id, user_id: userId, family_id: `fam-${id}`, token_hash: `hash-${id}`, expires_at: T0 + 1e9 });
    return id;
  };
  const revoked = async (tokenId: string): Promise<boolean> =>
    must(await store.refreshTokens.findByHash(`hash-${tokenId}`)).revoked_at !== null;

  describe('console users', () => {
    it('e-mails are case-insensitive and unique per tenant and among operators only', async () => {
      const a = await store.tenants.create({ name: 'a' });
      const b = await store.tenants.create({ name: 'b' });
      const u = await account(a.id, 'Ann@Example.COM', 'admin', 'hash-a');
      expect(u).toEqual({
        id: u.id,
        tenant_id: a.id,
        email: 'ann@example.com',
        console_role: 'admin',
        disabled_at: null,
        session_version: 0,
        created_at: u.created_at,
        updated_at: u.created_at,
      });
      expect(u).not.toHaveProperty('password_hash');
      await expectError(account(a.id, 'ann@example.com ', 'viewer'), 'CONFLICT', 'email');
      // Another tenant, or the operators, may use the same e-mail: nothing reveals the first.
      const inB = await account(b.id, 'ANN@example.com', 'viewer', 'hash-b');
      const op = await account(null, 'ann@example.com', 'operator', 'hash-op');
      await expectError(account(null, 'Ann@example.com', 'operator'), 'CONFLICT', 'email');

      const all = await store.consoleUsers.findAllByEmail(' ann@EXAMPLE.com');
      // Sign-in order: the operator first, then the oldest account.
      expect(ids(all)).toEqual([op.id, u.id, inB.id]);
      expect(all.map((x) => x.password_hash)).toEqual(['hash-op', 'hash-a', 'hash-b']);
      expect(await store.consoleUsers.findByEmail('ann@example.com')).toEqual({ ...op, password_hash: 'hash-op' });
      expect(await store.consoleUsers.findAllByEmail('nobody@example.com')).toEqual([]);
      expect(await store.consoleUsers.findByEmail('nobody@example.com')).toBeNull();
      expect(await store.consoleUsers.get(u.id)).toEqual(u);
      expect(await store.consoleUsers.getWithPassword(inB.id)).toEqual({ ...inB, password_hash: 'hash-b' });
      expect(ids((await store.consoleUsers.list(null)).items)).toEqual([op.id]);
      expect(ids((await store.consoleUsers.list(a.id)).items)).toEqual([u.id]);
      const owner = await account(a.id, 'boss@a.test', 'owner');
      expect(ids((await store.consoleUsers.list(a.id, { console_role: 'owner' })).items)).toEqual([owner.id]);
      expect(ids((await store.consoleUsers.list(b.id, { console_role: 'owner' })).items)).toEqual([]);
      await expectError(account('no-such-tenant', 'x@y.z', 'admin'), 'NOT_FOUND', 'tenant_id');
    });

    it('role, disable and password changes end sessions: version bumped, refresh tokens revoked', async () => {
      const t = await store.tenants.create({ name: 't' });
      await account(t.id, 'owner@t.test', 'owner');
      const u = await account(t.id, 'u@t.test', 'admin', 'old-hash');
      const other = await account(t.id, 'other@t.test', 'viewer');
      const otherToken = await refreshToken(other.id);

      let token = await refreshToken(u.id);
      const renamed = must(await store.consoleUsers.update(t.id, u.id, { console_role: 'admin' }));
      expect(renamed.session_version).toBe(0);
      expect(await revoked(token)).toBe(false);

      const demoted = must(await store.consoleUsers.update(t.id, u.id, { console_role: 'viewer' }));
      expect(demoted).toMatchObject({ console_role: 'viewer', session_version: 1, disabled_at: null });
      expect(demoted.updated_at).toBeGreaterThanOrEqual(u.updated_at);
      expect(await revoked(token)).toBe(true);

      token = await refreshToken(u.id);
      const disabled = must(await store.consoleUsers.update(t.id, u.id, { disabled: true }));
      expect(disabled.session_version).toBe(2);
      expect(disabled.disabled_at).not.toBeNull();
      expect(await revoked(token)).toBe(true);
      // Disabling again keeps the first disabled_at and ends nothing more.
      const again = must(await store.consoleUsers.update(t.id, u.id, { disabled: true }));
      expect(again).toMatchObject({ disabled_at: disabled.disabled_at, session_version: 2 });
      expect(must(await store.consoleUsers.update(t.id, u.id, { disabled: false })).disabled_at).toBeNull();

      token = await refreshToken(u.id);
      const changed = must(await store.consoleUsers.update(t.id, u.id, { password_hash: 'new-hash' }));
      expect(changed.session_version).toBe(4);
      expect(await revoked(token)).toBe(true);
      expect(must(await store.consoleUsers.getWithPassword(u.id)).password_hash).toBe('new-hash');
      expect(await store.consoleUsers.get(u.id)).toEqual(changed);
      // Nobody else's sessions were touched.
      expect(await revoked(otherToken)).toBe(false);
      expect(must(await store.consoleUsers.get(other.id)).session_version).toBe(0);
    });

    it('changes and deletions stay within the scope: another tenant’s account is not found', async () => {
      const a = await store.tenants.create({ name: 'a' });
      const b = await store.tenants.create({ name: 'b' });
      await account(a.id, 'owner@a.test', 'owner');
      const inA = await account(a.id, 'x@a.test', 'viewer');
      const op = await account(null, 'op@p.test', 'operator');
      expect(await store.consoleUsers.update(b.id, inA.id, { disabled: true })).toBeNull();
      expect(await store.consoleUsers.update(null, inA.id, { disabled: true })).toBeNull();
      expect(await store.consoleUsers.update(a.id, op.id, { disabled: true })).toBeNull();
      expect(await store.consoleUsers.delete(b.id, inA.id)).toBeNull();
      expect(await store.consoleUsers.delete(a.id, 'no-such-user')).toBeNull();
      expect(must(await store.consoleUsers.get(inA.id)).disabled_at).toBeNull();
      expect(must(await store.consoleUsers.update(null, op.id, { password_hash: 'p' })).session_version).toBe(1);
    });

    it('deleting an account deletes its refresh tokens', async () => {
      const t = await store.tenants.create({ name: 't' });
      await account(t.id, 'owner@t.test', 'owner');
      const u = await account(t.id, 'u@t.test', 'analyst');
      const token = await refreshToken(u.id);
      expect(await store.consoleUsers.delete(t.id, u.id)).toEqual({ unassigned: [] });
      expect(await store.consoleUsers.get(u.id)).toBeNull();
      expect(await store.refreshTokens.findByHash(`hash-${token}`)).toBeNull();
      expect(await store.consoleUsers.delete(t.id, u.id)).toBeNull();
      // The e-mail is free again in that tenant.
      await expect(account(t.id, 'u@t.test', 'viewer')).resolves.toMatchObject({ email: 'u@t.test' });
    });

    it('a tenant keeps at least one active owner', async () => {
      const t = await store.tenants.create({ name: 't' });
      const o1 = await account(t.id, 'o1@t.test', 'owner');
      await expectError(store.consoleUsers.update(t.id, o1.id, { disabled: true }), 'CONFLICT', 'owner');
      await expectError(store.consoleUsers.update(t.id, o1.id, { console_role: 'admin' }), 'CONFLICT', 'owner');
      await expectError(store.consoleUsers.delete(t.id, o1.id), 'CONFLICT', 'owner');
      // A password change keeps the owner an owner.
      await expect(store.consoleUsers.update(t.id, o1.id, { password_hash: 'p2' })).resolves.toMatchObject({ console_role: 'owner' });

      const o2 = await account(t.id, 'o2@t.test', 'owner');
      await store.consoleUsers.update(t.id, o2.id, { disabled: true });
      // A disabled owner does not count.
      await expectError(store.consoleUsers.delete(t.id, o1.id), 'CONFLICT', 'owner');
      await store.consoleUsers.update(t.id, o2.id, { disabled: false });
      expect(await store.consoleUsers.delete(t.id, o1.id)).toEqual({ unassigned: [] });
      expect(must(await store.consoleUsers.get(o2.id)).console_role).toBe('owner');
      // Nothing was half-written by the refusals.
      expect(ids((await store.consoleUsers.list(t.id)).items)).toEqual([o2.id]);
    });
  });
}
