import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS, runMigrations } from './migrations.js';

const indexes = (db: Database.Database): string[] =>
  db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'webhook_deliveries' AND sql IS NOT NULL ORDER BY name").pluck().all() as string[];

describe('migration 12: webhook deliveries without the cross-tenant due index', () => {
  it('drops the index nothing reads and keeps the per-tenant one dueFair uses', () => {
    const db = new Database(':memory:');
    try {
      db.pragma('foreign_keys = ON');
      runMigrations(db, () => 1, MIGRATIONS.filter((m) => m.version < 12));
      expect(indexes(db)).toContain('webhook_deliveries_due');
      expect(runMigrations(db, () => 1, MIGRATIONS.filter((m) => m.version <= 12)).applied).toEqual([12]);
      expect(indexes(db)).toEqual(['webhook_deliveries_tenant_due', 'webhook_deliveries_webhook']);
    } finally {
      db.close();
    }
  });
});
