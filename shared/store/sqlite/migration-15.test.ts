import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS, runMigrations } from './migrations.js';

const FAMILY_REVOKED = 'SELECT 1 AS one FROM refresh_tokens WHERE family_id = ? AND revoked_at IS NOT NULL LIMIT 1';

describe('migration 15: refresh token families by revocation', () => {
  it('answers "was this family revoked" by one seek of a covering index, and keeps every token', () => {
    const db = new Database(':memory:');
    try {
      db.pragma('foreign_keys = ON');
      runMigrations(db, () => 1, MIGRATIONS.filter((m) => m.version < 15));
      db.prepare(
        "INSERT INTO console_users (id, tenant_id, email, password_hash, console_role, created_at, updated_at) VALUES ('u-1', NULL, 'op@x.test', 'h', 'operator', 1, 1)",
      ).run();
      const insert = db.prepare("INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) VALUES (?, 'u-1', ?, ?, 10)");
      for (let i = 0; i < 3; i++) insert.run(`rt-${i}`, 'fam-1', `hash-${i}`);
      db.prepare("UPDATE refresh_tokens SET revoked_at = 5 WHERE id = 'rt-1'").run();
      expect(runMigrations(db, () => 1, MIGRATIONS.filter((m) => m.version <= 15)).applied).toEqual([15]);
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${FAMILY_REVOKED}`).all('fam-1') as Array<{ detail: string }>;
      expect(plan.map((p) => p.detail)).toEqual(['SEARCH refresh_tokens USING COVERING INDEX refresh_tokens_family_revoked (family_id=? AND revoked_at>?)']);
      expect(db.prepare(FAMILY_REVOKED).get('fam-1')).toEqual({ one: 1 });
      expect(db.prepare(FAMILY_REVOKED).get('fam-2')).toBeUndefined();
      expect(db.prepare('SELECT COUNT(*) AS n FROM refresh_tokens').get()).toEqual({ n: 3 });
    } finally {
      db.close();
    }
  });
});
