import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS, runMigrations } from './migrations.js';

const COLUMNS = 'id, tenant_id, tower_id, device_id, session_id, status, started_at, last_update_at, stopped_at, input_octets, output_octets, session_time_s, terminate_cause, records';

describe('migration 14: device sessions per NAS', () => {
  it('keeps every existing session (naming no NAS) and lets two NASes of a tower use one session id', () => {
    const db = new Database(':memory:');
    try {
      db.pragma('foreign_keys = ON');
      runMigrations(db, () => 1, MIGRATIONS.filter((m) => m.version < 14));
      db.exec(`INSERT INTO tenants (id, name, default_effect, policy_version, alert_window_s, created_at, updated_at)
        VALUES ('t-1', 'One', 'allow', 1, 0, 1, 1)`);
      db.exec(`INSERT INTO device_sessions (${COLUMNS}) VALUES ('s-1', 't-1', 'tw-1', 'dev-1', '00000001', 'active', 5, 6, NULL, 10, 20, NULL, NULL, 2)`);
      expect(runMigrations(db, () => 1, MIGRATIONS.filter((m) => m.version <= 14)).applied).toEqual([14]);

      expect(db.prepare(`SELECT nas, ${COLUMNS} FROM device_sessions`).all()).toEqual([
        { nas: '', id: 's-1', tenant_id: 't-1', tower_id: 'tw-1', device_id: 'dev-1', session_id: '00000001', status: 'active', started_at: 5, last_update_at: 6, stopped_at: null, input_octets: 10, output_octets: 20, session_time_s: null, terminate_cause: null, records: 2 },
      ]);
      const insert = db.prepare(`INSERT INTO device_sessions (nas, ${COLUMNS}) VALUES (?, ?, 't-1', 'tw-1', 'dev-2', '00000001', 'active', 5, 6, NULL, 0, 0, NULL, NULL, 1)`);
      insert.run('nas-a', 's-2');
      insert.run('nas-b', 's-3');
      expect(() => insert.run('nas-b', 's-4')).toThrow(/UNIQUE/);
      const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'device_sessions' AND sql IS NOT NULL ORDER BY name").pluck().all();
      expect(indexes).toEqual(['device_sessions_device', 'device_sessions_retention', 'device_sessions_tenant', 'device_sessions_tower', 'device_sessions_tower_active']);
      // Still owned by its tenant: deleting the tenant deletes its sessions.
      db.exec("DELETE FROM tenants WHERE id = 't-1'");
      expect(db.prepare('SELECT COUNT(*) FROM device_sessions').pluck().get()).toBe(0);
    } finally {
      db.close();
    }
  });
});
