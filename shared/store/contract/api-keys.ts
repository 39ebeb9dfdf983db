/**
 * Contract: tenant API keys. The secret hash goes in and is found by, but never comes out.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { ApiKeyInput, Store } from '../port.js';
import { expectError, ids, must, T0, walk, type ContractState } from './harness.js';

let hashes = 0;
/** A distinct hash per call: the column is unique platform-wide. */
const nextHash = (): string => `sha256-${String(++hashes).padStart(8, '0')}-${'f'.repeat(40)}`;

const keyInput = (tenant_id: string, extra: Partial<ApiKeyInput> = {}): ApiKeyInput => ({
  tenant_id,
  name: 'ci',
  prefix: 'ep_live_ab12',
  scopes: ['devices:read', 'devices:write'],
  secret_hash: nextHash(),
  created_by: 'cu-1',
  expires_at: T0 + 86_400_000,
  ...extra,
});

export function describeApiKeyContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });

  describe('api keys', () => {
    it('creates and reads keys without ever returning the secret hash', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const input = keyInput(a, { secret_hash: 'hash-that-must-not-leak' });
      const key = await store.apiKeys.create(input);
      expect(key).toEqual({
        id: key.id,
        tenant_id: a,
        name: 'ci',
        prefix: 'ep_live_ab12',
        scopes: ['devices:read', 'devices:write'],
        created_by: 'cu-1',
        created_at: key.created_at,
        last_used_at: null,
        revoked_at: null,
        expires_at: T0 + 86_400_000,
      });
      const minimal = await store.apiKeys.create(keyInput(a, { scopes: [], created_by: null, expires_at: null }));
      expect(minimal).toMatchObject({ scopes: [], created_by: null, expires_at: null });
      expect(await store.apiKeys.get(a, key.id)).toEqual(key);
      expect(await store.apiKeys.get(a, 'no-such-key')).toBeNull();
      expect((await store.apiKeys.list(a)).items).toEqual([key, minimal]);

      const found = await store.apiKeys.findByHash('hash-that-must-not-leak');
      const everything = [key, await store.apiKeys.get(a, key.id), (await store.apiKeys.list(a)).items, found];
      expect(JSON.stringify(everything)).not.toContain('hash-that-must-not-leak');
      expect(found).not.toHaveProperty('secret_hash');
      expect(key).not.toHaveProperty('secret_hash');

      await expectError(store.apiKeys.create(keyInput('no-such-tenant')), 'NOT_FOUND', 'tenant_id');
      await expectError(store.apiKeys.create(keyInput(a, { secret_hash: 'hash-that-must-not-leak' })), 'CONFLICT', 'secret_hash');
      expect((await store.apiKeys.list(a)).items).toHaveLength(2);
    });

    it('is tenant-scoped: another tenant neither reads, lists nor revokes a key', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const ofA = await store.apiKeys.create(keyInput(a));
      const ofB = await store.apiKeys.create(keyInput(b));
      expect(await store.apiKeys.get(b, ofA.id)).toBeNull();
      expect((await store.apiKeys.list(b)).items).toEqual([ofB]);
      expect((await store.apiKeys.list(a)).items).toEqual([ofA]);
      expect(await store.apiKeys.list('no-such-tenant')).toEqual({ items: [], next_cursor: null });
      expect(await store.apiKeys.revoke(b, ofA.id, T0)).toBe(false);
      expect(await store.apiKeys.get(a, ofA.id)).toEqual(ofA);
    });

    it('lists ascending by id, page by page', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const made: string[] = [];
      for (let i = 0; i < 5; i++) made.push((await store.apiKeys.create(keyInput(a, { name: `k${i}` }))).id);
      const first = await store.apiKeys.list(a, { limit: 2 });
      expect(ids(first.items)).toEqual(made.slice(0, 2));
      expect(ids(await walk((cursor) => store.apiKeys.list(a, { limit: 2, cursor })))).toEqual(made);
    });

    it('revokes once: unknown, foreign or already revoked keys answer false', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const key = await store.apiKeys.create(keyInput(a));
      const sibling = await store.apiKeys.create(keyInput(a));
      expect(await store.apiKeys.revoke(a, key.id, T0 + 5)).toBe(true);
      expect(await store.apiKeys.get(a, key.id)).toEqual({ ...key, revoked_at: T0 + 5 });
      expect(await store.apiKeys.revoke(a, key.id, T0 + 9)).toBe(false);
      expect(must(await store.apiKeys.get(a, key.id)).revoked_at).toBe(T0 + 5);
      expect(await store.apiKeys.revoke(a, 'no-such-key', T0)).toBe(false);
      expect(await store.apiKeys.get(a, sibling.id)).toEqual(sibling);
      // Revoked keys stay listed (with revoked_at) so the tenant sees its history.
      expect((await store.apiKeys.list(a)).items).toEqual([{ ...key, revoked_at: T0 + 5 }, sibling]);
    });

    it('finds any tenant’s key by hash, revoked and expired ones included, and records its use', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const live = keyInput(a);
      const expired = keyInput(b, { expires_at: T0 - 1 });
      const keyA = await store.apiKeys.create(live);
      const keyB = await store.apiKeys.create(expired);
      expect(await store.apiKeys.findByHash(live.secret_hash)).toEqual(keyA);
      expect(await store.apiKeys.findByHash(expired.secret_hash)).toEqual(keyB);
      expect(await store.apiKeys.findByHash('no-such-hash')).toBeNull();

      await store.apiKeys.revoke(a, keyA.id, T0 + 1);
      expect(await store.apiKeys.findByHash(live.secret_hash)).toEqual({ ...keyA, revoked_at: T0 + 1 });

      await store.apiKeys.touch(keyB.id, T0 + 100);
      expect(await store.apiKeys.get(b, keyB.id)).toEqual({ ...keyB, last_used_at: T0 + 100 });
      await store.apiKeys.touch(keyB.id, T0 + 200);
      expect(await store.apiKeys.findByHash(expired.secret_hash)).toEqual({ ...keyB, last_used_at: T0 + 200 });
      await expect(store.apiKeys.touch('no-such-key', T0)).resolves.toBeUndefined();
      expect(must(await store.apiKeys.get(a, keyA.id)).last_used_at).toBeNull();
    });

    it('deleting a tenant deletes its keys', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const gone = keyInput(a);
      const kept = keyInput(b);
      await store.apiKeys.create(gone);
      const keyB = await store.apiKeys.create(kept);
      expect(await store.tenants.delete(a)).toBe(true);
      expect(await store.apiKeys.findByHash(gone.secret_hash)).toBeNull();
      expect(await store.apiKeys.list(a)).toEqual({ items: [], next_cursor: null });
      expect(await store.apiKeys.findByHash(kept.secret_hash)).toEqual(keyB);
    });
  });
}
