/**
 * A tower its carrier retires over REST (POST /carrier-feeds/towers) loses its live MQTT session
 * at once, not only its next CONNECT: the API announces the retirement on the bus and the broker
 * closes the session (a real control plane: real HTTP, real broker, a real MQTT client). Upserting
 * the tower again lets it connect.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, connectTower, type TestControlPlane } from '../test/support/control-plane.js';

let tcp: TestControlPlane;

beforeAll(async () => {
  tcp = await startTestControlPlane();
});
afterAll(async () => {
  await tcp.destroy();
});

async function pushTowers(key: string, records: unknown[]): Promise<{ results: Array<{ outcome: string }> }> {
  const res = await fetch(`${tcp.cp.httpUrl}/api/v1/carrier-feeds/towers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ records }),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { results: Array<{ outcome: string }> };
}

describe('carrier feed retirement over REST', () => {
  it("closes the retired tower's open MQTT session; upserting it again lets it connect", async () => {
    const { carrier } = await tcp.operator.post<{ carrier: { id: string } }>('/api/v1/carriers', { name: 'Retiring carrier' });
    const { key } = await tcp.operator.post<{ key: string }>(`/api/v1/carriers/${carrier.id}/credentials`, {});
    await pushTowers(key, [{ op: 'upsert', tower_id: 'rest-ret', name: 'Retired soon' }]);
    const { mqtt: { password } } = await tcp.operator.post<{ mqtt: { password: string } }>('/api/v1/towers/rest-ret/credentials', {});
    const tower = await connectTower(tcp.cp.mqttUrl, 'rest-ret', password);
    const gone = new Promise<void>((resolve) => tower.once('close', () => resolve()));

    expect((await pushTowers(key, [{ op: 'retire', tower_id: 'rest-ret' }])).results[0]?.outcome).toBe('retired');
    await gone;

    expect((await pushTowers(key, [{ op: 'upsert', tower_id: 'rest-ret', name: 'Back' }])).results[0]?.outcome).toBe('updated');
    const back = await connectTower(tcp.cp.mqttUrl, 'rest-ret', password);
    expect(back.connected).toBe(true);
    await back.endAsync();
  });
});
