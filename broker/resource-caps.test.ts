/**
 * No client can exhaust or stall the broker: each cap over real sockets, with a client trying to
 * exceed it, the refusal it gets, the counter, and memory staying bounded while it tries
 * (memoryGrowth: resident peak, and what JavaScript still holds after a GC).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { filters, mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { redisUrl, uniquePrefix } from '../test/support/redis.js';
import { memoryBackends, type BrokerBackends } from './backends.js';
import { levelBackends } from './backends-level.js';
import { redisBackends } from './backends-redis.js';
import { connectPacket, publishPacket, remainingLength } from './mqtt-bytes.js';
import { closed, inbox, memoryGrowth, rawClient, startHarness, subscribeResult, TEST_SERVICE_SECRET, type Harness } from './test-support.js';

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

let h: Harness;
let open: Harness | null = null;
const start = async (...args: Parameters<typeof startHarness>) => (h = open = await startHarness(...args));
/** Idempotent: the store-specific cleanups below close the broker before removing its files. */
async function closeHarness(): Promise<void> {
  const current = open;
  open = null;
  await current?.close();
}
afterEach(closeHarness);

/** A decision round trip to a tower that is not attacking: the broker is not stalled. */
async function roundTrip(towerId: string): Promise<void> {
  const tower = await h.connectTower(await h.createTower(towerId));
  const box = inbox(tower);
  expect(await subscribeResult(tower, filters.towerDecisions(towerId))).toBe(1);
  await h.broker.downlink.publish(topics.decisions('tenantA', towerId), json({ id: 'still-deciding' }));
  await box.next(() => true);
  await tower.endAsync();
}

describe('subscriptions', () => {
  it('closes a SUBSCRIBE of 5,000 filters before aedes stores any; memory holds and others are served', async () => {
    await start();
    // Just past the cap (16 filters by default): refused on its count.
    const seventeen = await h.connectService();
    const closedOnCount = closed(seventeen);
    seventeen.subscribe(Array.from({ length: 17 }, (_, i) => `tenants/t${i}/policy`), { qos: 1 }, () => undefined);
    await closedOnCount;
    expect(h.counters.get('mqtt_rejected_total', { reason: 'too_many_filters' })).toBe(1);
    const many = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`tenants/t${i}/towers/T1/decisions`, { qos: 1 as const }]));
    const { heldMb, peakMb } = await memoryGrowth(async () => {
      // Services are granted every one of these filters: only the per-packet cap stops them.
      for (let i = 0; i < 20; i++) {
        const attacker = await h.connect({ clientId: `service-x${i}`, username: 'service:x', password: TEST_SERVICE_SECRET, clean: false });
        const gone = closed(attacker);
        attacker.subscribe(many, () => undefined);
        await gone;
      }
      await roundTrip('T2');
    });
    // Far past it: refused on the SUBSCRIBE's announced length, before its body is read.
    expect(h.counters.get('mqtt_rejected_total', { reason: 'subscribe_too_large' })).toBe(20);
    expect(heldMb).toBeLessThan(10);
    expect(peakMb).toBeLessThan(60);
  });

  it("grants a console at most its per-client cap, stores only what it granted, and keeps memory flat", async () => {
    await start({ config: { mqtt_max_subscriptions_per_client: 32 } });
    const clientId = mqttIdentity.consoleClientId('u-tenantA', 'wall');
    const viewer = await h.connectConsole('tenantA', { clientId, clean: false });
    const granted: number[] = [];
    const { heldMb } = await memoryGrowth(async () => {
      for (let p = 0; p < 125; p++) {
        const batch = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`tenants/tenantA/towers/T${p * 16 + i}/decisions`, { qos: 0 as const }]));
        for (const g of await viewer.subscribeAsync(batch).catch((err: { packet?: { granted?: number[] } }) => (err.packet?.granted ?? []).map((qos) => ({ qos })))) {
          granted.push(g.qos);
        }
      }
    });
    expect(granted.filter((q) => q !== 128)).toHaveLength(32); // of 2,000 asked for
    expect(h.counters.get('mqtt_rejected_total', { reason: 'subscription_cap' })).toBe(2000 - 32);
    expect(heldMb).toBeLessThan(10);
    // The stored session holds the 32 granted filters, not the 1,968 refused ones.
    await viewer.endAsync();
    const back = h.connectNow({ clientId, username: 'console', password: await h.consoleToken('tenantA', 'u-tenantA'), clean: false });
    const box = inbox(back);
    await new Promise<void>((resolve) => back.once('connect', () => resolve()));
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T1999'), json({ refused: true }));
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T31'), json({ granted: true }));
    await box.next((t) => t === topics.decisions('tenantA', 'T31'));
    expect(box.messages.map((m) => m.topic)).toEqual([topics.decisions('tenantA', 'T31')]);
  });

  it('never stores a refused filter, so nothing is queued for a session through it', async () => {
    await start();
    const t1 = await h.createTower('T1');
    const tower = await h.connectTower(t1, { clean: false });
    // One SUBSCRIBE: its own commands (granted) and every tenant's traffic (refused).
    const granted = await tower.subscribeAsync({ [filters.towerCommands('T1')]: { qos: 1 }, 'tenants/#': { qos: 1 } }).catch(
      (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
    );
    expect(JSON.stringify(granted)).toContain('128');
    await tower.endAsync();
    await h.broker.downlink.publish(topics.decisions('tenantB', 'T9'), json({ not: 'for T1' }));
    await h.broker.downlink.publish(topics.commands('tenantA', 'T1'), json({ id: 'for-T1' }));
    const back = h.connectNow({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: t1.password, clean: false });
    const box = inbox(back);
    await box.next((t) => t === topics.commands('tenantA', 'T1'));
    expect(box.messages.map((m) => m.topic)).toEqual([topics.commands('tenantA', 'T1')]);
  });
});

describe('connections before authentication', () => {
  it('closes an oversized CONNECT on its header; 200 of them cost no memory', async () => {
    await start();
    // One buffer written by all 200 clients, made before the baseline (the test's own copies are
    // not the broker's memory).
    const packet = Buffer.concat([Buffer.from([0x10]), remainingLength(590_000), Buffer.alloc(64 * 1024)]);
    const { heldMb, peakMb } = await memoryGrowth(async () => {
      await Promise.all(
        Array.from({ length: 200 }, async () => {
          const c = await rawClient(h.mqttPort);
          c.write(packet);
          await c.closed;
        }),
      );
    });
    expect(h.counters.get('mqtt_rejected_total', { reason: 'connect_too_large' })).toBe(200);
    expect(heldMb).toBeLessThan(10);
    expect(peakMb).toBeLessThan(60);
    await roundTrip('T2');
  });

  it('closes connections beyond the pending cap as they are accepted, and serves again once they go', async () => {
    await start({ config: { mqtt_max_pending_connections: 20 } });
    const idle = await Promise.all(Array.from({ length: 20 }, () => rawClient(h.mqttPort)));
    // Accepted in order: the server has seen the 20 once one more is refused.
    const extra = await Promise.all(Array.from({ length: 5 }, () => rawClient(h.mqttPort)));
    await Promise.all(extra.map((c) => c.closed));
    expect(h.counters.get('mqtt_rejected_total', { reason: 'too_many_pending' })).toBe(5);
    expect(h.broker.pendingConnectionCount).toBe(20);
    for (const c of idle) c.destroy();
    await Promise.all(idle.map((c) => c.closed));
    await roundTrip('T2');
  });

  it('holds what a client sends after its CONNECT until it is authenticated, then serves it', async () => {
    await start();
    const t1 = await h.createTower('T1');
    const c = await rawClient(h.mqttPort);
    c.write(
      Buffer.concat([
        connectPacket({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: t1.password }),
        publishPacket(topics.status('T1'), json({ pipelined: true }), { qos: 1, packetId: 1 }),
      ]),
    );
    // CONNACK, then the PUBACK of the pipelined PUBLISH [MQTT-3.1.4-5]: it waited for the CONNACK.
    expect([...(await c.bytes(8))]).toEqual([0x20, 0x02, 0x00, 0x00, 0x40, 0x02, 0x00, 0x01]);
    expect(h.sink.topics()).toEqual([topics.status('T1')]);
    c.destroy();
  });
});

describe('offline sessions', () => {
  it('an offline tower gets only the newest policy bundle of each tenant, not every republish', async () => {
    await start();
    const t1 = await h.createTower('T1');
    const agentFilters = [filters.towerDecisions('T1'), filters.towerCommands('T1'), filters.towerPolicies('T1'), filters.directory];
    const tower = await h.connectTower(t1, { clean: false });
    await tower.subscribeAsync(agentFilters, { qos: 1 });
    await tower.endAsync();
    for (let v = 1; v <= 150; v++) await h.broker.downlink.publish(topics.policy('tenantA', 'T1'), json({ version: v }), { retain: true });
    await h.broker.downlink.publish(topics.policy('tenantB', 'T1'), json({ version: 1 }), { retain: true });
    // Back, as the agent does: resume the session and SUBSCRIBE again (retained bundles come then).
    const back = await h.connectTower(t1, { clean: false });
    const box = inbox(back);
    await back.subscribeAsync(agentFilters, { qos: 1 });
    await box.next((t) => t === topics.policy('tenantA', 'T1'));
    await box.next((t) => t === topics.policy('tenantB', 'T1'));
    await h.broker.downlink.publish(topics.commands('tenantA', 'T1'), json({ id: 'marker' }));
    await box.next((t) => t === topics.commands('tenantA', 'T1'));
    expect(box.messages.filter((m) => m.topic === topics.policy('tenantA', 'T1')).map((m) => JSON.parse(m.payload.toString()) as unknown)).toEqual([{ version: 150 }]);
    expect(box.messages).toHaveLength(3);
  });
});

describe('console users', () => {
  it('may hold a capped number of persistent sessions; clean ones are not counted', async () => {
    await start({ config: { mqtt_max_persistent_sessions_per_user: 2 } });
    const as = (session: string, clean: boolean) => ({ clientId: mqttIdentity.consoleClientId('u-tenantA', session), clean });
    const a = await h.connectConsole('tenantA', as('a', false));
    await h.connectConsole('tenantA', as('b', false));
    const token = await h.consoleToken('tenantA', 'u-tenantA');
    expect(await h.refusedWith({ ...as('c', false), username: 'console', password: token })).toBe(2);
    expect(h.counters.get('mqtt_auth_failures_total', { reason: 'persistent_session_cap' })).toBe(1);
    await h.connectConsole('tenantA', as('c', true)); // a clean session: nothing kept
    // Resuming one it holds is fine; ending one (clean) frees its place.
    await a.endAsync();
    await (await h.connectConsole('tenantA', as('a', true))).endAsync();
    await h.connectConsole('tenantA', as('c', false));
  });

  it("cannot take over another console user's session with its client id", async () => {
    await start();
    const aliceId = mqttIdentity.consoleClientId('alice', 'wall');
    const alice = await h.connect({ clientId: aliceId, username: 'console', password: await h.consoleToken('tenantA', 'alice') });
    const mallory = await h.consoleToken('tenantA', 'mallory');
    for (const clientId of [aliceId, mqttIdentity.consoleClientId('alice'), 'console-alice.wall.x', 'tower-T1', 'service-worker', 'anything']) {
      expect({ clientId, code: await h.refusedWith({ clientId, username: 'console', password: mallory }) }).toEqual({ clientId, code: 2 });
    }
    expect(alice.connected).toBe(true);
    // An empty client id on a clean session gets one assigned by the broker [MQTT-3.1.3-6].
    const assigned = await h.connect({ clientId: '', username: 'console', password: mallory });
    expect(assigned.connected).toBe(true);
  });
});

describe.each(['memory', 'LevelDB', 'Redis'])('the queue of an offline session (%s store)', (kind) => {
  let dir: string | null = null;
  afterEach(async () => {
    await closeHarness();
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = null;
  });

  it('is capped: the rest is counted, not kept', async (ctx) => {
    let backends: BrokerBackends = memoryBackends();
    if (kind === 'LevelDB') {
      dir = await mkdtemp(join(tmpdir(), 'edgeplane-queue-'));
      backends = levelBackends({ location: join(dir, 'sessions') });
    }
    if (kind === 'Redis') {
      const url = redisUrl();
      // No redis-server: skipped (global setup prints the one line naming the install command;
      // under CI=true global setup fails instead).
      if (!url) return ctx.skip();
      backends = redisBackends({ url, prefix: uniquePrefix() });
    }
    await start({ config: { mqtt_max_queued_per_session: 100 }, backends });
    const t1 = await h.createTower('T1');
    const tower = await h.connectTower(t1, { clean: false });
    await tower.subscribeAsync(filters.towerDecisions('T1'), { qos: 1 });
    await tower.endAsync();
    const body = Buffer.alloc(10 * 1024, 0x61);
    // 60 MB offered, 1 MB queued. With Redis the clients still hold buffers of the last burst when
    // it ends (measured up to ~30 MB, all released within a second): the bound is looser there,
    // and still well under the 60 MB that keeping the offered messages would hold.
    const { heldMb } = await memoryGrowth(async () => {
      for (let i = 0; i < 6000; i++) await h.broker.downlink.publish(topics.decisions('tenantA', 'T1'), body);
    });
    expect(h.counters.get('mqtt_dropped_total', { reason: 'session_queue_full' })).toBe(5900);
    expect(heldMb).toBeLessThan(kind === 'Redis' ? 40 : 5);
    const back = h.connectNow({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: t1.password, clean: false });
    const box = inbox(back);
    const decisions = () => box.messages.filter((m) => m.topic === topics.decisions('tenantA', 'T1')).length;
    await box.next((t) => t === topics.decisions('tenantA', 'T1') && decisions() >= 100);
    // The queue is replayed in order; a marker published now comes after anything left in it.
    await back.subscribeAsync(filters.towerCommands('T1'), { qos: 1 });
    await h.broker.downlink.publish(topics.commands('tenantA', 'T1'), json({ id: 'marker' }));
    await box.next((t) => t === topics.commands('tenantA', 'T1'));
    expect(decisions()).toBe(100);
  });
});
