/**
 * A revocation whose bus announcement is lost still ends the sessions it revokes. Two brokers on
 * one SQLite store, each with its own in-process bus: what is revoked through the store and
 * announced on A's bus never reaches B, as a Redis pub/sub message dropped between processes
 * (at most once, and no gap reported while the bus stays connected). B's periodic re-check
 * (access.ts, every second) reads each distinct credential or account once and closes the
 * sessions whose credential, tower or account is gone, and only those. The re-check's interval
 * runs on fake timers; everything else (sockets, store, tokens) is real.
 */
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { consoleUserActive } from '../cli/roots/foundation.js';
import { InProcessBus } from '../shared/bus.js';
import type { ConsoleUser } from '../shared/domain.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { Counters } from '../shared/metrics.js';
import { mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { LogCapture } from '../test/support/log-lines.js';
import { TOWER_RECHECK_ROUNDS } from './access.js';
import { Broker } from './broker.js';
import { closed, RecordingSink, startHarness, testBrokerConfig, type Harness } from './test-support.js';

let a: Harness;
let b: Broker;
let bCounters: Counters;
let bClients: MqttClient[];
let bPort: number;
/** Store reads B's console-user check made (the real one the composition root wires). */
let userReads: number;
/** Store reads of each tower credential B made. */
let towerReads: Map<string, number>;
let storeDown: boolean;
let tenant1: string;
let tenant2: string;

async function startB(logger: Logger = silentLogger()): Promise<void> {
  bCounters = new Counters();
  b = new Broker({
    config: testBrokerConfig(),
    logger,
    counters: bCounters,
    // Its own bus: nothing published on A's reaches it.
    bus: new InProcessBus(),
    towerCredentials: {
      get: (id) => {
        towerReads.set(id, (towerReads.get(id) ?? 0) + 1);
        return a.store.towerCredentials.get(id);
      },
      touch: (id, at) => a.store.towerCredentials.touch(id, at),
    },
    towers: a.store.towers,
    carrierCredentials: a.store.carrierCredentials,
    tokens: a.tokens,
    sink: new RecordingSink(),
    consoleUsers: {
      isActive: (id, tenantId, sessionVersion) => {
        userReads++;
        if (storeDown) return Promise.reject(new Error('store unavailable'));
        return consoleUserActive(a.store, id, tenantId, sessionVersion);
      },
    },
    now: () => a.clock.now,
  });
  bPort = (await b.start()).mqttPort;
}

/** keepalive 0: the client arms no timer of its own, so faking setInterval leaves it alone. */
async function connectB(opts: IClientOptions): Promise<MqttClient> {
  const client = await connectAsync(`mqtt://127.0.0.1:${bPort}`, { protocolVersion: 4, reconnectPeriod: 0, keepalive: 0, ...opts }, false);
  client.on('error', () => undefined);
  bClients.push(client);
  return client;
}

async function refusedByB(opts: IClientOptions): Promise<number> {
  try {
    await (await connectB(opts)).endAsync(true);
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
  throw new Error('connection was accepted');
}

const userToken = (u: ConsoleUser) => a.tokens.sign({ sub: u.id, tenant_id: u.tenant_id, role: u.console_role, sv: u.session_version });
const consoleLogin = async (u: ConsoleUser, session: string, token?: string): Promise<IClientOptions> => ({
  clientId: mqttIdentity.consoleClientId(u.id, session),
  username: mqttIdentity.consoleUsername,
  password: token ?? (await userToken(u)),
});
const newUser = (tenantId: string, email: string, role: ConsoleUser['console_role'] = 'viewer') =>
  a.store.consoleUsers.create({ tenant_id: tenantId, email, console_role: role, password_hash: 'x' });

/** A subscribed session still receives what B publishes under its tenant. */
async function receives(client: MqttClient, tenantId: string): Promise<boolean> {
  await client.subscribeAsync(`tenants/${tenantId}/#`);
  const got = new Promise<boolean>((resolve) => client.once('message', () => resolve(true)));
  await b.downlink.publish(topics.decisions(tenantId, 'T9'), Buffer.from('{"still":"open"}'));
  return got;
}

beforeEach(async () => {
  userReads = 0;
  towerReads = new Map();
  storeDown = false;
  bClients = [];
  a = await startHarness();
  tenant1 = (await a.store.tenants.create({ name: 'acme' })).id;
  tenant2 = (await a.store.tenants.create({ name: 'globex' })).id;
  // Each tenant keeps an active owner, so its other accounts may be disabled.
  await newUser(tenant1, 'owner@acme.test', 'owner');
  await newUser(tenant2, 'owner@globex.test', 'owner');
  // Only B's re-check interval (and B's other intervals) are fake; sockets and I/O run for real.
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  await startB();
});

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(bClients.map((c) => c.endAsync(true).catch(() => undefined)));
  await b.stop();
  await a.close();
});

describe('live sessions whose revocation announcement was lost', () => {
  it("closes a disabled, deleted or re-roled console user's sessions on the other broker within a re-check, and no other", async () => {
    const alice = await newUser(tenant1, 'alice@acme.test');
    const dave = await newUser(tenant1, 'dave@acme.test');
    const erin = await newUser(tenant1, 'erin@acme.test');
    const bob = await newUser(tenant1, 'bob@acme.test');
    const carol = await newUser(tenant2, 'carol@globex.test');
    const aliceWall = await connectB(await consoleLogin(alice, 'wall'));
    const aliceLaptop = await connectB(await consoleLogin(alice, 'laptop'));
    const daveToken = await userToken(dave);
    const daveWall = await connectB(await consoleLogin(dave, 'wall', daveToken));
    const erinWall = await connectB(await consoleLogin(erin, 'wall'));
    const bobWall = await connectB(await consoleLogin(bob, 'wall'));
    const carolWall = await connectB(await consoleLogin(carol, 'wall'));

    // Through the store, announced on A's bus as the API does; B never hears of it.
    await a.store.consoleUsers.update(tenant1, alice.id, { disabled: true });
    a.bus.publish('console-user.revoked', { user_id: alice.id, tenant_id: tenant1, reason: 'disabled' });
    await a.store.consoleUsers.update(tenant1, dave.id, { console_role: 'analyst' });
    a.bus.publish('console-user.revoked', { user_id: dave.id, tenant_id: tenant1, reason: 'role_changed' });
    await a.store.consoleUsers.delete(tenant1, erin.id);
    a.bus.publish('console-user.revoked', { user_id: erin.id, tenant_id: tenant1, reason: 'deleted' });
    const gone = Promise.all([closed(aliceWall), closed(aliceLaptop), closed(daveWall), closed(erinWall)]);

    userReads = 0;
    a.clock.now += 1000;
    await vi.advanceTimersByTimeAsync(1000);
    await gone;
    // One read per account (alice's two sessions share one), not per session.
    expect(userReads).toBe(5);
    expect(bCounters.get('mqtt_sessions_revoked_total', { reason: 'user_revoked', source: 'recheck' })).toBe(4);
    // The rest of tenant 1, and tenant 2, stay open and served.
    expect(await receives(bobWall, tenant1)).toBe(true);
    expect(await receives(carolWall, tenant2)).toBe(true);

    // A token dave holds from before his role changed opens no new session on B either...
    expect(await refusedByB(await consoleLogin(dave, 'again', daveToken))).toBe(5);
    // ...while one issued after the change does.
    const daveNow = await a.store.consoleUsers.get(dave.id);
    expect((await connectB(await consoleLogin(daveNow!, 'again'))).connected).toBe(true);

    // Closed sessions are neither read nor counted again on later rounds.
    userReads = 0;
    await vi.advanceTimersByTimeAsync(1000);
    expect(userReads).toBe(3);
    expect(bCounters.get('mqtt_sessions_revoked_total', { reason: 'user_revoked', source: 'recheck' })).toBe(4);
  });

  it('closes the sessions of a revoked carrier credential within a round, of a revoked tower credential and a deleted tower within 30, and no other', async () => {
    const [t1, t2, t3] = [await a.createTower('T1'), await a.createTower('T2'), await a.createTower('T3')];
    const [k1, k2] = [await a.createCarrier('carrier-one'), await a.createCarrier('carrier-two')];
    const tower = (t: typeof t1) => ({ clientId: mqttIdentity.towerClientId(t.towerId), username: t.towerId, password: t.password });
    const carrier = (k: typeof k1) => ({ clientId: mqttIdentity.carrierClientId(k.carrierId), username: mqttIdentity.carrierUsername(k.carrierId), password: k.key });
    const [c1, c2, c3] = [await connectB(tower(t1)), await connectB(tower(t2)), await connectB(tower(t3))];
    const [f1, f2] = [await connectB(carrier(k1)), await connectB(carrier(k2))];

    await a.store.towerCredentials.revoke(t1.credentialId, a.clock.now);
    a.bus.publish('credential.revoked', { credential_id: t1.credentialId, tower_id: 'T1' });
    await a.store.towers.delete('T2');
    await a.store.carrierCredentials.revoke(k1.credentialId, a.clock.now);
    // The carrier's every round; the towers' spread over TOWER_RECHECK_ROUNDS rounds (the first
    // of them included: a tower may fall due in it).
    towerReads.clear();
    const gone = Promise.all([closed(c1), closed(c2)]);
    await vi.advanceTimersByTimeAsync(1000);
    await closed(f1);
    await vi.advanceTimersByTimeAsync((TOWER_RECHECK_ROUNDS - 1) * 1000);
    await gone;
    // Each tower credential was read once in those rounds, not once a round.
    expect(towerReads.get(t3.credentialId)).toBe(1);
    // A deleted tower's credentials go with it (ON DELETE CASCADE): its session reads as revoked.
    expect(bCounters.get('mqtt_sessions_revoked_total', { reason: 'credential_revoked', source: 'recheck' })).toBe(3);
    await c3.publishAsync(topics.status('T3'), Buffer.from('{}'), { qos: 1 });
    expect(c3.connected).toBe(true);
    expect(f2.connected).toBe(true);
    // The revoked credential stays refused on B.
    expect(await refusedByB(tower(t1))).toBe(5);
  });

  it('keeps sessions it cannot check open, logs the outage once, and stops re-checking when the broker stops', async () => {
    const log = new LogCapture();
    await b.stop();
    await startB(pino({ level: 'info' }, log));
    const bob = await newUser(tenant1, 'bob@acme.test');
    const wall = await connectB(await consoleLogin(bob, 'wall'));

    // The store answers at once (better-sqlite3, or a refusal): each round ends within its tick.
    userReads = 0; // its CONNECT's
    storeDown = true;
    for (let i = 1; i <= 3; i++) {
      await vi.advanceTimersByTimeAsync(1000);
      expect(userReads).toBe(i);
    }
    storeDown = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(userReads).toBe(4);
    expect(log.events('live_recheck_recovered')).toHaveLength(1);
    expect(log.events('live_recheck_failed')).toHaveLength(1);
    expect(await receives(wall, tenant1)).toBe(true);

    // Stopped with its broker: no interval of B's is left to run (or to hold the process).
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    await b.stop();
    expect(vi.getTimerCount()).toBe(0);
  });
});
