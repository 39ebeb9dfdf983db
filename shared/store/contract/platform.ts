/**
 * Contract: pagination, refresh tokens, and the platform's towers, carriers and credentials.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Alert, User } from '../../domain.js';
import { isEdgeplaneError } from '../../errors.js';
import type { Store } from '../port.js';
import {
  consoleUser,
  denyEvent,
  expectError,
  ids,
  must,
  seedWorld,
  sortedIds,
  T0,
  usageEvent,
  walk,
  type ContractState,
} from './harness.js';

export function describePlatformContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });
  const { recordBatch } = state;

  describe('pagination', () => {
    it('defaults to 50, clamps to 1..1000 and walks every row once, ascending by id', async () => {
      const t = await store.tenants.create({ name: 'a' });
      const created: User[] = [];
      for (let i = 0; i < 57; i++) created.push(await store.users.create(t.id, { name: `u${i}` }));
      const expected = sortedIds(created);
      const firstPage = await store.users.list(t.id);
      expect(firstPage.items).toHaveLength(50);
      expect(firstPage.next_cursor).not.toBeNull();
      expect((await store.users.list(t.id, { limit: 0 })).items).toHaveLength(1);
      expect((await store.users.list(t.id, { limit: -5 })).items).toHaveLength(1);
      const walked = await walk((cursor) => store.users.list(t.id, { limit: 7, cursor }));
      expect(ids(walked)).toEqual(expected);
      const exact = await store.users.list(t.id, { limit: 57 });
      expect(exact.next_cursor).toBeNull();
      const other = await store.tenants.create({ name: 'b' });
      expect(await walk((cursor) => store.users.list(other.id, { limit: 7, cursor }))).toEqual([]);
    });

    it('walks usage and alerts newest first and caps a page at 1000', async () => {
      const w = await seedWorld(store, 'a');
      const events = Array.from({ length: 1001 }, () => usageEvent(w));
      const res = await recordBatch(w, events);
      expect(res.inserted).toBe(1001);
      const capped = await store.usage.list(w.tenant.id, { limit: 5000 });
      expect(capped.items).toHaveLength(1000);
      expect(capped.next_cursor).not.toBeNull();
      const walked = await walk((cursor) => store.usage.list(w.tenant.id, { limit: 333, cursor }));
      expect(ids(walked)).toEqual(ids(events).reverse());

      const devices: string[] = [];
      for (let i = 0; i < 5; i++) devices.push((await store.devices.create(w.tenant.id, { name: `d${i}` })).id);
      for (const d of devices) await recordBatch(w, [denyEvent(w, { device_id: d })]);
      const alerts: Alert[] = await walk((cursor) => store.alerts.list(w.tenant.id, { limit: 2, cursor }));
      expect(alerts.map((a) => a.device_id)).toEqual([...devices].reverse());
    });

    it('rejects a cursor it did not issue', async () => {
      const t = await store.tenants.create({ name: 'a' });
      const err = await store.users.list(t.id, { cursor: '!!not-a-cursor!!' }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isEdgeplaneError(err) && err.status === 400).toBe(true);
    });
  });

  describe('refresh tokens', () => {
    it('consumes once, detects reuse and revokes a family', async () => {
      const u = await store.consoleUsers.create(consoleUser(null, 'op@x.test'));
      const base = { user_id: u.id, family_id: 'fam-1', expires_at: T0 + 1000 };
      await store.refreshTokens.create({ ...base, id: 'rt-1', token_hash: 'hash-1' });
      await store.refreshTokens.create({ ...base, id: 'rt-2', token_hash: 'hash-2' });
      await store.refreshTokens.create({ ...base, id: 'rt-3', family_id: 'fam-2', token_hash: 'hash-3' });
      expect(await store.refreshTokens.findByHash('hash-1')).toEqual({
        ...base,
        id: 'rt-1',
        token_hash: 'hash-1',
        used_at: null,
        revoked_at: null,
      });
      expect(await store.refreshTokens.findByHash('nope')).toBeNull();
      expect(await store.refreshTokens.consume('rt-1', T0)).toBe(true);
      expect(await store.refreshTokens.consume('rt-1', T0 + 1)).toBe(false);
      expect(must(await store.refreshTokens.findByHash('hash-1')).used_at).toBe(T0);
      await store.refreshTokens.revokeFamily('fam-1', T0 + 2);
      expect(await store.refreshTokens.consume('rt-2', T0 + 3)).toBe(false);
      expect(must(await store.refreshTokens.findByHash('hash-2')).revoked_at).toBe(T0 + 2);
      expect(await store.refreshTokens.consume('rt-3', T0 + 3)).toBe(true);
      expect(await store.refreshTokens.consume('no-such-token', T0)).toBe(false);
      const orphan = { ...base, user_id: 'ghost', id: 'rt-9', token_hash: 'hash-9' };
      await expectError(store.refreshTokens.create(orphan), 'NOT_FOUND', 'user_id');
    });

    it('tells whether a family was revoked, by any of its tokens, apart from every other family', async () => {
      const u = await store.consoleUsers.create(consoleUser(null, 'op@x.test'));
      const base = { user_id: u.id, expires_at: T0 + 1000 };
      await store.refreshTokens.create({ ...base, id: 'rt-a1', family_id: 'fam-a', token_hash: 'hash-a1' });
      await store.refreshTokens.create({ ...base, id: 'rt-b1', family_id: 'fam-b', token_hash: 'hash-b1' });
      expect(await store.refreshTokens.familyRevoked('fam-a')).toBe(false);
      expect(await store.refreshTokens.familyRevoked('no-such-family')).toBe(false);
      // A consumed (refreshed) token is not a revoked one.
      expect(await store.refreshTokens.consume('rt-a1', T0)).toBe(true);
      expect(await store.refreshTokens.familyRevoked('fam-a')).toBe(false);
      await store.refreshTokens.revokeFamily('fam-a', T0 + 1);
      // A token the family gained after the revocation (a refresh racing the sign-out) does not bring it back.
      await store.refreshTokens.create({ ...base, id: 'rt-a2', family_id: 'fam-a', token_hash: 'hash-a2' });
      expect(await store.refreshTokens.familyRevoked('fam-a')).toBe(true);
      expect(await store.refreshTokens.familyRevoked('fam-b')).toBe(false);
    });
  });

  describe('towers, carriers and credentials', () => {
    it('creates a tenant and its first owner together, or neither', async () => {
      const { tenant, owner } = await store.tenants.createWithOwner({ name: 'together' }, { email: 'First.Owner@together.test', password_hash: 'h' });
      expect(await store.tenants.get(tenant.id)).toEqual(tenant);
      expect(owner).toMatchObject({ tenant_id: tenant.id, email: 'first.owner@together.test', console_role: 'owner', disabled_at: null });
      expect(await store.consoleUsers.get(owner.id)).toEqual(owner);
      expect((await store.consoleUsers.getWithPassword(owner.id))?.password_hash).toBe('h');
      // The tenant part refused: no account is left either.
      await expectError(store.tenants.createWithOwner({ name: 'nowhere', plan_id: 'no-such-plan' }, { email: 'lost@nowhere.test', password_hash: 'h' }), 'NOT_FOUND', 'plan');
      expect(await store.consoleUsers.findByEmail('lost@nowhere.test')).toBeNull();
      expect((await store.tenants.list({ limit: 1000 })).items.map((t) => t.name)).not.toContain('nowhere');
    });

    it('keeps tower CRUD and status', async () => {
      const tower = await store.towers.create({ id: 'tw-1', name: 'North', lat: 52.5, lon: 13.4, radius_m: 800 });
      expect(tower).toMatchObject({ id: 'tw-1', state: 'unknown', agent_version: null, last_seen: null, radius_m: 800 });
      await expectError(store.towers.create({ id: 'tw-1', name: 'Dup' }), 'CONFLICT', 'id');
      const generated = await store.towers.create({ name: 'South' });
      expect(sortedIds((await store.towers.list()).items)).toEqual(['tw-1', generated.id].sort());
      expect(await store.towers.update('tw-1', { name: 'N', lat: null })).toMatchObject({ name: 'N', lat: null, lon: 13.4 });
      expect(await store.towers.update('ghost', { name: 'x' })).toBeNull();
      expect(await store.towers.setStatus('tw-1', { state: 'online', agent_version: '1.2.3', at: T0 })).toBe(true);
      expect(await store.towers.get('tw-1')).toMatchObject({ state: 'online', agent_version: '1.2.3', last_seen: T0 });
      expect(await store.towers.setStatus('ghost', { state: 'online', agent_version: null, at: T0 })).toBe(false);
      // Processed out of order: an older status (an old connection's will) does not replace a newer one.
      expect(await store.towers.setStatus('tw-1', { state: 'offline', agent_version: null, at: T0 - 1 })).toBe(true);
      expect(await store.towers.get('tw-1')).toMatchObject({ state: 'online', last_seen: T0 });
      expect(await store.towers.setStatus('tw-1', { state: 'offline', agent_version: null, at: T0 + 1 })).toBe(true);
      expect(await store.towers.get('tw-1')).toMatchObject({ state: 'offline', agent_version: '1.2.3', last_seen: T0 + 1 });
    });

    it('links carriers both ways and cleans up when a tower goes', async () => {
      await store.towers.create({ id: 'tw-1', name: 'North' });
      await store.towers.create({ id: 'tw-2', name: 'South' });
      const carrier = await store.carriers.create({ name: 'Telco', mcc_mnc: '262-01' });
      expect(await store.carriers.get(carrier.id)).toEqual(carrier);
      const renamed = await store.carriers.update(carrier.id, { name: 'Telco AG' });
      expect(renamed).toMatchObject({ name: 'Telco AG', mcc_mnc: '262-01' });
      expect(await store.towerCarriers.link('tw-1', carrier.id)).toBe(true);
      expect(await store.towerCarriers.link('tw-1', carrier.id)).toBe(false);
      expect(await store.towerCarriers.link('tw-2', carrier.id)).toBe(true);
      expect(ids(await store.towerCarriers.carriersOfTower('tw-1'))).toEqual([carrier.id]);
      expect(ids(await store.towerCarriers.towersOfCarrier(carrier.id))).toEqual(['tw-1', 'tw-2']);
      await expectError(store.towerCarriers.link('ghost', carrier.id), 'NOT_FOUND', 'tower_id');
      await expectError(store.towerCarriers.link('tw-1', 'ghost'), 'NOT_FOUND', 'carrier_id');
      await expectError(store.towerCarriers.carriersOfTower('ghost'), 'NOT_FOUND', 'tower_id');
      await expectError(store.towerCarriers.towersOfCarrier('ghost'), 'NOT_FOUND', 'carrier_id');
      expect(await store.towerCarriers.unlink('tw-2', carrier.id)).toBe(true);
      expect(await store.towerCarriers.unlink('tw-2', carrier.id)).toBe(false);

      await store.towerCredentials.create({ id: 'cred-1', tower_id: 'tw-1', secret_hash: 's' });
      expect(await store.towers.delete('tw-1')).toBe(true);
      expect(await store.towers.delete('tw-1')).toBe(false);
      expect(await store.towerCredentials.get('cred-1')).toBeNull();
      expect(await store.towerCarriers.towersOfCarrier(carrier.id)).toEqual([]);
      expect(await store.carriers.delete(carrier.id)).toBe(true);
      expect(await store.carriers.get(carrier.id)).toBeNull();
    });

    it('manages tower credentials', async () => {
      await store.towers.create({ id: 'tw-1', name: 'North' });
      const cred = await store.towerCredentials.create({ id: 'cred-1', tower_id: 'tw-1', secret_hash: 'sh' });
      expect(cred).toMatchObject({ id: 'cred-1', tower_id: 'tw-1', revoked_at: null, last_used_at: null });
      expect(cred).not.toHaveProperty('secret_hash');
      const orphan = { id: 'cred-2', tower_id: 'ghost', secret_hash: 'x' };
      await expectError(store.towerCredentials.create(orphan), 'NOT_FOUND', 'tower_id');
      await expectError(store.towerCredentials.create({ id: 'cred-1', tower_id: 'tw-1', secret_hash: 'x' }), 'CONFLICT');
      expect(await store.towerCredentials.get('cred-1')).toEqual({ ...cred, secret_hash: 'sh' });
      await store.towerCredentials.touch('cred-1', T0);
      expect(must(await store.towerCredentials.get('cred-1')).last_used_at).toBe(T0);
      expect(await store.towerCredentials.listForTower('tw-1')).toEqual([{ ...cred, last_used_at: T0 }]);
      expect(await store.towerCredentials.revoke('cred-1', T0 + 1)).toBe(true);
      expect(await store.towerCredentials.revoke('cred-1', T0 + 2)).toBe(false);
      expect(await store.towerCredentials.revoke('ghost', T0)).toBe(false);
      expect(must(await store.towerCredentials.get('cred-1')).revoked_at).toBe(T0 + 1);
    });

    it('lists the towers where a tenant’s devices were seen', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      for (const id of ['tw-1', 'tw-2', 'tw-3', 'tw-4']) await store.towers.create({ id, name: id });
      await recordBatch(a, [usageEvent(a, { tower_id: 'tw-1' })]);
      const stranger = usageEvent(a, { tower_id: 'tw-2', device_id: 'stranger', user_id: null, reason: 'unknown_device' });
      await recordBatch(a, [stranger]);
      await recordBatch(b, [usageEvent(b, { tower_id: 'tw-3' })]);
      const unclaimed = [{ device_id: 'x', first_seen: T0, last_seen: T0, count: 1 }];
      await store.discovered.recordReports('tw-4', 'batch-1', unclaimed, T0);
      expect(ids((await store.towers.listSeenByTenant(a.tenant.id)).items)).toEqual(['tw-1', 'tw-2']);
      const walked = await walk((cursor) => store.towers.listSeenByTenant(a.tenant.id, { limit: 1, cursor }));
      expect(ids(walked)).toEqual(['tw-1', 'tw-2']);
      expect(ids((await store.towers.listSeenByTenant(b.tenant.id)).items)).toEqual(['tw-3']);
    });
  });
}
