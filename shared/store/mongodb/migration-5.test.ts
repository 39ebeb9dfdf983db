/**
 * MongoDB migration 5 over the in-memory BOUNDARY DOUBLE: documents written before it (no
 * natural keys, duplicate names and e-mails) are deduplicated exactly as SQLite's migration 5
 * does, audited, and the unique indexes then hold. Running it again at the next start is a no-op.
 */
import { describe, expect, it } from 'vitest';
import { isEdgeplaneError } from '../../errors.js';
import type { Document } from './db-like.js';
import { MemoryMongo } from './memory-mongo-double.js';
import { MongoStore } from './mongo-store.js';
import { MONGO_MIGRATIONS, runMongoMigrations } from './schema.js';

const T = 1_700_000_000_000;
const DB = 'm5';

async function seedOld(server: MemoryMongo): Promise<void> {
  const db = server.db(DB);
  // Schema as version 1 left it, then documents as the version-1 adapter wrote them.
  await runMongoMigrations(db, () => T, MONGO_MIGRATIONS.filter((m) => m.version < 5));
  const tenant = (id: string, name: string) => ({ _id: id, id, name, plan_id: 'free', default_effect: 'allow', policy_version: 1, alert_window_s: 300, audit_retention_days: 365, created_at: T, updated_at: T });
  await db.collection<Document & { _id: string }>('tenants').insertMany([tenant('t1', 'acme'), tenant('t2', 'globex')]);
  const named = (id: string, tenant_id: string, name: string, at: number) => ({ _id: id, id, tenant_id, name, description: null, created_at: at, updated_at: at });
  await db.collection<Document & { _id: string }>('roles').insertMany([named('r1', 't1', 'Engineer', T), named('r2', 't1', 'engineer', T + 1), named('r3', 't2', 'engineer', T)]);
  await db.collection<Document & { _id: string }>('policies').insertMany([{ ...named('p1', 't1', 'DLP', T), severity: 'high' }, { ...named('p2', 't1', ' dlp', T + 1), severity: 'low' }]);
  const user = (id: string, tenant_id: string, email: string | null, at: number) => ({ _id: id, id, tenant_id, name: id, email, created_at: at, updated_at: at });
  await db.collection<Document & { _id: string }>('users').insertMany([user('u1', 't1', 'ada@acme.example', T), user('u2', 't1', 'Ada@ACME.example', T + 1), user('u3', 't1', null, T), user('u4', 't2', 'ada@acme.example', T)]);
}

describe('MongoDB migration 5 (over the boundary double)', () => {
  it('deduplicates old documents like SQLite, audits each change, then enforces the keys', async () => {
    const server = new MemoryMongo();
    await seedOld(server);
    const store = new MongoStore({ url: `mongodb://double/${DB}`, connector: server.connector, now: () => T + 100 });
    await store.init();
    try {
      expect((await store.roles.list('t1')).items.map((r) => [r.id, r.name])).toEqual([
        ['r1', 'Engineer'],
        ['r2', 'engineer (2)'],
      ]);
      expect((await store.policies.list('t1')).items.map((p) => [p.id, p.name])).toEqual([
        ['p1', 'DLP'],
        ['p2', 'dlp (2)'],
      ]);
      expect((await store.users.list('t1')).items.map((u) => [u.id, u.email])).toEqual([
        ['u1', 'ada@acme.example'],
        ['u2', null],
        ['u3', null],
      ]);
      expect((await store.users.list('t2')).items.map((u) => u.email)).toEqual(['ada@acme.example']);
      const audit = (await store.audit.list('t1', { limit: 100 })).items;
      expect(audit.map((a) => [a.action, a.resource_id, a.after]).sort()).toEqual(
        [
          ['policies.deduplicate', 'p2', { name: 'dlp (2)' }],
          ['roles.deduplicate', 'r2', { name: 'engineer (2)' }],
          ['users.deduplicate', 'u2', { email: null }],
        ].sort(),
      );
      const err = await store.roles.create('t1', { name: 'ENGINEER' }).catch((e: unknown) => e);
      expect(isEdgeplaneError(err) && err.code).toBe('CONFLICT');
      expect((await store.users.findByEmail('t1', 'ADA@acme.example'))?.id).toBe('u1');
      expect((await store.roles.findByName('t2', 'Engineer'))?.id).toBe('r3');
      expect(await store.roles.get('t1', 'r1')).not.toHaveProperty('name_key');
    } finally {
      await store.close();
    }

    const again = new MongoStore({ url: `mongodb://double/${DB}`, connector: server.connector, now: () => T + 200 });
    await again.init();
    try {
      expect((await again.audit.list('t1', { limit: 100 })).items).toHaveLength(3);
    } finally {
      await again.close();
    }
  });
});
