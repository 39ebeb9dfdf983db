/**
 * Audit: the 'webhooks' job queue in Redis names the delivery each attempt is for. A job naming
 * another tenant's delivery, a stale attempt count, or data that is not a delivery job must send
 * nothing and record nothing: the deliverer reads the delivery through the job's tenant and
 * attempts it only while it is pending at that count. Real Redis (BullMQ), real SQLite store, a
 * recording transport; one attempt at a time, so the real job added last runs after the others.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import { Counters } from '../shared/metrics.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { BullJobQueues } from '../shared/workflow/bullmq/job-queue.js';
import { InProcessLeases } from '../shared/workflow/leases.js';
import { WebhookDeliverer } from './webhooks/webhook-deliverer.js';
import type { WebhookPost } from './webhooks/webhook-transport.js';

describeWithRedis('forged and malformed webhook jobs (audit)', (url) => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("send nothing for another tenant's delivery or a stale attempt, and give bad data up", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-whjobs-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const store = new SqliteStore({ file: join(dir, 'db.sqlite') });
    await store.init();
    cleanups.push(() => store.close());
    const a = await store.tenants.create({ name: 'A' });
    const b = await store.tenants.create({ name: 'B' });
    const hookA = await store.webhooks.create(a.id, { url: 'https://a.example/hook', events: ['alert.opened'], secret: 'secret-a-0123456789' });
    const delivery = await store.webhookDeliveries.create({ tenant_id: a.id, webhook_id: hookA.id, event: 'alert.opened', body: '{"id":"e1"}', next_attempt_at: 0 });

    const posts: WebhookPost[] = [];
    let posted!: () => void;
    const firstPost = new Promise<void>((resolve) => (posted = resolve));
    const errors: string[] = [];
    let gaveUp!: () => void;
    const failed = new Promise<void>((resolve) => (gaveUp = resolve));
    const prefix = uniquePrefix().replace(/:$/, '');
    const queues = new BullJobQueues({ url, prefix });
    const deliverer = new WebhookDeliverer({
      store,
      counters: new Counters(),
      queues,
      leases: new InProcessLeases(),
      processId: 'audit',
      maxAttempts: 5,
      timeoutMs: 1000,
      concurrency: 1,
      transport: async (post) => {
        posts.push(post);
        posted();
        return { status: 200 };
      },
      onError: (err) => {
        errors.push(String(err));
        gaveUp();
      },
    });
    deliverer.startProcessing();
    cleanups.push(() => queues.close(), () => deliverer.stop());

    const forgerQueues = new BullJobQueues({ url, prefix });
    cleanups.push(() => forgerQueues.close());
    const forger = forgerQueues.open({ name: 'webhooks', schema: z.unknown() });
    await forger.add({ tenant_id: b.id, delivery_id: delivery.id, attempts: 0 }, { id: 'forged-tenant' });
    await forger.add({ tenant_id: a.id, delivery_id: delivery.id, attempts: 3 }, { id: 'forged-stale' });
    await forger.add({ tenant_id: a.id, delivery_id: delivery.id }, { id: 'forged-data' });
    await failed;
    expect(errors).toEqual([expect.stringMatching(/invalid job data/)]);
    expect(posts).toEqual([]);
    expect(await store.webhookDeliveries.get(a.id, delivery.id)).toMatchObject({ status: 'pending', attempts: 0 });

    // The real attempt, queued last, is the one POST.
    await forger.add({ tenant_id: a.id, delivery_id: delivery.id, attempts: 0 }, { id: 'real' });
    await firstPost;
    expect(posts.map((p) => p.url)).toEqual(['https://a.example/hook']);
    expect(await store.webhookDeliveries.get(b.id, delivery.id)).toBeNull();
  });
});
