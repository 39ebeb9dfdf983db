/**
 * Audit: what an unauthenticated client chooses in its CONNECT (client id, username) and what the
 * broker keeps of it. The client id is capped at 128 bytes at every protocol level (aedes applied
 * its cap to MQTT 3.1 only, so an MQTT 3.1.1 client could log in under an id of ~16 KiB); and the
 * refusal log, which logs a client's refusals once per interval, follows at most 1,000 clients
 * per interval with their strings cut, where a client picking a fresh id for each refused CONNECT
 * made the broker hold and log every one of them (3,000 refused logins: 47 MB held until the
 * interval ended, and one log line each).
 */
import { spawnSync, execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../shared/logger.js';
import { mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { MAX_CLIENT_ID_BYTES } from './frame-inspector.js';
import { connectPacket } from './mqtt-bytes.js';
import { REFUSAL_LOG_MAX_ENTRIES, REFUSAL_LOG_MAX_FIELD_CHARS } from './refusal-log.js';
import { memoryGrowth, rawClient, startHarness, TEST_SERVICE_SECRET, type Harness } from './test-support.js';

const run = promisify(execFile);
const REQUIRED = process.env['CI'] === 'true';
const MOSQUITTO = spawnSync('sh', ['-c', 'command -v mosquitto_pub'], { encoding: 'utf8' }).stdout.trim() !== '';
if (!MOSQUITTO && !REQUIRED) console.warn('broker/audit-refused-logins.test.ts: mosquitto_pub case skipped: not installed (apt-get install -y mosquitto-clients)');

const CONNACK_ACCEPTED = [0x20, 0x02, 0x00, 0x00];
const CONNACK_IDENTIFIER_REJECTED = [0x20, 0x02, 0x00, 0x02];

/** What a log line said, without the long strings (the test must not hold them itself). */
interface Line {
  msg: string;
  reason: unknown;
  count: unknown;
  clientIdChars: number;
  usernameChars: number;
}

let h: Harness;
let lines: Line[];
beforeEach(async () => {
  lines = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const raw of chunk.toString().split('\n')) {
        if (!raw) continue;
        const l = JSON.parse(raw) as Record<string, unknown>;
        const chars = (v: unknown) => (typeof v === 'string' ? v.length : 0);
        lines.push({ msg: String(l['msg']), reason: l['reason'], count: l['count'], clientIdChars: chars(l['client_id']), usernameChars: chars(l['username']) });
      }
      cb();
    },
  });
  // One refusal-log interval spans each test: on a loaded machine 3,000 refused CONNECTs took
  // longer than the default 10 s, and a new interval rightly follows 1,000 more clients.
  h = await startHarness({ logger: createLogger('info', sink), refusalLogIntervalMs: 3_600_000 });
});
afterEach(async () => h.close());

/** A service login (valid credentials) under `clientId`, at MQTT `level`: the CONNACK bytes. */
async function serviceConnack(clientId: string, level = 4): Promise<number[]> {
  const c = await rawClient(h.mqttPort);
  c.write(connectPacket({ level, protocol: level === 3 ? 'MQIsdp' : 'MQTT', clientId, username: mqttIdentity.serviceUsername('worker'), password: TEST_SERVICE_SECRET }));
  const got = [...(await c.bytes(4))].slice(0, 4);
  c.destroy();
  return got;
}

describe('client ids', () => {
  it(`longer than ${MAX_CLIENT_ID_BYTES} bytes are refused with CONNACK 0x02 at MQTT 3.1.1 as at 3.1, and counted; ${MAX_CLIENT_ID_BYTES} bytes are served`, async () => {
    const long = `svc-${'x'.repeat(MAX_CLIENT_ID_BYTES - 3)}`;
    expect(await serviceConnack(long, 4)).toEqual(CONNACK_IDENTIFIER_REJECTED);
    expect(await serviceConnack(`svc-${'x'.repeat(16_000)}`, 4)).toEqual(CONNACK_IDENTIFIER_REJECTED);
    expect(await serviceConnack(long, 3)).toEqual(CONNACK_IDENTIFIER_REJECTED);
    expect(h.counters.get('mqtt_rejected_total', { reason: 'client_id_too_long' })).toBe(3);
    expect(h.broker.connectionCount).toBe(0);
    expect(await serviceConnack(`svc-${'x'.repeat(MAX_CLIENT_ID_BYTES - 4)}`, 4)).toEqual(CONNACK_ACCEPTED);
  });

  it.skipIf(!MOSQUITTO && !REQUIRED)('mosquitto_pub with a 200-character id is told why: identifier rejected', async () => {
    expect(MOSQUITTO, 'mosquitto_pub is required under CI=true (apt-get install -y mosquitto-clients)').toBe(true);
    const login = ['-h', '127.0.0.1', '-p', String(h.mqttPort), '-u', mqttIdentity.serviceUsername('worker'), '-P', TEST_SERVICE_SECRET, '-V', 'mqttv311'];
    const refused = await run('mosquitto_pub', [...login, '-i', 'w'.repeat(200), '-q', '1', '-t', topics.status('T1'), '-m', '{}']).then(
      () => null,
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(refused?.code).not.toBe(0);
    expect(refused?.stderr).toMatch(/identifier rejected/i);
    await run('mosquitto_pub', [...login, '-i', 'w'.repeat(100), '-q', '1', '-t', topics.status('T1'), '-m', '{}']);
  });
});

describe('refused logins under a fresh client id each', () => {
  it(`hold at most ${REFUSAL_LOG_MAX_ENTRIES} clients' entries, cut, and log no more lines than that; every refusal is still counted`, async () => {
    const N = 3_000;
    const username = 'u'.repeat(15_000); // not an identity of ours: refused as unknown_username
    const { heldMb } = await memoryGrowth(async () => {
      const batch = 100;
      for (let i = 0; i < N; i += batch) {
        await Promise.all(
          Array.from({ length: batch }, async (_, j) => {
            const c = await rawClient(h.mqttPort);
            c.write(connectPacket({ clientId: `attacker-${i + j}-${'c'.repeat(100)}`, username: `${username}${i + j}`, password: 'x.y' }));
            await c.closed;
          }),
        );
      }
    });
    expect(h.counters.get('mqtt_auth_failures_total', { reason: 'unknown_username' })).toBe(N);
    // Before: ~15 KB per refusal held until the interval ended (47 MB for 3,000).
    expect(heldMb).toBeLessThan(8);
    const refusals = () => lines.filter((l) => l.reason === 'unknown_username');
    expect(refusals().length).toBeLessThanOrEqual(REFUSAL_LOG_MAX_ENTRIES + 1);
    for (const l of refusals()) {
      expect(l.usernameChars).toBeLessThanOrEqual(REFUSAL_LOG_MAX_FIELD_CHARS + 20);
      expect(l.clientIdChars).toBeLessThanOrEqual(MAX_CLIENT_ID_BYTES);
    }

    // A tower still gets in; the end of the interval sums up the rest.
    const t1 = await h.createTower('T1');
    const tower = await h.connectTower(t1);
    await tower.publishAsync(topics.status('T1'), Buffer.from('{"still":"serving"}'), { qos: 1 });
    await h.close();
    h = await startHarness(); // for afterEach
    const counted = refusals().reduce((sum, l) => sum + (typeof l.count === 'number' ? l.count : 1), 0);
    expect(counted).toBe(N);
  });
});
