/**
 * Carrier principals over REST: an operator registers carriers and issues their credentials; a
 * carrier pushes tower and device metadata in bulk, applied record by record (a malformed or
 * forbidden record is refused alone, the rest applied), idempotently; the metadata shows on the
 * tenant's /devices and the operator's /devices/discovered; and a carrier credential reaches
 * nothing but its own feed routes: every other route of the app answers 403 (walked from the
 * route registry, so routes added later are covered), and it can never write another carrier's towers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLACEHOLDER_ID, fillPath, hasBodyMethod, listRoutes, send } from './test-routes.js';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let owner: Session;
let carrierA: { id: string; session: Session; credentialId: string };
let carrierB: { id: string; session: Session };

async function createCarrier(name: string): Promise<{ id: string; session: Session; credentialId: string }> {
  const { carrier } = await post<{ carrier: { id: string } }>(h.app, operator, '/api/v1/carriers', { name });
  const issued = await post<{ key: string; credential: { id: string }; mqtt: { username: string; client_id: string } }>(
    h.app,
    operator,
    `/api/v1/carriers/${carrier.id}/credentials`,
    {},
  );
  expect(issued.key).toMatch(/^epc_/);
  expect(issued.mqtt).toEqual({ username: `carrier:${carrier.id}`, client_id: `carrier-${carrier.id}` });
  return { id: carrier.id, credentialId: issued.credential.id, session: { access: issued.key, refresh: '', headers: { authorization: `Bearer ${issued.key}` } } };
}

function push(session: Session, kind: 'towers' | 'devices', records: unknown[]) {
  return send(h, session, { method: 'POST', url: `/api/v1/carrier-feeds/${kind}`, payload: { records } });
}

beforeAll(async () => {
  h = await startHarness();
  operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner } = await createTenant(h.app, operator, 'Feedco'));
  carrierA = await createCarrier('Carrier A');
  const b = await createCarrier('Carrier B');
  carrierB = { id: b.id, session: b.session };
});
afterAll(async () => {
  await h.close();
});

describe('carrier tower feed over REST', () => {
  it('creates towers and links, refuses a malformed record alone, and changes nothing the second time', async () => {
    const records = [
      { op: 'upsert', tower_id: 'twr-a1', name: 'A one', lat: 48.85, lon: 2.35, coverage: { radius_m: 1500 }, carriers: [carrierA.id, carrierB.id] },
      { op: 'upsert', tower_id: 'twr-a2', name: 'A two', coverage: { polygon: [[2.3, 48.8], [2.4, 48.8], [2.4, 48.9]] } },
      { op: 'upsert', tower_id: 'bad/id', name: 'x' },
      { op: 'upsert', tower_id: 'twr-a3', name: 'half', lat: 10 },
      { op: 'explode', tower_id: 'twr-a4' },
    ];
    const first = await push(carrierA.session, 'towers', records);
    expect(first.statusCode, first.body).toBe(200);
    const body = json<{ counts: Record<string, number>; results: Array<{ index: number; id: string | null; outcome: string; reason?: string }> }>(first);
    expect(body.counts).toEqual({ created: 2, updated: 0, unchanged: 0, retired: 0, refused: 3 });
    expect(body.results.map((r) => r.outcome)).toEqual(['created', 'created', 'refused', 'refused', 'refused']);
    expect(body.results[2]?.reason).toMatch(/^tower_id: /);
    expect(body.results[3]?.reason).toMatch(/lat: give both lat and lon/);
    expect(await h.store.towers.get('twr-a3')).toBeNull();

    const tower = json<{ tower: Record<string, unknown> }>(await send(h, operator, { method: 'GET', url: '/api/v1/towers/twr-a1' })).tower;
    expect(tower).toMatchObject({ name: 'A one', lat: 48.85, radius_m: 1500, managed_by: carrierA.id, retired_at: null });
    const links = json<{ carriers: Array<{ id: string }> }>(await send(h, operator, { method: 'GET', url: '/api/v1/towers/twr-a1/carriers' }));
    expect(links.carriers.map((c) => c.id).sort()).toEqual([carrierA.id, carrierB.id].sort());
    const coverage = json<{ polygon: unknown }>(await send(h, operator, { method: 'GET', url: '/api/v1/towers/twr-a2/coverage' }));
    expect(coverage.polygon).toEqual([[2.3, 48.8], [2.4, 48.8], [2.4, 48.9]]);

    const before = await h.store.towers.list();
    const second = json<{ counts: Record<string, number> }>(await push(carrierA.session, 'towers', records));
    expect(second.counts).toEqual({ created: 0, updated: 0, unchanged: 2, retired: 0, refused: 3 });
    expect(await h.store.towers.list()).toEqual(before);
  });

  it('refuses a tower name with a bidi override or an invisible character, as the API does for every name', async () => {
    const res = await push(carrierA.session, 'towers', [
      { op: 'upsert', tower_id: 'twr-name-1', name: '\u202Egnp.exe' },
      { op: 'upsert', tower_id: 'twr-name-2', name: 'North\u200B' },
      { op: 'upsert', tower_id: 'twr-name-3', name: 'North' },
    ]);
    expect(res.statusCode, res.body).toBe(200);
    const body = json<{ results: Array<{ outcome: string; reason?: string }> }>(res);
    expect(body.results.map((r) => r.outcome)).toEqual(['refused', 'refused', 'created']);
    expect(body.results[0]?.reason).toMatch(/^name: .*U\+202E/);
    expect(body.results[1]?.reason).toMatch(/^name: .*U\+200B/);
    expect(await h.store.towers.get('twr-name-1')).toBeNull();
  });

  it("never writes another carrier's tower, nor an operator's", async () => {
    await post(h.app, operator, '/api/v1/towers', { id: 'twr-op', name: 'Operator tower' });
    const before = [await h.store.towers.get('twr-a1'), await h.store.towers.get('twr-op')];
    const res = json<{ results: Array<{ outcome: string; reason?: string }> }>(
      await push(carrierB.session, 'towers', [
        { op: 'upsert', tower_id: 'twr-a1', name: 'hijacked', carriers: [carrierB.id] },
        { op: 'retire', tower_id: 'twr-a1' },
        { op: 'upsert', tower_id: 'twr-op', name: 'hijacked' },
        { op: 'upsert', tower_id: 'twr-b1', name: 'B one' },
      ]),
    );
    expect(res.results.map((r) => r.outcome)).toEqual(['refused', 'refused', 'refused', 'created']);
    expect([await h.store.towers.get('twr-a1'), await h.store.towers.get('twr-op')]).toEqual(before);
    expect((await h.store.towerCarriers.carriersOfTower('twr-a1')).map((c) => c.id).sort()).toEqual([carrierA.id, carrierB.id].sort());
  });

  it('retires a tower: it may no longer connect, and upserting it again brings it back', async () => {
    const res = json<{ results: Array<{ outcome: string }> }>(await push(carrierA.session, 'towers', [{ op: 'retire', tower_id: 'twr-a2' }]));
    expect(res.results[0]?.outcome).toBe('retired');
    expect((await h.store.towers.get('twr-a2'))?.retired_at).toBe(h.clock.now);
  });
});

describe('carrier device feed over REST', () => {
  it('enriches registered and discovered devices, without telling the carrier which exist', async () => {
    await post(h.app, owner, '/api/v1/devices', { id: 'imei-111', name: 'phone' });
    await h.store.discovered.recordReports('twr-a1', '01ARZ3NDEKTSV4RRFFQ69G5FAA', [{ device_id: 'imei-222', first_seen: 1, last_seen: 2, count: 1 }], 3);
    const res = await push(carrierA.session, 'devices', [
      { device_id: 'imei-111', os: 'android', os_version: '14', model: 'Pixel 8', device_type: 'phone' },
      { device_id: 'imei-222', os: 'ios', device_type: 'tablet' },
      { device_id: 'imei-333', os: 'kaios' },
      { device_id: 'imei-444' },
      { device_id: 'imei-555', device_type: 'toaster' },
    ]);
    const body = json<{ results: Array<{ outcome: string; reason?: string }> }>(res);
    // A device no tenant holds is 'created' like any other: the answer reveals nothing.
    expect(body.results.map((r) => r.outcome)).toEqual(['created', 'created', 'created', 'refused', 'refused']);
    const devices = json<{ devices: Array<{ id: string; metadata: unknown }> }>(await send(h, owner, { method: 'GET', url: '/api/v1/devices' }));
    expect(devices.devices.find((d) => d.id === 'imei-111')?.metadata).toMatchObject({ carrier_id: carrierA.id, os: 'android', os_version: '14', model: 'Pixel 8', device_type: 'phone' });
    const one = json<{ device: { metadata: unknown } }>(await send(h, owner, { method: 'GET', url: '/api/v1/devices/imei-111' }));
    expect(one.device.metadata).toMatchObject({ model: 'Pixel 8' });
    const discovered = json<{ devices: Array<{ device_id: string; metadata: unknown }> }>(await send(h, operator, { method: 'GET', url: '/api/v1/devices/discovered' }));
    expect(discovered.devices.find((d) => d.device_id === 'imei-222')?.metadata).toMatchObject({ os: 'ios', device_type: 'tablet' });
    const again = json<{ counts: Record<string, number> }>(await push(carrierA.session, 'devices', [{ device_id: 'imei-111', os: 'android' }]));
    expect(again.counts.unchanged).toBe(1);
  });
});

describe('what a carrier credential reaches', () => {
  it('only its own feed routes: every other route of the app is 403, so no tenant data can be read', async () => {
    const routes = listRoutes(h.app).filter((r) => r.permission !== null && !r.websocket);
    let forbidden = 0;
    for (const route of routes) {
      const res = await send(h, carrierA.session, {
        method: route.method,
        url: fillPath(route.url, (p) => (p === '*' ? 'x' : PLACEHOLDER_ID)),
        ...(hasBodyMethod(route.method) && { payload: {} }),
      });
      if (route.permission === 'carrier-feeds:write') {
        expect(res.statusCode, `${route.key} ${res.body}`).toBe(400);
      } else {
        expect(res.statusCode, `${route.key} ${res.body}`).toBe(403);
        forbidden++;
      }
    }
    expect(forbidden).toBeGreaterThan(80);
  });

  it('and console users, API keys and operators cannot push feeds', async () => {
    for (const session of [operator, owner]) {
      expect((await push(session, 'towers', [{ op: 'retire', tower_id: 'twr-a1' }])).statusCode).toBe(403);
    }
  });

  it('stops at once when revoked', async () => {
    const del = await send(h, operator, { method: 'DELETE', url: `/api/v1/carriers/${carrierA.id}/credentials/${carrierA.credentialId}` });
    expect(del.statusCode).toBe(204);
    const res = await push(carrierA.session, 'towers', [{ op: 'retire', tower_id: 'twr-a1' }]);
    expect(res.statusCode).toBe(401);
    const listed = json<{ credentials: Array<{ id: string; revoked_at: number | null }> }>(
      await send(h, operator, { method: 'GET', url: `/api/v1/carriers/${carrierA.id}/credentials` }),
    );
    expect(listed.credentials).toEqual([expect.objectContaining({ id: carrierA.credentialId, revoked_at: h.clock.now })]);
    expect(JSON.stringify(listed)).not.toMatch(/secret/);
  });
});
