/**
 * The store contract against a REAL MongoDB server, wherever MONGODB_URL points at one (a replica
 * set: the adapter uses transactions; a one-node replica set is enough). Each test gets its own
 * database, dropped afterwards. Without MONGODB_URL the leg is skipped with one line; no server
 * can be installed on our build machines, so under CI it is a skip too. The adapter's logic still
 * runs in every run over the in-memory boundary double (mongo-store-double.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdFactory } from '../../ids.js';
import type { DecidedUsage } from '../port.js';
import { describeStoreContract, recordingHooks } from '../store.contract.js';
import { MongoStore } from './mongo-store.js';

const url = process.env.MONGODB_URL ?? null;
if (url === null) {
  console.log(
    'MongoDB contract leg skipped: MONGODB_URL is not set (no MongoDB server can run on this machine; under CI=true it is skipped too, CI cannot run one either)',
  );
}

const runPrefix = `edgeplane_test_${randomBytes(4).toString('hex')}`;
let dbCounter = 0;

describe.skipIf(url === null)('MongoStore on a real server', () => {
  let admin: MongoClient;
  beforeAll(async () => {
    admin = new MongoClient(url ?? 'mongodb://unavailable');
    await admin.connect();
  });
  afterAll(async () => {
    await admin.close();
  });

  const openStore = async (hooks = recordingHooks().hooks) => {
    const dbName = `${runPrefix}_${++dbCounter}`;
    const store = new MongoStore({ url: url ?? '', dbName, hooks });
    await store.init();
    return {
      store,
      cleanup: async () => {
        await store.close();
        await admin.db(dbName).dropDatabase();
      },
    };
  };

  describeStoreContract('mongodb (real server)', async () => {
    const { hooks, policyChanges } = recordingHooks();
    const { store, cleanup } = await openStore(hooks);
    return { store, hooks: { policyChanges }, cleanup };
  });

  it('keeps two tenants’ identical event ids apart, and races for one event store it once', async () => {
    const { store, cleanup } = await openStore();
    try {
      const ids = createIdFactory();
      const [a, b] = [await store.tenants.create({ name: 'a' }), await store.tenants.create({ name: 'b' })];
      const shared = ids();
      const event = (tenant_id: string, effect: 'allow' | 'deny'): DecidedUsage => ({
        id: shared,
        tenant_id,
        tower_id: 'tw',
        batch_id: 'b',
        device_id: 'd',
        user_id: null,
        app: 'slack',
        action: 'upload',
        bytes: 1,
        ts: 1,
        received_at: 1,
        effect,
        reason: 'default',
        rule_id: null,
        policy_id: null,
        policy_version: 1,
        severity: null,
      });
      const batch = (tenant_id: string, effect: 'allow' | 'deny') => ({
        tenant_id,
        tower_id: 'tw',
        batch_id: ids(),
        now: 1,
        alert_window_s: 60,
        records: [event(tenant_id, effect)],
      });
      expect((await store.usage.recordBatch(batch(a.id, 'allow'))).inserted).toBe(1);
      expect((await store.usage.recordBatch(batch(b.id, 'deny'))).inserted).toBe(1);
      expect((await store.usage.list(b.id)).items.map((u) => u.effect)).toEqual(['deny']);
      // Concurrent writers of the same new event: write conflicts and duplicate keys end in
      // exactly one insert, the others see a duplicate.
      const racers = await Promise.all([1, 2, 3].map(() => store.usage.recordBatch({ ...batch(a.id, 'allow'), records: [event(a.id, 'allow'), { ...event(a.id, 'allow'), id: 'race-1' }] })));
      expect(racers.map((r) => r.inserted).sort()).toEqual([0, 0, 1]);
      expect((await store.dashboard(a.id)).usage_total).toBe(2);
    } finally {
      await cleanup();
    }
  });
});
