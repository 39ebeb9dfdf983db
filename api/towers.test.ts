import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTowerPassword, sha256 } from '../shared/auth/secrets.js';
import type { BusEvents } from '../shared/bus.js';
import { OPERATOR_EMAIL, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;

beforeAll(async () => {
  h = await startHarness();
  operator = await login(h.app, OPERATOR_EMAIL);
});
afterAll(async () => {
  await h.close();
});

const op = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
  h.app.inject({ method, url, headers: operator.headers, ...(payload && { payload }) });

describe('towers', () => {
  it('operators create, read, update and delete towers', async () => {
    const { tower } = await post<{ tower: { id: string; state: string } }>(h.app, operator, '/api/v1/towers', {
      id: 'twr-crud',
      name: 'CRUD',
      lat: 48.8,
      lon: 2.3,
    });
    expect(tower).toMatchObject({ id: 'twr-crud', state: 'unknown' });
    expect((await op('POST', '/api/v1/towers', { id: 'twr-crud', name: 'dup' })).statusCode).toBe(409);
    expect((await op('POST', '/api/v1/towers', { name: 'x', lat: 123 })).statusCode).toBe(400);
    const patched = await op('PATCH', '/api/v1/towers/twr-crud', { name: 'Renamed', radius_m: 900 });
    expect(json(patched).tower).toMatchObject({ name: 'Renamed', radius_m: 900 });
    expect((await op('DELETE', '/api/v1/towers/twr-crud')).statusCode).toBe(204);
    expect((await op('GET', '/api/v1/towers/twr-crud')).statusCode).toBe(404);
    expect((await op('DELETE', '/api/v1/towers/twr-crud')).statusCode).toBe(404);
  });
});

describe('tower credentials', () => {
  it('issues a password whose secret is stored only as its sha256', async () => {
    await post(h.app, operator, '/api/v1/towers', { id: 'twr-cred', name: 'Cred' });
    const issued = await post<{
      credential: { id: string; tower_id: string; revoked_at: number | null };
      mqtt: { username: string; password: string; client_id: string };
    }>(h.app, operator, '/api/v1/towers/twr-cred/credentials', {});
    expect(issued.mqtt.username).toBe('twr-cred');
    expect(issued.mqtt.client_id).toBe('tower-twr-cred');
    expect(issued.credential).toMatchObject({ tower_id: 'twr-cred', revoked_at: null });

    const parsed = parseTowerPassword(issued.mqtt.password);
    expect(parsed?.credentialId).toBe(issued.credential.id);
    const stored = await h.store.towerCredentials.get(issued.credential.id);
    expect(stored!.secret_hash).toBe(sha256(parsed!.secret));

    const list = await op('GET', '/api/v1/towers/twr-cred/credentials');
    expect(list.statusCode).toBe(200);
    expect(list.body).not.toContain(parsed!.secret);
    expect(list.body).not.toContain('secret_hash');
    expect(json<{ credentials: Array<{ id: string }> }>(list).credentials.map((c) => c.id)).toEqual([issued.credential.id]);
  });

  it('revocation marks the credential and publishes credential.revoked', async () => {
    await post(h.app, operator, '/api/v1/towers', { id: 'twr-rev', name: 'Rev' });
    const { credential } = await post<{ credential: { id: string } }>(h.app, operator, '/api/v1/towers/twr-rev/credentials', {});
    const events: Array<BusEvents['credential.revoked']> = [];
    const unsubscribe = h.bus.subscribe('credential.revoked', (e) => events.push(e));

    const res = await op('DELETE', `/api/v1/towers/twr-rev/credentials/${credential.id}`);
    unsubscribe();
    expect(res.statusCode).toBe(204);
    expect(events).toEqual([{ tower_id: 'twr-rev', credential_id: credential.id }]);
    expect((await h.store.towerCredentials.get(credential.id))!.revoked_at).not.toBeNull();
  });

  it('unknown tower or a credential of another tower → 404', async () => {
    await post(h.app, operator, '/api/v1/towers', { id: 'twr-other', name: 'Other' });
    const { credential } = await post<{ credential: { id: string } }>(h.app, operator, '/api/v1/towers/twr-other/credentials', {});
    expect((await op('POST', '/api/v1/towers/nope/credentials', {})).statusCode).toBe(404);
    expect((await op('GET', '/api/v1/towers/nope/credentials')).statusCode).toBe(404);
    expect((await op('DELETE', `/api/v1/towers/twr-rev/credentials/${credential.id}`)).statusCode).toBe(404);
    expect((await h.store.towerCredentials.get(credential.id))!.revoked_at).toBeNull();
  });
});

describe('carriers', () => {
  it('CRUD and linking to towers', async () => {
    const { carrier } = await post<{ carrier: { id: string } }>(h.app, operator, '/api/v1/carriers', { name: 'Orange', mcc_mnc: '20801' });
    expect((await op('POST', '/api/v1/carriers', { name: 'Bad', mcc_mnc: 'abc' })).statusCode).toBe(400);
    await post(h.app, operator, '/api/v1/towers', { id: 'twr-car', name: 'Car' });

    const link = await op('POST', '/api/v1/towers/twr-car/carriers', { carrier_id: carrier.id });
    expect(json(link)).toEqual({ tower_id: 'twr-car', carrier_id: carrier.id, linked: true });
    expect(json(await op('POST', '/api/v1/towers/twr-car/carriers', { carrier_id: carrier.id })).linked).toBe(false);
    const missing = await op('POST', '/api/v1/towers/twr-car/carriers', { carrier_id: 'nope' });
    expect(missing.statusCode).toBe(404);
    expect(json(missing)).toMatchObject({ error: { issues: [{ field: 'body.carrier_id' }] } });

    const carriers = json<{ carriers: Array<{ id: string }> }>(await op('GET', '/api/v1/towers/twr-car/carriers')).carriers;
    expect(carriers.map((c) => c.id)).toEqual([carrier.id]);
    expect((await op('DELETE', `/api/v1/towers/twr-car/carriers/${carrier.id}`)).statusCode).toBe(204);
    expect((await op('DELETE', `/api/v1/towers/twr-car/carriers/${carrier.id}`)).statusCode).toBe(404);

    expect(json(await op('PATCH', `/api/v1/carriers/${carrier.id}`, { name: 'Orange FR' })).carrier).toMatchObject({ name: 'Orange FR' });
    expect((await op('DELETE', `/api/v1/carriers/${carrier.id}`)).statusCode).toBe(204);
    expect((await op('GET', `/api/v1/carriers/${carrier.id}`)).statusCode).toBe(404);
  });
});
