/**
 * Contract: natural keys. Role and policy names and device-user e-mails are unique per tenant,
 * whatever their case, spacing or width, and can be looked up by that key.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../port.js';
import { expectError, must, type ContractState } from './harness.js';

export function describeNameContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });

  describe('natural keys', () => {
    it('role and policy names are unique per tenant, case- and space-insensitively', async () => {
      const a = await store.tenants.create({ name: 'a' });
      const b = await store.tenants.create({ name: 'b' });
      const role = await store.roles.create(a.id, { name: 'Field Engineer' });
      await expectError(store.roles.create(a.id, { name: 'field  engineer ' }), 'CONFLICT', 'name');
      // Full-width letters are the same name once NFKC-normalised.
      await expectError(store.roles.create(a.id, { name: 'ＦＩＥＬＤ engineer' }), 'CONFLICT', 'name');
      await expect(store.roles.create(b.id, { name: 'Field Engineer' })).resolves.toMatchObject({ tenant_id: b.id });
      const policy = await store.policies.create(a.id, { name: 'No uploads' });
      await expectError(store.policies.create(a.id, { name: 'NO UPLOADS' }), 'CONFLICT', 'name');
      await expect(store.policies.create(a.id, { name: 'Field Engineer' })).resolves.toMatchObject({ name: 'Field Engineer' });
      expect((await store.roles.list(a.id)).items).toHaveLength(1);
      expect((await store.policies.list(a.id)).items).toHaveLength(2);

      expect(await store.roles.findByName(a.id, 'FIELD ENGINEER')).toEqual(role);
      expect(await store.policies.findByName(a.id, ' no uploads')).toEqual(policy);
      expect(await store.roles.findByName(a.id, 'nobody')).toBeNull();
      expect(await store.policies.findByName(b.id, 'No uploads')).toBeNull();
    });

    it('renaming onto a taken name is a CONFLICT and changes nothing; renaming frees the old name', async () => {
      const t = await store.tenants.create({ name: 'a' });
      const ops = await store.roles.create(t.id, { name: 'ops' });
      const dev = await store.roles.create(t.id, { name: 'dev' });
      await expectError(store.roles.update(t.id, dev.id, { name: 'OPS', description: 'x' }), 'CONFLICT', 'name');
      expect(await store.roles.get(t.id, dev.id)).toEqual(dev);
      await store.roles.update(t.id, ops.id, { name: 'operations' });
      expect(must(await store.roles.findByName(t.id, 'Operations')).id).toBe(ops.id);
      expect(await store.roles.findByName(t.id, 'ops')).toBeNull();
      await expect(store.roles.create(t.id, { name: 'ops' })).resolves.toMatchObject({ name: 'ops' });
      // Keeping one's own name (in another case) is not a conflict.
      await expect(store.roles.update(t.id, dev.id, { name: 'Dev' })).resolves.toMatchObject({ name: 'Dev' });

      const p1 = await store.policies.create(t.id, { name: 'p1' });
      await store.policies.create(t.id, { name: 'p2' });
      await expectError(store.policies.update(t.id, p1.id, { name: 'P2' }), 'CONFLICT', 'name');
      expect(await store.policies.get(t.id, p1.id)).toEqual(p1);
    });

    it('device-user e-mails are unique per tenant, case-insensitively; any number of users have none', async () => {
      const a = await store.tenants.create({ name: 'a' });
      const b = await store.tenants.create({ name: 'b' });
      const ada = await store.users.create(a.id, { name: 'Ada', email: 'Ada@Acme.example' });
      await expectError(store.users.create(a.id, { name: 'Ada 2', email: 'ada@acme.EXAMPLE' }), 'CONFLICT', 'email');
      await expect(store.users.create(b.id, { name: 'Ada', email: 'ada@acme.example' })).resolves.toMatchObject({ tenant_id: b.id });
      await store.users.create(a.id, { name: 'no mail 1' });
      const noMail = await store.users.create(a.id, { name: 'no mail 2', email: null });
      expect(ada.email).toBe('Ada@Acme.example');
      expect(await store.users.findByEmail(a.id, 'ADA@acme.example')).toEqual(ada);
      expect(await store.users.findByEmail(b.id, 'nobody@acme.example')).toBeNull();

      await expectError(store.users.update(a.id, noMail.id, { email: 'ada@ACME.example' }), 'CONFLICT', 'email');
      expect(await store.users.get(a.id, noMail.id)).toEqual(noMail);
      await store.users.update(a.id, ada.id, { email: null });
      expect(await store.users.findByEmail(a.id, 'ada@acme.example')).toBeNull();
      await expect(store.users.update(a.id, noMail.id, { email: 'ada@acme.example' })).resolves.toMatchObject({ email: 'ada@acme.example' });
      expect(must(await store.users.findByEmail(a.id, 'Ada@Acme.Example')).id).toBe(noMail.id);
    });
  });
}
