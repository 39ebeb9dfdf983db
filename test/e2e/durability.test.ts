/**
 * `--durability power` reaches the two places an embedded control plane acknowledges from: the
 * SQLite connection that commits (synchronous = FULL, read back from that connection) and the
 * broker's LevelDB session store (every batch written with sync), on the real composition root
 * (startEmbedded) with a real data dir. What the fsyncs buy — surviving a power cut — cannot be
 * caused here; that each write asks for one is what is checked. The default stays `process`.
 */
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it } from 'vitest';
import type { SqliteStore } from '../../shared/store/sqlite/sqlite-store.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

type Batch = (this: unknown, ops: unknown, opts?: { sync?: boolean }) => Promise<void>;

let running: TestControlPlane | null = null;
const proto = ClassicLevel.prototype as unknown as { batch: Batch };
const originalBatch = proto.batch;

afterEach(async () => {
  proto.batch = originalBatch;
  await running?.destroy();
  running = null;
});

/** Starts a control plane, records the sync option of every LevelDB batch, stores one retained message. */
async function syncOptionsOfBatches(config: Record<string, unknown>): Promise<{ store: SqliteStore; syncs: Array<boolean | undefined> }> {
  const syncs: Array<boolean | undefined> = [];
  proto.batch = function (this: unknown, ops, opts) {
    syncs.push(opts?.sync);
    return originalBatch.call(this, ops, opts);
  };
  running = await startTestControlPlane({ config });
  // A retained message is stored in the session store (LevelDB) before the publish completes.
  await running.cp.broker.downlink.publish('tenants/t-durability/towers/tower-1/policy', Buffer.from('{}'), { retain: true });
  return { store: running.cp.store as SqliteStore, syncs };
}

describe('--durability', () => {
  it('power: SQLite commits and the broker session store are fsync\'ed before an ack', async () => {
    const { store, syncs } = await syncOptionsOfBatches({ durability: 'power' });
    expect(store.durability()).toBe('power');
    expect(syncs.length).toBeGreaterThan(0);
    expect(syncs.every((s) => s === true)).toBe(true);
  });

  it('process (the default): written before an ack, not fsync\'ed', async () => {
    const { store, syncs } = await syncOptionsOfBatches({});
    expect(store.durability()).toBe('process');
    expect(syncs.length).toBeGreaterThan(0);
    expect(syncs.every((s) => s === false)).toBe(true);
  });
});
