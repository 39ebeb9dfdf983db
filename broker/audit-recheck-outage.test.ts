/**
 * A store outage met by the live sessions' re-check (access.ts) is logged once, when it starts,
 * and its end once, when a read succeeds again. A round that reads nothing (tower checks spread
 * over 30 rounds: most rounds read no tower at all) proves nothing about the store, so it does not
 * end the outage: with towers only, the log used to say "rechecked again" the round after each
 * failed tower read and "store unavailable" at the next, over and over for as long as it lasted.
 * Real broker, sockets and SQLite store; the re-check's interval runs on fake timers.
 */
import { connectAsync, type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../shared/bus.js';
import { Counters } from '../shared/metrics.js';
import { mqttIdentity } from '../shared/mqtt/topics.js';
import { LogCapture } from '../test/support/log-lines.js';
import { TOWER_RECHECK_ROUNDS } from './access.js';
import { Broker } from './broker.js';
import { RecordingSink, startHarness, testBrokerConfig, type Harness } from './test-support.js';

let a: Harness;
let b: Broker;
let log: LogCapture;
let storeDown: boolean;
let towerReads: number;
const clients: MqttClient[] = [];

beforeEach(async () => {
  storeDown = false;
  towerReads = 0;
  log = new LogCapture();
  a = await startHarness();
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  b = new Broker({
    config: testBrokerConfig(),
    logger: pino({ level: 'info' }, log),
    counters: new Counters(),
    bus: new InProcessBus(),
    towerCredentials: {
      get: (id) => {
        towerReads++;
        return storeDown ? Promise.reject(new Error('store unavailable')) : a.store.towerCredentials.get(id);
      },
      touch: (id, at) => a.store.towerCredentials.touch(id, at),
    },
    towers: a.store.towers,
    tokens: a.tokens,
    sink: new RecordingSink(),
    now: () => a.clock.now,
  });
});

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
  await b.stop();
  await a.close();
});

describe('a store outage met by the live re-check of tower sessions', () => {
  it('is logged once while it lasts, ended once when reads succeed again, and closes no session', async () => {
    const port = (await b.start()).mqttPort;
    for (const id of ['T1', 'T2', 'T3']) {
      const t = await a.createTower(id);
      // keepalive 0: the client arms no timer of its own, so faking setInterval leaves it alone.
      const opts = { clientId: mqttIdentity.towerClientId(id), username: id, password: t.password, protocolVersion: 4 as const, reconnectPeriod: 0, keepalive: 0 };
      clients.push(await connectAsync(`mqtt://127.0.0.1:${port}`, opts, false));
    }
    towerReads = 0; // their CONNECTs'
    storeDown = true;
    // Each tower is read once in any TOWER_RECHECK_ROUNDS rounds in a row (one falling due in the
    // first may be read again in the last); one more round follows the last of them.
    await vi.advanceTimersByTimeAsync((TOWER_RECHECK_ROUNDS + 1) * 1000);
    expect(towerReads).toBeGreaterThanOrEqual(3);
    expect(log.events('live_recheck_failed')).toHaveLength(1);
    expect(log.events('live_recheck_recovered')).toHaveLength(0);

    storeDown = false;
    const readsWhileDown = towerReads;
    await vi.advanceTimersByTimeAsync(TOWER_RECHECK_ROUNDS * 1000);
    expect(towerReads - readsWhileDown).toBe(3);
    expect(log.events('live_recheck_failed')).toHaveLength(1);
    expect(log.events('live_recheck_recovered')).toHaveLength(1);
    for (const c of clients) expect(c.connected).toBe(true);
  });
});
