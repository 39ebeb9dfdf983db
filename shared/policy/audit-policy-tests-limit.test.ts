/**
 * Audit: a run and a what-if read every stored policy test, so a tenant's tests are bounded when
 * they are created (MAX_POLICY_TESTS). The bound was applied only when reading: the tests past it
 * were stored, and answered 201, but silently never run. Both adapters: SQLite and MongoDB (over
 * the in-memory boundary double).
 */
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { C, type PolicyTestDoc } from '../store/mongodb/collections.js';
import { MemoryMongo } from '../store/mongodb/memory-mongo-double.js';
import { MongoStore } from '../store/mongodb/mongo-store.js';
import type { Store } from '../store/port.js';
import { expectError, walk } from '../store/contract/harness.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { createIdFactory } from '../ids.js';
import { MAX_POLICY_TESTS, newPolicyTest, type PolicyTest, type PolicyTestInput } from './policy-tests.js';

const newId = createIdFactory();

/** Stored tests written straight to the database in one go: 10,000 creates one by one take minutes. */
const stored = (tenantId: string, n: number): PolicyTest[] =>
  Array.from({ length: n }, (_, i) => newPolicyTest(tenantId, input(i), newId(), Date.now()));

interface Adapter {
  store: Store;
  seed: (tenantId: string, n: number) => Promise<void>;
  close: () => Promise<void>;
}

const adapters: Array<{ name: string; open: () => Promise<Adapter> }> = [
  {
    name: 'sqlite',
    open: async () => {
      const dir = await mkdtemp(join(tmpdir(), 'edgeplane-policy-tests-limit-'));
      const file = join(dir, 'store.db');
      const store = new SqliteStore({ file });
      await store.init();
      return {
        store,
        seed: async (tenantId, n) => {
          const db = new Database(file);
          const insert = db.prepare(
            `INSERT INTO policy_tests (id, tenant_id, name, device_id, user_id, app, action, expected_effect, expected_rule_id, created_at, updated_at)
             VALUES (@id, @tenant_id, @name, @device_id, @user_id, @app, @action, @expected_effect, @expected_rule_id, @created_at, @updated_at)`,
          );
          db.transaction((rows: PolicyTest[]) => rows.forEach((r) => insert.run(r)))(stored(tenantId, n));
          db.close();
        },
        close: async () => {
          await store.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'mongodb (boundary double)',
    open: async () => {
      const server = new MemoryMongo();
      const store = new MongoStore({ url: 'mongodb://double/policy-tests-limit', connector: server.connector });
      await store.init();
      return {
        store,
        seed: async (tenantId, n) => {
          await server.db('policy-tests-limit').collection<PolicyTestDoc>(C.policyTests).insertMany(stored(tenantId, n).map((t) => ({ _id: t.id, ...t })));
        },
        close: () => store.close(),
      };
    },
  },
];

const input = (i: number): PolicyTestInput => ({ name: `case ${i}`, user_id: `user-${i}`, app: 'dropbox', action: 'upload', expected_effect: 'deny' });

describe.each(adapters)('a tenant keeps at most MAX_POLICY_TESTS policy tests ($name)', ({ open }) => {
  let store: Store;
  let seed: Adapter['seed'];
  let close: () => Promise<void>;
  beforeEach(async () => {
    ({ store, seed, close } = await open());
  });
  afterEach(async () => {
    await close();
  });

  it('refuses the one past the bound with CONFLICT, per tenant, and takes one again after a delete', async () => {
    const t = await store.tenants.create({ name: 'acme' });
    const other = await store.tenants.create({ name: 'beta' });
    await seed(t.id, MAX_POLICY_TESTS - 1);
    const last = await store.policyTests.create(t.id, input(MAX_POLICY_TESTS - 1));

    await expectError(store.policyTests.create(t.id, input(MAX_POLICY_TESTS)), 'CONFLICT', `at most ${MAX_POLICY_TESTS} policy tests`);
    expect((await walk((cursor) => store.policyTests.list(t.id, { limit: 1000, cursor }))).length).toBe(MAX_POLICY_TESTS);
    // Another tenant's tests are its own count.
    await store.policyTests.create(other.id, input(0));
    expect(await store.policyTests.delete(t.id, last.id)).toBe(true);
    await store.policyTests.create(t.id, input(MAX_POLICY_TESTS));
  });
});
