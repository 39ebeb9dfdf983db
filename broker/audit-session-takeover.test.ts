/**
 * Audit: nobody but the tower itself can take over a tower's MQTT session. A CONNECT under the
 * tower's client id `tower-T1` [MQTT-3.1.4-2] with a wrong secret, another tower's credential, a
 * service or console login, a carrier login or none at all is refused before aedes registers it:
 * the live connection is not closed, and its persistent session (subscriptions and queued
 * messages [MQTT-3.1.2-4]) is neither taken nor cleared by a refused clean or persistent CONNECT.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { filters, mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { connectPacket, type ConnectFields } from './mqtt-bytes.js';
import { inbox, rawClient, startHarness, subscribeResult, type Harness } from './test-support.js';

let h: Harness;
afterEach(async () => h.close());

const CLEAN = 0x02;

describe("another principal using a tower's client id", () => {
  it('is refused, and the tower keeps its live connection and its persistent session', async () => {
    h = await startHarness({ config: { allow_anonymous: true } });
    const t1 = await h.createTower('T1');
    const t2 = await h.createTower('T2');
    const clientId = mqttIdentity.towerClientId('T1');
    const wrongSecret = t1.password.slice(0, -1) + (t1.password.endsWith('A') ? 'B' : 'A');
    const attempts: Array<{ login: ConnectFields; code: number }> = [
      { login: { username: 'T1', password: wrongSecret }, code: 4 },
      { login: { username: 'T2', password: t2.password }, code: 2 },
      { login: { username: 'T1', password: t2.password }, code: 4 },
      { login: { username: 'service:worker', password: 'not-the-service-secret' }, code: 4 },
      { login: { username: 'console', password: await h.consoleToken('tenantA', 'u-1') }, code: 2 },
      { login: { username: 'carrier:c1', password: 'epc_nope.nope' }, code: 4 },
      { login: {}, code: 2 }, // anonymous, allowed in development: still not under a reserved id
    ];
    const attack = async (flags: number) => {
      for (const { login, code } of attempts) {
        const hasUser = login.username !== undefined ? 0x80 : 0;
        const hasPassword = login.password !== undefined ? 0x40 : 0;
        const c = await rawClient(h.mqttPort);
        c.write(connectPacket({ clientId, ...login, flags: flags | hasUser | hasPassword }));
        expect({ login: login.username, answer: [...(await c.closed)] }).toEqual({ login: login.username, answer: [0x20, 0x02, 0x00, code] });
      }
    };

    const tower = await h.connectTower(t1, { clean: false });
    const box = inbox(tower);
    let closes = 0;
    tower.on('close', () => closes++);
    expect(await subscribeResult(tower, filters.towerCommands('T1'))).toBe(1);
    await attack(CLEAN);
    await attack(0);
    await h.broker.downlink.publish(topics.commands('tenantA', 'T1'), Buffer.from('{"live":true}'));
    await box.next(() => true);
    expect(closes).toBe(0);
    expect(h.broker.connectionCount).toBe(1);

    // Offline: what is queued for its session waits for the tower, whoever tries the id meanwhile.
    await tower.endAsync();
    await h.broker.downlink.publish(topics.commands('tenantA', 'T1'), Buffer.from('{"queued":true}'));
    await attack(CLEAN);
    await attack(0);
    const back = h.connectNow({ clientId, username: 'T1', password: t1.password, clean: false });
    const again = inbox(back);
    const m = await again.next((t) => t === topics.commands('tenantA', 'T1'));
    expect(m.payload.toString()).toBe('{"queued":true}');
  });
});
