/**
 * Audit: a worker killed between committing a record and announcing it on the bus lost that
 * event's webhook for good. Deliveries were written by WebhookNotifier when the announcement
 * arrived, and the batch redelivered to the next worker found its events (and so the alert and
 * the command) stored already and announced nothing. Now the deliveries commit with the record
 * (the outbox, shared/store/rules/webhook-outbox.ts).
 *
 * The real worker pipeline on a real SQLite file: the first worker's bus throws at the chosen
 * announcement (the process dies there: nothing after it runs), the store is closed and opened
 * again from its file as the next worker, which gets the same batch again. Each webhook then
 * holds exactly one delivery of each event, as in a run without a crash.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../../shared/bus.js';
import type { BusEvents } from '../../shared/bus-events.js';
import type { WebhookEventType } from '../../shared/domain.js';
import { createIdFactory } from '../../shared/ids.js';
import { encodePayload, type UsageBatch } from '../../shared/mqtt/payloads.js';
import { parseTopic, topics } from '../../shared/mqtt/topics.js';
import { isUplinkTopic, type Downlink, type UplinkMessage } from '../../shared/mqtt/transport.js';
import type { WebhookEventBody } from '../../shared/store/rules/webhook-outbox.js';
import { SqliteStore } from '../../shared/store/sqlite/sqlite-store.js';
import { Pipeline } from '../pipeline.js';
import { testWorkerContext, type TestWorkerContext } from '../test-support.js';
import { WebhookNotifier } from './webhook-notifier.js';

const T0 = 1_700_000_000_000;
const newId = createIdFactory();

/** A bus whose process dies (throws) at the first announcement of `event`. */
class DyingBus extends InProcessBus {
  constructor(private dieAt: keyof BusEvents | null) {
    super();
  }
  override publish<K extends keyof BusEvents>(event: K, payload: BusEvents[K]): void {
    if (event === this.dieAt) {
      this.dieAt = null;
      throw new Error(`worker killed before announcing ${event}`);
    }
    super.publish(event, payload);
  }
}

/** One worker process: its store connection, bus, pipeline and webhook notifier. */
interface Worker {
  store: SqliteStore;
  ctx: TestWorkerContext;
  pipeline: Pipeline;
  notifier: WebhookNotifier;
}

describe('webhook deliveries across a worker killed between commit and announcement', () => {
  let dir: string;
  let tenantId: string;
  let worker: Worker | null;
  const pokes: string[] = [];
  const downlink: Downlink = { publish: async () => undefined };

  async function startWorker(dieAt: keyof BusEvents | null): Promise<Worker> {
    const store = new SqliteStore({ file: join(dir, 'edgeplane.db'), now: () => T0 });
    await store.init();
    const bus = new DyingBus(dieAt);
    const ctx = testWorkerContext({ store, bus, downlink, now: () => T0, newId });
    const pipeline = new Pipeline(ctx, { concurrency: 4, rebuildDebounceMs: 1 });
    await pipeline.start();
    const notifier = new WebhookNotifier({ bus, deliverer: { poke: () => pokes.push('poke') }, counters: ctx.counters });
    notifier.start();
    return { store, ctx, pipeline, notifier };
  }

  async function stopWorker(w: Worker): Promise<void> {
    await w.notifier.stop();
    await w.pipeline.stop();
    await w.ctx.close();
    await w.store.close();
  }

  /** The batch as the broker hands it to a worker (again, after a crash: the same bytes). */
  const batch: UsageBatch = { v: 1, id: newId(), sent_at: T0, events: [{ id: newId(), ts: T0, device_id: 'dev1', app: 'dropbox', action: 'upload_file' }] };
  function message(): UplinkMessage {
    const topic = topics.usage(tenantId, 'T1');
    const parsed = parseTopic(topic);
    if (!isUplinkTopic(parsed)) throw new Error('not an uplink');
    return { topic, parsed, payload: encodePayload(batch), tower_id: 'T1', received_at: T0 };
  }

  async function process(w: Worker): Promise<void> {
    await w.pipeline.accept(message());
    await w.ctx.settle();
  }

  /** Per webhook, the events of its deliveries, with the event ids seen. */
  async function deliveries(hookIds: string[]): Promise<Array<{ hook: string; events: WebhookEventType[] }>> {
    const store = worker!.store;
    const out = [];
    for (const hook of hookIds) {
      const items = (await store.webhookDeliveries.list(tenantId, hook, { limit: 100 })).items;
      const bodies = items.map((d) => JSON.parse(d.body) as WebhookEventBody);
      expect(bodies.every((b) => b.tenant_id === tenantId)).toBe(true);
      out.push({ hook, events: items.map((d) => d.event).sort() });
    }
    return out;
  }

  let hooks: { both: string; alerts: string };

  beforeEach(async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    pokes.length = 0;
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-webhook-outbox-'));
    const store = new SqliteStore({ file: join(dir, 'edgeplane.db'), now: () => T0 });
    await store.init();
    await store.towers.create({ id: 'T1', name: 't1' });
    tenantId = (await store.tenants.create({ name: 'p', plan_id: 'premium' })).id;
    await store.apps.create(tenantId, { key: 'dropbox', name: 'Dropbox' });
    await store.actions.create(tenantId, { key: 'upload_file', name: 'Upload' });
    const user = await store.users.create(tenantId, { name: 'u' });
    const role = await store.roles.create(tenantId, { name: 'r' });
    const policy = await store.policies.create(tenantId, { name: 'dlp', severity: 'high' });
    await store.userRoles.assign(tenantId, user.id, role.id);
    await store.rolePolicies.assign(tenantId, role.id, policy.id);
    await store.rules.create(tenantId, { policy_id: policy.id, app: 'dropbox', action: 'upload_file', permission: 'deny', remediation: { type: 'block_app', duration_s: 60 } });
    await store.devices.create(tenantId, { id: 'dev1', name: 'phone', user_id: user.id });
    const url = 'https://hooks.example.com/edgeplane';
    hooks = {
      both: (await store.webhooks.create(tenantId, { url, events: ['alert.opened', 'command.updated'], secret: 's1' })).id,
      alerts: (await store.webhooks.create(tenantId, { url, events: ['alert.opened'], secret: 's2' })).id,
    };
    await store.close();
    worker = null;
  });

  afterEach(async () => {
    if (worker) await stopWorker(worker);
    vi.useRealTimers();
    await rm(dir, { recursive: true, force: true });
  });

  const once = () => [
    { hook: hooks.both, events: ['alert.opened', 'command.updated'] },
    { hook: hooks.alerts, events: ['alert.opened'] },
  ];

  it('a normal run writes one delivery per webhook and event, and a redelivery none more', async () => {
    worker = await startWorker(null);
    await process(worker);
    expect(await deliveries([hooks.both, hooks.alerts])).toEqual(once());
    await process(worker);
    expect(await deliveries([hooks.both, hooks.alerts])).toEqual(once());
    // The announcements still hurry the deliverer.
    expect(pokes.length).toBeGreaterThan(0);
  });

  for (const dieAt of ['alert.opened', 'command.updated'] as const) {
    it(`killed before announcing ${dieAt}: the redelivered batch leaves exactly one delivery per webhook and event`, async () => {
      const dying = await startWorker(dieAt);
      await expect(process(dying)).rejects.toThrow(`worker killed before announcing ${dieAt}`);
      await stopWorker(dying);

      worker = await startWorker(null);
      await process(worker);
      expect(await deliveries([hooks.both, hooks.alerts])).toEqual(once());
      // Redelivered once more: still one each.
      await process(worker);
      expect(await deliveries([hooks.both, hooks.alerts])).toEqual(once());
    });
  }
});
