/**
 * Audit of SUBSCRIBE filters a hostile or sloppy client may send, over real sockets: filters
 * longer than the 1 KiB cap (README "Protocol and caps"), shared-subscription and root
 * wildcards that would widen a principal's ACL, and filters that are not valid MQTT. Each is
 * refused for that filter alone (SUBACK 0x80 [MQTT-3.9.3]) or closes the connection, and nothing
 * of another tenant or tower is ever delivered through it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filters, topics } from '../shared/mqtt/topics.js';
import { connectPacket, subscribePacket } from './mqtt-bytes.js';
import { inbox, rawClient, startHarness, subscribeResult, TEST_SERVICE_SECRET, type Harness, type TowerLogin } from './test-support.js';

const A = 'tenantA';
const B = 'tenantB';
const REFUSED = 128;

let h: Harness;
let t1: TowerLogin;
beforeAll(async () => {
  h = await startHarness();
  t1 = await h.createTower('T1');
  await h.createTower('T2');
});
afterAll(async () => h.close());

/** A filter under `prefix` of exactly `bytes` UTF-8 bytes. */
const filterOf = (prefix: string, bytes: number, unit = 'x') => {
  const unitBytes = Buffer.byteLength(unit);
  const room = bytes - Buffer.byteLength(prefix);
  return prefix + unit.repeat(Math.floor(room / unitBytes)) + 'x'.repeat(room % unitBytes);
};

describe('filters longer than 1 KiB', () => {
  it('are refused for a console user and a service, alone, and counted; 1 KiB is still granted', async () => {
    const before = h.counters.get('mqtt_rejected_total', { reason: 'filter_too_long' });
    const dash = await h.connectConsole(A);
    const svc = await h.connectService();
    expect(await subscribeResult(dash, filterOf(`tenants/${A}/`, 1024))).toBe(0);
    expect(await subscribeResult(dash, filterOf(`tenants/${A}/`, 1025))).toBe(REFUSED);
    // Counted in bytes, not characters: 600 'é' are 1,200 bytes.
    expect(await subscribeResult(dash, filterOf(`tenants/${A}/`, 1200, 'é'))).toBe(REFUSED);
    expect(await subscribeResult(dash, filterOf(`tenants/${A}/`, 16_000))).toBe(REFUSED);
    expect(await subscribeResult(svc, filterOf('tenants/', 1025))).toBe(REFUSED);
    expect(h.counters.get('mqtt_rejected_total', { reason: 'filter_too_long' }) - before).toBe(4);
    // Refusing a filter costs neither the connection nor the filters that are granted.
    expect(dash.connected && svc.connected).toBe(true);
    expect(await subscribeResult(dash, `tenants/${A}/#`)).toBe(0);
  });
});

describe('filters that would widen an ACL', () => {
  const cases: Array<{ who: 'console' | 'tower' | 'service'; filter: string }> = [
    { who: 'console', filter: `$share/g/tenants/${A}/#` },
    { who: 'console', filter: '$share/g/#' },
    { who: 'console', filter: '+/#' },
    { who: 'console', filter: '/#' },
    { who: 'console', filter: `tenants/+/#` },
    { who: 'console', filter: `tenants/${B}/#` },
    { who: 'tower', filter: `$share/g/${filters.towerDecisions('T1')}` },
    { who: 'tower', filter: `$share/g/${filters.directory}` },
    { who: 'tower', filter: 'tenants/+/towers/+/decisions' },
    { who: 'tower', filter: 'tenants/+/towers/T1/#' },
    { who: 'tower', filter: 'tenants/+/towers/T1/policy/+' },
    { who: 'tower', filter: `tenants/${A}/towers/T1/decisions` },
    { who: 'service', filter: '$share/g/tenants/#' },
    { who: 'service', filter: '$SYS/#' },
    { who: 'service', filter: '+/+/+/+/+' },
  ];
  it.each(cases)('$who: $filter → SUBACK 0x80', async ({ who, filter }) => {
    const client = who === 'console' ? await h.connectConsole(A) : who === 'tower' ? await h.connectTower(t1) : await h.connectService();
    expect(await subscribeResult(client, filter)).toBe(REFUSED);
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it("delivers nothing of tenant B or of tower T2 to a console user and a tower that tried them all", async () => {
    const dash = await h.connectConsole(A);
    const tower = await h.connectTower(t1);
    const dashBox = inbox(dash);
    const towerBox = inbox(tower);
    for (const { who, filter } of cases) if (who !== 'service') await subscribeResult(who === 'console' ? dash : tower, filter);
    expect(await subscribeResult(dash, `tenants/${A}/#`)).toBe(0);
    expect(await subscribeResult(tower, filters.towerDecisions('T1'))).toBe(1);
    await h.broker.downlink.publish(topics.decisions(B, 'T2'), Buffer.from('{"for":"B/T2"}'));
    await h.broker.downlink.publish(topics.commands(B, 'T2'), Buffer.from('{"for":"B/T2"}'));
    await h.broker.downlink.publish(topics.decisions(A, 'T2'), Buffer.from('{"for":"A/T2"}'));
    // A marker each must receive, published last: what came before it has been delivered.
    await h.broker.downlink.publish(topics.decisions(A, 'T1'), Buffer.from('{"marker":true}'));
    await dashBox.next((t) => t === topics.decisions(A, 'T1'));
    await towerBox.next((t) => t === topics.decisions(A, 'T1'));
    expect(dashBox.messages.map((m) => m.topic)).toEqual([topics.decisions(A, 'T2'), topics.decisions(A, 'T1')]);
    expect(towerBox.messages.map((m) => m.topic)).toEqual([topics.decisions(A, 'T1')]);
  });
});

describe('filters that are not valid MQTT', () => {
  // [MQTT-4.7.1-2] '#' must be last and alone in its level; [MQTT-4.7.1-3] '+' alone in its level.
  // mqtt.js will not send these, so raw bytes: the connection closes, with no SUBACK.
  it.each(['tenants/#/x', `tenants/${A}/a#`, `tenants/${A}/a+/b`, `tenants/${A}/#/#`])('%s closes the connection without a SUBACK', async (filter) => {
    const c = await rawClient(h.mqttPort);
    c.write(connectPacket({ clientId: '', username: 'service:audit', password: TEST_SERVICE_SECRET }));
    expect([...(await c.bytes(4))]).toEqual([0x20, 0x02, 0x00, 0x00]);
    c.write(subscribePacket(3, [[filter, 1], ['tenants/fine', 1]]));
    expect([...(await c.closed)]).toEqual([0x20, 0x02, 0x00, 0x00]);
  });
});
