/**
 * Uplink pacing. The pacer alone with a hand-moved clock; then the real agent against a real
 * (plain) Aedes broker on 127.0.0.1:0 with fake timers and a fake Date, so the test decides
 * when tokens come: 'sent' counts are read synchronously after each step, never after a sleep.
 * Real sockets still run (they are not timers); the broker can hold PUBACKs back on demand.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AedesOptions } from 'aedes';
import { createIdFactory } from '../shared/ids.js';
import { SCHEMA_VERSION, type CommandAck, type UsageBatch } from '../shared/mqtt/payloads.js';
import { filters, topics } from '../shared/mqtt/topics.js';
import { EdgeAgent, type EdgeAgentOptions } from './edge-agent.js';
import { RecordingEnforcer } from './enforcer.js';
import { DEFAULT_MAX_INFLIGHT, DEFAULT_PUBLISH_BURST, DEFAULT_PUBLISH_RATE_PER_S, PublishPacer } from './publish-pacer.js';
import { MessageRecorder, startTestBroker, type TestBroker } from './test-broker.js';
import { TowerSession } from './tower-session.js';

describe('PublishPacer', () => {
  const clock = { now: 1_000_000 };
  const pacer = (o: Partial<{ ratePerS: number; burst: number; maxInflight: number }> = {}) =>
    new PublishPacer({ ratePerS: 100, burst: 5, maxInflight: 10, now: () => clock.now, ...o });

  it('lets a burst through, then one publish per 1/rate seconds', () => {
    const p = pacer();
    for (let i = 0; i < 5; i++) expect(p.acquire(0)).toEqual({ go: true });
    expect(p.acquire(0)).toEqual({ go: false, retryInMs: 10 });
    clock.now += 9;
    expect(p.acquire(0)).toEqual({ go: false, retryInMs: 1 });
    clock.now += 1;
    expect(p.acquire(0)).toEqual({ go: true });
    // A long pause refills up to the burst, never beyond.
    clock.now += 60_000;
    for (let i = 0; i < 5; i++) expect(p.acquire(0).go).toBe(true);
    expect(p.acquire(0).go).toBe(false);
  });

  it('holds back while maxInflight publishes await their PUBACK, without spending a token', () => {
    const p = pacer({ burst: 1 });
    expect(p.acquire(10)).toEqual({ go: false, retryInMs: null });
    expect(p.acquire(9)).toEqual({ go: true });
  });

  it('a clock stepping backwards neither mints nor drains tokens', () => {
    const p = pacer({ burst: 1 });
    expect(p.acquire(0).go).toBe(true);
    clock.now -= 5_000;
    expect(p.acquire(0)).toEqual({ go: false, retryInMs: 10 });
    clock.now += 5_010;
    expect(p.acquire(0).go).toBe(true);
  });

  it('refuses settings that cannot pace', () => {
    expect(() => pacer({ ratePerS: 0 })).toThrow(/publishRatePerS/);
    expect(() => pacer({ ratePerS: Infinity })).toThrow(/publishRatePerS/);
    expect(() => pacer({ burst: 0.5 })).toThrow(/publishBurst/);
    expect(() => pacer({ maxInflight: 0 })).toThrow(/maxInflight/);
  });

  it('defaults stay well under the broker defaults (1,000/s, burst 2,000)', () => {
    expect(DEFAULT_PUBLISH_RATE_PER_S).toBeLessThanOrEqual(500);
    // A reconnect resends at most maxInflight, then a full bucket may go at once.
    expect(DEFAULT_MAX_INFLIGHT + DEFAULT_PUBLISH_BURST).toBeLessThanOrEqual(2000 / 4);
  });
});

describe('EdgeAgent uplink pacing against a real broker', () => {
  const TOWER = 'tower-pace';
  let broker: TestBroker;
  let cloud: MessageRecorder;
  let agent: EdgeAgent | null = null;
  /** PUBACKs the broker holds back (authorizePublish callbacks) while `holdAcks` is on. */
  let holdAcks = false;
  const held: Array<() => void> = [];
  let onHeld: (() => void) | null = null;
  const heldCount = (n: number): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (held.length < n) return;
        onHeld = null;
        resolve();
      };
      onHeld = check;
      check();
    });

  beforeEach(async () => {
    broker = await startTestBroker();
    const authorizePublish: NonNullable<AedesOptions['authorizePublish']> = (client, _packet, cb) => {
      if (holdAcks && client?.id === `tower-${TOWER}`) {
        held.push(() => cb(null));
        onHeld?.();
      } else cb(null);
    };
    broker.aedes.authorizePublish = authorizePublish;
    cloud = await MessageRecorder.connect(broker.url, [filters.allUsage]);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });

  afterEach(async () => {
    vi.useRealTimers();
    vi.restoreAllMocks();
    holdAcks = false;
    for (const release of held.splice(0)) release();
    await agent?.stop();
    agent = null;
    await cloud.close();
    await broker.close();
  });

  async function online(opts: Partial<EdgeAgentOptions>): Promise<{ agent: EdgeAgent; sent: () => number }> {
    const a = new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'pw', batchMaxEvents: 1, reconnectMinMs: 10, reconnectMaxMs: 10, ...opts });
    a.on('error', () => undefined);
    agent = a;
    let sent = 0;
    a.on('sent', () => sent++);
    await a.start();
    // The retained "online" status is a publish too (it counts toward maxInflight): let it land.
    expect(await a.flush(5000)).toBe(true);
    return { agent: a, sent: () => sent };
  }

  const observe = (a: EdgeAgent, n: number): string[] =>
    Array.from({ length: n }, () => a.observe({ device_id: 'd1', app: 'mail', action: 'send', tenant_id: 'acme' }).event_id);

  it('sends a burst at once, then one batch per token', async () => {
    const { agent: a, sent } = await online({ publishRatePerS: 10, publishBurst: 3 });
    const ids = observe(a, 10);
    expect(sent()).toBe(3);
    expect(a.stats().buffered_events).toBe(7);
    await vi.advanceTimersByTimeAsync(100);
    expect(sent()).toBe(4);
    await vi.advanceTimersByTimeAsync(600);
    expect(sent()).toBe(10);
    // Order is kept: the broker received the batches as observed.
    const got = await cloud.waitFor(() => {
      const b = cloud.json<UsageBatch>(topics.usage('acme', TOWER));
      return b.length === 10 && b;
    }, 'ten batches');
    expect(got.flatMap((b) => b.events.map((e) => e.id))).toEqual(ids);
  });

  it('keeps at most maxInflight publishes awaiting a PUBACK; each PUBACK lets the next one go', async () => {
    const { agent: a, sent } = await online({ maxInflight: 2, publishBurst: 100 });
    holdAcks = true;
    observe(a, 5);
    expect(sent()).toBe(2);
    const third = new Promise<void>((resolve) => a.once('sent', () => resolve()));
    await heldCount(2);
    held.shift()!();
    await third;
    expect(sent()).toBe(3);
    holdAcks = false;
    for (const release of held.splice(0)) release();
    expect(await a.flush(5000)).toBe(true);
    expect(sent()).toBe(5);
  });

  it('paces command acks with usage, ahead of the usage backlog', async () => {
    const { agent: a, sent } = await online({ publishRatePerS: 10, publishBurst: 3 });
    // Acks handed to the connection, counted as they are (publish is synchronous with the pacer).
    let acks = 0;
    const original = TowerSession.prototype.publish;
    vi.spyOn(TowerSession.prototype, 'publish').mockImplementation(function (this: TowerSession, topic, payload, retain) {
      if (topic === topics.acks('acme', TOWER)) acks++;
      return original.call(this, topic, payload, retain);
    });
    observe(a, 10);
    expect(sent()).toBe(3);
    // A flood of commands while the bucket is empty: no ack goes before a token does.
    const newId = createIdFactory();
    const N = 5;
    let handled = 0;
    const allHandled = new Promise<void>((resolve) => a.on('command', () => ++handled === N && resolve()));
    const commander = await MessageRecorder.connect(broker.url, [topics.acks('acme', TOWER)]);
    for (let i = 0; i < N; i++) {
      await commander.publishJson(topics.commands('acme', TOWER), { v: SCHEMA_VERSION, id: newId(), type: 'notify', device_id: 'd1', issued_at: Date.now(), expires_at: Date.now() + 600_000 });
    }
    await allHandled;
    expect(acks).toBe(0);
    // Each token goes to an ack first, not to the 7 batches buffered before them.
    await vi.advanceTimersByTimeAsync(100);
    expect([acks, sent()]).toEqual([1, 3]);
    await vi.advanceTimersByTimeAsync(400);
    expect([acks, sent()]).toEqual([N, 3]);
    await vi.advanceTimersByTimeAsync(100);
    expect([acks, sent()]).toEqual([N, 4]);
    await vi.advanceTimersByTimeAsync(600);
    expect([acks, sent()]).toEqual([N, 10]);
    const got = await commander.waitFor(() => {
      const b = commander.json<CommandAck>(topics.acks('acme', TOWER));
      return b.length === N && b;
    }, 'every ack');
    await commander.close();
    expect(got.map((ack) => ack.status)).toEqual(Array(N).fill('applied'));
  });

  it('an ack made while offline waits in the uplink and goes once the agent is back', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let applying!: () => void;
    const entered = new Promise<void>((r) => (applying = r));
    const enforcer = new RecordingEnforcer(async () => {
      applying();
      await released;
      return { status: 'applied' };
    });
    const { agent: a } = await online({ enforcer });
    const commander = await MessageRecorder.connect(broker.url, [topics.acks('acme', TOWER)]);
    const id = createIdFactory()();
    await commander.publishJson(topics.commands('acme', TOWER), { v: SCHEMA_VERSION, id, type: 'notify', device_id: 'd1', issued_at: Date.now(), expires_at: Date.now() + 600_000 });
    await entered;
    const offline = new Promise<void>((resolve) => a.once('offline', () => resolve()));
    a.simulateOutage({ holdMs: 60_000 });
    await offline;
    const handled = new Promise<void>((resolve) => a.once('command', () => resolve()));
    release();
    await handled;
    const back = new Promise<void>((resolve) => a.once('connect', () => resolve()));
    a.endOutage();
    await back;
    const got = await commander.waitFor(() => commander.json<CommandAck>(topics.acks('acme', TOWER)).find((ack) => ack.command_id === id), 'the ack');
    await commander.close();
    expect(got.status).toBe('applied');
  });

  it('replays an offline backlog at the paced rate after reconnecting', async () => {
    const { agent: a, sent } = await online({ publishRatePerS: 20, publishBurst: 5 });
    const offline = new Promise<void>((resolve) => a.once('offline', () => resolve()));
    a.simulateOutage({ holdMs: 60_000 });
    await offline;
    observe(a, 25);
    expect(sent()).toBe(0);
    expect(a.stats().buffered_events).toBe(25);
    const back = new Promise<void>((resolve) => a.once('connect', () => resolve()));
    a.endOutage();
    await back;
    // The bucket refilled during the outage: a burst, then 20 per second.
    expect(sent()).toBe(5);
    await vi.advanceTimersByTimeAsync(500);
    expect(sent()).toBe(15);
    await vi.advanceTimersByTimeAsync(500);
    expect(sent()).toBe(25);
    expect(a.stats()).toMatchObject({ buffered_events: 0, events_dropped: 0 });
  });
});
