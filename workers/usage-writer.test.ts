import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import type { DecidedUsage, RecordUsageInput } from '../shared/store/port.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { UsageWriter } from './usage-writer.js';

const newId = createIdFactory();
let dir: string;
let store: SqliteStore;
let tenantId: string;

function input(records: number, tenant = tenantId): RecordUsageInput {
  const batch = newId();
  const rs: DecidedUsage[] = Array.from({ length: records }, () => ({
    id: newId(), tenant_id: tenant, tower_id: 'T1', batch_id: batch, device_id: 'd1', user_id: null, app: 'slack', action: 'x',
    bytes: null, ts: 1, received_at: 1, effect: 'allow', reason: 'unknown_device', rule_id: null, policy_id: null, policy_version: 1, severity: null,
  }));
  return { tenant_id: tenant, tower_id: 'T1', batch_id: batch, now: 1, alert_window_s: 60, records: rs };
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-writer-'));
  store = new SqliteStore({ file: join(dir, 'db.sqlite') });
  await store.init();
  tenantId = (await store.tenants.create({ name: 'A' })).id;
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('UsageWriter (group commit)', () => {
  it('writes batches recorded in the same turn as one group, each caller getting its own result', async () => {
    const writer = new UsageWriter(store);
    const results = await Promise.all([writer.record(input(2)), writer.record(input(3)), writer.record(input(1))]);
    expect(results.map((r) => r.inserted)).toEqual([2, 3, 1]);
    expect(writer.groups).toBe(1);
    expect((await store.dashboard(tenantId)).usage_total).toBe(6);
  });

  it('caps a group at maxGroup', async () => {
    const writer = new UsageWriter(store, { maxGroup: 2 });
    await Promise.all([writer.record(input(1)), writer.record(input(1)), writer.record(input(1))]);
    expect(writer.groups).toBe(2);
  });

  it('a failing batch fails alone: the rest of its group is still written', async () => {
    const writer = new UsageWriter(store);
    const settled = await Promise.allSettled([writer.record(input(2)), writer.record(input(1, 'no-such-tenant')), writer.record(input(1))]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await store.dashboard(tenantId)).usage_total).toBe(3);
  });

  it('a store that refuses (its write lock held past the busy timeout) fails the group once, not batch by batch', async () => {
    const calls = { groups: 0, single: 0 };
    const spy = {
      usage: {
        ...store.usage,
        recordBatches: (inputs: RecordUsageInput[]) => (calls.groups++, store.usage.recordBatches(inputs)),
        recordBatch: (one: RecordUsageInput) => (calls.single++, store.usage.recordBatch(one)),
      },
    };
    const writer = new UsageWriter(spy);
    const other = new Database(join(dir, 'db.sqlite'));
    other.exec('BEGIN IMMEDIATE');
    try {
      const settled = await Promise.allSettled([writer.record(input(1)), writer.record(input(2)), writer.record(input(1))]);
      // One busy timeout (5 s) for the group; retrying each batch would have been three more.
      expect(settled.map((s) => (s.status === 'rejected' ? (s.reason as { code?: string }).code : s.status))).toEqual(['SQLITE_BUSY', 'SQLITE_BUSY', 'SQLITE_BUSY']);
      expect(calls).toEqual({ groups: 1, single: 0 });
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    // The lock released, the next group is written.
    expect((await writer.record(input(2))).inserted).toBe(2);
  }, 20_000);

  it('an unreachable store (MongoDB without a server or a primary) fails the group once, not batch by batch', async () => {
    // MongoDB cannot run here: the driver's error for "no server answers" is raised by name, as
    // the driver raises it after its server-selection timeout (30 s by default, per attempt).
    const unreachable = Object.assign(new Error('Server selection timed out after 30000 ms'), { name: 'MongoServerSelectionError' });
    const calls = { groups: 0, single: 0 };
    const spy = {
      usage: {
        ...store.usage,
        recordBatches: () => (calls.groups++, Promise.reject(unreachable)),
        recordBatch: (one: RecordUsageInput) => (calls.single++, store.usage.recordBatch(one)),
      },
    };
    const writer = new UsageWriter(spy);
    const settled = await Promise.allSettled([writer.record(input(1)), writer.record(input(2)), writer.record(input(1))]);
    expect(settled.map((s) => (s.status === 'rejected' ? s.reason : s.status))).toEqual([unreachable, unreachable, unreachable]);
    // Retrying each batch would wait for the driver's timeout once more per batch.
    expect(calls).toEqual({ groups: 1, single: 0 });
    expect((await store.dashboard(tenantId)).usage_total).toBe(0);
  });
});
