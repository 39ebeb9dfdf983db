/**
 * Integration: auto-remediation at the tower. The real agent with its own PersistentEnforcer
 * (option stateDir, real files in a temp dir) against a real Aedes broker on 127.0.0.1:0, with a
 * recorder client playing the cloud. No sleeps: every wait is for a message or an event.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { DecisionSchema, SCHEMA_VERSION, type Command, type CommandAck, type Decision, type DecisionBatch, type UsageBatch } from '../shared/mqtt/payloads.js';
import { filters, topics } from '../shared/mqtt/topics.js';
import type { DecisionOrigin } from './agent-types.js';
import { EdgeAgent, type EdgeAgentEvents, type EdgeAgentOptions } from './edge-agent.js';
import { enforcerStateFile } from './persistent-enforcer.js';
import { MessageRecorder, startTestBroker, type TestBroker } from './test-broker.js';

const newId = createIdFactory();
const TOWER = 'tower-r';
const TENANT = 'acme';

function nextEvent<K extends keyof EdgeAgentEvents>(agent: EdgeAgent, name: K): Promise<EdgeAgentEvents[K]> {
  return new Promise((resolve) => {
    // Node's typed once() cannot relate a generic K to its listener type; the cast is local.
    agent.once(name, ((...args: EdgeAgentEvents[K]) => resolve(args)) as never);
  });
}

describe('EdgeAgent auto-remediation with a persistent enforcer', () => {
  let broker: TestBroker;
  let cloud: MessageRecorder;
  let stateDir: string;
  let clock: number;
  const agents: EdgeAgent[] = [];

  async function startAgent(opts: Partial<EdgeAgentOptions> = {}): Promise<EdgeAgent> {
    const agent = new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'pw', stateDir, now: () => clock, batchMaxDelayMs: 1, ...opts });
    agent.on('error', () => {});
    agents.push(agent);
    await agent.start();
    return agent;
  }

  function command(type: Command['type'], extra: Partial<Command> = {}): Command {
    return { v: SCHEMA_VERSION, id: newId(), type, device_id: 'd1', issued_at: clock, expires_at: clock + 60_000, ...extra };
  }

  /** Publishes a command as the cloud would and resolves with the agent's 'command' event. */
  async function send(agent: EdgeAgent, cmd: Command): Promise<{ ack: CommandAck; duplicate: boolean }> {
    const done = new Promise<{ ack: CommandAck; duplicate: boolean }>((resolve) => {
      const l = (_t: string, c: Command, ack: CommandAck, duplicate: boolean): void => {
        if (c.id !== cmd.id) return;
        agent.off('command', l);
        resolve({ ack, duplicate });
      };
      agent.on('command', l);
    });
    await cloud.publishJson(topics.commands(TENANT, TOWER), cmd);
    return done;
  }

  const observe = (agent: EdgeAgent, app: string, device = 'd1') => agent.observe({ device_id: device, app, action: 'open', tenant_id: TENANT });

  beforeEach(async () => {
    broker = await startTestBroker('tcp');
    cloud = await MessageRecorder.connect(broker.url, [filters.allUsage, filters.allAcks]);
    stateDir = await mkdtemp(join(tmpdir(), 'edgeplane-agent-state-'));
    clock = Date.now();
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop();
    await cloud.close();
    await broker.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('answers a blocked device locally at once, still reports the event, and emits the cloud decision once', async () => {
    const agent = await startAgent();
    const block = command('block_app', { app: 'tiktok', duration_s: 300 });
    expect((await send(agent, block)).ack).toMatchObject({ command_id: block.id, status: 'applied' });

    const decisions: Array<{ decision: Decision; origin: DecisionOrigin }> = [];
    agent.on('decision', (_t, decision, origin) => decisions.push({ decision, origin }));
    const firstDecision = nextEvent(agent, 'decision');
    const blocked = observe(agent, 'tiktok');
    const allowed = observe(agent, 'slack');
    expect(blocked.answered_locally).toBe(true);
    expect(allowed.answered_locally).toBe(false);
    // The id is the caller's before the decision: the local answer comes in a microtask.
    expect(decisions).toEqual([]);
    const [tenantId, local, origin] = await firstDecision;
    expect(tenantId).toBe(TENANT);
    expect(local).toEqual({ event_id: blocked.event_id, device_id: 'd1', effect: 'deny', reason: 'blocked', rule_id: null, policy_id: null, severity: null });
    expect(DecisionSchema.parse(local)).toEqual(local);
    expect(origin).toEqual({ source: 'local', block: { blocked: true, command_id: block.id, type: 'block_app' } });

    // Both events still reach the cloud, for the record.
    const usage = await cloud.waitFor(() => {
      const b = cloud.json<UsageBatch>(topics.usage(TENANT, TOWER)).flatMap((x) => x.events);
      return b.length >= 2 && b;
    }, 'usage');
    expect(usage.map((e) => e.id)).toEqual([blocked.event_id, allowed.event_id]);

    const cloudBatch: DecisionBatch = {
      v: SCHEMA_VERSION,
      id: newId(),
      batch_id: newId(),
      policy_version: 1,
      decided_at: clock,
      decisions: usage.map((e) => ({ event_id: e.id, device_id: e.device_id, effect: e.app === 'tiktok' ? 'deny' : 'allow', reason: 'blocked', rule_id: null, policy_id: null, severity: null })),
      rejected: [],
    };
    const batchSeen = nextEvent(agent, 'decisionBatch');
    await cloud.publishJson(topics.decisions(TENANT, TOWER), cloudBatch);
    expect((await batchSeen)[1].decisions).toHaveLength(2);
    expect(decisions.map((d) => [d.decision.event_id, d.origin.source])).toEqual([
      [blocked.event_id, 'local'],
      [allowed.event_id, 'cloud'],
    ]);
    expect(agent.stats()).toMatchObject({ events_answered_locally: 1, decisions_received: 2, commands_applied: 1 });
  });

  it('keeps active blocks across an agent restart and does not re-apply a redelivered command', async () => {
    const first = await startAgent();
    const block = command('block_device', { duration_s: 600 });
    const firstAck = (await send(first, block)).ack;
    expect(firstAck.status).toBe('applied');
    await first.stop();

    // A new agent and a new enforcer on the same state file.
    const second = await startAgent();
    expect(observe(second, 'slack').answered_locally).toBe(true);
    expect(observe(second, 'slack', 'd2').answered_locally).toBe(false);

    const lifted = nextEvent(second, 'blockLifted');
    expect((await send(second, command('unblock_device'))).ack.status).toBe('applied');
    const [liftedBlock, cause] = await lifted;
    expect(liftedBlock).toMatchObject({ command_id: block.id, type: 'block_device', device_id: 'd1' });
    expect(cause).toBe('unblocked');
    expect(observe(second, 'slack').answered_locally).toBe(false);

    // The first block, redelivered after the restart: acked with its first result, not applied.
    const again = await send(second, block);
    expect(again.duplicate).toBe(true);
    expect(again.ack).toMatchObject({ command_id: block.id, status: 'applied' });
    expect(again.ack.reason).toBe(firstAck.reason);
    expect(observe(second, 'slack').answered_locally).toBe(false);
    expect(second.stats().commands_applied).toBe(1);
    const acks = await cloud.waitFor(() => {
      const a = cloud.json<CommandAck>(topics.acks(TENANT, TOWER)).filter((x) => x.command_id === block.id);
      return a.length === 2 && a;
    }, 'both acks of the block');
    expect(acks.map((a) => a.status)).toEqual(['applied', 'applied']);
  });

  it('stops answering locally when the block duration ends', async () => {
    const agent = await startAgent();
    await send(agent, command('block_app', { app: 'tiktok', duration_s: 30 }));
    expect(observe(agent, 'tiktok').answered_locally).toBe(true);
    clock += 30_000;
    expect(observe(agent, 'tiktok').answered_locally).toBe(false);
    expect(agent.stats().events_answered_locally).toBe(1);
  });

  it('acks an expired command as failed and never applies it', async () => {
    const agent = await startAgent();
    const expired = command('block_device', { duration_s: 600, expires_at: clock - 1 });
    const { ack } = await send(agent, expired);
    expect(ack).toMatchObject({ command_id: expired.id, status: 'failed', reason: 'expired' });
    expect(observe(agent, 'slack').answered_locally).toBe(false);
    expect(agent.stats().commands_applied).toBe(0);
  });

  it('refuses a block without duration and a block_app without app, with reasons', async () => {
    const agent = await startAgent();
    expect((await send(agent, command('quarantine'))).ack).toMatchObject({ status: 'failed', reason: 'duration_s required' });
    expect((await send(agent, command('block_app', { duration_s: 10 }))).ack).toMatchObject({ status: 'failed', reason: 'app required for block_app' });
    expect(observe(agent, 'slack').answered_locally).toBe(false);
  });

  it('starts with a corrupt state file: moved aside, empty state, no crash', async () => {
    const file = enforcerStateFile(stateDir, TOWER);
    await mkdir(stateDir, { recursive: true });
    await writeFile(file, 'garbage{');
    const agent = await startAgent();
    expect((await readdir(stateDir)).some((f) => f.startsWith(`enforcer-${TOWER}.json.corrupt-`))).toBe(true);
    expect(observe(agent, 'slack').answered_locally).toBe(false);
    expect((await send(agent, command('block_device', { duration_s: 60 }))).ack.status).toBe('applied');
    expect(observe(agent, 'slack').answered_locally).toBe(true);
  });
});
