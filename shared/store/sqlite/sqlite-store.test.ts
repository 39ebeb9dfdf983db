import Database from 'better-sqlite3';
import { chmodSync, existsSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Durability } from '../../config.js';
import { isEdgeplaneError } from '../../errors.js';
import { createIdFactory } from '../../ids.js';
import type { DecidedUsage, StoreHooks } from '../port.js';
import { describeStoreContract, recordingHooks } from '../store.contract.js';
import { MIGRATIONS } from './migrations.js';
import { SCAN_BUDGET } from './usage-repo.js';
import { SqliteStore } from './sqlite-store.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'edgeplane-sqlite-'));
}

describeStoreContract('sqlite', async () => {
  const dir = await tempDir();
  const { hooks, policyChanges } = recordingHooks();
  const store = new SqliteStore({ file: join(dir, 'store.db'), hooks });
  await store.init();
  return {
    store,
    hooks: { policyChanges },
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteStore specifics', () => {
  let dir: string;
  let file: string;
  const open: SqliteStore[] = [];

  const openStore = async (opts: { hooks?: StoreHooks; now?: () => number; backgroundCheckpoints?: boolean; durability?: Durability } = {}): Promise<SqliteStore> => {
    const store = new SqliteStore({ file, ...opts });
    await store.init();
    open.push(store);
    return store;
  };

  /** A second, raw connection: it sees only what the store has committed. */
  const inspect = <T>(fn: (db: Database.Database) => T): T => {
    const db = new Database(file, { readonly: true });
    try {
      return fn(db);
    } finally {
      db.close();
    }
  };

  beforeEach(async () => {
    dir = await tempDir();
    file = join(dir, 'store.db');
  });
  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('does no I/O before init and refuses use outside init..close', async () => {
    const store = new SqliteStore({ file });
    expect(existsSync(file)).toBe(false);
    expect(() => store.tenants).toThrow(/init/);
    await store.init();
    await store.close();
    expect(() => store.tenants).toThrow(/init/);
  });

  it('opens and serves reads while another process holds the write lock: start-up statistics are skipped, not awaited', async () => {
    const store = await openStore();
    const tenant = await store.tenants.create({ name: 'acme', plan_id: 'premium' });
    for (let i = 0; i < 300; i++) await store.devices.create(tenant.id, { id: `dev-${i}`, name: 'phone' });
    await store.close();
    open.splice(open.indexOf(store), 1);
    // Statistics out of date (as after a burst of writes by other processes), so the open's
    // optimize wants to ANALYZE, a write. Another process stalled mid-transaction (a worker under
    // SIGSTOP in test/e2e/audit-crash-broker.test.ts) holds the write lock: the open waited out
    // busy_timeout and failed with "database is locked", so a node could not restart beside it.
    const other = new Database(file);
    try {
      other.exec('DELETE FROM sqlite_stat1');
      other.exec('BEGIN IMMEDIATE');
      other.prepare("UPDATE tenants SET name = 'held' WHERE id = ?").run(tenant.id);
      const again = await openStore();
      expect((await again.devices.list(tenant.id, { limit: 500 })).items).toHaveLength(300);
      other.exec('COMMIT');
      // The lock released, this connection writes again, with its busy timeout back in force.
      await again.devices.create(tenant.id, { id: 'dev-after', name: 'phone' });
      expect((await again.tenants.get(tenant.id))?.name).toBe('held');
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
    }
  });

  it('with background checkpoints, a worker thread copies the WAL into the database file, not the committing connection', async () => {
    const store = await openStore({ backgroundCheckpoints: true });
    const before = statSync(file).size;
    const tenant = await store.tenants.create({ name: 'acme' });
    for (let i = 0; i < 20; i++) await store.devices.create(tenant.id, { id: `dev-${i}-${'x'.repeat(200)}`, name: 'phone' });
    // The migrations and these writes (new pages) are ~400 WAL frames, below the committing
    // connection's own threshold (10,000; SQLite's default 1,000 alike), and in WAL mode the
    // database file grows only by checkpoints: a larger file means the worker checkpointed.
    await vi.waitFor(() => expect(statSync(file).size).toBeGreaterThan(before), { timeout: 10_000, interval: 50 });
    await store.close();
    const again = await openStore();
    expect((await again.devices.list(tenant.id)).items).toHaveLength(20);
  });

  it('keeps planner statistics, so filtered usage pages read the usage indexes instead of the whole tenant', async () => {
    const store = await openStore();
    const t = await store.tenants.create({ name: 'stats', plan_id: 'premium' });
    const newEventId = createIdFactory();
    for (let b = 0; b < 40; b++) {
      const records: DecidedUsage[] = Array.from({ length: 250 }, (_, i) => ({
        id: newEventId(),
        tenant_id: t.id,
        tower_id: `tw-${i % 20}`,
        batch_id: `b${b}`,
        device_id: `d-${(b * 250 + i) % 2000}`,
        user_id: `u-${i % 500}`,
        app: 'slack',
        action: 'open',
        bytes: null,
        ts: 1_000 + b * 250 + i,
        received_at: 1_000 + b * 250 + i,
        effect: 'allow',
        reason: 'default',
        rule_id: null,
        policy_id: null,
        policy_version: 1,
        severity: null,
      }));
      await store.usage.recordBatch({ tenant_id: t.id, tower_id: 'tw-0', batch_id: `b${b}`, now: 1, alert_window_s: 300, records });
    }
    await store.close();
    open.splice(open.indexOf(store), 1);
    const plan = (sql: string): string =>
      inspect((db) => (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>).map((r) => r.detail).join(' | '));
    const byEffect = `SELECT * FROM usage WHERE tenant_id = '${t.id}' AND effect = 'deny' AND ts >= 0 ORDER BY ts DESC LIMIT 51`;
    expect(plan(byEffect)).toContain('USING INDEX usage_effect_ts');
    // Device, user and tower have no index on purpose (migrations 9 and 10): they scan within a budget.
    const indexes = inspect((db) => db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'usage'").pluck().all() as string[]);
    expect(indexes).not.toContain('usage_device_ts');
    expect(indexes).not.toContain('usage_user_ts');
    expect(indexes).not.toContain('usage_tower_ts');
    expect(inspect((db) => db.prepare("SELECT count(*) AS n FROM sqlite_stat1 WHERE tbl = 'usage'").get() as { n: number }).n).toBeGreaterThan(0);
  });

  it.each(['device_id', 'tower_id'] as const)('a %s filter reads at most SCAN_BUDGET rows per page and continues with the cursor', async (column) => {
    const store = await openStore();
    const t = await store.tenants.create({ name: 'scan', plan_id: 'premium' });
    const newEventId = createIdFactory();
    const rare: string[] = [];
    const total = SCAN_BUDGET * 2 + 5000;
    for (let b = 0; b * 1000 < total; b++) {
      const records: DecidedUsage[] = Array.from({ length: 1000 }, (_, i) => {
        const n = b * 1000 + i;
        // Three events of the rare device (or tower), far apart: each page can only see one of them.
        const isRare = n === 100 || n === SCAN_BUDGET + 100 || n === 2 * SCAN_BUDGET + 100;
        const id = newEventId();
        if (isRare) rare.push(id);
        const device = column === 'device_id' && isRare ? 'rare' : `d-${n % 50}`;
        const tower = column === 'tower_id' && isRare ? 'rare' : `tw-${n % 5}`;
        return { id, tenant_id: t.id, tower_id: tower, batch_id: `b${b}`, device_id: device, user_id: null, app: 'slack', action: 'open', bytes: null, ts: n, received_at: n, effect: 'allow', reason: 'default', rule_id: null, policy_id: null, policy_version: 1, severity: null } satisfies DecidedUsage;
      });
      await store.usage.recordBatch({ tenant_id: t.id, tower_id: 'tw-0', batch_id: `b${b}`, now: 1, alert_window_s: 300, records });
    }
    const pages: Array<{ items: number; more: boolean }> = [];
    const found: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await store.usage.list(t.id, { [column]: 'rare', limit: 10, cursor });
      pages.push({ items: page.items.length, more: page.next_cursor !== null });
      found.push(...page.items.map((r) => r.id));
      cursor = page.next_cursor;
    } while (cursor !== null && pages.length < 20);
    expect(found).toEqual([...rare].reverse());
    // Short pages with a cursor: the budget was reached before the page filled.
    expect(pages.some((p) => p.items < 10 && p.more)).toBe(true);
    expect(pages.length).toBeGreaterThanOrEqual(3);
  });

  it('a device or user filter with other filters pages through every match in id order, across growing windows', async () => {
    const store = await openStore();
    const t = await store.tenants.create({ name: 'windows', plan_id: 'premium' });
    const newEventId = createIdFactory();
    const all: DecidedUsage[] = [];
    for (let b = 0; b < 12; b++) {
      const records: DecidedUsage[] = Array.from({ length: 1000 }, (_, i) => {
        const n = b * 1000 + i;
        return { id: newEventId(), tenant_id: t.id, tower_id: `tw-${n % 3}`, batch_id: `b${b}`, device_id: `d-${n % 7}`, user_id: n % 5 === 0 ? null : `u-${n % 4}`, app: n % 2 ? 'slack' : 'zoom', action: 'open', bytes: null, ts: n, received_at: n, effect: n % 11 === 0 ? 'deny' : 'allow', reason: 'default', rule_id: null, policy_id: null, policy_version: 1, severity: null } satisfies DecidedUsage;
      });
      all.push(...records);
      await store.usage.recordBatch({ tenant_id: t.id, tower_id: 'tw-0', batch_id: `b${b}`, now: 1, alert_window_s: 300, records });
    }
    const newestFirst = [...all].sort((a, b) => (a.id < b.id ? 1 : -1));
    const cases = [
      { device_id: 'd-3' },
      { device_id: 'd-3', effect: 'deny' as const },
      { user_id: 'u-1', tower_id: 'tw-2', app: 'slack' },
      { tower_id: 'tw-1' },
      { tower_id: 'tw-0', effect: 'deny' as const, since: 1_000 },
      { device_id: 'd-2', user_id: 'u-2', since: 2_500, until: 9_000 },
    ];
    for (const filter of cases) {
      const want = newestFirst
        .filter((r) => Object.entries(filter).every(([k, v]) => (k === 'since' ? r.ts >= (v as number) : k === 'until' ? r.ts < (v as number) : r[k as keyof DecidedUsage] === v)))
        .map((r) => r.id);
      const got: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page = await store.usage.list(t.id, { ...filter, limit: 40, cursor });
        expect(page.items.length).toBeLessThanOrEqual(40);
        got.push(...page.items.map((r) => r.id));
        cursor = page.next_cursor;
      } while (cursor !== null && ++pages < 1000);
      expect(got, JSON.stringify(filter)).toEqual(want);
    }
  });

  it('runs in WAL mode at the latest schema version', async () => {
    const store = await openStore();
    await store.tenants.create({ name: 'a' });
    // journal_mode=WAL is persistent in the file, so a fresh connection reports it too.
    expect(inspect((db) => db.pragma('journal_mode', { simple: true }))).toBe('wal');
    expect(existsSync(`${file}-wal`)).toBe(true);
    const version = inspect((db) => db.prepare('SELECT max(version) AS v FROM schema_migrations').get());
    expect(version).toEqual({ v: Math.max(...MIGRATIONS.map((m) => m.version)) });
  });

  it('creates a new database file, and with it its WAL, readable by its owner only; an existing file keeps its mode', async () => {
    const store = await openStore();
    await store.tenants.create({ name: 'a' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(`${file}-wal`).mode & 0o777).toBe(0o600);
    await store.close();

    const other = join(dir, 'chosen.db');
    writeFileSync(other, '');
    chmodSync(other, 0o640);
    const kept = new SqliteStore({ file: other });
    await kept.init();
    open.push(kept);
    await kept.tenants.create({ name: 'b' });
    expect(statSync(other).mode & 0o777).toBe(0o640);
  });

  it('fsyncs every commit only with durability power (the writing connection\'s synchronous pragma)', async () => {
    expect((await openStore()).durability()).toBe('process');
    expect((await openStore({ durability: 'power' })).durability()).toBe('power');
  });

  it('applies migrations once and keeps data across close and reopen', async () => {
    let clock = 1_000;
    const first = await openStore({ now: () => clock });
    const tenant = await first.tenants.create({ name: 'a' });
    const user = await first.users.create(tenant.id, { name: 'u' });
    await first.close();

    clock = 2_000;
    const second = await openStore({ now: () => clock });
    expect(await second.tenants.get(tenant.id)).toEqual(tenant);
    expect(await second.users.get(tenant.id, user.id)).toEqual(user);
    const rows = inspect((db) => db.prepare('SELECT version, applied_at FROM schema_migrations').all());
    expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, applied_at: 1_000 })));
  });

  it('refuses a database written by a newer schema', async () => {
    const store = await openStore();
    await store.close();
    const db = new Database(file);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)").run();
    db.close();
    await expect(new SqliteStore({ file }).init()).rejects.toThrow(/newer than this build/);
  });

  it('uses the injected clock and id factory', async () => {
    const newId = createIdFactory();
    const issued: string[] = [];
    const recordIssued = (): string => {
      const id = newId();
      issued.push(id);
      return id;
    };
    const store = new SqliteStore({ file, now: () => 42, newId: recordIssued });
    await store.init();
    open.push(store);
    const tenant = await store.tenants.create({ name: 'a' });
    expect(tenant).toMatchObject({ id: issued[0], created_at: 42, updated_at: 42 });
  });

  it('announces a policy change only after it is committed', async () => {
    const seen: Array<number | null> = [];
    const hooks: StoreHooks = {
      onPolicyChanged: (tenantId) => {
        const committed = inspect((db) =>
          db.prepare<[string], number>('SELECT policy_version FROM tenants WHERE id = ?').pluck().get(tenantId),
        );
        seen.push(committed ?? null);
      },
    };
    const store = await openStore({ hooks });
    const tenant = await store.tenants.create({ name: 'a' });
    await store.policies.create(tenant.id, { name: 'p' });
    expect(seen).toEqual([tenant.policy_version + 1]);
  });

  it('a failing batch leaves nothing half-written', async () => {
    const { hooks } = recordingHooks();
    const store = await openStore({ hooks });
    const tenant = await store.tenants.create({ name: 'a' });
    const policy = await store.policies.create(tenant.id, { name: 'p' });
    const rule = await store.rules.create(tenant.id, { policy_id: policy.id, app: '*', action: '*', permission: 'deny' });
    const ids = createIdFactory();
    const event = (i: number): DecidedUsage => ({
      id: ids(),
      tenant_id: tenant.id,
      tower_id: 'tw',
      batch_id: 'b',
      device_id: i % 2 === 0 ? `dev-${i}` : 'stranger',
      user_id: null,
      app: 'slack',
      action: 'upload',
      bytes: 1,
      ts: 1,
      received_at: 1,
      effect: 'deny',
      reason: i % 2 === 0 ? 'rule' : 'unknown_device',
      rule_id: i % 2 === 0 ? rule.id : null,
      policy_id: i % 2 === 0 ? policy.id : null,
      policy_version: 1,
      severity: 'high',
    });
    const records = Array.from({ length: 100 }, (_, i) => event(i));
    // The last record breaks a CHECK constraint after 99 rows, alerts and discoveries were staged.
    records.push({ ...event(100), effect: 'maybe' } as unknown as DecidedUsage);
    const input = { tenant_id: tenant.id, tower_id: 'tw', batch_id: 'b', now: 1, alert_window_s: 60, records };
    await expect(store.usage.recordBatch(input)).rejects.toThrow();
    const counts = inspect((db) => ({
      usage: db.prepare('SELECT count(*) AS n FROM usage').pluck().get(),
      alerts: db.prepare('SELECT count(*) AS n FROM alerts').pluck().get(),
      discovered: db.prepare('SELECT count(*) AS n FROM discovered_devices').pluck().get(),
      counters: db.prepare('SELECT count(*) AS n FROM usage_counters').pluck().get(),
      towers: db.prepare('SELECT count(*) AS n FROM tenant_towers').pluck().get(),
    }));
    expect(counts).toEqual({ usage: 0, alerts: 0, discovered: 0, counters: 0, towers: 0 });

    // The same events without the bad one then go through in full.
    const ok = await store.usage.recordBatch({ ...input, records: records.slice(0, 100) });
    expect(ok).toMatchObject({ inserted: 100, duplicates: 0 });
    expect(ok.alerts_opened).toHaveLength(50);
    expect(ok.discovered).toEqual([expect.objectContaining({ device_id: 'stranger', count: 50 })]);
  });

  it('a listener that throws does not make a committed write look failed', async () => {
    const store = await openStore({
      hooks: {
        onPolicyChanged: () => {
          throw new Error('listener bug');
        },
      },
    });
    const tenant = await store.tenants.create({ name: 'a' });
    const policy = await store.policies.create(tenant.id, { name: 'p' });
    expect(await store.policies.get(tenant.id, policy.id)).toEqual(policy);
  });

  it('a refused write neither bumps nor announces', async () => {
    const { hooks, policyChanges } = recordingHooks();
    const store = await openStore({ hooks });
    const tenant = await store.tenants.create({ name: 'a' });
    const before = policyChanges.length;
    await expect(
      store.rules.create(tenant.id, { policy_id: 'ghost', app: '*', action: '*', permission: 'deny' }),
    ).rejects.toSatisfy(isEdgeplaneError);
    expect(policyChanges.length).toBe(before);
    expect((await store.tenants.get(tenant.id))?.policy_version).toBe(tenant.policy_version);
  });

  it('lets a second store on the same file read committed writes', async () => {
    const writer = await openStore();
    const reader = await openStore();
    const tenant = await writer.tenants.create({ name: 'a' });
    await writer.devices.create(tenant.id, { id: 'imei-1', name: 'phone' });
    expect(await reader.devices.tenantOf('imei-1')).toBe(tenant.id);
  });
});
