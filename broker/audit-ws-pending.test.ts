/**
 * Audit: the pending-connection cap (`--mqtt-max-pending-connections`, README "Protocol and
 * caps") bounds every unauthenticated connection, including a WebSocket one before its HTTP
 * upgrade. Those sockets were not counted at all (the cap started at the upgrade), so a client
 * could open any number on the WebSocket port and leave each there for Node's default header
 * timeout (60 s), where the same sockets on the MQTT port are refused beyond the cap at accept
 * and closed after the CONNECT timeout.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { filters, topics } from '../shared/mqtt/topics.js';
import { inbox, rawClient, startHarness, subscribeResult, type Harness, type RawClient } from './test-support.js';

let h: Harness;
afterEach(async () => h.close());

/** A TCP connection to the WebSocket port that starts an upgrade request and never finishes it. */
async function stalledUpgrade(): Promise<RawClient> {
  const c = await rawClient(h.wsPort);
  c.write(Buffer.from('GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n'));
  return c;
}

describe('WebSocket connections before their upgrade', () => {
  it('count against the pending cap: beyond it they are closed as accepted, and a full upgrade still gets through', async () => {
    h = await startHarness({ config: { mqtt_max_pending_connections: 5 } });
    const stalled = [];
    for (let i = 0; i < 4; i++) stalled.push(await stalledUpgrade());
    // One place left: a dashboard upgrading and connecting takes it, its upgrade counted once.
    const dash = await h.connectConsole('tenantA', { ws: true });
    const box = inbox(dash);
    expect(await subscribeResult(dash, 'tenants/tenantA/#')).toBe(0);
    stalled.push(await stalledUpgrade());
    expect(h.broker.pendingConnectionCount).toBe(5);

    const extra = await Promise.all(Array.from({ length: 3 }, () => stalledUpgrade()));
    await Promise.all(extra.map((c) => c.closed));
    expect(h.counters.get('mqtt_rejected_total', { reason: 'too_many_pending' })).toBe(3);
    // The cap is one for both ports.
    const tcp = await rawClient(h.mqttPort);
    await tcp.closed;
    expect(h.counters.get('mqtt_rejected_total', { reason: 'too_many_pending' })).toBe(4);
    expect(h.broker.pendingConnectionCount).toBe(5);

    // The authenticated dashboard is served meanwhile.
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T1'), Buffer.from('{"served":true}'));
    await box.next((t) => t === topics.decisions('tenantA', 'T1'));

    for (const c of stalled) c.destroy();
    await Promise.all(stalled.map((c) => c.closed));
    // The broker sees those closes a moment after the client does; no event tells the test.
    await vi.waitFor(() => expect(h.broker.pendingConnectionCount).toBe(0));
    const tower = await h.connectTower(await h.createTower('T1'), { ws: true });
    expect(await subscribeResult(tower, filters.towerDecisions('T1'))).toBe(1);
  });

  it('are closed by the broker when the upgrade does not complete within the CONNECT timeout (10 s)', async () => {
    h = await startHarness();
    const stalled = await stalledUpgrade();
    expect(h.broker.pendingConnectionCount).toBe(1);
    // Node's default would have held it 60 s, past this test's timeout.
    expect((await stalled.closed).toString('latin1')).toMatch(/^HTTP\/1\.1 408 /);
    await vi.waitFor(() => expect(h.broker.pendingConnectionCount).toBe(0));
  });
});
