/**
 * Fault injection on the journal's replay path: a small uplink buffer while a backlog replays
 * (the replay overflowed the buffer, spilled, rewound itself and read the same events again, for
 * ever, synchronously), and a journal record that frames right but does not decode (a time beyond
 * what the codec holds exactly: replaying it threw, at every start). No sleeps.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { silentLogger } from '../shared/logger.js';
import { SCHEMA_VERSION, type DecisionBatch, type UsageBatch } from '../shared/mqtt/payloads.js';
import { filters, topics } from '../shared/mqtt/topics.js';
import { EdgeAgent, type EdgeAgentEvents, type EdgeAgentOptions } from './edge-agent.js';
import { journalDir } from './journal-dir.js';
import { AgentJournal } from './journal-wiring.js';
import { Journal } from './journal/journal.js';
import { MAX_TS } from './observation.js';
import { OfflineBuffer, type OutboundBatch } from './offline-buffer.js';
import { MessageRecorder, startTestBroker, type TestBroker } from './test-broker.js';
import { publishTenant, startWithBundles, type TestTenant } from './test-bundles.js';

const newId = createIdFactory();
const TOWER = 'tower-audit';
const ACME: TestTenant = { id: 'acme', version: 3, devices: [{ id: 'dev-1', roles: ['eng'] }], grants: [], defaultEffect: 'allow' };

/** The cloud answers every batch, as the workers would. */
function answerAll(cloud: MessageRecorder): void {
  cloud.client.on('message', (topic, payload) => {
    if (topic !== topics.usage('acme', TOWER)) return;
    const batch = JSON.parse(payload.toString()) as UsageBatch;
    const answer: DecisionBatch = {
      v: SCHEMA_VERSION,
      id: batch.id,
      batch_id: batch.id,
      policy_version: 3,
      decided_at: Date.now(),
      decisions: batch.events.map((e) => ({ event_id: e.id, device_id: e.device_id, effect: 'allow', reason: 'default', rule_id: null, policy_id: null, severity: null })),
      rejected: [],
    };
    void cloud.publishJson(topics.decisions('acme', TOWER), answer);
  });
}

function nextEvent<K extends keyof EdgeAgentEvents>(agent: EdgeAgent, name: K): Promise<EdgeAgentEvents[K]> {
  return new Promise((resolve) => agent.once(name, ((...args: EdgeAgentEvents[K]) => resolve(args)) as never));
}

describe('journal replay with a small uplink buffer', () => {
  let stateDir: string;
  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-replay-'));
  });
  afterEach(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  it('a backlog larger than the buffer, with nothing acknowledged meanwhile, never overflows it and replays each event once, in order', async () => {
    const B = 20;
    const buffer = new OfflineBuffer(B);
    let pushes = 0;
    let overflows = 0;
    let online = false;
    // eslint-disable-next-line prefer-const
    let store: AgentJournal;
    const push = (item: OutboundBatch): void => {
      // A guard, not a timing: the old replay pushed the same events again without end.
      if (++pushes > 10_000) throw new Error('the replay keeps pushing: it loops');
      const dropped = buffer.push(item);
      if (dropped.length > 0) {
        overflows++;
        // What EdgeAgent does on an overflow with a journal (#overflow).
        store.spill([...dropped, ...buffer.drain().filter((b) => b.kind === 'usage')]);
      }
    };
    store = new AgentJournal({
      stateDir,
      towerId: TOWER,
      maxBytes: 8 * 1024 * 1024,
      fsyncMs: 0,
      batchMaxEvents: 5,
      bufferMaxEvents: B,
      newId,
      now: Date.now,
      log: silentLogger(),
      online: () => online,
      buffered: () => buffer.events,
      push,
      onReplay: () => undefined,
      onEvicted: () => undefined,
      onError: (err) => {
        throw err;
      },
    });
    await store.open();
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) {
      const id = newId();
      ids.push(id);
      store.journal.append({ tenantId: 'acme', event: { id, ts: 1_767_000_000_000 + i, device_id: 'dev-1', app: 'mail', action: 'send' } });
    }
    store.feed.catchUp(0); // offline: nothing is read yet
    expect(pushes).toBe(0);
    online = true;
    // The uplink is up but takes nothing (every publish awaits its PUBACK): the feed fills the
    // buffer up to its room and stops.
    store.feed.pump();
    expect(overflows).toBe(0);
    expect(buffer.events).toBeLessThanOrEqual(B);
    expect(buffer.events).toBeGreaterThan(0);
    // PUBACKs come: the buffer empties and the feed refills it, until the backlog is replayed.
    const sent: string[] = [];
    for (let round = 0; round < 1000 && store.feed.catchingUp; round++) {
      for (const b of buffer.drain()) if (b.kind === 'usage') sent.push(...b.batch.events.map((e) => e.id));
      store.feed.pump();
    }
    for (const b of buffer.drain()) if (b.kind === 'usage') sent.push(...b.batch.events.map((e) => e.id));
    expect(store.feed.catchingUp).toBe(false);
    expect(overflows).toBe(0);
    expect(sent).toEqual(ids);
    await store.close();
  });
});

describe('EdgeAgent replays a journal backlog through a small buffer', () => {
  let broker: TestBroker;
  let cloud: MessageRecorder;
  let stateDir: string;
  const agents: EdgeAgent[] = [];

  beforeEach(async () => {
    broker = await startTestBroker();
    cloud = await MessageRecorder.connect(broker.url, [filters.allUsage]);
    await publishTenant(cloud, ACME, [TOWER]);
    stateDir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-agent-'));
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop();
    await cloud.close();
    await broker.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  function makeAgent(opts: Partial<EdgeAgentOptions>): EdgeAgent {
    let calls = 0;
    const agent = new EdgeAgent({
      url: broker.url,
      towerId: TOWER,
      password: 'pw',
      reconnectMinMs: 10,
      reconnectMaxMs: 50,
      bundleSettleMs: 30,
      batchMaxDelayMs: 1,
      stateDir,
      // A guard against a synchronous replay loop (which no test timeout can stop): the clock is
      // read for every batch built; a few thousand reads are plenty for this test.
      now: () => {
        if (++calls > 50_000) throw new Error('the clock was read 50,000 times: the replay loops');
        return Date.now();
      },
      ...opts,
    });
    agent.on('error', () => undefined);
    agents.push(agent);
    return agent;
  }

  it('a restarted agent with --buffer-max-events below the backlog and one publish in flight sends every journalled event once, in order', async () => {
    const first = makeAgent({ bufferMaxEvents: 20, batchMaxEvents: 5 });
    await startWithBundles(first);
    const offline = nextEvent(first, 'offline');
    first.simulateOutage({ holdMs: 600_000 });
    await offline;
    const ids = Array.from({ length: 300 }, () => first.observe({ device_id: 'dev-1', app: 'mail', action: 'send' }).event_id);
    await first.stop();
    expect(first.stats().journal_pending_events).toBe(300);

    answerAll(cloud);
    const second = makeAgent({ bufferMaxEvents: 20, batchMaxEvents: 50, maxInflight: 1 });
    const drops: unknown[] = [];
    second.on('dropped', (d) => drops.push(d));
    await second.start();
    expect(await second.flush(20_000)).toBe(true);
    await cloud.waitFor(() => cloud.json<UsageBatch>(topics.usage('acme', TOWER)).flatMap((b) => b.events).length >= 300, '300 events at the cloud');
    const batches = cloud.json<UsageBatch>(topics.usage('acme', TOWER));
    expect(batches.flatMap((b) => b.events.map((e) => e.id))).toEqual(ids);
    // No batch larger than the buffer (batchMaxEvents 50 is capped by bufferMaxEvents 20).
    expect(Math.max(...batches.map((b) => b.events.length))).toBeLessThanOrEqual(20);
    expect(drops).toEqual([]);
    expect(second.stats()).toMatchObject({ journal_pending_events: 0, events_dropped: 0, events_replayed: 300 });
  });

  it('live, a batch larger than the buffer is never built: batches of a busy tenant are sent, not dropped', async () => {
    // Without a journal an oversized batch was dropped whole on arrival, even online.
    const agent = makeAgent({ stateDir: undefined, bufferMaxEvents: 3, batchMaxEvents: 100, localDecisionDeadlineMs: 0 });
    await startWithBundles(agent);
    const rejected: string[] = [];
    agent.on('rejected', (r) => rejected.push(r.reason));
    const ids = Array.from({ length: 9 }, () => agent.observe({ device_id: 'dev-1', app: 'mail', action: 'send' }).event_id);
    expect(await agent.flush(10_000)).toBe(true);
    await cloud.waitFor(() => cloud.json<UsageBatch>(topics.usage('acme', TOWER)).flatMap((b) => b.events).length >= 9, '9 events at the cloud');
    expect(cloud.json<UsageBatch>(topics.usage('acme', TOWER)).flatMap((b) => b.events.map((e) => e.id))).toEqual(ids);
    expect(agent.stats().events_dropped).toBe(0);
    expect(rejected).toEqual([]);
  });

  it.skipIf(!existsSync('/dev/full'))('a journal write that fails (disk full) fails no observe() and loses no event: it goes out from memory, the failure reported once', async () => {
    answerAll(cloud);
    const agent = makeAgent({ localDecisionDeadlineMs: 0 });
    const errors: Error[] = [];
    agent.on('error', (err) => errors.push(err));
    const decided = new Set<string>();
    agent.on('decision', (_t, d) => decided.add(d.event_id));
    await startWithBundles(agent);
    // The segment the first append opens is a device that is always full.
    await symlink('/dev/full', join(journalDir(stateDir, TOWER), '0000000000000000.seg'));
    const ids = Array.from({ length: 3 }, () => agent.observe({ device_id: 'dev-1', app: 'mail', action: 'send' }).event_id);
    expect(await agent.flush(10_000)).toBe(true);
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (!ids.every((id) => decided.has(id))) return;
        agent.off('decision', check);
        resolve();
      };
      agent.on('decision', check);
      check();
    });
    expect(cloud.json<UsageBatch>(topics.usage('acme', TOWER)).flatMap((b) => b.events.map((e) => e.id)).sort()).toEqual([...ids].sort());
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/ENOSPC|EINVAL/);
    // The later events were journalled again (a new segment), and acknowledged.
    expect(agent.stats().journal_pending_events).toBe(0);
  });

  it('reports of late local decisions are no larger than a batch: with a small buffer they are sent, not dropped', async () => {
    // No journal, and a cloud that never answers: every event is decided locally at the deadline
    // and its local decision reported. One report of all 9 was larger than the buffer of 3.
    const agent = makeAgent({ stateDir: undefined, bufferMaxEvents: 3, batchMaxEvents: 3, localDecisionDeadlineMs: 20 });
    const drops: unknown[] = [];
    agent.on('dropped', (d) => drops.push(d));
    await startWithBundles(agent);
    const ids = Array.from({ length: 9 }, () => agent.observe({ device_id: 'dev-1', app: 'mail', action: 'send' }).event_id);
    const reported = (): Set<string> =>
      new Set(
        cloud
          .json<UsageBatch>(topics.usage('acme', TOWER))
          .flatMap((b) => b.events)
          .filter((e) => e.local !== undefined)
          .map((e) => e.id),
      );
    await cloud.waitFor(() => ids.every((id) => reported().has(id)), 'every local decision reported');
    expect(drops).toEqual([]);
    expect(agent.stats()).toMatchObject({ events_dropped: 0, events_decided_locally: 9 });
  });

  it('refuses a buffer of no events (nothing could ever be sent)', () => {
    expect(() => new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'pw', bufferMaxEvents: 0 })).toThrow(/bufferMaxEvents/);
  });
});

describe('journal records that do not decode', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-codec-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a time beyond what the codec holds exactly: the reader skips that event and counts it, and never throws', async () => {
    const j = new Journal({ dir, maxBytes: 8 * 1024 * 1024, fsyncMs: 0 });
    await j.open();
    const ev = (ts: number) => ({ tenantId: 'acme', event: { id: newId(), ts, device_id: 'dev-1', app: 'mail', action: 'send' } });
    const good = ev(1_767_000_000_000);
    // What `observe({ ts: 1e20 })` journalled before observe() bounded ts.
    j.append(good);
    j.append(ev(1e20));
    await j.close();
    // A later start (the segment is sealed) finds a record it cannot read back.
    const again = new Journal({ dir, maxBytes: 8 * 1024 * 1024, fsyncMs: 0 });
    await again.open();
    const after = ev(1_767_000_000_005);
    again.append(after);
    const r = again.reader(again.firstSeq);
    const read: string[] = [];
    for (let chunk = r.read(1000); chunk.length > 0; chunk = r.read(1000)) read.push(...chunk.map((e) => e.event.id));
    r.close();
    expect(read).toEqual([good.event.id, after.event.id]);
    expect(again.corruptEvents).toBe(1);
    expect(r.position).toBe(again.nextSeq);
    await again.close();
  });

  it('observe() refuses a ts or bytes the journal cannot hold exactly, naming the field', async () => {
    const agent = new EdgeAgent({ url: 'mqtt://127.0.0.1:1', towerId: TOWER, password: 'pw' });
    const base = { device_id: 'dev-1', app: 'mail', action: 'send' };
    expect(() => agent.observe({ ...base, ts: 1e20 })).toThrow(/ts must be/);
    expect(() => agent.observe({ ...base, ts: MAX_TS + 1 })).toThrow(/ts must be/);
    expect(() => agent.observe({ ...base, bytes: 2 ** 60 })).toThrow(/bytes must be/);
    expect(() => agent.observe({ ...base, bytes: 1e300 })).toThrow(/bytes must be/);
    await agent.stop();
  });
});
