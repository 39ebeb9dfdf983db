/**
 * Integration: the real agent against a real (plain, no-auth) Aedes broker on 127.0.0.1:0, with
 * a recorder client playing the cloud. No sleeps: every wait is for a message or an event.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import {
  SCHEMA_VERSION,
  type Command,
  type CommandAck,
  type DecisionBatch,
  type DiscoveryBatch,
  type TowerStatus,
  type UsageBatch,
} from '../shared/mqtt/payloads.js';
import { filters, topics } from '../shared/mqtt/topics.js';
import { EdgeAgent, type EdgeAgentEvents, type EdgeAgentOptions } from './edge-agent.js';
import { RecordingEnforcer } from './enforcer.js';
import { MessageRecorder, startTestBroker, type TestBroker } from './test-broker.js';
import { publishTenant, startWithBundles } from './test-bundles.js';

const newId = createIdFactory();
const TOWER = 'tower-1';

/**
 * The next `name` event. Unlike events.once(), an 'error' meanwhile does not reject: socket
 * errors are expected when the tests cut connections.
 */
function nextEvent<K extends keyof EdgeAgentEvents>(agent: EdgeAgent, name: K): Promise<EdgeAgentEvents[K]> {
  return new Promise((resolve) => {
    // Node's typed once() cannot relate a generic K to its listener type; the cast is local.
    agent.once(name, ((...args: EdgeAgentEvents[K]) => resolve(args)) as never);
  });
}

function usageIds(rec: MessageRecorder, tenant: string): string[] {
  return rec.json<UsageBatch>(topics.usage(tenant, TOWER)).flatMap((b) => b.events.map((e) => e.id));
}

describe.each(['tcp', 'ws'] as const)('EdgeAgent against a real Aedes broker over %s', (transport) => {
  let broker: TestBroker;
  let cloud: MessageRecorder;
  const agents: EdgeAgent[] = [];
  const socketErrors: Error[] = [];

  async function startAgent(opts: Partial<EdgeAgentOptions> = {}): Promise<EdgeAgent> {
    const agent = new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'pw', reconnectMinMs: 10, reconnectMaxMs: 50, bundleSettleMs: 20, ...opts });
    // Like a composition root: socket errors (EPIPE when the broker vanishes) are reported, not
    // fatal. Without a listener, events.once() would turn them into rejections.
    agent.on('error', (err) => socketErrors.push(err));
    agents.push(agent);
    await agent.start();
    // An unknown device is reported for discovery only once the retained bundles are in.
    await agent.whenReady();
    return agent;
  }

  beforeEach(async () => {
    broker = await startTestBroker(transport);
    cloud = await MessageRecorder.connect(broker.url, [filters.allUsage, filters.allDiscovery, filters.allStatus, filters.allAcks]);
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop();
    await cloud.close();
    await broker.close();
  });

  it('maps devices to tenants from the retained directory; unknown devices go to discovery', async () => {
    await publishTenant(cloud, { id: 'acme', devices: [{ id: 'dev-a1' }] }, [TOWER]);
    await publishTenant(cloud, { id: 'globex', devices: [{ id: 'dev-g1' }] }, [TOWER]);
    const agent = new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'pw', discoveryMaxDelayMs: 5, bundleSettleMs: 50 });
    agents.push(agent);
    const bundles: Array<string | null> = [];
    agent.on('bundle', (tenantId) => bundles.push(tenantId));
    await startWithBundles(agent, ['policy', 'policy', 'directory', 'directory']);
    // Two policy bundles (this tower serves both tenants) and two directory slices.
    expect(bundles.filter((t) => t !== null).sort()).toEqual(['acme', 'globex']);
    expect(bundles.filter((t) => t === null)).toHaveLength(2);
    expect(agent.knownTenants().sort()).toEqual(['acme', 'globex']);
    expect(agent.tenantOf('dev-g1')).toBe('globex');

    const a = agent.observe({ device_id: 'dev-a1', app: 'slack', action: 'upload' });
    const g = agent.observe({ device_id: 'dev-g1', app: 'slack', action: 'upload' });
    const x = agent.observe({ device_id: 'stranger', app: 'slack', action: 'upload', ts: 1234 });
    expect([a.tenant_id, g.tenant_id, x.tenant_id]).toEqual(['acme', 'globex', null]);

    await cloud.waitFor(() => usageIds(cloud, 'acme').includes(a.event_id), 'acme usage');
    await cloud.waitFor(() => usageIds(cloud, 'globex').includes(g.event_id), 'globex usage');
    const disc = await cloud.waitFor(() => cloud.json<DiscoveryBatch>(topics.discovery(TOWER))[0], 'discovery');
    expect(disc.devices).toEqual([{ device_id: 'stranger', first_seen: 1234, last_seen: 1234, count: 1 }]);
    expect(usageIds(cloud, 'acme')).toEqual([a.event_id]);
  });

  it('batches by count and by delay: the batch is the unit of transport', async () => {
    const agent = await startAgent({ batchMaxEvents: 3, batchMaxDelayMs: 20 });
    const ids = Array.from({ length: 7 }, () => agent.observe({ device_id: 'd1', app: 'mail', action: 'send', tenant_id: 'acme' }).event_id);
    const batches = await cloud.waitFor(() => {
      const b = cloud.json<UsageBatch>(topics.usage('acme', TOWER));
      return b.length === 3 && b;
    }, 'three batches');
    expect(batches.map((b) => b.events.length)).toEqual([3, 3, 1]);
    expect(batches.flatMap((b) => b.events.map((e) => e.id))).toEqual(ids);
    expect(agent.stats()).toMatchObject({ events_observed: 7, batches_sent: 3, buffered_events: 0 });
  });

  it('hands decisions to the enforcer and emits them; invalid batches are counted, never thrown', async () => {
    const enforcer = new RecordingEnforcer();
    const agent = await startAgent({ enforcer });
    // Decisions answer events the agent sent (an answer to an id it never sent is ignored).
    const [eventId, nextId] = [0, 1].map(() => agent.observe({ device_id: 'd1', app: 'mail', action: 'send', tenant_id: 'acme' }).event_id) as [string, string];
    const batch: DecisionBatch = {
      v: SCHEMA_VERSION,
      id: newId(),
      batch_id: newId(),
      policy_version: 3,
      decided_at: Date.now(),
      decisions: [{ event_id: eventId, device_id: 'd1', effect: 'deny', reason: 'rule', rule_id: 'r1', policy_id: 'p1', severity: 'high' }],
      rejected: [],
    };
    const invalid = nextEvent(agent, 'invalid');
    await cloud.publishJson(topics.decisions('acme', TOWER), { ...batch, decisions: 'nope' });
    const [info] = (await invalid) as [{ topic: string; error: string }];
    expect(info.error).toMatch(/decisions/);

    const decided = nextEvent(agent, 'decision');
    const wholeBatch = nextEvent(agent, 'decisionBatch');
    await cloud.publishJson(topics.decisions('acme', TOWER), batch);
    const [tenantId, decision] = await decided;
    expect(tenantId).toBe('acme');
    expect(decision).toMatchObject({ event_id: eventId, effect: 'deny' });
    expect((await wholeBatch)[1]).toMatchObject({ id: batch.id });
    expect(enforcer.decisions).toEqual([{ tenantId: 'acme', decision: batch.decisions[0] }]);
    expect(agent.stats()).toMatchObject({ decisions_received: 1, invalid_messages: 1 });

    // A redelivered batch (same id) is applied once; a new batch after it still is.
    const next = { ...batch, id: newId(), decisions: [{ ...batch.decisions[0]!, event_id: nextId }] };
    const nextDecided = nextEvent(agent, 'decisionBatch');
    await cloud.publishJson(topics.decisions('acme', TOWER), batch);
    await cloud.publishJson(topics.decisions('acme', TOWER), next);
    expect((await nextDecided)[1]).toMatchObject({ id: next.id });
    expect(enforcer.decisions).toHaveLength(2);
    expect(agent.stats()).toMatchObject({ decisions_received: 2, redeliveries_ignored: 1 });
  });

  it('applies a command once, acks it, re-acks a redelivery with the first result, fails expired ones', async () => {
    const enforcer = new RecordingEnforcer();
    const agent = await startAgent({ enforcer });
    const acksTopic = topics.acks('acme', TOWER);
    const cmd: Command = { v: SCHEMA_VERSION, id: newId(), type: 'block_app', device_id: 'd1', app: 'tiktok', issued_at: Date.now(), expires_at: Date.now() + 60_000 };

    await cloud.publishJson(topics.commands('acme', TOWER), cmd);
    const first = await cloud.waitFor(() => cloud.json<CommandAck>(acksTopic)[0], 'first ack');
    expect(first).toMatchObject({ command_id: cmd.id, status: 'applied' });

    const dup = nextEvent(agent, 'command');
    await cloud.publishJson(topics.commands('acme', TOWER), cmd);
    const [, , , duplicate] = await dup;
    expect(duplicate).toBe(true);
    const again = await cloud.waitFor(() => cloud.json<CommandAck>(acksTopic)[1], 'second ack');
    expect(again).toEqual(first);
    expect(enforcer.commands).toHaveLength(1);
    expect(agent.stats().commands_applied).toBe(1);

    const expired: Command = { ...cmd, id: newId(), expires_at: Date.now() - 1 };
    await cloud.publishJson(topics.commands('acme', TOWER), expired);
    const failed = await cloud.waitFor(() => cloud.json<CommandAck>(acksTopic).find((a) => a.command_id === expired.id), 'expired ack');
    expect(failed).toMatchObject({ status: 'failed', reason: 'expired' });
    expect(enforcer.commands).toHaveLength(1);
  });

  it('buffers batches while offline and replays each event exactly once after reconnecting', async () => {
    const agent = await startAgent({ batchMaxEvents: 4, batchMaxDelayMs: 1 });
    const before = agent.observe({ device_id: 'd1', app: 'mail', action: 'send', tenant_id: 'acme' }).event_id;
    await cloud.waitFor(() => usageIds(cloud, 'acme').includes(before), 'pre-outage event');
    expect(await agent.flush()).toBe(true);

    const offline = nextEvent(agent, 'offline');
    agent.simulateOutage({ holdMs: 60_000 });
    await offline;
    const during = Array.from({ length: 10 }, () => agent.observe({ device_id: 'd1', app: 'mail', action: 'send', tenant_id: 'acme' }).event_id);
    agent.observe({ device_id: 'unknown-dev', app: 'mail', action: 'send' });
    await agent.flush(0);
    expect(agent.stats().buffered_events).toBe(11);

    const back = nextEvent(agent, 'connect');
    agent.endOutage();
    await back;
    const all = [before, ...during];
    const received = await cloud.waitFor(() => {
      const ids = usageIds(cloud, 'acme');
      return ids.length >= all.length && ids;
    }, 'replayed events');
    expect(received).toEqual(all);
    expect(new Set(received).size).toBe(received.length);
    await cloud.waitFor(() => cloud.json<DiscoveryBatch>(topics.discovery(TOWER)).length === 1, 'replayed discovery');
    expect(agent.stats()).toMatchObject({ buffered_events: 0, events_dropped: 0 });
  });

  it('survives the broker dropping the connection mid-stream: every event id arrives', async () => {
    const agent = await startAgent({ batchMaxEvents: 5, batchMaxDelayMs: 1 });
    const observe = (): string => agent.observe({ device_id: 'd1', app: 'mail', action: 'send', tenant_id: 'acme' }).event_id;
    const ids = Array.from({ length: 20 }, observe);
    const offline = nextEvent(agent, 'offline');
    // Broker side, no warning: some batches are still awaiting their PUBACK.
    expect(broker.dropClient(`tower-${TOWER}`)).toBe(true);
    await offline;
    ids.push(...Array.from({ length: 20 }, observe));
    await nextEvent(agent, 'connect');
    const received = await cloud.waitFor(() => {
      const r = new Set(usageIds(cloud, 'acme'));
      return ids.every((id) => r.has(id)) && r;
    }, 'all events');
    // In-flight QoS 1 batches may legitimately arrive twice (same ids); nothing is lost.
    expect([...received].sort()).toEqual([...ids].sort());
  });

  it('bounds the offline buffer: the oldest batches are dropped and counted', async () => {
    const agent = await startAgent({ batchMaxEvents: 5, batchMaxDelayMs: 1, bufferMaxEvents: 10 });
    const offline = nextEvent(agent, 'offline');
    agent.simulateOutage({ holdMs: 60_000 });
    await offline;
    const drops: number[] = [];
    agent.on('dropped', (d) => drops.push(d.events));
    const ids = Array.from({ length: 25 }, () => agent.observe({ device_id: 'd1', app: 'mail', action: 'send', tenant_id: 'acme' }).event_id);
    expect(agent.stats()).toMatchObject({ events_dropped: 15, buffered_events: 10 });
    expect(drops).toEqual([5, 5, 5]);

    agent.endOutage();
    await nextEvent(agent, 'connect');
    const received = await cloud.waitFor(() => {
      const r = usageIds(cloud, 'acme');
      return r.length >= 10 && r;
    }, 'surviving events');
    expect(received).toEqual(ids.slice(15));
  });

  it('stop() flushes pending events, publishes a retained offline status and is idempotent', async () => {
    const agent = await startAgent({ batchMaxDelayMs: 60_000, agentVersion: '9.9.9' });
    const ids = [1, 2, 3].map(() => agent.observe({ device_id: 'd1', app: 'mail', action: 'send', tenant_id: 'acme' }).event_id);
    expect(usageIds(cloud, 'acme')).toEqual([]);
    await Promise.all([agent.stop(), agent.stop()]);
    // A PUBACK says the broker has it; delivery to another subscriber may trail it slightly.
    await cloud.waitFor(() => usageIds(cloud, 'acme').length === 3, 'flushed events');
    expect(usageIds(cloud, 'acme')).toEqual(ids);
    const statuses = await cloud.waitFor(() => {
      const s = cloud.json<TowerStatus>(topics.status(TOWER));
      return s.at(-1)?.state === 'offline' && s;
    }, 'offline status');
    expect(statuses.map((s) => s.state)).toEqual(['online', 'offline']);
    expect(statuses[1]).toMatchObject({ agent_version: '9.9.9', counters: { events_observed: 3, batches_sent: 1 } });
    expect(() => agent.observe({ device_id: 'd1', app: 'mail', action: 'send' })).toThrow(/stopped/);

    // Retained: a late subscriber still learns the tower is offline.
    const late = await MessageRecorder.connect(broker.url, [topics.status(TOWER)]);
    const retained = await late.waitFor(() => late.messages[0], 'retained status');
    await late.close();
    expect(retained.retain).toBe(true);
    expect(JSON.parse(retained.payload.toString()).state).toBe('offline');
  });

  it('an abrupt socket loss fires the will, then the agent reconnects with backoff and says online', async () => {
    const agent = await startAgent({ reconnectMinMs: 20, reconnectMaxMs: 40 });
    const statusTopic = topics.status(TOWER);
    await cloud.waitFor(() => cloud.json<TowerStatus>(statusTopic).length === 1, 'online status');
    const reconnecting = nextEvent(agent, 'reconnecting');
    agent.simulateOutage();
    const [info] = (await reconnecting) as [{ attempt: number; delayMs: number }];
    expect(info.delayMs).toBeGreaterThanOrEqual(20);
    expect(info.delayMs).toBeLessThanOrEqual(40);
    const states = await cloud.waitFor(() => {
      const s = cloud.json<TowerStatus>(statusTopic).map((m) => m.state);
      return s.length >= 3 && s;
    }, 'will then online');
    expect(states).toEqual(['online', 'offline', 'online']);
  });

  it('backs off while its connections keep dropping right after they come up, and starts over after one that lasted', async () => {
    // A connection counts as one that lasted once it outlives the longest backoff: 5 s, so a
    // loaded machine's pause between a connection's up and its drop (40 ms did) does not pass
    // for one. Six attempts still back off within ~0.3 s (5, 10, 20, 40, 80, 160 ms).
    const agent = await startAgent({ reconnectMinMs: 5, reconnectMaxMs: 5_000 });
    // A flapping link, or a broker that takes every connection and drops it at once (another
    // agent configured with the same tower id takes the session over, and so on): each
    // connection is acknowledged, subscribed, up, and then cut.
    let flapping = true;
    broker.aedes.on('subscribe', (_subs, client) => {
      if (flapping && client?.id === `tower-${TOWER}`) setImmediate(() => broker.dropClient(client.id));
    });
    const attempts: number[] = [];
    const ups: number[] = [];
    agent.on('connect', () => ups.push(attempts.length));
    const sixDrops = new Promise<void>((resolve) => {
      agent.on('reconnecting', (info) => {
        attempts.push(info.attempt);
        if (attempts.length === 6) {
          flapping = false;
          resolve();
        }
      });
    });
    broker.dropClient(`tower-${TOWER}`);
    await sixDrops;
    // Every connection came up, yet the backoff grew (each CONNACK reset it: 0, 0, 0, … and a
    // reconnect every reconnectMinMs for as long as it lasts).
    expect(ups.length).toBeGreaterThanOrEqual(5);
    expect(attempts).toEqual([0, 1, 2, 3, 4, 5]);

    await cloud.waitFor(() => agent.online, 'the agent up on a connection that stays');
    // A connection that outlives the longest backoff was a good one: the next loss starts over.
    const real = performance.now.bind(performance);
    const clock = vi.spyOn(performance, 'now').mockImplementation(() => real() + 60_000);
    try {
      const next = nextEvent(agent, 'reconnecting');
      expect(broker.dropClient(`tower-${TOWER}`)).toBe(true);
      const [info] = (await next) as [{ attempt: number }];
      expect(info.attempt).toBe(0);
    } finally {
      clock.mockRestore();
    }
  });

  it('rejects start() when the broker refuses the credentials', async () => {
    broker.aedes.authenticate = (_client, _user, _pass, done) => done(null, false);
    const agent = new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'wrong' });
    await expect(agent.start()).rejects.toThrow(/refused/i);
    await agent.stop();
  });
});
