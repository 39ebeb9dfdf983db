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
});
