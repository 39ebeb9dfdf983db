import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, runMigrations } from './migrations.js';
import { SqliteStore } from './sqlite-store.js';

const before8 = MIGRATIONS.filter((m) => m.version < 8);

describe('migration 8: local decisions and disagreements on usage', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-migration8-'));
    file = join(dir, 'store.db');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads events stored before it as decided in the cloud alone', async () => {
    const db = new Database(file);
    db.pragma('foreign_keys = ON');
    runMigrations(db, () => 1, before8);
    db.exec(`INSERT INTO tenants (id, name, default_effect, policy_version, alert_window_s, created_at, updated_at, plan_id)
      VALUES ('t1', 'acme', 'allow', 1, 300, 1, 1, 'free')`);
    db.exec(`INSERT INTO usage (tenant_id, id, tower_id, batch_id, device_id, user_id, app, action, bytes, ts, received_at, effect, reason, rule_id, policy_id, policy_version)
      VALUES ('t1', '01J00000000000000000000001', 'tw', 'b', 'd1', NULL, 'slack', 'send', NULL, 5, 6, 'allow', 'default', NULL, NULL, 1)`);
    db.close();
    const store = new SqliteStore({ file, now: () => 50 });
    await store.init();
    try {
      expect(await store.usageHistory.get('t1', '01J00000000000000000000001')).toMatchObject({ local_effect: null, local_policy_version: null, disagreement: false });
      expect((await store.usage.list('t1', { disagreement: false })).items).toHaveLength(1);
      expect((await store.usage.list('t1', { disagreement: true })).items).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('finds disagreements through the partial index', () => {
    const db = new Database(file);
    try {
      runMigrations(db, () => 1);
      const plan = (db.prepare("EXPLAIN QUERY PLAN SELECT id FROM usage WHERE tenant_id = 't' AND disagreement = 1 ORDER BY ts DESC").all() as Array<{ detail: string }>)
        .map((r) => r.detail)
        .join(' | ');
      expect(plan).toMatch(/usage_disagreement_ts/);
    } finally {
      db.close();
    }
  });
});
