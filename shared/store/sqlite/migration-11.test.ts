import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, runMigrations } from './migrations.js';
import { SqliteStore } from './sqlite-store.js';
import { DUE_FAIR_SQL } from './webhook-repos.js';

const before11 = MIGRATIONS.filter((m) => m.version < 11);

/** A tenant, its webhook and `n` deliveries, written straight into the tables. */
function seed(db: Database.Database, tenant: string, n: number, status: string, firstAt: number): void {
  db.prepare(`INSERT OR IGNORE INTO tenants (id, name, default_effect, policy_version, alert_window_s, created_at, updated_at, plan_id)
    VALUES (?, ?, 'allow', 1, 300, 1, 1, 'free')`).run(tenant, tenant);
  db.prepare(`INSERT OR IGNORE INTO webhooks (id, tenant_id, url, events, secret, enabled, created_at, updated_at)
    VALUES (?, ?, 'https://hooks.example.com/x', '["alert.opened"]', 's', 1, 1, 1)`).run(`hook-${tenant}`, tenant);
  const insert = db.prepare(`INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event, body, status, attempts, next_attempt_at,
      last_status_code, last_error, created_at, updated_at)
    VALUES (?, ?, ?, 'alert.opened', '{}', ?, 0, ?, NULL, NULL, 1, 1)`);
  db.transaction(() => {
    for (let i = 0; i < n; i++) {
      insert.run(`${tenant}-${String(i).padStart(6, '0')}`, tenant, `hook-${tenant}`, status, status === 'pending' ? firstAt + i : null);
    }
  })();
}

const plan = (db: Database.Database, sql: string, ...params: unknown[]): string[] =>
  (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail);

describe('migration 11: pending webhook deliveries per tenant', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-migration11-'));
    file = join(dir, 'store.db');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('serves deliveries queued before it fairly', async () => {
    const db = new Database(file);
    db.pragma('foreign_keys = ON');
    runMigrations(db, () => 1, before11);
    seed(db, 'ta', 50, 'pending', 100);
    seed(db, 'tb', 1, 'pending', 1_000);
    db.close();
    const store = new SqliteStore({ file, now: () => 50 });
    await store.init();
    try {
      const due = await store.webhookDeliveries.dueFair(2_000, 2, 10);
      expect(due.map((d) => d.id)).toEqual(['ta-000000', 'tb-000000', 'ta-000001']);
    } finally {
      await store.close();
    }
  });

  it('finds the tenants by one seek each and reads each one’s most overdue, never a backlog', () => {
    const db = new Database(file);
    try {
      runMigrations(db, () => 1);
      // A stuck tenant's large backlog, one not yet due, finished ones, and small tenants; the
      // planner sees the statistics SQLite keeps for a running store (PRAGMA optimize runs ANALYZE).
      seed(db, 'stuck', 20_000, 'pending', 0);
      seed(db, 'later', 5_000, 'pending', 1_000_000);
      seed(db, 'done', 20_000, 'delivered', 0);
      for (const t of ['t1', 't2', 't3']) seed(db, t, 3, 'pending', 10);
      db.exec('ANALYZE');

      const tenants = plan(db, DUE_FAIR_SQL.tenants);
      // Every read of the table goes through the per-tenant index: the first tenant (an index scan
      // stopped by LIMIT 1) and each next one (a seek past the last), nothing sorted.
      const reads = tenants.filter((d) => /webhook_deliveries|\bd\b/.test(d) && /^(SCAN|SEARCH)/.test(d));
      expect(reads).toEqual([
        'SCAN webhook_deliveries USING COVERING INDEX webhook_deliveries_tenant_due',
        'SEARCH d USING COVERING INDEX webhook_deliveries_tenant_due (tenant_id>?)',
      ]);
      expect(tenants.join(' | ')).not.toMatch(/TEMP B-TREE/);
      expect(db.prepare(DUE_FAIR_SQL.tenants).pluck().all()).toEqual(['later', 'stuck', 't1', 't2', 't3']);

      const perTenant = plan(db, DUE_FAIR_SQL.tenantDue(3), 'stuck', 500);
      expect(perTenant).toEqual(['SEARCH webhook_deliveries USING INDEX webhook_deliveries_tenant_due (tenant_id=? AND next_attempt_at<?)']);
    } finally {
      db.close();
    }
  });
});
