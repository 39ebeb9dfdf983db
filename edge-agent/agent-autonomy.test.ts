/**
 * Edge autonomy (issue #11) with the real agent against a real (plain) Aedes broker and a
 * recorder playing the cloud: local decisions from the bundle while the uplink is down or the
 * cloud is late, the journal carrying them across a restart, replay from disk when the memory
 * buffer overflows, and reconciliation when the cloud's decisions arrive. No sleeps.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION, type Decision, type DecisionBatch, type UsageBatch, type UsageEvent } from '../shared/mqtt/payloads.js';
import { filters, topics } from '../shared/mqtt/topics.js';
import { buildPolicyBundle } from '../shared/policy/edge-bundle.js';
import { BundleMirror, bundleMirrorDir, mirrorFile } from './bundle-mirror.js';
import { EdgeAgent, type DecisionOrigin, type EdgeAgentEvents, type EdgeAgentOptions, type Reconciliation, type Rejection } from './edge-agent.js';
import { RecordingEnforcer } from './enforcer.js';
import { MessageRecorder, startTestBroker, type TestBroker } from './test-broker.js';
import { publishTenant, startWithBundles, testModel, untilApplied, type TestTenant } from './test-bundles.js';

const TOWER = 'tower-7';
const ACME: TestTenant = {
  id: 'acme',
  version: 5,
  devices: [{ id: 'dev-sales', roles: ['sales'] }, { id: 'dev-eng', roles: ['eng'] }, { id: 'dev-none' }],
  grants: [
    { rule_id: 'R-no-dropbox', role_id: 'sales', app: 'dropbox', action: '*', effect: 'deny' },
    { rule_id: 'R-eng-dropbox', role_id: 'eng', app: 'dropbox', action: 'upload_file', effect: 'allow' },
  ],
  defaultEffect: 'allow',
};

function nextEvent<K extends keyof EdgeAgentEvents>(agent: EdgeAgent, name: K): Promise<EdgeAgentEvents[K]> {
  return new Promise((resolve) => agent.once(name, ((...args: EdgeAgentEvents[K]) => resolve(args)) as never));
}

interface Answer {
  decision: Decision;
  origin: DecisionOrigin;
}

/** Every answer the agent gives, by event id; resolves when `ids` all have one. */
class Answers {
  readonly decisions = new Map<string, Answer>();
  readonly rejections = new Map<string, Rejection>();
  readonly reconciled: Reconciliation[] = [];
  #waiters = new Set<() => void>();

  constructor(agent: EdgeAgent) {
    agent.on('decision', (_t, decision, origin) => this.#add(() => this.decisions.set(decision.event_id, { decision, origin })));
    agent.on('rejected', (r) => this.#add(() => this.rejections.set(r.event_id, r)));
    agent.on('reconciled', (r) => this.#add(() => this.reconciled.push(r)));
  }

  until(done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (!done()) return;
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }

  #add(f: () => void): void {
    f();
    for (const w of [...this.#waiters]) w();
  }
}

/** Answers every usage batch with `decide` (the cloud's policy), as the workers would. */
function answerUsage(cloud: MessageRecorder, decide: (e: UsageEvent) => Pick<Decision, 'effect' | 'reason' | 'rule_id'>): void {
  cloud.client.on('message', (topic, payload) => {
    if (!topic.endsWith('/usage')) return;
    const batch = JSON.parse(payload.toString()) as UsageBatch;
    const answer: DecisionBatch = {
      v: SCHEMA_VERSION,
      id: batch.id,
      batch_id: batch.id,
      policy_version: 6,
      decided_at: Date.now(),
      decisions: batch.events.map((e) => ({ event_id: e.id, device_id: e.device_id, policy_id: null, severity: null, ...decide(e) })),
      rejected: [],
    };
    void cloud.publishJson(topics.decisions('acme', TOWER), answer);
  });
}

/** A port nothing listens on: every connection attempt is refused. */
const UNREACHABLE = 'mqtt://127.0.0.1:1';

describe('EdgeAgent decides alone when it must', () => {
  let broker: TestBroker;
  let cloud: MessageRecorder;
  let stateDir: string;
  const agents: EdgeAgent[] = [];

  function makeAgent(opts: Partial<EdgeAgentOptions> = {}): EdgeAgent {
    const agent = new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'pw', reconnectMinMs: 10, reconnectMaxMs: 50, bundleSettleMs: 30, batchMaxDelayMs: 1, ...opts });
    agent.on('error', () => undefined);
    agents.push(agent);
    return agent;
  }

  /** Started, with its tenant's policy bundle and directory slice applied (see startWithBundles). */
  async function startAgent(opts: Partial<EdgeAgentOptions> = {}): Promise<EdgeAgent> {
    const agent = makeAgent(opts);
    await startWithBundles(agent);
    return agent;
  }

  async function goOffline(agent: EdgeAgent): Promise<void> {
    const offline = nextEvent(agent, 'offline');
    agent.simulateOutage({ holdMs: 600_000 });
    await offline;
  }

  async function comeBack(agent: EdgeAgent): Promise<void> {
    const back = nextEvent(agent, 'connect');
    agent.endOutage();
    await back;
  }

  beforeEach(async () => {
    broker = await startTestBroker();
    cloud = await MessageRecorder.connect(broker.url, [filters.allUsage]);
    await publishTenant(cloud, ACME, [TOWER]);
    stateDir = await mkdtemp(join(tmpdir(), 'edgeplane-autonomy-'));
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop();
    await cloud.close();
    await broker.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('offline: decides each event from the bundle, hands it to the enforcer at once, and reconciles with the cloud after', async () => {
    const enforcer = new RecordingEnforcer();
    const agent = await startAgent({ enforcer });
    const answers = new Answers(agent);
    await goOffline(agent);
    const cases = [
      { device_id: 'dev-sales', app: 'dropbox', action: 'upload_file', effect: 'deny', reason: 'rule', rule_id: 'R-no-dropbox' },
      { device_id: 'dev-eng', app: 'dropbox', action: 'upload_file', effect: 'allow', reason: 'rule', rule_id: 'R-eng-dropbox' },
      { device_id: 'dev-none', app: 'dropbox', action: 'upload_file', effect: 'allow', reason: 'default', rule_id: null },
      { device_id: 'dev-sales', app: 'mail', action: 'send', effect: 'allow', reason: 'default', rule_id: null },
    ] as const;
    const ids = cases.map((c) => agent.observe({ device_id: c.device_id, app: c.app, action: c.action }));
    expect(ids.every((r) => r.answered_locally && r.tenant_id === 'acme')).toBe(true);
    await answers.until(() => answers.decisions.size === cases.length);
    cases.forEach((c, i) => {
      const a = answers.decisions.get(ids[i]!.event_id)!;
      expect(a.decision).toMatchObject({ effect: c.effect, reason: c.reason, rule_id: c.rule_id });
      expect(a.origin).toEqual({ source: 'local', bundle_version: 5 });
    });
    expect(enforcer.decisions.map((d) => d.decision.event_id)).toEqual(ids.map((r) => r.event_id));
    expect(agent.stats()).toMatchObject({ events_decided_locally: 4 });

    // Back online: every event reaches the cloud carrying its local decision; the cloud (whose
    // policy changed meanwhile: everything is denied now) answers, and the agent reconciles.
    answerUsage(cloud, () => ({ effect: 'deny', reason: 'default', rule_id: null }));
    await comeBack(agent);
    await answers.until(() => answers.reconciled.length === cases.length);
    const sent = cloud.json<UsageBatch>(topics.usage('acme', TOWER)).flatMap((b) => b.events);
    expect(sent.map((e) => [e.id, e.local?.effect, e.local?.policy_version])).toEqual(cases.map((c, i) => [ids[i]!.event_id, c.effect, 5]));
    expect(answers.reconciled.filter((r) => r.disagreement).map((r) => r.event_id).sort()).toEqual([ids[1]!, ids[2]!, ids[3]!].map((r) => r.event_id).sort());
    expect(agent.stats()).toMatchObject({ local_decisions_reconciled: 4, local_disagreements: 3 });
    // The enforcer got each decision once: the cloud's later ones are reconciliations.
    expect(enforcer.decisions).toHaveLength(4);
  });

  it("online, the cloud's answer later than the deadline: decided locally, and the local decision reported for the event already sent", async () => {
    const agent = await startAgent({ localDecisionDeadlineMs: 50 });
    const answers = new Answers(agent);
    const r = agent.observe({ device_id: 'dev-sales', app: 'dropbox', action: 'send' });
    expect(r.answered_locally).toBe(false);
    await answers.until(() => answers.decisions.has(r.event_id));
    expect(answers.decisions.get(r.event_id)).toMatchObject({ decision: { effect: 'deny', rule_id: 'R-no-dropbox' }, origin: { source: 'local', bundle_version: 5 } });
    // First the event as observed, then a report of it with the local decision (same id).
    const copies = await cloud.waitFor(() => {
      const c = cloud.json<UsageBatch>(topics.usage('acme', TOWER)).flatMap((b) => b.events).filter((e) => e.id === r.event_id);
      return c.length === 2 && c;
    }, 'the event and its report');
    expect(copies.map((e) => e.local?.effect)).toEqual([undefined, 'deny']);
  });

  it('journals events while offline; a restarted agent sends every one, with its local decision, and the journal empties', async () => {
    const first = await startAgent({ stateDir });
    const answers = new Answers(first);
    await goOffline(first);
    const ids = Array.from({ length: 30 }, (_, i) => first.observe({ device_id: i % 2 ? 'dev-sales' : 'dev-eng', app: 'dropbox', action: 'upload_file' }).event_id);
    await answers.until(() => answers.decisions.size === 30);
    expect(first.stats().journal_pending_events).toBe(30);
    await first.stop();
    expect(cloud.json<UsageBatch>(topics.usage('acme', TOWER))).toEqual([]);

    answerUsage(cloud, (e) => ({ effect: e.local!.effect, reason: e.local!.reason, rule_id: e.local!.rule_id }));
    // Listening before it starts: the replay begins as soon as it is online.
    const second = makeAgent({ stateDir });
    const again = new Answers(second);
    await second.start();
    await again.until(() => again.reconciled.length === 30);
    const sent = cloud.json<UsageBatch>(topics.usage('acme', TOWER)).flatMap((b) => b.events);
    expect(sent.map((e) => e.id)).toEqual(ids);
    expect(sent.every((e) => e.local?.policy_version === 5)).toBe(true);
    expect(again.reconciled.every((r) => r.previous_run && !r.disagreement)).toBe(true);
    expect(await second.flush(5000)).toBe(true);
    expect(second.stats()).toMatchObject({ journal_pending_events: 0, events_replayed: 30 });
  });

  it('with a journal, an overflowing memory buffer loses nothing: the backlog replays from disk, in order', async () => {
    const agent = await startAgent({ stateDir, bufferMaxEvents: 20, batchMaxEvents: 5 });
    const answers = new Answers(agent);
    const drops: unknown[] = [];
    agent.on('dropped', (d) => drops.push(d));
    await goOffline(agent);
    const ids = Array.from({ length: 500 }, () => agent.observe({ device_id: 'dev-eng', app: 'mail', action: 'send' }).event_id);
    await answers.until(() => answers.decisions.size === 500);
    expect(agent.stats().buffered_events).toBeLessThanOrEqual(20);
    answerUsage(cloud, () => ({ effect: 'allow', reason: 'default', rule_id: null }));
    await comeBack(agent);
    expect(await agent.flush(10_000)).toBe(true);
    await answers.until(() => answers.reconciled.length === 500);
    const sent = cloud.json<UsageBatch>(topics.usage('acme', TOWER)).flatMap((b) => b.events.map((e) => e.id));
    expect(sent).toEqual(ids);
    expect(drops).toEqual([]);
    expect(answers.rejections.size).toBe(0);
    expect(agent.stats()).toMatchObject({ events_dropped: 0, journal_pending_events: 0 });
  });

  it("a device of a tenant whose bundle this tower does not hold waits for the cloud, offline or not", async () => {
    const agent = await startAgent();
    const answers = new Answers(agent);
    await publishTenant(cloud, { id: 'globex', devices: [{ id: 'dev-g1' }] }, []);
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (agent.tenantOf('dev-g1') !== 'globex') return;
        agent.off('bundle', check);
        resolve();
      };
      agent.on('bundle', check);
      check();
    });
    await goOffline(agent);
    const r = agent.observe({ device_id: 'dev-g1', app: 'mail', action: 'send' });
    expect(r).toMatchObject({ tenant_id: 'globex', answered_locally: false });
    cloud.client.on('message', (topic, payload) => {
      if (topic !== topics.usage('globex', TOWER)) return;
      const batch = JSON.parse(payload.toString()) as UsageBatch;
      const answer: DecisionBatch = { v: SCHEMA_VERSION, id: batch.id, batch_id: batch.id, policy_version: 1, decided_at: 1, rejected: [], decisions: batch.events.map((e) => ({ event_id: e.id, device_id: e.device_id, effect: 'deny', reason: 'default', rule_id: null, policy_id: null, severity: null })) };
      void cloud.publishJson(topics.decisions('globex', TOWER), answer);
    });
    await comeBack(agent);
    await answers.until(() => answers.decisions.has(r.event_id));
    expect(answers.decisions.get(r.event_id)).toMatchObject({ decision: { effect: 'deny' }, origin: { source: 'cloud' } });
  });
  it('restarted while the broker is unreachable: decides from the bundles it copied under --state-dir (only its own documents are copied)', async () => {
    // Another tower's bundle is on the broker too: this tower neither receives nor copies it.
    await publishTenant(cloud, ACME, ['tower-8']);
    const first = await startAgent({ stateDir });
    await first.stop();
    const copied = (await readdir(bundleMirrorDir(stateDir, TOWER))).map((name) => Buffer.from(name, 'base64url').toString());
    expect(copied).toContain(topics.policy('acme', TOWER));
    expect(copied.filter((t) => !t.startsWith('directory/') && !t.startsWith(`tenants/acme/towers/${TOWER}/policy`))).toEqual([]);

    const enforcer = new RecordingEnforcer();
    const second = makeAgent({ stateDir, enforcer, url: UNREACHABLE });
    const answers = new Answers(second);
    const restored = untilApplied(second, ['policy', 'directory']);
    // start() resolves once connected, which it never is here.
    void second.start().catch(() => undefined);
    await restored;
    expect(second.bundleVersion('acme')).toBe(5);
    const cases = [
      { device_id: 'dev-sales', app: 'dropbox', action: 'upload_file', effect: 'deny', rule_id: 'R-no-dropbox' },
      { device_id: 'dev-eng', app: 'dropbox', action: 'upload_file', effect: 'allow', rule_id: 'R-eng-dropbox' },
    ] as const;
    const ids = cases.map((c) => second.observe({ device_id: c.device_id, app: c.app, action: c.action }));
    expect(ids.every((r) => r.answered_locally && r.tenant_id === 'acme')).toBe(true);
    await answers.until(() => answers.decisions.size === cases.length);
    cases.forEach((c, i) => {
      expect(answers.decisions.get(ids[i]!.event_id)).toMatchObject({ decision: { effect: c.effect, rule_id: c.rule_id }, origin: { source: 'local', bundle_version: 5 } });
    });
    expect(enforcer.decisions.map((d) => d.decision.effect)).toEqual(['deny', 'allow']);
    // Journalled for the cloud as before.
    expect(second.stats().journal_pending_events).toBe(2);
  });

  it('a copy changed on disk is checked like a message from the broker, and not decided from', async () => {
    const first = await startAgent({ stateDir });
    await first.stop();
    // The bundle's part, edited to allow what the rule denies: its content no longer matches the
    // ref its head names.
    const part = mirrorFile(bundleMirrorDir(stateDir, TOWER), topics.policyPart('acme', TOWER, 0));
    const text = await readFile(part, 'utf8');
    expect(text).toContain('"deny"');
    await writeFile(part, text.replaceAll('"deny"', '"allow"'));

    const second = makeAgent({ stateDir, url: UNREACHABLE });
    const directory = untilApplied(second, ['directory']);
    void second.start().catch(() => undefined);
    // Every copy is fed in one pass: once the directory is applied, the bundle had its chance.
    await directory;
    expect(second.bundleVersion('acme')).toBeUndefined();
    const r = second.observe({ device_id: 'dev-sales', app: 'dropbox', action: 'upload_file' });
    expect(r).toMatchObject({ tenant_id: 'acme', answered_locally: false });
  });
  it.each([
    ['its parts but not its head (parts come first)', 'parts'],
    ['its head but not its parts (a fresh connection delivers them in any order)', 'head'],
  ] as const)('killed while copying a new version, %s: the version before still decides after the restart', async (_label, copied) => {
    const first = await startAgent({ stateDir });
    await first.stop();
    // Version 6 flips the sales rule; the copy gets only one side of it, as a kill would leave it.
    const v6 = buildPolicyBundle(testModel({ ...ACME, version: 6, grants: ACME.grants!.map((g) => ({ ...g, effect: 'allow' as const })) }));
    const copy = new BundleMirror(bundleMirrorDir(stateDir, TOWER), { maxBytes: 1 << 30, onError: (err) => expect.fail(err.message) });
    await copy.load();
    if (copied === 'parts') v6.parts.forEach((p, i) => copy.record(topics.policyPart('acme', TOWER, i), p));
    else copy.record(topics.policy('acme', TOWER), Buffer.from(JSON.stringify({ ...v6.head, id: '01JTEST0000000000000000V6H', tower_id: TOWER, published_at: Date.now() })));
    await copy.settled();

    const second = makeAgent({ stateDir, url: UNREACHABLE });
    const answers = new Answers(second);
    const restored = untilApplied(second, ['policy', 'directory']);
    void second.start().catch(() => undefined);
    await restored;
    expect(second.bundleVersion('acme')).toBe(5);
    const r = second.observe({ device_id: 'dev-sales', app: 'dropbox', action: 'upload_file' });
    expect(r.answered_locally).toBe(true);
    await answers.until(() => answers.decisions.has(r.event_id));
    expect(answers.decisions.get(r.event_id)).toMatchObject({ decision: { effect: 'deny', rule_id: 'R-no-dropbox' }, origin: { source: 'local', bundle_version: 5 } });
  });
});
