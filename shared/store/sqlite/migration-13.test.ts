import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS, runMigrations } from './migrations.js';

describe('migration 13: RADIUS clients over RADIUS/TLS', () => {
  it('keeps every existing client, on RADIUS/UDP (no RadSec identity)', () => {
    const db = new Database(':memory:');
    try {
      db.pragma('foreign_keys = ON');
      runMigrations(db, () => 1, MIGRATIONS.filter((m) => m.version < 13));
      db.prepare("INSERT INTO towers (id, name, state, created_at, updated_at) VALUES ('tw-1', 'One', 'unknown', 1, 1)").run();
      db.prepare("INSERT INTO radius_clients (id, nas_identifier, tower_id, secret, created_at, updated_at) VALUES ('rc-1', 'nas-1', 'tw-1', 'a-secret-of-16-chars', 1, 1)").run();
      expect(runMigrations(db, () => 1, MIGRATIONS.filter((m) => m.version <= 13)).applied).toEqual([13]);
      expect(db.prepare('SELECT id, nas_identifier, secret, radsec_identity FROM radius_clients').all()).toEqual([
        { id: 'rc-1', nas_identifier: 'nas-1', secret: 'a-secret-of-16-chars', radsec_identity: null },
      ]);
    } finally {
      db.close();
    }
  });
});
