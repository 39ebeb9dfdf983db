/**
 * Audit: a retention pass that takes longer than the interval (a large purge, a slow store). The
 * next tick found the lease its own process held and started a second pass next to the first,
 * then a third…, each paging through every tenant and purging; stop() waited for the newest only,
 * so the store could be closed under the older ones. Real SQLite store, fake timers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../shared/bus.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { RetentionJob } from './retention-job.js';
import { testWorkerContext, type TestWorkerContext } from './test-support.js';

let dir: string;
let store: SqliteStore;
let ctx: TestWorkerContext;

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-retention-'));
  store = new SqliteStore({ file: join(dir, 'db.sqlite') });
  await store.init();
  await store.tenants.create({ name: 'A' });
  ctx = testWorkerContext({ store, bus: new InProcessBus(), downlink: { publish: async () => {} } });
});

afterEach(async () => {
  await ctx.close();
  await store.close();
  vi.useRealTimers();
  await rm(dir, { recursive: true, force: true });
});

/** Lets store calls and lease checks started by a tick run (they are promises, not timers). */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe('retention passes longer than the interval', () => {
  it('are not joined by further passes, and stop() waits for the one running', async () => {
    let passes = 0;
    let finished = 0;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const first = new Promise<void>((resolve) => (started = resolve));
    const purge = store.purgeUsage.bind(store);
    store.purgeUsage = async (tenantId, before) => {
      passes++;
      started();
      await held;
      const n = await purge(tenantId, before);
      finished++;
      return n;
    };
    const job = new RetentionJob(ctx, { intervalS: 1 });
    job.start();
    await vi.advanceTimersByTimeAsync(1000);
    await first;
    // Three more intervals go by while the first pass is stuck in its purge.
    for (let i = 0; i < 3; i++) {
      await vi.advanceTimersByTimeAsync(1000);
      await flush();
    }
    expect(passes).toBe(1);

    const stopping = job.stop();
    release();
    await stopping;
    expect(finished).toBe(passes);
    // Stopped: no pass after it.
    await vi.advanceTimersByTimeAsync(5000);
    await flush();
    expect(passes).toBe(1);
  });
});
