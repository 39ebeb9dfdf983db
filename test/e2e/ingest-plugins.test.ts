/**
 * The ingest plugin seam end to end (shared/ingest/plugin.ts), on the running control plane:
 * - the example line-protocol plugin over a real TCP socket, authenticated with a tower's own
 *   credential, feeds usage and discovery into the same pipeline as MQTT (the usage is decided
 *   and stored; the decision goes out on the tower's MQTT topic); bad lines are refused alone;
 * - a tower reporting accounting sessions itself over MQTT (topic `sessions`) lands where the
 *   RADIUS plugin's records land; a malformed batch is dropped and counted.
 */
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdFactory } from '../../shared/ids.js';
import type { DecisionBatch } from '../../shared/mqtt/payloads.js';
import { filters, topics } from '../../shared/mqtt/topics.js';
import { ApiClient } from '../../simulator/api-client.js';
import { connectTower, nextMessage, startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

const newId = createIdFactory();

async function freeTcpPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const addr = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return typeof addr === 'object' && addr ? addr.port : 0;
}

/** A line client: send a line, await the next reply line. */
function lineClient(socket: Socket) {
  let buffered = '';
  const waiting: Array<(line: string) => void> = [];
  const lines: string[] = [];
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  return {
    ask(line: string): Promise<string> {
      socket.write(`${line}\n`);
      const ready = lines.shift();
      return ready !== undefined ? Promise.resolve(ready) : new Promise((r) => waiting.push(r));
    },
  };
}

describe('ingest plugins on the running control plane', () => {
  let t: TestControlPlane;
  let owner: ApiClient;
  let tenantId: string;
  let password: string;

  beforeAll(async () => {
    t = await startTestControlPlane({ config: { line_ingest_port: await freeTcpPort() } });
    const op = t.operator;
    const created = await op.post<{ tenant: { id: string } }>('/api/v1/tenants', { name: 'lineco', owner: { email: 'owner@lineco.test', password: 'a-long-password-123' } });
    tenantId = created.tenant.id;
    owner = await ApiClient.login(t.cp.httpUrl, 'owner@lineco.test', 'a-long-password-123');
    await op.post('/api/v1/towers', { id: 'twr-line', name: 'Line tower' });
    password = (await op.post<{ mqtt: { password: string } }>('/api/v1/towers/twr-line/credentials', {})).mqtt.password;
    await owner.post('/api/v1/devices', { id: 'dev-line', name: 'line phone' });
  });
  afterAll(async () => {
    await t?.destroy();
  });

  it('line protocol: a tower credential, usage decided and stored, decisions on MQTT, bad lines refused alone', async () => {
    const mqtt = await connectTower(t.cp.mqttUrl, 'twr-line', password);
    await mqtt.subscribeAsync(filters.towerDecisions('twr-line'), { qos: 1 });
    const decision = nextMessage<DecisionBatch>(mqtt, topics.decisions(tenantId, 'twr-line'));

    const socket = connect(t.cp.ingest.line!.port, '127.0.0.1');
    await once(socket, 'connect');
    const c = lineClient(socket);
    expect(await c.ask(`AUTH twr-line ${password}`)).toBe('OK');
    expect(await c.ask(`USAGE ${tenantId} dev-line slack upload_file 2048`)).toBe('ACK 1');
    expect(await c.ask('USAGE nope')).toMatch(/^ERR 2 /);
    expect(await c.ask('SEEN dev-stranger')).toBe('ACK 3');
    socket.end();

    expect((await decision).decisions).toEqual([expect.objectContaining({ device_id: 'dev-line', effect: 'allow' })]);
    const usage = await owner.get<{ usage: Array<{ device_id: string; app: string; bytes: number; tower_id: string }> }>('/api/v1/app-usage');
    expect(usage.usage).toEqual([expect.objectContaining({ device_id: 'dev-line', app: 'slack', bytes: 2048, tower_id: 'twr-line' })]);
    const discovered = await t.operator.get<{ devices: Array<{ device_id: string }> }>('/api/v1/devices/discovered');
    expect(discovered.devices.map((d) => d.device_id)).toContain('dev-stranger');
    expect(t.cp.counters.get('ingest_plugin_messages_total', { plugin: 'line', outcome: 'accepted' })).toBe(2);
    expect(t.cp.counters.get('ingest_plugin_messages_total', { plugin: 'line', outcome: 'invalid_line' })).toBe(1);
    await mqtt.endAsync();
  });

  it('line protocol: a wrong credential is refused and the connection closed', async () => {
    const socket = connect(t.cp.ingest.line!.port, '127.0.0.1');
    await once(socket, 'connect');
    const c = lineClient(socket);
    expect(await c.ask(`AUTH twr-line ${password}x`)).toBe('ERR authentication failed');
    await once(socket, 'close');
    expect(t.cp.counters.get('line_auth_failures_total', { reason: 'bad_credentials', plugin: 'line' })).toBe(1);
  });

  it('line protocol: an endless line is refused and the connection ended, nothing buffered beyond the bound', async () => {
    const socket = connect(t.cp.ingest.line!.port, '127.0.0.1');
    await once(socket, 'connect');
    const c = lineClient(socket);
    expect(await c.ask(`AUTH twr-line ${password}`)).toBe('OK');
    const reply = c.ask('x'.repeat(10_000));
    expect(await reply).toBe('ERR 0 line too long');
    expect(t.cp.counters.get('ingest_plugin_messages_total', { plugin: 'line', outcome: 'invalid_line' })).toBe(1);
    await once(socket, 'close');
    expect(t.cp.counters.get('ingest_plugin_messages_total', { plugin: 'line', outcome: 'line_too_long' })).toBe(1);
  });

  it('a tower may report its own accounting sessions over MQTT; a malformed batch is dropped and counted', async () => {
    const mqtt = await connectTower(t.cp.mqttUrl, 'twr-line', password);
    const batch = {
      v: 1,
      id: newId(),
      sent_at: Date.now(),
      source: 'agent',
      records: [{ key: 'k1', session_id: 'agent-s1', status: 'start', device_id: 'dev-line', ts: 1_767_225_600_000, input_octets: 10, output_octets: 20 }],
    };
    await mqtt.publishAsync(topics.sessions('twr-line'), Buffer.from(JSON.stringify(batch)), { qos: 1 });
    const { sessions } = await owner.get<{ sessions: Array<{ session_id: string; tower_id: string; input_octets: number }> }>('/api/v1/sessions');
    expect(sessions).toEqual([expect.objectContaining({ session_id: 'agent-s1', tower_id: 'twr-line', input_octets: 10 })]);
    await mqtt.publishAsync(topics.sessions('twr-line'), Buffer.from('{"v":1}'), { qos: 1 });
    expect(t.cp.counters.get('uplink_dropped_total', { tower: 'twr-line', kind: 'sessions', reason: 'invalid_payload' })).toBe(1);
    await mqtt.endAsync();
  });
});
