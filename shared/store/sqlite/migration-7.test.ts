import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, runMigrations } from './migrations.js';
import { SqliteStore } from './sqlite-store.js';

const before7 = MIGRATIONS.filter((m) => m.version < 7);

describe('migration 7: carrier feeds, device metadata, RADIUS accounting sessions', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-migration7-'));
    file = join(dir, 'store.db');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps existing towers as operators' (not managed, not retired) and their links", async () => {
    const db = new Database(file);
    db.pragma('foreign_keys = ON');
    runMigrations(db, () => 1, before7);
    db.exec(`INSERT INTO towers (id, name, lat, lon, radius_m, state, agent_version, last_seen, created_at, updated_at)
      VALUES ('T1', 'old', 1.5, 2.5, 800, 'online', '1.0', 5, 1, 2)`);
    db.exec(`INSERT INTO carriers (id, name, mcc_mnc, created_at, updated_at) VALUES ('C1', 'carrier', NULL, 1, 1)`);
    db.exec(`INSERT INTO tower_carriers (tower_id, carrier_id, created_at) VALUES ('T1', 'C1', 1)`);
    db.close();

    const store = new SqliteStore({ file });
    await store.init();
    try {
      expect(await store.towers.get('T1')).toEqual({
        id: 'T1', name: 'old', lat: 1.5, lon: 2.5, radius_m: 800, state: 'online', agent_version: '1.0', last_seen: 5,
        managed_by: null, retired_at: null, created_at: 1, updated_at: 2,
      });
      // An operator's tower is not the carrier's to write, link or no link.
      expect(await store.carrierFeeds.applyTower('C1', { op: 'upsert', tower_id: 'T1', name: 'renamed' }, 10)).toMatchObject({ outcome: 'refused' });
      expect((await store.towerCarriers.carriersOfTower('T1')).map((c) => c.id)).toEqual(['C1']);
      // Deleting the carrier hands its towers back to operators.
      await store.carrierFeeds.applyTower('C1', { op: 'upsert', tower_id: 'T2', name: 'fed' }, 10);
      await store.carriers.delete('C1');
      expect((await store.towers.get('T2'))?.managed_by).toBeNull();
    } finally {
      await store.close();
    }
  });
});
