import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { contentFromSnapshot } from '../../policy/content.js';
import { MIGRATIONS, runMigrations } from './migrations.js';
import { SqliteStore } from './sqlite-store.js';

const before6 = MIGRATIONS.filter((m) => m.version < 6);

describe('migration 6: policy version history and policy tests', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-migration6-'));
    file = join(dir, 'store.db');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("starts each existing tenant's history at its current version; earlier versions have none", async () => {
    const db = new Database(file);
    db.pragma('foreign_keys = ON');
    runMigrations(db, () => 1, before6);
    db.exec(`INSERT INTO tenants (id, name, default_effect, policy_version, alert_window_s, created_at, updated_at, plan_id)
      VALUES ('t1', 'acme', 'deny', 7, 300, 1, 1, 'free')`);
    db.exec(`INSERT INTO users (id, tenant_id, name, created_at, updated_at) VALUES ('u1', 't1', 'ann', 1, 1)`);
    db.exec(`INSERT INTO roles (id, tenant_id, name, created_at, updated_at) VALUES ('r1', 't1', 'sales', 1, 1)`);
    db.exec(`INSERT INTO policies (id, tenant_id, name, severity, created_at, updated_at) VALUES ('p1', 't1', 'no uploads', 'high', 1, 1)`);
    db.exec(`INSERT INTO rules (id, tenant_id, policy_id, app, action, permission, created_at, updated_at) VALUES ('ru1', 't1', 'p1', 'dropbox', '*', 'deny', 1, 1)`);
    db.exec(`INSERT INTO user_roles (tenant_id, user_id, role_id, created_at) VALUES ('t1', 'u1', 'r1', 1)`);
    db.exec(`INSERT INTO role_policies (tenant_id, role_id, policy_id, created_at) VALUES ('t1', 'r1', 'p1', 1)`);
    db.exec(`INSERT INTO devices (id, tenant_id, user_id, name, created_at, updated_at) VALUES ('d1', 't1', 'u1', 'phone', 1, 1)`);
    db.close();

    const store = new SqliteStore({ file, now: () => 50 });
    await store.init();
    try {
      const live = contentFromSnapshot((await store.policySnapshot('t1'))!);
      expect(await store.policyVersions.content('t1', 7)).toEqual(live);
      expect(await store.policyVersions.content('t1', 6)).toBeNull();
      expect(await store.policyVersions.storage('t1')).toMatchObject({ versions: 1, first_version: 7, entries: 6 });
      expect((await store.policyVersions.get('t1', 7))!).toMatchObject({ created_at: 50, change_count: 6, restored_from: null, actor: null });
      // The next change is version 8, with only its own change.
      await store.rules.update('t1', 'ru1', { permission: 'allow' });
      expect((await store.policyVersions.get('t1', 8))!.changes).toEqual([{ kind: 'rule', key: 'ru1', op: 'changed' }]);
      expect((await store.policyVersions.content('t1', 7))!.rules[0]!.permission).toBe('deny');
    } finally {
      await store.close();
    }
  });

  it('re-examines a scope through the indexes (the adapter names the partial ones)', () => {
    const db = new Database(file);
    try {
      runMigrations(db, () => 1);
      const plan = (sql: string) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>).map((r) => r.detail).join(' | ');
      expect(plan("SELECT * FROM policy_history INDEXED BY policy_history_open_ref1 WHERE tenant_id = 't' AND kind = 'device' AND valid_to IS NULL AND ref1 = 'u'")).toMatch(
        /USING INDEX policy_history_open_ref1/,
      );
      expect(plan("SELECT * FROM policy_history WHERE tenant_id = 't' AND kind = 'rule' AND valid_to IS NULL AND key = 'r'")).toMatch(
        /USING (INDEX policy_history_open|PRIMARY KEY)/,
      );
    } finally {
      db.close();
    }
  });
});
