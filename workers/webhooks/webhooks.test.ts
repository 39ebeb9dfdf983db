/**
 * Webhook notification end to end below the API: a record committed with its deliveries (the
 * store's outbox, real SQLite) → its bus announcement → WebhookNotifier pokes → WebhookDeliverer
 * → a real HTTP receiver on 127.0.0.1, which is why these run with private targets allowed
 * (--webhook-allow-private; the refusals are webhook-targets.test.ts).
 * Time is an injected clock and passes run through deliverer.tick(): no sleeps, backoff is crossed
 * by moving the clock.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../shared/bus.js';
import { ALERT_STEP_EVENTS } from '../../shared/bus-events.js';
import type { Alert, WebhookEventType } from '../../shared/domain.js';
import { createIdFactory } from '../../shared/ids.js';
import { Counters } from '../../shared/metrics.js';
import type { DecidedUsage } from '../../shared/store/port.js';
import { SqliteStore } from '../../shared/store/sqlite/sqlite-store.js';
import { signWebhook, verifyWebhookSignature } from '../../shared/webhook-signature.js';
import { InProcessJobQueues } from '../../shared/workflow/job-queue.js';
import { InProcessLeases } from '../../shared/workflow/leases.js';
import { WebhookDeliverer, backoffMs } from './webhook-deliverer.js';
import { WebhookNotifier, type WebhookEventBody } from './webhook-notifier.js';

const START = 1_700_000_000_000;
const MAX_ATTEMPTS = 4;

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A webhook receiver answering with scripted statuses (then 200), recording every request. */
class Receiver {
  readonly requests: Received[] = [];
  readonly script: number[] = [];
  readonly #server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      this.requests.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = this.script.shift() ?? 200;
      res.end('ok');
    });
  });

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
  }
  url(path: string): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}${path}`;
  }
  on(path: string): Received[] {
    return this.requests.filter((r) => r.path === path);
  }
  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

let dir: string;
let clock: number;
let store: SqliteStore;
let bus: InProcessBus;
let counters: Counters;
let receiver: Receiver;
let deliverer: WebhookDeliverer;
let notifier: WebhookNotifier;

/** `poke: false` keeps the notifier from starting passes, for tests that act between the two. */
function build(opts: { store?: SqliteStore; poke?: boolean } = {}): void {
  const now = () => clock;
  deliverer = new WebhookDeliverer({
    store: opts.store ?? store,
    counters,
    queues: new InProcessJobQueues(),
    leases: new InProcessLeases(),
    processId: 'test',
    maxAttempts: MAX_ATTEMPTS,
    timeoutMs: 5000,
    allowPrivateTargets: true,
    now,
  });
  deliverer.startProcessing();
  const poked = opts.poke === false ? { poke: () => {} } : deliverer;
  notifier = new WebhookNotifier({ bus, deliverer: poked, counters });
  notifier.start();
}

async function rebuild(opts: Parameters<typeof build>[0]): Promise<void> {
  await notifier.stop();
  await deliverer.stop();
  build(opts);
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-webhooks-'));
  clock = START;
  store = new SqliteStore({ file: join(dir, 'edgeplane.db'), now: () => clock });
  await store.init();
  bus = new InProcessBus();
  counters = new Counters();
  receiver = new Receiver();
  await receiver.listen();
  build();
});
afterEach(async () => {
  await notifier.stop();
  await deliverer.stop();
  await receiver.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function tenantWithHook(name: string, events: WebhookEventType[], path = `/${name}`) {
  const tenant = await store.tenants.create({ name });
  const secret = `secret-${name}`;
  const webhook = await store.webhooks.create(tenant.id, { url: receiver.url(path), events, secret });
  return { tenantId: tenant.id, webhook, secret, path };
}

const newId = createIdFactory();

/**
 * Commits a deny (and with `discover`, an unknown device's event) as a worker does, which writes
 * their deliveries, then announces what it opened and found, as the worker does next.
 */
async function openAlert(tenantId: string, opts: { discover?: boolean } = {}): Promise<Alert> {
  const base = {
    tenant_id: tenantId,
    tower_id: 'T1',
    batch_id: 'b1',
    user_id: null,
    app: 'dropbox',
    action: 'upload',
    bytes: null,
    ts: START,
    received_at: START,
    policy_version: 1,
    local_effect: null,
    local_policy_version: null,
  };
  const records: DecidedUsage[] = [{ ...base, id: newId(), device_id: 'dev-1', effect: 'deny', reason: 'rule', rule_id: 'r1', policy_id: 'p1', severity: 'high' }];
  if (opts.discover) {
    records.push({ ...base, id: newId(), device_id: 'stranger', effect: 'deny', reason: 'unknown_device', rule_id: null, policy_id: null, severity: null });
  }
  const r = await store.usage.recordBatch({ tenant_id: tenantId, tower_id: 'T1', batch_id: newId(), now: clock, alert_window_s: 300, records });
  for (const a of r.alerts_opened) bus.publish('alert.opened', { tenant_id: tenantId, alert: a });
  for (const device of r.discovered) bus.publish('device.discovered', { tenant_id: tenantId, device });
  return r.alerts_opened[0]!;
}

/** Runs one delivery pass (the deliveries were committed with their records). */
async function deliver(): Promise<void> {
  await deliverer.tick();
}

describe('webhook delivery', () => {
  it('POSTs the event signed with the webhook secret', async () => {
    const { tenantId, webhook, secret, path } = await tenantWithHook('acme', ['alert.opened']);
    const opened = await openAlert(tenantId);
    await deliver();

    const [req] = receiver.on(path);
    expect(receiver.requests).toHaveLength(1);
    const [delivery] = (await store.webhookDeliveries.list(tenantId, webhook.id)).items;
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.headers['x-edgeplane-event']).toBe('alert.opened');
    expect(req!.headers['x-edgeplane-delivery']).toBe(delivery!.id);
    const signature = req!.headers['x-edgeplane-signature'] as string;
    expect(signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature(secret, signature, req!.body, clock)).toBe(true);
    expect(verifyWebhookSignature('another-secret', signature, req!.body, clock)).toBe(false);
    expect(verifyWebhookSignature(secret, signature, req!.body.replace('dropbox', 'dropbax'), clock)).toBe(false);
    expect(verifyWebhookSignature(secret, signature, req!.body, clock + 301_000)).toBe(false);

    const body = JSON.parse(req!.body) as WebhookEventBody;
    expect(body).toEqual({ id: expect.any(String), type: 'alert.opened', tenant_id: tenantId, created_at: START, data: opened });
    expect(delivery).toMatchObject({ status: 'delivered', attempts: 1, last_status_code: 200, last_error: null, next_attempt_at: null });
    expect(counters.get('webhook_deliveries_total', { status: 'delivered' })).toBe(1);

    await deliverer.tick();
    expect(receiver.requests).toHaveLength(1);
  });

  it('retries 500, 500 then 200 with growing backoff, every attempt recorded', async () => {
    const { tenantId, webhook, secret, path } = await tenantWithHook('acme', ['alert.opened']);
    receiver.script.push(500, 500);
    await openAlert(tenantId);
    await deliver();

    const state = async () => (await store.webhookDeliveries.list(tenantId, webhook.id)).items[0]!;
    let d = await state();
    expect(d).toMatchObject({ status: 'pending', attempts: 1, last_status_code: 500, last_error: 'HTTP 500' });
    const firstWait = d.next_attempt_at! - clock;
    expect(firstWait).toBe(backoffMs(1));

    clock = d.next_attempt_at! - 1;
    await deliverer.tick();
    expect(receiver.requests).toHaveLength(1);

    clock = d.next_attempt_at!;
    await deliverer.tick();
    d = await state();
    expect(d).toMatchObject({ status: 'pending', attempts: 2, last_status_code: 500 });
    const secondWait = d.next_attempt_at! - clock;
    expect(secondWait).toBeGreaterThan(firstWait);

    clock = d.next_attempt_at!;
    await deliverer.tick();
    d = await state();
    expect(d).toMatchObject({ status: 'delivered', attempts: 3, last_status_code: 200, last_error: null, next_attempt_at: null });

    const sent = receiver.on(path);
    expect(sent).toHaveLength(3);
    // The same delivery each time, re-signed at its own send time.
    expect(new Set(sent.map((r) => r.headers['x-edgeplane-delivery']))).toEqual(new Set([d.id]));
    expect(new Set(sent.map((r) => r.body)).size).toBe(1);
    expect(verifyWebhookSignature(secret, sent[2]!.headers['x-edgeplane-signature'] as string, sent[2]!.body, clock)).toBe(true);
    expect(counters.get('webhook_deliveries_total', { status: 'pending' })).toBe(2);
    expect(counters.get('webhook_deliveries_total', { status: 'delivered' })).toBe(1);
  });

  it('marks the delivery failed after webhook_max_attempts', async () => {
    const { tenantId, webhook, path } = await tenantWithHook('acme', ['alert.opened']);
    receiver.script.push(...Array<number>(MAX_ATTEMPTS + 2).fill(503));
    await openAlert(tenantId);
    await deliver();
    for (let i = 1; i < MAX_ATTEMPTS; i++) {
      clock += backoffMs(i);
      await deliverer.tick();
    }
    const [d] = (await store.webhookDeliveries.list(tenantId, webhook.id)).items;
    expect(d).toMatchObject({ status: 'failed', attempts: MAX_ATTEMPTS, last_status_code: 503, last_error: 'HTTP 503', next_attempt_at: null });
    expect(receiver.on(path)).toHaveLength(MAX_ATTEMPTS);

    clock += 24 * 3600_000;
    await deliverer.tick();
    expect(receiver.on(path)).toHaveLength(MAX_ATTEMPTS);
    expect(counters.get('webhook_deliveries_total', { status: 'failed' })).toBe(1);
  });

  it('records a network error and retries it', async () => {
    const refused = new Receiver();
    await refused.listen();
    const url = refused.url('/gone');
    await refused.close();
    const tenant = await store.tenants.create({ name: 'acme' });
    const webhook = await store.webhooks.create(tenant.id, { url, events: ['alert.opened'], secret: 's' });
    await openAlert(tenant.id);
    await deliver();
    const [d] = (await store.webhookDeliveries.list(tenant.id, webhook.id)).items;
    expect(d).toMatchObject({ status: 'pending', attempts: 1, last_status_code: null });
    expect(d!.last_error).toMatch(/ECONNREFUSED/);
  });

  it("fails a disabled webhook's pending delivery with 'webhook removed', sending nothing", async () => {
    await rebuild({ poke: false });
    const { tenantId, webhook } = await tenantWithHook('acme', ['alert.opened']);
    await openAlert(tenantId);
    await store.webhooks.update(tenantId, webhook.id, { enabled: false });
    await deliverer.tick();
    expect(receiver.requests).toHaveLength(0);
    const [d] = (await store.webhookDeliveries.list(tenantId, webhook.id)).items;
    expect(d).toMatchObject({ status: 'failed', attempts: 1, last_error: 'webhook removed', next_attempt_at: null });
  });

  it('sends nothing for a delivery whose webhook is deleted between the sweep and the attempt', async () => {
    await rebuild({ poke: false });
    const { tenantId, webhook } = await tenantWithHook('acme', ['alert.opened']);
    await openAlert(tenantId);
    const [pending] = (await store.webhookDeliveries.list(tenantId, webhook.id)).items;
    // The real store, with the webhook's deletion landing between the sweep's read and the send.
    const attempts: Array<{ id: string; status: string; error: string | null }> = [];
    const racing = Object.create(store) as SqliteStore;
    Object.defineProperty(racing, 'webhookDeliveries', {
      value: {
        ...store.webhookDeliveries,
        async dueFair(now: number, perTenant: number, limit: number) {
          const rows = await store.webhookDeliveries.dueFair(now, perTenant, limit);
          await store.webhooks.delete(tenantId, webhook.id);
          return rows;
        },
        async recordAttempt(id: string, outcome: Parameters<SqliteStore['webhookDeliveries']['recordAttempt']>[1]) {
          attempts.push({ id, status: outcome.status, error: outcome.error });
          await store.webhookDeliveries.recordAttempt(id, outcome);
        },
      },
    });
    await rebuild({ store: racing, poke: false });
    await deliverer.tick();
    expect(receiver.requests).toHaveLength(0);
    // Deleting a webhook deletes its deliveries: the attempt finds none and records nothing.
    expect(pending).toBeDefined();
    expect(attempts).toEqual([]);
    expect(await store.webhookDeliveries.dueFair(clock + 3600_000, 50, 50)).toEqual([]);
  });
});

describe('webhook fan-out', () => {
  it("never delivers another tenant's events", async () => {
    const a = await tenantWithHook('alpha', ['alert.opened', 'command.updated', 'device.discovered']);
    const b = await tenantWithHook('bravo', ['alert.opened', 'command.updated', 'device.discovered']);
    await openAlert(b.tenantId, { discover: true });
    const command = await store.commands.create({
      tenant_id: b.tenantId,
      tower_id: 'T1',
      device_id: 'dev-1',
      type: 'block_app',
      app: 'dropbox',
      duration_s: 60,
      reason: null,
      source: 'auto',
      rule_id: 'r1',
      expires_at: START + 60_000,
    });
    bus.publish('command.updated', { tenant_id: b.tenantId, command });
    // Unclaimed devices belong to no tenant: nobody is notified.
    bus.publish('device.discovered', {
      tenant_id: null,
      device: { id: 'd2', tenant_id: null, device_id: 'nobody', tower_id: 'T1', first_seen: START, last_seen: START, count: 1 },
    });
    await deliver();

    expect(receiver.on(a.path)).toHaveLength(0);
    expect((await store.webhookDeliveries.list(a.tenantId, a.webhook.id)).items).toEqual([]);
    const toB = receiver.on(b.path);
    expect(toB.map((r) => r.headers['x-edgeplane-event']).sort()).toEqual(['alert.opened', 'command.updated', 'device.discovered']);
    for (const r of toB) {
      expect((JSON.parse(r.body) as WebhookEventBody).tenant_id).toBe(b.tenantId);
      expect(verifyWebhookSignature(b.secret, r.headers['x-edgeplane-signature'] as string, r.body, clock)).toBe(true);
      expect(verifyWebhookSignature(a.secret, r.headers['x-edgeplane-signature'] as string, r.body, clock)).toBe(false);
    }
  });

  it('notifies only webhooks subscribed to the event, each with the same event id', async () => {
    const a = await tenantWithHook('alpha', ['alert.opened'], '/first');
    await store.webhooks.create(a.tenantId, { url: receiver.url('/second'), events: ['alert.opened', 'alert.updated'], secret: 'x' });
    await store.webhooks.create(a.tenantId, { url: receiver.url('/commands'), events: ['command.updated'], secret: 'y' });
    await openAlert(a.tenantId);
    await deliver();
    expect(receiver.requests.map((r) => r.path).sort()).toEqual(['/first', '/second']);
    const ids = receiver.requests.map((r) => (JSON.parse(r.body) as WebhookEventBody).id);
    expect(ids[0]).toBe(ids[1]);
    expect(receiver.requests[0]!.headers['x-edgeplane-delivery']).not.toBe(receiver.requests[1]!.headers['x-edgeplane-delivery']);
  });

  it('delivers alert workflow steps (acknowledged, assigned, resolved) with the alert after the step', async () => {
    const { tenantId, path } = await tenantWithHook('flow', ['alert.acknowledged', 'alert.assigned', 'alert.resolved']);
    await store.webhooks.create(tenantId, { url: receiver.url('/opened-only'), events: ['alert.opened'], secret: 'z' });
    const analyst = await store.consoleUsers.create({ tenant_id: tenantId, email: 'ana@flow.test', console_role: 'analyst', password_hash: 'h' });
    const opened = await openAlert(tenantId);
    // Each step as the API makes it: the store's transaction (with its deliveries), then the announcement.
    for (const action of [
      { kind: 'acknowledge', by: 'u-1', at: START },
      { kind: 'assign', assignee: analyst.id, by: 'u-1', at: START },
      { kind: 'resolve', by: 'u-1', at: START, note: 'done' },
    ] as const) {
      const { alert: after, step } = (await store.alerts.act(tenantId, opened.id, action))!;
      bus.publish(ALERT_STEP_EVENTS[step!.kind], { tenant_id: tenantId, alert: after, step: step! });
    }
    await deliver();
    const got = receiver.on(path).map((r) => JSON.parse(r.body) as WebhookEventBody);
    expect(got.map((b) => [b.type, (b.data as Alert).status, (b.data as Alert).assigned_to])).toEqual([
      ['alert.acknowledged', 'acknowledged', null],
      ['alert.assigned', 'acknowledged', analyst.id],
      ['alert.resolved', 'resolved', analyst.id],
    ]);
    expect(receiver.on('/opened-only').map((r) => r.headers['x-edgeplane-event'])).toEqual(['alert.opened']);
  });
});

describe('verifyWebhookSignature', () => {
  it('accepts any of several v1 signatures and refuses malformed headers', () => {
    const header = signWebhook('k', '{}', START);
    const [t, v1] = header.split(',');
    expect(verifyWebhookSignature('k', `${t},v1=${'0'.repeat(64)},${v1}`, '{}', START)).toBe(true);
    for (const bad of ['', 't=abc,v1=00', `${v1}`, `${t}`, `${t},v1=zz`, 'garbage']) {
      expect(verifyWebhookSignature('k', bad, '{}', START)).toBe(false);
    }
    expect(verifyWebhookSignature('k', header, '{}', START - 299_000)).toBe(true);
    expect(verifyWebhookSignature('k', header, '{}', START - 301_000)).toBe(false);
  });
});
