/**
 * Webhook targets are checked at delivery time, whatever the URL was when it was saved: with
 * private targets not allowed (the default), a delivery to a loopback or private address (in any
 * numeric notation) or to a name that resolves to one (`localhost`, a rebinding answer) is refused
 * without a connection, recorded on the attempt and retried like a network failure. A real HTTP
 * receiver on 127.0.0.1 proves nothing reached it; the operator flag lets the same delivery through.
 */
import { lookup } from 'node:dns';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Counters } from '../../shared/metrics.js';
import { SqliteStore } from '../../shared/store/sqlite/sqlite-store.js';
import { InProcessJobQueues } from '../../shared/workflow/job-queue.js';
import { InProcessLeases } from '../../shared/workflow/leases.js';
import { WebhookDeliverer } from './webhook-deliverer.js';
import { createWebhookTransport } from './webhook-transport.js';

const START = 1_700_000_000_000;

let dir: string;
let store: SqliteStore;
let server: Server;
let port: number;
let received: number;
const deliverers: WebhookDeliverer[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-webhook-targets-'));
  store = new SqliteStore({ file: join(dir, 'edgeplane.db'), now: () => START });
  await store.init();
  received = 0;
  server = createServer((req, res) => {
    received++;
    req.resume();
    res.end('ok');
  });
  // Listening on every interface, so `localhost` reaches it whether it resolves to 127.0.0.1 or ::1.
  await new Promise<void>((resolve) => server.listen(0, resolve));
  port = (server.address() as AddressInfo).port;
});
afterEach(async () => {
  for (const d of deliverers.splice(0)) await d.stop();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function deliverer(allowPrivateTargets: boolean, transport?: ReturnType<typeof createWebhookTransport>): WebhookDeliverer {
  const d = new WebhookDeliverer({
    store,
    counters: new Counters(),
    queues: new InProcessJobQueues(),
    leases: new InProcessLeases(),
    processId: 'test',
    maxAttempts: 3,
    timeoutMs: 5000,
    now: () => START,
    allowPrivateTargets,
    ...(transport && { transport }),
  });
  d.startProcessing();
  deliverers.push(d);
  return d;
}

/** A tenant with one webhook at `url` (written straight to the store, as an old URL would be) and one due delivery. */
async function pendingDelivery(url: string) {
  const tenant = await store.tenants.create({ name: 't' });
  const webhook = await store.webhooks.create(tenant.id, { url, events: ['alert.opened'], secret: 's' });
  await store.webhookDeliveries.create({ tenant_id: tenant.id, webhook_id: webhook.id, event: 'alert.opened', body: '{}', next_attempt_at: START });
  return async () => (await store.webhookDeliveries.list(tenant.id, webhook.id)).items[0]!;
}

describe('webhook targets at delivery time', () => {
  it.each([
    ['loopback literal', () => `http://127.0.0.1:${port}/hook`, /127\.0\.0\.1 is a loopback address/],
    ['hex loopback', () => `http://0x7f000001:${port}/hook`, /127\.0\.0\.1 is a loopback address/],
    ['decimal loopback', () => `http://2130706433:${port}/hook`, /127\.0\.0\.1 is a loopback address/],
    ['IPv6 loopback', () => `http://[::1]:${port}/hook`, /::1 is a loopback address/],
    ['IPv4-mapped loopback', () => `http://[::ffff:127.0.0.1]:${port}/hook`, /ipv4-mapped address/],
    ['localhost, refused by name', () => `http://localhost:${port}/hook`, /localhost is a local name/],
  ])('refuses a %s target without connecting, and retries it later', async (_what, url, error) => {
    const state = await pendingDelivery(url());
    await deliverer(false).tick();
    expect(received).toBe(0);
    const d = await state();
    expect(d).toMatchObject({ status: 'pending', attempts: 1, last_status_code: null });
    expect(d.last_error).toMatch(/^target refused: /);
    expect(d.last_error).toMatch(error);
    expect(d.last_error).toContain('--webhook-allow-private');
  });

  it('refuses a public-looking name whose DNS answers a private address, after one resolution', async () => {
    const asked: string[] = [];
    // The resolver answers what a rebinding attacker's DNS would: loopback for a public name.
    const transport = createWebhookTransport({
      allowPrivate: false,
      resolve: (host, cb) => {
        asked.push(host);
        cb(null, [{ address: '127.0.0.1', family: 4 }]);
      },
    });
    const state = await pendingDelivery(`http://hooks.example.com:${port}/hook`);
    await deliverer(false, transport).tick();
    expect(received).toBe(0);
    expect(asked).toEqual(['hooks.example.com']);
    expect((await state()).last_error).toMatch(/target refused: hooks\.example\.com resolves to 127\.0\.0\.1 \(loopback\)/);
  });

  it('refuses when any answer is private, even next to a public one', async () => {
    const transport = createWebhookTransport({
      allowPrivate: false,
      resolve: (_host, cb) =>
        cb(null, [
          { address: '93.184.216.34', family: 4 },
          { address: '169.254.169.254', family: 4 },
        ]),
    });
    await expect(transport({ url: 'http://hooks.example.com/x', headers: {}, body: '{}', timeoutMs: 1000 })).rejects.toThrow(
      /169\.254\.169\.254 \(link_local\)/,
    );
  });

  it('checks what the system resolver answers: a name served the answer of `localhost` is refused', async () => {
    // The system resolver's real answer for localhost (/etc/hosts: 127.0.0.1 and/or ::1), served
    // for a name that passes every rule applied before DNS.
    const transport = createWebhookTransport({
      allowPrivate: false,
      resolve: (_host, cb) => lookup('localhost', { all: true, verbatim: true }, cb),
    });
    await expect(transport({ url: `http://receiver.example.com:${port}/`, headers: {}, body: '{}', timeoutMs: 1000 })).rejects.toThrow(
      /receiver\.example\.com resolves to (127\.0\.0\.1|::1) \(loopback\)/,
    );
    expect(received).toBe(0);
  });

  it('with --webhook-allow-private the same targets are delivered (on-premises receivers)', async () => {
    const state = await pendingDelivery(`http://localhost:${port}/hook`);
    await deliverer(true).tick();
    expect(received).toBe(1);
    expect(await state()).toMatchObject({ status: 'delivered', attempts: 1, last_status_code: 200 });
  });
});
