/**
 * Contract: bulk onboarding (directory.import). All or nothing, every bad row reported at once,
 * idempotent on e-mail, device id and role name, one policy bump per effective import.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { isEdgeplaneError } from '../../errors.js';
import type { DirectoryRow, Store } from '../port.js';
import { expectError, must, type ContractState } from './harness.js';

export function describeDirectoryContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });
  const { expectBump } = state;

  const rowsFor = (n: number, roles: string[]): DirectoryRow[] =>
    Array.from({ length: n }, (_, i) => ({
      user_email: `user${i}@acme.example`,
      user_name: `User ${i}`,
      roles,
      device_id: `imp-${i}`,
      device_name: `phone ${i}`,
      device_os: 'android',
    }));

  async function problems(p: Promise<unknown>): Promise<Array<{ field: string; message: string }>> {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    if (!isEdgeplaneError(err)) throw new Error(`expected an EdgeplaneError, got ${String(err)}`);
    expect(err.code).toBe('VALIDATION_FAILED');
    return err.issues ?? [];
  }

  describe('directory import', () => {
    it('creates users, devices and role assignments in one step, then changes nothing when repeated', async () => {
      const t = await store.tenants.create({ name: 'acme', plan_id: 'premium' });
      const eng = await store.roles.create(t.id, { name: 'Engineer' });
      const sales = await store.roles.create(t.id, { name: 'sales' });
      const rows = [...rowsFor(3, ['engineer', 'SALES']), { user_email: 'USER0@acme.example', device_id: 'imp-extra' }];
      const first = await expectBump(t.id, 1, () => store.directory.import(t.id, rows));
      expect(first).toMatchObject({
        dry_run: false,
        users: { created: 3, updated: 0, unchanged: 1 },
        devices: { created: 4, updated: 0, unchanged: 0 },
        role_assignments: { created: 6, unchanged: 0 },
      });
      expect(first.rows[3]).toMatchObject({ row: 3, user: 'unchanged', device: 'created', device_id: 'imp-extra', roles_added: 0 });
      const user0 = must(await store.users.findByEmail(t.id, 'user0@acme.example'));
      expect(user0).toMatchObject({ name: 'User 0', email: 'user0@acme.example' });
      expect(first.rows[0]!.user_id).toBe(user0.id);
      expect((await store.userRoles.rolesOfUser(t.id, user0.id)).map((r) => r.id).sort()).toEqual([eng.id, sales.id].sort());
      expect(await store.devices.get(t.id, 'imp-extra')).toMatchObject({ user_id: user0.id, name: 'imp-extra', os: null });
      expect(await store.devices.get(t.id, 'imp-1')).toMatchObject({ name: 'phone 1', os: 'android' });
      expect(await store.devices.tenantOf('imp-2')).toBe(t.id);

      const again = await expectBump(t.id, 0, () => store.directory.import(t.id, rows));
      expect(again).toMatchObject({
        users: { created: 0, updated: 0, unchanged: 4 },
        devices: { created: 0, updated: 0, unchanged: 4 },
        role_assignments: { created: 0, unchanged: 6 },
      });
      expect((await store.users.list(t.id)).items).toHaveLength(3);
      expect((await store.devices.list(t.id)).items).toHaveLength(4);
    });

    it('updates what a row changes and adds roles, never removing any', async () => {
      const t = await store.tenants.create({ name: 'acme' });
      const eng = await store.roles.create(t.id, { name: 'engineer' });
      const sales = await store.roles.create(t.id, { name: 'sales' });
      const ada = await store.users.create(t.id, { name: 'Ada', email: 'ada@acme.example' });
      const bob = await store.users.create(t.id, { name: 'Bob', email: 'bob@acme.example' });
      await store.userRoles.assign(t.id, ada.id, eng.id);
      await store.devices.create(t.id, { id: 'd1', name: 'old', user_id: bob.id });
      const res = await expectBump(t.id, 1, () =>
        store.directory.import(t.id, [{ user_email: 'ADA@acme.example', user_name: 'Ada L.', roles: ['sales'], device_id: 'd1' }]),
      );
      expect(res.rows).toEqual([{ row: 0, user: 'updated', user_id: ada.id, device: 'updated', device_id: 'd1', roles_added: 1 }]);
      expect(await store.users.get(t.id, ada.id)).toMatchObject({ name: 'Ada L.', email: 'ada@acme.example' });
      expect((await store.userRoles.rolesOfUser(t.id, ada.id)).map((r) => r.id).sort()).toEqual([eng.id, sales.id].sort());
      expect(await store.devices.get(t.id, 'd1')).toMatchObject({ user_id: ada.id, name: 'old' });
      // A device-only row leaves its owner alone.
      const renamed = await expectBump(t.id, 0, () => store.directory.import(t.id, [{ device_id: 'd1', device_name: 'new' }]));
      expect(renamed.devices).toEqual({ created: 0, updated: 1, unchanged: 0 });
      expect(await store.devices.get(t.id, 'd1')).toMatchObject({ user_id: ada.id, name: 'new' });
    });

    it('reports every bad row at once and writes nothing', async () => {
      const t = await store.tenants.create({ name: 'acme', plan_id: 'premium' });
      const other = await store.tenants.create({ name: 'other' });
      await store.roles.create(t.id, { name: 'engineer' });
      await store.devices.create(other.id, { id: 'taken', name: 'x' });
      const issues = await problems(
        store.directory.import(t.id, [
          { user_email: 'a@acme.example', roles: ['engineer', 'pilot'], device_id: 'ok-1' },
          { device_name: 'orphan' },
          { user_email: 'b@acme.example', device_id: 'taken' },
          { user_email: 'c@acme.example', device_id: 'ok-1' },
          { user_name: 'no key', roles: ['engineer'] },
          { user_email: 'a@acme.example', user_name: 'A' },
          { user_email: 'A@acme.example', user_name: 'Another name' },
        ]),
      );
      expect(issues.map((i) => i.field).sort()).toEqual(
        ['rows.0.roles', 'rows.1', 'rows.1.device_name', 'rows.2.device_id', 'rows.3.device_id', 'rows.4', 'rows.4.user_name', 'rows.4.roles', 'rows.6.user_name'].sort(),
      );
      expect(issues.find((i) => i.field === 'rows.0.roles')?.message).toContain('pilot');
      expect((await store.users.list(t.id)).items).toEqual([]);
      expect((await store.devices.list(t.id)).items).toEqual([]);
      expect(await store.devices.tenantOf('ok-1')).toBeNull();
    });

    it('refuses an import that would pass the plan’s device limit, whole', async () => {
      const t = await store.tenants.create({ name: 'acme' });
      const max = must(await store.plans.get('free')).max_devices!;
      await store.devices.create(t.id, { id: 'existing', name: 'x' });
      const rows = Array.from({ length: max }, (_, i) => ({ device_id: `bulk-${i}` }));
      await expectError(store.directory.import(t.id, rows), 'PLAN_LIMIT_EXCEEDED', `${max} devices`);
      expect((await store.devices.list(t.id, { limit: 1000 })).items).toHaveLength(1);
      // Existing devices do not count twice.
      await expect(store.directory.import(t.id, [...rows.slice(0, max - 1), { device_id: 'existing' }])).resolves.toMatchObject({
        devices: { created: max - 1, unchanged: 1 },
      });
    });

    it('a dry run answers the same outcomes and writes nothing; an unknown tenant is NOT_FOUND', async () => {
      const t = await store.tenants.create({ name: 'acme' });
      await store.roles.create(t.id, { name: 'engineer' });
      const rows = rowsFor(2, ['engineer']);
      const version = must(await store.tenants.get(t.id)).policy_version;
      const dry = await store.directory.import(t.id, rows, { dryRun: true });
      expect(dry).toMatchObject({ dry_run: true, users: { created: 2 }, devices: { created: 2 }, role_assignments: { created: 2 } });
      expect((await store.users.list(t.id)).items).toEqual([]);
      expect(must(await store.tenants.get(t.id)).policy_version).toBe(version);
      const real = await store.directory.import(t.id, rows);
      expect({ ...real, dry_run: true, rows: real.rows.map((r) => ({ ...r, user_id: null })) }).toEqual({
        ...dry,
        rows: dry.rows.map((r) => ({ ...r, user_id: null })),
      });
      await expectError(store.directory.import('no-such-tenant', rows), 'NOT_FOUND', 'tenant_id');
      await expectError(store.directory.import('no-such-tenant', rows, { dryRun: true }), 'NOT_FOUND', 'tenant_id');
    });

    it('imports into the caller’s tenant only: same e-mails elsewhere are other people', async () => {
      const a = await store.tenants.create({ name: 'a' });
      const b = await store.tenants.create({ name: 'b' });
      await store.roles.create(a.id, { name: 'engineer' });
      const bobInB = await store.users.create(b.id, { name: 'Bob of B', email: 'bob@x.example' });
      await store.roles.create(b.id, { name: 'pilot' });
      const issues = await problems(store.directory.import(a.id, [{ user_email: 'bob@x.example', roles: ['pilot'] }]));
      expect(issues.map((i) => i.field)).toEqual(['rows.0.roles']);
      const res = await store.directory.import(a.id, [{ user_email: 'bob@x.example', roles: ['engineer'] }]);
      expect(res.users.created).toBe(1);
      expect(res.rows[0]!.user_id).not.toBe(bobInB.id);
      expect(await store.users.get(b.id, bobInB.id)).toEqual(bobInB);
    });
  });
}
