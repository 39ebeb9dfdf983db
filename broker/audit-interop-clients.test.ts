/**
 * Audit: what standard MQTT clients (mosquitto-clients, Eclipse paho, mqtt.js) are told in the
 * edge cases they produce on their own, against a real broker with a tower's credentials: a
 * SUBSCRIBE naming a filter twice, a PUBLISH the ACL refuses at each QoS, and MQTT 5 clients,
 * which this MQTT 3.1.1 broker refuses. (What the other
 * third-party suites cover: audit-third-party-clients.test.ts, conformance.test.ts.)
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { connectAsync } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../shared/logger.js';
import { filters, mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { LogCapture } from '../test/support/log-lines.js';
import { MOSQUITTO, PAHO_PYTHON, TOOLS_REQUIRED, spawnLines, warnMissingTools } from './fixtures/third-party-clients.js';
import { inbox, startHarness, subscribeResult, type Harness, type TowerLogin } from './test-support.js';

warnMissingTools('broker/audit-interop-clients.test.ts');

const run = promisify(execFile);

const A = 'tenantA';

let h: Harness;
let t1: TowerLogin;
let logs: LogCapture;
beforeEach(async () => {
  logs = new LogCapture();
  h = await startHarness({ logger: createLogger('info', logs) });
  t1 = await h.createTower('T1');
});
afterEach(async () => h.close());

const mosquittoLogin = () => ['-h', '127.0.0.1', '-p', String(h.mqttPort), '-i', mqttIdentity.towerClientId('T1'), '-u', 'T1', '-P', t1.password, '-V', 'mqttv311'];

// [MQTT-3.8.4-5] "The SUBACK Packet sent by the Server to the Client MUST contain a return code
// for each Topic Filter/QoS pair." [MQTT-3.9.3-1] "The order of return codes in the SUBACK
// Packet MUST match the order of Topic Filters in the SUBSCRIBE Packet."
describe('a SUBSCRIBE naming a filter twice', () => {
  it('mqtt.js: the SUBACK has a return code for every filter, and the subscription holds', async () => {
    const c = await h.connectTower(t1);
    const granted = await c.subscribeAsync([filters.towerCommands('T1'), filters.towerCommands('T1'), filters.directory], { qos: 1 });
    expect(granted.map((g) => [g.topic, g.qos])).toEqual([
      [filters.towerCommands('T1'), 1],
      [filters.towerCommands('T1'), 1],
      [filters.directory, 0],
    ]);
    const got = new Promise<string>((resolve) => c.once('message', (_t, payload) => resolve(payload.toString())));
    await h.broker.downlink.publish(topics.commands(A, 'T1'), Buffer.from('{"command":1}'));
    expect(await got).toBe('{"command":1}');
  });

  it.skipIf(!MOSQUITTO && !TOOLS_REQUIRED)('mosquitto_sub -t a -t a -t # -t directory/#: one code per filter in order, each message once', async () => {
    expect(MOSQUITTO, 'mosquitto clients are required under CI=true (apt-get install -y mosquitto-clients)').toBe(true);
    const lines: string[] = [];
    const code = await spawnLines(
      'stdbuf',
      [
        ...['-oL', 'mosquitto_sub', ...mosquittoLogin(), '-c', '-q', '1', '-d', '-v', '-C', '2'],
        ...['-t', filters.towerCommands('T1'), '-t', filters.towerCommands('T1'), '-t', '#', '-t', filters.directory],
      ],
      (line) => {
        lines.push(line);
        if (!line.startsWith('Subscribed')) return;
        // Two commands: a filter subscribed twice would bring the first one twice.
        void h.broker.downlink
          .publish(topics.commands(A, 'T1'), Buffer.from('{"command":1}'))
          .then(() => h.broker.downlink.publish(topics.commands(A, 'T1'), Buffer.from('{"command":2}')));
      },
    );
    expect(code).toBe(0);
    expect(lines).toContain('Subscribed (mid: 1): 1, 1, 128, 0');
    expect(lines.filter((l) => l.startsWith(topics.commands(A, 'T1')))).toEqual([`${topics.commands(A, 'T1')} {"command":1}`, `${topics.commands(A, 'T1')} {"command":2}`]);
  });
});

/**
 * A paho tower (MQTT 3.1.1): CONNECT, one PUBLISH at QoS argv[4] to topic argv[3], then prints
 * `acknowledged` if the broker acknowledged it and `disconnected <rc>` when the connection ends
 * (rc 0 only for a DISCONNECT of its own, which it never sends), or `still connected` after 10 s.
 */
const PAHO_PUBLISH = `
import sys, threading
import paho.mqtt.client as mqtt
port, password, topic, qos = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
c = mqtt.Client(client_id='tower-T1', clean_session=True, protocol=mqtt.MQTTv311)
c.username_pw_set('T1', password)
connected, gone = threading.Event(), threading.Event()
c.on_connect = lambda cl, u, flags, rc: (print('connack', rc, flush=True), connected.set())
c.on_publish = lambda cl, u, mid: qos > 0 and print('acknowledged', flush=True)
c.on_disconnect = lambda cl, u, rc: (print('disconnected', 'by itself' if rc == 0 else 'by the broker', flush=True), gone.set())
c.connect('127.0.0.1', port, 30)
c.loop_start()
if not connected.wait(10): sys.exit('no CONNACK')
c.publish(topic, '{"from":"paho"}', qos=qos)
if not gone.wait(10): print('still connected', flush=True)
c.loop_stop()
`;

// [MQTT-3.3.5-2] "If a Server implementation does not authorize a PUBLISH to be performed by a
// Client; it has no way of informing that Client. It MUST either make a positive acknowledgement,
// according to the normal QoS rules, or close the Network Connection."
describe.skipIf(!PAHO_PYTHON && !TOOLS_REQUIRED)('a PUBLISH the ACL refuses (paho)', () => {
  it.each([0, 1, 2])('at QoS %i: the connection closes unacknowledged, nothing is delivered or ingested, and a warning says why', async (qos) => {
    expect(PAHO_PYTHON, 'paho is required under CI=true (apt-get install -y python3-paho-mqtt)').not.toBeNull();
    const svc = await h.connectService();
    const seen = inbox(svc);
    expect(await subscribeResult(svc, 'tenants/#')).toBe(1);
    const foreign = topics.commands(A, 'T2'); // another tower's downlink
    const lines: string[] = [];
    const code = await spawnLines(PAHO_PYTHON!, ['-c', PAHO_PUBLISH, String(h.mqttPort), t1.password, foreign, String(qos)], (l) => lines.push(l));
    expect({ code, lines }).toEqual({ code: 0, lines: ['connack 0', 'disconnected by the broker'] });
    expect(h.sink.messages).toEqual([]);
    await h.broker.downlink.publish(topics.commands(A, 'T1'), Buffer.from('{"marker":true}'));
    await seen.next((t) => t === topics.commands(A, 'T1'));
    expect(seen.messages.map((m) => m.topic)).toEqual([topics.commands(A, 'T1')]);
    const warned = logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((o) => o['reason'] === 'acl_denied');
    expect(warned).toMatchObject([
      { level: 40, event: 'mqtt_publish_refused', client_id: mqttIdentity.towerClientId('T1'), principal: 'tower', topic: foreign, acl: 'not_granted', msg: 'publish refused: topic not allowed by the ACL; connection closed' },
    ]);
  });
});

describe('a will the ACL refuses', () => {
  it('is not published, and a warning says why', async () => {
    const foreign = topics.commands(A, 'T2');
    const c = await h.connectTower(t1, { will: { topic: foreign, payload: Buffer.from('{"will":true}'), qos: 1, retain: false } });
    c.stream.destroy(); // lost without DISCONNECT: the broker publishes the will [MQTT-3.1.2-8]
    const warned = () => logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((o) => o['reason'] === 'acl_denied');
    await expect.poll(warned).toMatchObject([{ level: 40, event: 'mqtt_publish_refused', client_id: mqttIdentity.towerClientId('T1'), topic: foreign, msg: 'will not published: topic not allowed by the ACL' }]);
    expect(h.sink.messages).toEqual([]);
  });
});

/** Paho speaking MQTT 5 (argv[3]: tcp or websockets): prints the CONNACK's reason code as paho reads it. */
const PAHO_V5 = `
import sys, threading
import paho.mqtt.client as mqtt
port, client_id, transport = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = mqtt.Client(client_id=client_id, transport=transport, protocol=mqtt.MQTTv5)
c.username_pw_set('T1', 'not-checked-before-the-protocol-level')
answered = threading.Event()
c.on_connect = lambda cl, u, flags, rc, props=None: (print('connack', int(rc), flush=True), answered.set())
c.connect('127.0.0.1', port, 30)
c.loop_start()
if not answered.wait(10): print('no CONNACK', flush=True)
c.loop_stop()
`;

// [MQTT-3.1.2-2] "The Server MUST respond to the CONNECT Packet with a CONNACK return code 0x01
// (unacceptable protocol level) and then disconnect the Client if the Protocol Level is not
// supported by the Server." MQTT 5 clients read that CONNACK as "unsupported protocol version".
describe('MQTT 5 clients', () => {
  const refusals = () => logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((o) => o['reason'] === 'protocol_level');

  it.skipIf(!MOSQUITTO && !TOOLS_REQUIRED)('mosquitto_pub -V mqttv5 is told the protocol version is unsupported; the log names the level and the client', async () => {
    expect(MOSQUITTO, 'mosquitto clients are required under CI=true (apt-get install -y mosquitto-clients)').toBe(true);
    const login = mosquittoLogin().filter((a) => a !== '-V' && a !== 'mqttv311');
    const refused = await run('mosquitto_pub', [...login, '-V', 'mqttv5', '-q', '1', '-t', topics.status('T1'), '-m', '{}']).then(
      () => null,
      (err: { stderr?: string }) => err.stderr ?? '',
    );
    expect(refused).toContain('Unsupported Protocol Version');
    expect(h.sink.messages).toEqual([]);
    expect(refusals()).toMatchObject([{ client_id: mqttIdentity.towerClientId('T1'), protocol: 'MQTT', protocol_level: 5, rule: '[MQTT-3.1.2-2]' }]);
  });

  it.skipIf(!PAHO_PYTHON && !TOOLS_REQUIRED)('paho MQTTv5 over TCP and WebSocket gets reason code 132 (unsupported protocol version)', async () => {
    expect(PAHO_PYTHON, 'paho is required under CI=true (apt-get install -y python3-paho-mqtt)').not.toBeNull();
    for (const [transport, port, clientId] of [['tcp', h.mqttPort, 'paho-v5-tcp'], ['websockets', h.wsPort, 'paho-v5-ws']] as const) {
      const lines: string[] = [];
      expect(await spawnLines(PAHO_PYTHON!, ['-c', PAHO_V5, String(port), clientId, transport], (l) => lines.push(l))).toBe(0);
      expect(lines).toEqual(['connack 132']);
    }
    expect(refusals()).toMatchObject([
      { client_id: 'paho-v5-tcp', protocol_level: 5 },
      { client_id: 'paho-v5-ws', protocol_level: 5 },
    ]);
    expect(h.broker.connectionCount).toBe(0);
  });

  it('mqtt.js with protocolVersion 5 over WebSocket is refused with "unacceptable protocol version"', async () => {
    const refused = await connectAsync(`ws://127.0.0.1:${h.wsPort}/mqtt`, { protocolVersion: 5, clientId: 'mqttjs-v5', reconnectPeriod: 0 }).then(
      async (c) => c.endAsync().then(() => null),
      (err: { code?: unknown }) => err.code,
    );
    expect(refused).toBe(1);
    expect(refusals()).toMatchObject([{ client_id: 'mqttjs-v5', protocol_level: 5 }]);
  });
});
