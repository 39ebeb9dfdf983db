/**
 * When the policy engine rebuilds and republishes a tenant after changes: once changes pause for
 * the debounce, but at most a second after the first of a burst; and after a refresh whose
 * rebuild took long, not sooner than that long again (a bulk import of a large tenant must not
 * rebuild everything after every call), while a slow publish alone spaces nothing. Real SQLite
 * store, fake timers and clock; the store's snapshot read and the downlink move the clock on.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../shared/bus.js';
import { Counters } from '../shared/metrics.js';
import type { Downlink } from '../shared/mqtt/transport.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { PolicyEngine } from './policy-engine.js';
import { testWorkerContext } from './test-support.js';

/** Added to the clock by the next snapshot read (a slow rebuild) and the next publish. */
let slowBuild = 0;
let slowPublish = 0;
const downlink: Downlink = {
  publish: async () => {
    vi.setSystemTime(Date.now() + slowPublish);
    slowPublish = 0;
  },
};

let dir: string;
let store: SqliteStore;
let counters: Counters;
let ctx: ReturnType<typeof testWorkerContext>;
let engine: PolicyEngine;
let tenant: string;

const builds = (): number => counters.get('policy_index_builds_total');

/** Lets a refresh that a timer started run to its end (store calls and publishes are promises). */
async function drain(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-refresh-'));
  store = new SqliteStore({ file: join(dir, 'db.sqlite') });
  await store.init();
  const snapshot = store.policySnapshot.bind(store);
  store.policySnapshot = async (tenantId) => {
    vi.setSystemTime(Date.now() + slowBuild);
    slowBuild = 0;
    return snapshot(tenantId);
  };
  tenant = (await store.tenants.create({ name: 'A' })).id;
  counters = new Counters();
  ctx = testWorkerContext({ store, bus: new InProcessBus(), downlink, counters, now: () => Date.now() });
  engine = new PolicyEngine(ctx, { rebuildDebounceMs: 20 });
  await engine.start();
});

afterEach(async () => {
  await engine.stop();
  await ctx.close();
  await store.close();
  vi.useRealTimers();
  await rm(dir, { recursive: true, force: true });
});

describe('policy engine refresh scheduling', () => {
  it('rebuilds once changes pause for the debounce, then waits as long as a slow rebuild took before the next', async () => {
    const before = builds();
    // A burst: one rebuild, 20 ms after its last change.
    await store.devices.create(tenant, { id: 'd1', name: 'phone' });
    slowBuild = 5_000;
    engine.invalidate(tenant);
    await vi.advanceTimersByTimeAsync(10);
    engine.invalidate(tenant);
    await vi.advanceTimersByTimeAsync(19);
    expect(builds()).toBe(before);
    await vi.advanceTimersByTimeAsync(1);
    await drain();
    expect(builds()).toBe(before + 1);
    // That rebuild took 5 s: the next change waits 5 s, not 20 ms. Its publish is slow too, which
    // spaces nothing.
    slowPublish = 30_000;
    await store.devices.create(tenant, { id: 'd2', name: 'tablet' });
    engine.invalidate(tenant);
    await vi.advanceTimersByTimeAsync(4_999);
    await drain();
    expect(builds()).toBe(before + 1);
    await vi.advanceTimersByTimeAsync(1);
    await drain();
    expect(builds()).toBe(before + 2);
    // That one was quick: back to the debounce.
    engine.invalidate(tenant);
    await vi.advanceTimersByTimeAsync(20);
    await drain();
    expect(builds()).toBe(before + 3);
  });

  it('a change every 10 ms without pause still refreshes within a second of the first', async () => {
    const before = builds();
    for (let t = 0; t < 990; t += 10) {
      engine.invalidate(tenant);
      await vi.advanceTimersByTimeAsync(10);
    }
    await drain();
    expect(builds()).toBe(before);
    engine.invalidate(tenant);
    await vi.advanceTimersByTimeAsync(10);
    await drain();
    expect(builds()).toBe(before + 1);
  });
});
