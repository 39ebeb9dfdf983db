/**
 * Audit: the 'commands' job queue in Redis holds what the command service acts on (send, expire,
 * delivered). A job naming another tenant, another tower, or data that is not a command job (a
 * forged job, a corrupted one, one written by another release) must change nothing: the service
 * reads every command through its tenant, checks the tower, and gives up bad data at once.
 * Real Redis (BullMQ), real SQLite store; one consumer at concurrency 1, so a job added last has
 * its effect only after the ones before it ran.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import { InProcessBus } from '../shared/bus.js';
import { CommandService } from '../shared/commands/command-service.js';
import type { CommandRecord } from '../shared/domain.js';
import { createIdFactory } from '../shared/ids.js';
import { Counters } from '../shared/metrics.js';
import type { Downlink } from '../shared/mqtt/transport.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { BullJobQueues } from '../shared/workflow/bullmq/job-queue.js';

describeWithRedis('forged and malformed command jobs (audit)', (url) => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("change nothing: another tenant's or tower's command is not touched, bad data is given up and counted", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-cmdjobs-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const store = new SqliteStore({ file: join(dir, 'db.sqlite') });
    await store.init();
    cleanups.push(() => store.close());
    const a = await store.tenants.create({ name: 'A' });
    const b = await store.tenants.create({ name: 'B' });
    await store.towers.create({ id: 'T1', name: 't1' });
    await store.towers.create({ id: 'T2', name: 't2' });

    const prefix = uniquePrefix().replace(/:$/, '');
    const bus = new InProcessBus();
    const updates: CommandRecord[] = [];
    bus.subscribe('command.updated', (e) => updates.push(e.command));
    let firstSend!: () => void;
    const sent = new Promise<void>((resolve) => (firstSend = resolve));
    const published: string[] = [];
    const downlink: Downlink = {
      publish: async (topic) => {
        published.push(topic);
        firstSend();
      },
    };
    const counters = new Counters();
    const failures: string[] = [];
    let gaveUp!: () => void;
    const failed = new Promise<void>((resolve) => (gaveUp = resolve));
    const queues = new BullJobQueues({ url, prefix });
    const commands = new CommandService(
      {
        store,
        bus,
        queues,
        counters,
        now: Date.now,
        newId: createIdFactory(),
        onError: (err, what) => {
          failures.push(`${what}: ${String(err)}`);
          gaveUp();
        },
      },
      // Resends far apart: only the first send happens within the test.
      { ttlS: 3600, retryMinMs: 3_600_000, retryMaxMs: 3_600_000 },
    );
    cleanups.push(() => queues.close(), () => commands.stop());
    commands.startProcessing(downlink, 1);
    const { command: cmd } = await commands.issue({ tenant_id: a.id, tower_id: 'T1', device_id: 'dev1', type: 'block_device', source: 'manual' });

    // Whoever can write to the queue: no schema on this side.
    const forgerQueues = new BullJobQueues({ url, prefix });
    cleanups.push(() => forgerQueues.close());
    const forger = forgerQueues.open({ name: 'commands', schema: z.unknown() });

    // The first send (attempt 1) went out: the forged send below names the current attempt.
    await sent;
    expect((await store.commands.get(a.id, cmd.id))!.attempts).toBe(1);

    await forger.add({ kind: 'send', tenant_id: b.id, command_id: cmd.id, attempts: 1 }, { id: 'forged-send' });
    await forger.add({ kind: 'expire', tenant_id: b.id, command_id: cmd.id }, { id: 'forged-expire' });
    await forger.add({ kind: 'delivered', tenant_id: a.id, tower_id: 'T2', command_id: cmd.id, at: 1 }, { id: 'forged-delivered' });
    await forger.add({ kind: 'delivered', tenant_id: b.id, tower_id: 'T1', command_id: cmd.id, at: 1 }, { id: 'forged-delivered-b' });
    await forger.add({ kind: 'wipe', tenant_id: a.id }, { id: 'forged-kind' });
    await failed;
    expect(failures).toEqual([expect.stringMatching(/^command job forged-kind: .*invalid job data/)]);
    expect(counters.get('command_jobs_failed_total')).toBe(1);

    // The last job is a real one: once it took effect, every job before it has run.
    const delivered = new Promise<void>((resolve) => bus.subscribe('command.updated', (e) => e.command.status === 'delivered' && resolve()));
    await forger.add({ kind: 'delivered', tenant_id: a.id, tower_id: 'T1', command_id: cmd.id, at: 2 }, { id: 'real-delivered' });
    await delivered;

    expect(published).toHaveLength(1);
    const after = await store.commands.get(a.id, cmd.id);
    expect(after).toMatchObject({ status: 'delivered', attempts: 1, tower_id: 'T1' });
    expect(updates.map((u) => u.status)).toEqual(['pending', 'delivered']);
    expect(await store.commands.get(b.id, cmd.id)).toBeNull();
  });
});
