/**
 * Audit: MQTT clients nobody on the project wrote, with a tower's credentials, against a real
 * broker: mosquitto_pub/mosquitto_sub (mosquitto-clients) over TCP, and Eclipse paho (python3,
 * python3-paho-mqtt) over TCP and over WebSocket, in MQTT 3.1.1 and 3.1. Each publishes usage at
 * QoS 0, 1 and 2 with the retain flag, subscribes asking for QoS 2 on its own filters and for '#'
 * in the same SUBSCRIBE, and receives a decision: the uplinks reach ingest once each and are never
 * retained, the SUBACK grants what the ACL says at the QoS the broker serves, and the downlink
 * arrives. A tool that is missing skips its suite with one line, except under CI=true.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { filters, mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { MOSQUITTO, PAHO_PYTHON, TOOLS_REQUIRED as REQUIRED, spawnLines, warnMissingTools } from './fixtures/third-party-clients.js';
import { inbox, startHarness, subscribeResult, type Harness, type TowerLogin } from './test-support.js';

const run = promisify(execFile);
warnMissingTools('broker/audit-third-party-clients.test.ts');

const A = 'tenantA';
const USAGE = topics.usage(A, 'T1');

let h: Harness;
let t1: TowerLogin;
beforeEach(async () => {
  h = await startHarness();
  t1 = await h.createTower('T1');
});
afterEach(async () => h.close());

/** Uplinks are consumed by ingest: a service subscribing to everything gets no retained copy. */
async function nothingRetained(): Promise<void> {
  const svc = await h.connectService();
  const box = inbox(svc);
  expect(await subscribeResult(svc, 'tenants/#')).toBe(1);
  expect(await subscribeResult(svc, 'towers/#')).toBe(1);
  // A retained marker of its own, sent after those SUBSCRIBEs were answered: anything retained
  // before it would have arrived first.
  await h.broker.downlink.publish(topics.policy(A, 'T9'), Buffer.from('{"marker":true}'), { retain: true });
  await box.next((t) => t === topics.policy(A, 'T9'));
  expect(box.messages.map((m) => m.topic)).toEqual([topics.policy(A, 'T9')]);
}

describe.skipIf(!MOSQUITTO && !REQUIRED)('mosquitto clients with a tower credential', () => {
  const login = () => ['-h', '127.0.0.1', '-p', String(h.mqttPort), '-i', mqttIdentity.towerClientId('T1'), '-u', 'T1', '-P', t1.password];

  it('mosquitto_pub at QoS 0, 1 and 2 with -r: each reaches ingest once at its QoS, none is retained', async () => {
    expect(MOSQUITTO, 'mosquitto clients are required under CI=true (apt-get install -y mosquitto-clients)').toBe(true);
    for (const qos of [0, 1, 2]) {
      await run('mosquitto_pub', [...login(), '-V', 'mqttv311', '-q', String(qos), '-r', '-t', USAGE, '-m', `{"qos":${qos}}`]);
    }
    expect(h.sink.messages.map((m) => [m.topic, m.publish_qos, m.payload.toString()])).toEqual([
      [USAGE, 0, '{"qos":0}'],
      [USAGE, 1, '{"qos":1}'],
      [USAGE, 2, '{"qos":2}'],
    ]);
    await nothingRetained();
  });

  it('mosquitto_pub speaking MQTT 5 is refused at CONNECT and nothing reaches ingest; MQTT 3.1 is served', async () => {
    expect(MOSQUITTO, 'mosquitto clients are required under CI=true (apt-get install -y mosquitto-clients)').toBe(true);
    const v5 = await run('mosquitto_pub', [...login(), '-V', 'mqttv5', '-q', '1', '-t', topics.status('T1'), '-m', '{"v":5}']).then(
      () => 0,
      (err: { code?: number }) => err.code ?? -1,
    );
    expect(v5).not.toBe(0);
    expect(h.counters.get('mqtt_rejected_total', { reason: 'protocol_level' })).toBe(1);
    await run('mosquitto_pub', [...login(), '-V', 'mqttv31', '-q', '1', '-t', topics.status('T1'), '-m', '{"v":3}']);
    expect(h.sink.messages.map((m) => m.payload.toString())).toEqual(['{"v":3}']);
  });

  it('mosquitto_sub on a persistent session: SUBACK grants its own filter and refuses #; gets a decision live and a command queued while away', async () => {
    expect(MOSQUITTO, 'mosquitto clients are required under CI=true (apt-get install -y mosquitto-clients)').toBe(true);
    const sub = (count: number, onLine: (line: string) => void) =>
      // Line-buffered: the test acts on the SUBACK line while mosquitto_sub still runs.
      spawnLines(
        'stdbuf',
        ['-oL', 'mosquitto_sub', ...login(), '-V', 'mqttv311', '-c', '-q', '2', '-d', '-v', '-C', String(count), '-t', filters.towerDecisions('T1'), '-t', filters.towerCommands('T1'), '-t', '#'],
        onLine,
      );
    const lines: string[] = [];
    const first = sub(1, (line) => {
      lines.push(line);
      // -d prints the SUBACK's granted QoS, in the order of the filters.
      if (line.startsWith('Subscribed')) void h.broker.downlink.publish(topics.decisions(A, 'T1'), Buffer.from('{"decision":1}'));
    });
    expect(await first).toBe(0);
    expect(lines).toContain('Subscribed (mid: 1): 1, 1, 128');
    expect(lines).toContain(`${topics.decisions(A, 'T1')} {"decision":1}`);

    // Away (its session kept): a command is queued for it, and delivered when it comes back.
    await h.broker.downlink.publish(topics.commands(A, 'T1'), Buffer.from('{"command":1}'));
    const again: string[] = [];
    expect(await sub(1, (line) => again.push(line))).toBe(0);
    expect(again).toContain(`${topics.commands(A, 'T1')} {"command":1}`);
  });
});

/**
 * A paho tower: CONNECT (clean_session False), one SUBSCRIBE of its filters at QoS 2 and '#',
 * prints `suback <granted>`, waits for one decision (`message <topic> <payload>`), then publishes
 * usage at QoS 0, 1 and 2 with retain and prints `published <qos> <acknowledged>`.
 */
const PAHO_TOWER = `
import json, sys, threading
import paho.mqtt.client as mqtt
port, password, transport, version, usage = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
c = mqtt.Client(client_id='tower-T1', clean_session=False, transport=transport,
                protocol=mqtt.MQTTv31 if version == '31' else mqtt.MQTTv311)
c.username_pw_set('T1', password)
connected, got = threading.Event(), threading.Event()
c.on_connect = lambda cl, u, flags, rc: (print('connack', rc, flush=True), connected.set())
c.on_subscribe = lambda cl, u, mid, granted: print('suback', ','.join(str(g) for g in granted), flush=True)
c.on_message = lambda cl, u, m: (print('message', m.topic, m.payload.decode(), flush=True), got.set())
c.connect('127.0.0.1', port, 30)
c.loop_start()
if not connected.wait(10): sys.exit('no CONNACK')
c.subscribe([('tenants/+/towers/T1/decisions', 2), ('tenants/+/towers/T1/policy/#', 2), ('directory/#', 2), ('#', 2)])
if not got.wait(10): sys.exit('no decision')
for q in (0, 1, 2):
    info = c.publish(usage, json.dumps({'qos': q}), qos=q, retain=True)
    info.wait_for_publish(10)
    print('published', q, info.is_published(), flush=True)
c.disconnect()
c.loop_stop()
`;

describe.skipIf(!PAHO_PYTHON && !REQUIRED)('Eclipse paho (python) with a tower credential', () => {
  it.each([
    { transport: 'tcp', version: '311' },
    { transport: 'websockets', version: '311' },
    { transport: 'tcp', version: '31' },
  ])('$transport, MQTT $version: QoS 0/1/2 retained uplinks reach ingest once and are not retained; SUBACK and a decision', async ({ transport, version }) => {
    expect(PAHO_PYTHON, 'paho is required under CI=true (apt-get install -y python3-paho-mqtt)').not.toBeNull();
    const port = transport === 'websockets' ? h.wsPort : h.mqttPort;
    const lines: string[] = [];
    const code = await spawnLines(PAHO_PYTHON!, ['-c', PAHO_TOWER, String(port), t1.password, transport, version, USAGE], (line) => {
      lines.push(line);
      if (line.startsWith('suback')) void h.broker.downlink.publish(topics.decisions(A, 'T1'), Buffer.from('{"decision":1}'));
    });
    expect({ code, lines }).toEqual({
      code: 0,
      lines: [
        'connack 0',
        // QoS 2 asked for everywhere: the decisions at 1, bundles and directory at 0 (retained,
        // newest only), '#' refused.
        'suback 1,0,0,128',
        `message ${topics.decisions(A, 'T1')} {"decision":1}`,
        'published 0 True',
        'published 1 True',
        'published 2 True',
      ],
    });
    expect(h.sink.messages.map((m) => [m.topic, m.publish_qos, m.payload.toString()])).toEqual([
      [USAGE, 0, '{"qos": 0}'],
      [USAGE, 1, '{"qos": 1}'],
      [USAGE, 2, '{"qos": 2}'],
    ]);
    await nothingRetained();
  });
});
