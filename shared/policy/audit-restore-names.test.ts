/**
 * Audit: a restore that recreates deleted policies keeps their names under the natural-key rule
 * every other write follows (unique per tenant, case- and space-insensitive, findable by name),
 * on both adapters: SQLite and MongoDB (over the in-memory boundary double).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../store/port.js';
import { bothAdapters } from '../store/contract/adapters.js';
import { expectError, must } from '../store/contract/harness.js';

const adapters = bothAdapters('restore-names');

describe.each(adapters)('restoring deleted policies keeps their names unique ($name)', ({ open }) => {
  let store: Store;
  let close: () => Promise<void>;
  beforeEach(async () => {
    ({ store, close } = await open());
  });
  afterEach(async () => {
    await close();
  });

  it('recreates two deleted policies findable by name, and a new policy cannot take either name', async () => {
    const t = await store.tenants.create({ name: 'acme' });
    const uploads = await store.policies.create(t.id, { name: 'No uploads', severity: 'high' });
    const calls = await store.policies.create(t.id, { name: 'No calls' });
    const n = must(await store.tenants.get(t.id)).policy_version;
    await store.policies.delete(t.id, uploads.id);
    await store.policies.delete(t.id, calls.id);

    const result = must(await store.policyVersions.restore(t.id, n, null));
    expect(result.created).toBe(true);
    expect((await store.policies.findByName(t.id, '  no   UPLOADS '))?.id).toBe(uploads.id);
    expect((await store.policies.findByName(t.id, 'No calls'))?.id).toBe(calls.id);
    await expectError(store.policies.create(t.id, { name: 'no uploads' }), 'CONFLICT', 'name');
  });

  it('refuses with CONFLICT, changing nothing, when a surviving policy holds the name now', async () => {
    const t = await store.tenants.create({ name: 'acme' });
    const uploads = await store.policies.create(t.id, { name: 'No uploads' });
    const other = await store.policies.create(t.id, { name: 'Other' });
    const n = must(await store.tenants.get(t.id)).policy_version;
    // Renames make no version: the history keeps "No uploads" for the deleted policy.
    await store.policies.update(t.id, uploads.id, { name: 'Old uploads' });
    await store.policies.delete(t.id, uploads.id);
    await store.policies.update(t.id, other.id, { name: 'No Uploads' });
    const before = must(await store.tenants.get(t.id)).policy_version;

    await expectError(store.policyVersions.restore(t.id, n, null), 'CONFLICT', 'No uploads');
    expect(must(await store.tenants.get(t.id)).policy_version).toBe(before);
    expect(await store.policies.get(t.id, uploads.id)).toBeNull();
    expect((await store.policies.findByName(t.id, 'no uploads'))?.id).toBe(other.id);
  });
});
