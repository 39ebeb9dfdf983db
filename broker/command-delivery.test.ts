/**
 * A command's "delivered" step must not depend on the tower's MQTT client library: a PUBACK
 * from Eclipse Paho (Python) of a command replayed from its persistent session, or sent on a
 * clean session, is recorded, on the in-memory and the durable (LevelDB) session stores.
 * Before, the broker read deliveries from aedes' 'ack' event, which reports only what the
 * session store finds under the PUBACK's packet id (command-deliveries.ts lists the gaps:
 * nothing at all on clean sessions). Real broker, real sockets, real Paho.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { memoryBackends, type BrokerBackends } from './backends.js';
import { levelBackends } from './backends-level.js';
import { connectPacket, pubackPacket, subscribePacket } from './mqtt-bytes.js';
import { rawClient, startHarness, type Harness, type TowerLogin } from './test-support.js';

const run = promisify(execFile);
const PAHO = fileURLToPath(new URL('./fixtures/paho-tower.py', import.meta.url));
const PYTHON = '/usr/bin/python3';

interface PahoTower {
  /** Resolves once Paho's SUBSCRIBE was acknowledged. */
  subscribed: Promise<void>;
  /** Resolves with the payloads Paho received (once it got the expected count). */
  received: Promise<string[]>;
  /** Lets Paho disconnect (after its PUBACKs were seen by the broker). */
  stop(): Promise<void>;
}

function pahoReceive(port: number, login: TowerLogin, clean: boolean, count: number): PahoTower {
  const child = spawn(PYTHON, [PAHO, String(port), login.towerId, login.password, clean ? '1' : '0', 'receive', String(count)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  let onSubscribed: () => void = () => undefined;
  let onReceived: (r: string[]) => void = () => undefined;
  const subscribed = new Promise<void>((r) => (onSubscribed = r));
  const received = new Promise<string[]>((r) => (onReceived = r));
  lines.on('line', (line) => {
    if (line === 'subscribed') onSubscribed();
    else onReceived(JSON.parse(line) as string[]);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    subscribed,
    received,
    async stop() {
      child.stdin.end();
      await exited;
    },
  };
}

const commandIds = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const publishCommands = (h: Harness, ids: string[]) =>
  Promise.all(ids.map((id) => h.broker.downlink.publish(topics.commands('tenantA', 'T1'), Buffer.from(JSON.stringify({ v: 1, id })))));

describe.each(['memory', 'LevelDB'])('command deliveries from a Paho tower (%s sessions)', (kind) => {
  let h: Harness;
  let t1: TowerLogin;
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-deliveries-'));
    const backends: BrokerBackends = kind === 'memory' ? memoryBackends() : levelBackends({ location: join(dir, 'sessions') });
    h = await startHarness({ backends });
    t1 = await h.createTower('T1');
  });
  afterEach(async () => {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('records every command replayed from its persistent session and acknowledged', async () => {
    await run(PYTHON, [PAHO, String(h.mqttPort), 'T1', t1.password, '0', 'subscribe']);
    const ids = commandIds(20, 'queued');
    await publishCommands(h, ids); // queued: the tower is offline
    const paho = pahoReceive(h.mqttPort, t1, false, ids.length);
    expect((await paho.received).map((p) => (JSON.parse(p) as { id: string }).id).sort()).toEqual([...ids].sort());
    await Promise.all(ids.map((id) => h.delivered(id)));
    await paho.stop();
    expect(new Set(h.deliveries.map((d) => d.command_id))).toEqual(new Set(ids));
    expect(h.deliveries.every((d) => d.tower_id === 'T1' && d.tenant_id === 'tenantA')).toBe(true);
  });

  it('records commands acknowledged on a clean session', async () => {
    const paho = pahoReceive(h.mqttPort, t1, true, 5);
    await paho.subscribed;
    const ids = commandIds(5, 'live');
    await publishCommands(h, ids);
    expect(await paho.received).toHaveLength(5);
    await Promise.all(ids.map((id) => h.delivered(id)));
    await paho.stop();
  });
});

describe('command deliveries over raw bytes', () => {
  let h: Harness;
  let t1: TowerLogin;
  beforeEach(async () => {
    h = await startHarness();
    t1 = await h.createTower('T1');
  });
  afterEach(async () => {
    await h.close();
  });

  it('a command written but not acknowledged is recorded when its replay (same packet id) is', async () => {
    const connect = connectPacket({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: t1.password, flags: 0xc0 });
    const first = await rawClient(h.mqttPort);
    first.write(connect);
    await first.bytes(4);
    first.write(subscribePacket(1, [['tenants/+/towers/T1/commands', 1]]));
    await first.bytes(4 + 5); // SUBACK
    await publishCommands(h, ['c-1']);
    const publish = (await first.bytes(10)).subarray(9);
    const packetId = publish.readUInt16BE(2 + 2 + publish.readUInt16BE(2)); // header(2) + topic
    first.destroy(); // gone without a PUBACK: the command is still queued
    expect(h.deliveries).toEqual([]);

    const second = await rawClient(h.mqttPort);
    second.write(connect);
    const replay = (await second.bytes(4 + publish.length)).subarray(4);
    expect(replay.readUInt16BE(2 + 2 + replay.readUInt16BE(2))).toBe(packetId); // [MQTT-4.4.0-1]
    second.write(pubackPacket(packetId));
    expect((await h.delivered('c-1')).tower_id).toBe('T1');
    second.destroy();
  });
});
