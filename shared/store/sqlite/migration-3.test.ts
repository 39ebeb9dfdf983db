import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../../ids.js';
import type { AuditInput } from '../port.js';
import { createAuditRepo } from './audit-repo.js';
import { SqliteContext } from './context.js';
import { MIGRATIONS, runMigrations } from './migrations.js';
import { TenantRefs } from './refs.js';
import { SqliteStore } from './sqlite-store.js';

const upTo2 = MIGRATIONS.filter((m) => m.version <= 2);

const entry = (tenant_id: string | null, at: number): AuditInput => ({
  tenant_id,
  actor_kind: 'system',
  actor_id: null,
  actor_label: null,
  action: 'devices.update',
  resource_type: 'device',
  resource_id: 'dev-1',
  method: null,
  path: null,
  status_code: null,
  ip: null,
  user_agent: null,
  before: null,
  after: null,
  at,
});

describe('migration 3 and the audit/api-key tables', () => {
  let dir: string;
  let file: string;
  const closers: Array<() => Promise<void> | void> = [];

  const openDb = (): Database.Database => {
    const db = new Database(file);
    db.pragma('foreign_keys = ON');
    closers.push(() => {
      db.close();
    });
    return db;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-migration3-'));
    file = join(dir, 'store.db');
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await rm(dir, { recursive: true, force: true });
  });

  it('gives existing tenants 365 days of audit retention without touching their policy version', async () => {
    const db = new Database(file);
    db.pragma('foreign_keys = ON');
    runMigrations(db, () => 1, upTo2);
    db.exec(`INSERT INTO tenants (id, name, default_effect, policy_version, alert_window_s, created_at, updated_at)
      VALUES ('t1', 'acme', 'deny', 4, 300, 1, 1)`);
    db.close();

    const store = new SqliteStore({ file });
    closers.push(() => store.close());
    await store.init();
    expect(await store.tenants.get('t1')).toMatchObject({ audit_retention_days: 365, policy_version: 4, plan_id: 'free' });
  });

  it('refuses a non-positive retention and keys or records that are not what the port promises', () => {
    const db = openDb();
    runMigrations(db, () => 1);
    db.exec(`INSERT INTO tenants (id, name, default_effect, policy_version, alert_window_s, created_at, updated_at)
      VALUES ('t1', 'acme', 'allow', 1, 300, 1, 1)`);
    expect(() => db.exec("UPDATE tenants SET audit_retention_days = 0 WHERE id = 't1'")).toThrow(/CHECK/);
    expect(() =>
      db.exec(`INSERT INTO api_keys (id, tenant_id, name, prefix, scopes, secret_hash, created_at)
        VALUES ('k1', 't1', 'n', 'p', '{"not":"an array"}', 'h', 1)`),
    ).toThrow(/CHECK/);
    expect(() =>
      db.exec(`INSERT INTO audit_records (id, tenant_id, actor_kind, action, resource_type, at)
        VALUES ('a1', 't1', 'robot', 'x', 'y', 1)`),
    ).toThrow(/CHECK/);
  });

  it('reads audit lists through the tenant-first indexes', () => {
    const db = openDb();
    runMigrations(db, () => 1);
    const plan = (sql: string): string =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>).map((r) => r.detail).join(' | ');
    expect(plan("SELECT id FROM audit_records WHERE tenant_id = 't' ORDER BY id DESC LIMIT 5")).toContain(
      'audit_records_tenant',
    );
    expect(plan('SELECT id FROM audit_records WHERE tenant_id IS NULL ORDER BY id DESC LIMIT 5')).toContain(
      'audit_records_tenant',
    );
    expect(
      plan("SELECT id FROM audit_records WHERE tenant_id = 't' AND resource_type = 'd' AND resource_id = 'x' ORDER BY id DESC"),
    ).toContain('audit_records_resource');
    expect(plan("SELECT id FROM audit_records WHERE tenant_id = 't' AND at < 5")).toContain('audit_records_at');
  });

  it('purges audit records in slices, across slice boundaries', async () => {
    const db = openDb();
    runMigrations(db, () => 1);
    const ctx = new SqliteContext(db, () => 1, createIdFactory(), {});
    const audit = createAuditRepo(ctx, new TenantRefs(ctx), { purgeSlice: 2 });
    db.exec(`INSERT INTO tenants (id, name, default_effect, policy_version, alert_window_s, created_at, updated_at)
      VALUES ('t1', 'a', 'allow', 1, 300, 1, 1), ('t2', 'b', 'allow', 1, 300, 1, 1)`);
    for (let at = 0; at < 7; at++) {
      await audit.record(entry('t1', at));
      await audit.record(entry('t2', at));
      await audit.record(entry(null, at));
    }
    expect(await audit.purge('t1', 5)).toBe(5);
    expect((await audit.list('t1')).items.map((r) => r.at)).toEqual([6, 5]);
    expect((await audit.list('t2')).items).toHaveLength(7);
    expect((await audit.list(null)).items).toHaveLength(7);
    expect(await audit.purge('t1', 7)).toBe(2);
  });
});
