import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, runMigrations } from './migrations.js';
import { SqliteStore } from './sqlite-store.js';

const upTo3 = MIGRATIONS.filter((m) => m.version <= 3);

describe('migration 4: console account lifecycle, e-mails unique per tenant', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-migration4-'));
    file = join(dir, 'store.db');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps every account and its refresh tokens, enabled at session version 0', async () => {
    const db = new Database(file);
    db.pragma('foreign_keys = ON');
    runMigrations(db, () => 1, upTo3);
    db.exec(`INSERT INTO tenants (id, name, default_effect, policy_version, alert_window_s, created_at, updated_at)
      VALUES ('t1', 'acme', 'allow', 1, 300, 1, 1)`);
    db.exec(`INSERT INTO console_users (id, tenant_id, email, console_role, password_hash, created_at, updated_at)
      VALUES ('op', NULL, 'op@p.test', 'operator', 'h-op', 1, 1), ('u1', 't1', 'ann@acme.test', 'owner', 'h-1', 2, 3)`);
    db.exec(`INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
      VALUES ('rt1', 'u1', 'f1', 'th1', 100)`);
    db.close();

    const store = new SqliteStore({ file });
    await store.init();
    try {
      expect(await store.consoleUsers.getWithPassword('u1')).toEqual({
        id: 'u1',
        tenant_id: 't1',
        email: 'ann@acme.test',
        console_role: 'owner',
        disabled_at: null,
        session_version: 0,
        password_hash: 'h-1',
        created_at: 2,
        updated_at: 3,
      });
      expect(await store.refreshTokens.findByHash('th1')).toMatchObject({ user_id: 'u1' });
      // The platform-wide uniqueness is gone; the per-tenant one holds.
      const t2 = await store.tenants.create({ name: 'globex' });
      await expect(
        store.consoleUsers.create({ tenant_id: t2.id, email: 'ann@acme.test', console_role: 'owner', password_hash: 'x' }),
      ).resolves.toMatchObject({ tenant_id: t2.id });
      await expect(
        store.consoleUsers.create({ tenant_id: 't1', email: 'ANN@acme.test', console_role: 'viewer', password_hash: 'x' }),
      ).rejects.toMatchObject({ code: 'CONFLICT' });
      // The foreign key still points at the rebuilt table: deleting the account takes its tokens.
      await store.consoleUsers.create({ tenant_id: 't1', email: 'o2@acme.test', console_role: 'owner', password_hash: 'x' });
      expect(await store.consoleUsers.delete('t1', 'u1')).toEqual({ unassigned: [] });
      expect(await store.refreshTokens.findByHash('th1')).toBeNull();
    } finally {
      await store.close();
    }
  });

  it('looks e-mails up through an index', () => {
    const db = new Database(file);
    try {
      runMigrations(db, () => 1);
      const plan = (db.prepare("EXPLAIN QUERY PLAN SELECT id FROM console_users WHERE email = 'a' ORDER BY tenant_id IS NOT NULL, created_at, id").all() as Array<{ detail: string }>)
        .map((r) => r.detail)
        .join(' | ');
      expect(plan).toMatch(/USING INDEX console_users_(email|operator_email|tenant_email)/);
    } finally {
      db.close();
    }
  });
});
