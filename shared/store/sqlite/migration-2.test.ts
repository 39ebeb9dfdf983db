import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../../ids.js';
import type { DecidedUsage } from '../port.js';
import { MIGRATIONS, runMigrations, type Migration } from './migrations.js';
import { SqliteStore } from './sqlite-store.js';

const first = MIGRATIONS.filter((m) => m.version === 1);

describe('migration 2 on an existing database', () => {
  let dir: string;
  let file: string;
  const stores: SqliteStore[] = [];

  const openDb = (): Database.Database => {
    const db = new Database(file);
    db.pragma('foreign_keys = ON');
    return db;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-migration-'));
    file = join(dir, 'store.db');
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('puts existing tenants on free and keeps their rules and usage', async () => {
    const db = openDb();
    runMigrations(db, () => 1, first);
    db.exec(`
      INSERT INTO tenants (id, name, default_effect, policy_version, alert_window_s, created_at, updated_at)
        VALUES ('t1', 'acme', 'allow', 3, 300, 1, 1);
      INSERT INTO policies (id, tenant_id, name, severity, created_at, updated_at) VALUES ('p1', 't1', 'p', 'high', 1, 1);
      INSERT INTO rules (id, tenant_id, policy_id, app, action, permission, created_at, updated_at)
        VALUES ('r1', 't1', 'p1', 'slack', '*', 'deny', 1, 1);
      INSERT INTO usage (tenant_id, id, tower_id, batch_id, device_id, app, action, ts, received_at, effect, reason,
        rule_id, policy_id, policy_version) VALUES ('t1', 'e1', 'tw', 'b', 'd', 'slack', 'up', 1, 1, 'deny', 'rule', 'r1', 'p1', 3);
      INSERT INTO usage_counters (tenant_id, effect, count) VALUES ('t1', 'deny', 1);
    `);
    db.close();

    const store = new SqliteStore({ file, now: () => 5 });
    stores.push(store);
    await store.init();
    expect(await store.tenants.get('t1')).toMatchObject({ plan_id: 'free', policy_version: 3 });
    expect(await store.rules.get('t1', 'r1')).toMatchObject({ permission: 'deny', remediation: null, escalation: null });
    expect((await store.usage.list('t1')).items).toEqual([expect.objectContaining({ id: 'e1', reason: 'rule' })]);
    expect(await store.plans.get('free')).toMatchObject({ created_at: 5, updated_at: 5 });
    expect(await store.policySnapshot('t1')).toMatchObject({ plan: { id: 'free' } });
    // Foreign keys are back on for the store's connection: the tenant's rows still cascade.
    expect(await store.tenants.delete('t1')).toBe(true);
    expect((await store.usage.list('t1')).items).toEqual([]);
    expect(await store.rules.get('t1', 'r1')).toBeNull();
  });

  it('refuses a foreign-keys-off migration that would leave a dangling reference', () => {
    const db = openDb();
    const dangling: Migration = {
      version: 2,
      name: 'dangling',
      foreignKeysOff: true,
      sql: `INSERT INTO users (id, tenant_id, name, created_at, updated_at) VALUES ('u1', 'ghost', 'x', 0, 0);`,
    };
    expect(() => runMigrations(db, () => 1, [...first, dangling])).toThrow(/dangling foreign key/);
    expect(db.prepare('SELECT count(*) FROM users').pluck().get()).toBe(0);
    expect(db.prepare('SELECT max(version) FROM schema_migrations').pluck().get()).toBe(1);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    db.close();
  });

  it('purges more rows than one slice', async () => {
    const store = new SqliteStore({ file });
    stores.push(store);
    await store.init();
    const tenant = await store.tenants.create({ name: 'a' });
    const newId = createIdFactory();
    const event = (received_at: number): DecidedUsage => ({
      id: newId(),
      tenant_id: tenant.id,
      tower_id: 'tw',
      batch_id: 'b',
      device_id: 'd',
      user_id: null,
      app: 'slack',
      action: 'up',
      bytes: null,
      ts: received_at,
      received_at,
      effect: 'allow',
      reason: 'default',
      rule_id: null,
      policy_id: null,
      policy_version: 1,
      severity: null,
    });
    const records = Array.from({ length: 12_001 }, (_, i) => event(i));
    const batch = { tenant_id: tenant.id, tower_id: 'tw', batch_id: 'b', now: 1, alert_window_s: 60, records };
    await store.usage.recordBatch(batch);
    expect(await store.purgeUsage(tenant.id, 12_000)).toBe(12_000);
    expect((await store.usage.list(tenant.id)).items.map((u) => u.received_at)).toEqual([12_000]);
    expect((await store.dashboard(tenant.id)).usage_total).toBe(12_001);
  });
});
