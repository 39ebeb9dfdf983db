/**
 * Audit: the store is down for longer than a command job's own retries (8 runs, backoff from
 * 0.5 s doubling: about a minute; a MongoDB election that drags on, a locked disk). Only a send
 * schedules the next send, so a send job given up left the command pending with nothing
 * scheduled: it went out only when its tower happened to reconnect or a process restarted, and
 * otherwise expired unsent. Real SQLite store with reads failing on demand, in-process queue,
 * fake timers and clock.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../shared/bus.js';
import { CommandService } from '../shared/commands/command-service.js';
import { createIdFactory } from '../shared/ids.js';
import { Counters } from '../shared/metrics.js';
import type { Downlink } from '../shared/mqtt/transport.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { InProcessJobQueues } from '../shared/workflow/job-queue.js';

let dir: string;
let store: SqliteStore;
let queues: InProcessJobQueues;
let commands: CommandService;
let clock: number;
let storeDown: boolean;
const published: string[] = [];
const counters = new Counters();

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  clock = 1_700_000_000_000;
  storeDown = false;
  published.length = 0;
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-outage-'));
  store = new SqliteStore({ file: join(dir, 'db.sqlite'), now: () => clock });
  await store.init();
  const get = store.commands.get.bind(store.commands);
  store.commands.get = async (tenantId, id) => {
    if (storeDown) throw new Error('store unavailable');
    return get(tenantId, id);
  };
  await store.towers.create({ id: 'T1', name: 't1' });
  queues = new InProcessJobQueues();
  const downlink: Downlink = { publish: async (topic) => void published.push(topic) };
  commands = new CommandService(
    { store, bus: new InProcessBus(), queues, counters, now: () => clock, newId: createIdFactory() },
    { ttlS: 3600, retryMinMs: 1000, retryMaxMs: 60_000 },
  );
  commands.startProcessing(downlink);
});

afterEach(async () => {
  await commands.stop();
  await store.close();
  vi.useRealTimers();
  await rm(dir, { recursive: true, force: true });
});

async function advance(ms: number): Promise<void> {
  clock += ms;
  await vi.advanceTimersByTimeAsync(ms);
  await queues.idle();
}

describe('a command issued while the store fails its reads for minutes', () => {
  it('is sent once the store is back, without waiting for its tower to reconnect', async () => {
    const tenant = await store.tenants.create({ name: 'A' });
    storeDown = true;
    await commands.issue({ tenant_id: tenant.id, tower_id: 'T1', device_id: 'dev1', type: 'block_device', source: 'manual' });
    // Every run of the first send fails: given up after its attempts (reported once).
    for (let i = 0; i < 10; i++) await advance(10_000);
    expect(counters.get('command_jobs_failed_total')).toBe(1);
    expect(published).toEqual([]);

    storeDown = false;
    await advance(60_000);
    expect(published.length).toBeGreaterThan(0);
    expect(new Set(published)).toEqual(new Set([`tenants/${tenant.id}/towers/T1/commands`]));
    // Each publish recorded once (the later round and the resends it started do not race).
    const [cmd] = (await store.commands.list(tenant.id)).items;
    expect(cmd).toMatchObject({ status: 'pending', attempts: published.length });
  });
});
