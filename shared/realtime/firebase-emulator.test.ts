/**
 * FirebaseSink → createFirebaseWriter → a real Realtime Database emulator, read back with
 * firebase-admin. (The writer's app lifecycle, which needs no connection, is checked always.)
 *
 * Skipped unless FIREBASE_DATABASE_EMULATOR_HOST is set (e.g. `firebase emulators:start --only
 * database` gives 127.0.0.1:9000): the emulator is a Java process from firebase-tools, which is
 * not a project dependency, and the production database needs real credentials. The sink's logic
 * is covered without it by firebase-sink.test.ts; this leg proves the wire format (multi-path
 * update, server increments) against the real implementation. When skipped it says so on one line.
 * No npm package can stand in for the emulator: firebase-server 1.1.0 hangs on server increments
 * and on get() (docs/firebase-dashboard/README.md says exactly what fails).
 */
import { randomUUID } from 'node:crypto';
import { deleteApp, initializeApp, type App } from 'firebase-admin/app';
import { getDatabase } from 'firebase-admin/database';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../bus.js';
import type { UsageRecord } from '../domain.js';
import { Counters } from '../metrics.js';
import { createFirebaseWriter } from './firebase-writer.js';
import { FirebaseSink } from './firebase-sink.js';
import type { RealtimeWriter } from './realtime-writer.js';
import { testAlert } from './test-alerts.js';

const EMULATOR_HOST = process.env.FIREBASE_DATABASE_EMULATOR_HOST;
if (!EMULATOR_HOST) console.log('firebase emulator leg skipped: FIREBASE_DATABASE_EMULATOR_HOST is not set (no npm stand-in works: docs/firebase-dashboard/README.md)');

const NAMESPACE = 'edgeplane-test';
const DATABASE_URL = `http://${EMULATOR_HOST ?? '127.0.0.1:9000'}?ns=${NAMESPACE}`;

function usage(n: number, denied: number, tenant: string): UsageRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `e${i}`,
    tenant_id: tenant,
    tower_id: 'T1',
    batch_id: 'b1',
    device_id: 'dev-1',
    user_id: null,
    app: 'dropbox',
    action: 'upload',
    bytes: null,
    ts: 1,
    received_at: 1,
    effect: i < denied ? ('deny' as const) : ('allow' as const),
    reason: 'rule' as const,
    rule_id: 'r1',
    policy_id: 'p1',
    policy_version: 1,
    local_effect: null,
    local_policy_version: null,
    disagreement: false,
  }));
}

describe('createFirebaseWriter', () => {
  it('owns a named app: several writers coexist, and close() frees the name', async () => {
    // No update is made, so nothing connects: this runs without an emulator.
    const url = 'http://127.0.0.1:9?ns=edgeplane-offline';
    const a = createFirebaseWriter({ databaseURL: url, appName: 'edgeplane-writer-test' });
    const b = createFirebaseWriter({ databaseURL: url });
    expect(() => createFirebaseWriter({ databaseURL: url, appName: 'edgeplane-writer-test' })).toThrow(/already in use/);
    await a.close();
    await a.close();
    await expect(a.update({ x: 1 })).rejects.toThrow(/closed/);
    const again = createFirebaseWriter({ databaseURL: url, appName: 'edgeplane-writer-test' });
    await again.close();
    await b.close();
  });
});

describe.skipIf(!EMULATOR_HOST)('FirebaseSink against the Realtime Database emulator', () => {
  // A fresh tenant id per run, so reruns against a long-lived emulator start from zero counters.
  const tenant = `t-${randomUUID()}`;
  let reader: App;

  beforeAll(() => {
    reader = initializeApp({ databaseURL: DATABASE_URL }, `edgeplane-emulator-reader-${randomUUID()}`);
  });
  afterAll(async () => {
    await getDatabase(reader).ref(`tenants/${tenant}`).remove();
    await deleteApp(reader);
  });

  it('writes alerts and server-incremented counters, adding up across flushes', async () => {
    const bus = new InProcessBus();
    const counters = new Counters();
    // Tells the test when a write was acknowledged by the emulator: no sleeping, no polling.
    const firebase = createFirebaseWriter({ databaseURL: DATABASE_URL });
    let acknowledged: () => void = () => {};
    const firstWrite = new Promise<void>((resolve) => (acknowledged = resolve));
    const writer: RealtimeWriter = {
      async update(values) {
        await firebase.update(values);
        acknowledged();
      },
      close: () => firebase.close(),
    };
    const sink = new FirebaseSink({
      bus,
      writer,
      counters,
      flushMs: 10,
      now: () => 1234,
    });
    sink.start();
    const alert = testAlert('a1', { tenant_id: tenant, user_id: null, count: 3, first_seen: 1, last_seen: 2 });
    bus.publish('alert.opened', { tenant_id: tenant, alert });
    bus.publish('usage.decided', { tenant_id: tenant, tower_id: 'T1', records: usage(5, 2, tenant) });
    await firstWrite;
    bus.publish('usage.decided', { tenant_id: tenant, tower_id: 'T1', records: usage(4, 1, tenant) });
    await sink.stop();
    expect(counters.get('firebase_write_errors_total')).toBe(0);

    const snap = await getDatabase(reader).ref(`tenants/${tenant}`).get();
    expect(snap.val()).toEqual({
      alerts: {
        a1: {
          device_id: 'dev-1',
          rule_id: 'r1',
          policy_id: 'p1',
          app: 'dropbox',
          action: 'upload',
          severity: 'high',
          count: 3,
          first_seen: 1,
          last_seen: 2,
          status: 'open',
          tower_id: 'T1',
        },
      },
      counters: { events: 9, denied: 3, updated_at: 1234 },
    });
  });
});
