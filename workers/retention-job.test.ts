/**
 * Retention purges what grows with traffic, per tenant and by its plan: here finished webhook
 * deliveries (delivered or failed), which nothing else removed but deleting their webhook. Pending
 * ones and other tenants' stay. And the platform's own audit records (carrier feeds write one per
 * request) by the platform retention. Real SQLite store.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../shared/bus.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { RetentionJob } from './retention-job.js';
import { testWorkerContext, type TestWorkerContext } from './test-support.js';

const DAY_MS = 86_400_000;
let dir: string;
let store: SqliteStore;
let ctx: TestWorkerContext;
const clock = { now: 0 };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-retention-'));
  store = new SqliteStore({ file: join(dir, 'db.sqlite'), now: () => clock.now });
  await store.init();
  clock.now = Date.now();
  ctx = testWorkerContext({ store, bus: new InProcessBus(), downlink: { publish: async () => {} }, now: () => clock.now });
});

afterEach(async () => {
  await ctx.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('retention', () => {
  it("purges a tenant's finished webhook deliveries older than its plan's retention, and nothing else", async () => {
    const [a, b] = [(await store.tenants.create({ name: 'A' })).id, (await store.tenants.create({ name: 'B' })).id];
    const retentionDays = (await store.plans.get((await store.tenants.get(a))!.plan_id))!.retention_days;
    const hookOf = async (t: string) => (await store.webhooks.create(t, { url: 'https://hooks.example.test/x', events: ['alert.opened'], secret: 's'.repeat(32) })).id;
    const [hookA, hookB] = [await hookOf(a), await hookOf(b)];
    const deliver = (t: string, hook: string) => store.webhookDeliveries.create({ tenant_id: t, webhook_id: hook, event: 'alert.opened', body: '{}', next_attempt_at: clock.now });
    const done = { status: 'delivered' as const, status_code: 200, error: null, next_attempt_at: null };
    const oldDone = await deliver(a, hookA);
    await store.webhookDeliveries.recordAttempt(oldDone.id, { ...done, at: clock.now });
    const oldPending = await deliver(a, hookA);
    const oldOfB = await deliver(b, hookB);
    await store.webhookDeliveries.recordAttempt(oldOfB.id, { ...done, at: clock.now });
    // Past the plan's retention for those; a fresh finished one of A stays too.
    clock.now += (retentionDays + 1) * DAY_MS;
    const fresh = await deliver(a, hookA);
    await store.webhookDeliveries.recordAttempt(fresh.id, { ...done, at: clock.now });
    await new RetentionJob(ctx, { intervalS: 3600 }).run();
    expect(await store.webhookDeliveries.get(a, oldDone.id)).toBeNull();
    expect(await store.webhookDeliveries.get(a, oldPending.id)).not.toBeNull();
    expect(await store.webhookDeliveries.get(a, fresh.id)).not.toBeNull();
    expect(await store.webhookDeliveries.get(b, oldOfB.id)).toBeNull();
    expect(ctx.counters.get('webhook_deliveries_purged_total')).toBe(2);
  });

  it('purges platform audit records (operators, carriers) older than the platform retention, and no tenant record', async () => {
    const a = (await store.tenants.create({ name: 'A' })).id;
    const record = (tenantId: string | null, at: number) =>
      store.audit.record({
        tenant_id: tenantId,
        actor_kind: 'system',
        actor_id: 'carrier:c1',
        actor_label: null,
        action: 'towers.upsert',
        resource_type: 'tower',
        resource_id: 't1',
        method: 'POST',
        path: '/api/v1/carrier-feeds/towers',
        status_code: 200,
        ip: null,
        user_agent: null,
        before: null,
        after: null,
        at,
      });
    const start = clock.now;
    const oldPlatform = await record(null, start);
    const oldOfA = await record(a, start);
    clock.now += 31 * DAY_MS;
    const freshPlatform = await record(null, clock.now - DAY_MS);
    await new RetentionJob(ctx, { intervalS: 3600, platformAuditRetentionDays: 30 }).run();
    expect(await store.audit.get(null, oldPlatform.id)).toBeNull();
    expect(await store.audit.get(null, freshPlatform.id)).not.toBeNull();
    // The tenant's own retention (365 days by default) still keeps its record.
    expect(await store.audit.get(a, oldOfA.id)).not.toBeNull();
    expect(ctx.counters.get('audit_rows_purged_total')).toBe(1);
  });
});
