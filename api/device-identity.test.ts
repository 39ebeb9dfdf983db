/**
 * Device ids are the identifiers towers report (IMEI-like), so one id is one device platform-wide
 * and belongs to the tenant that registered it. Another tenant can neither take it over nor tell
 * where it is registered: registering it answers exactly like registering an id the caller itself
 * already holds, and changes nothing for the holder (its record, its policy, the pipeline's
 * device → tenant directory).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let acme: { owner: Session; tenantId: string };
let globex: { owner: Session; tenantId: string };

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 1_000_000 });
  const operator = await login(h.app, OPERATOR_EMAIL);
  acme = await createTenant(h.app, operator, 'Acme');
  globex = await createTenant(h.app, operator, 'Globex');
});
afterAll(async () => {
  await h.close();
});

const register = (s: Session, body: object) => h.app.inject({ method: 'POST', url: '/api/v1/devices', headers: s.headers, payload: body });

describe('device identity across tenants', () => {
  it('registering another tenant’s device id answers exactly like the caller’s own duplicate', async () => {
    await post(h.app, acme.owner, '/api/v1/devices', { id: 'imei-356938035643809', name: 'CEO phone' });
    await post(h.app, globex.owner, '/api/v1/devices', { id: 'imei-globex-own', name: 'mine' });
    const versionBefore = json<{ tenant: { policy_version: number } }>(
      await h.app.inject({ method: 'GET', url: '/api/v1/tenant', headers: globex.owner.headers }),
    ).tenant.policy_version;

    const theirs = await register(globex.owner, { id: 'imei-356938035643809', name: 'squat' });
    const mine = await register(globex.owner, { id: 'imei-globex-own', name: 'squat' });
    expect(theirs.statusCode).toBe(409);
    expect({ status: theirs.statusCode, body: theirs.body }).toEqual({ status: mine.statusCode, body: mine.body });
    expect(theirs.body).not.toMatch(/tenant|acme/i);
    // Nothing was written on the caller's side either.
    const versionAfter = json<{ tenant: { policy_version: number } }>(
      await h.app.inject({ method: 'GET', url: '/api/v1/tenant', headers: globex.owner.headers }),
    ).tenant.policy_version;
    expect(versionAfter).toBe(versionBefore);
  });

  it('cannot be used to take over, read, change or release the holder’s device', async () => {
    await post(h.app, acme.owner, '/api/v1/devices', { id: 'imei-held', name: 'held' });
    await register(globex.owner, { id: 'imei-held', name: 'squat' });
    for (const [method, payload] of [
      ['GET', undefined],
      ['PATCH', { name: 'renamed' }],
      ['DELETE', undefined],
    ] as const) {
      const res = await h.app.inject({ method, url: '/api/v1/devices/imei-held', headers: globex.owner.headers, ...(payload && { payload }) });
      expect(res.statusCode, method).toBe(404);
    }
    const held = json<{ device: { tenant_id: string; name: string } }>(
      await h.app.inject({ method: 'GET', url: '/api/v1/devices/imei-held', headers: acme.owner.headers }),
    );
    expect(held.device).toMatchObject({ tenant_id: acme.tenantId, name: 'held' });
    expect(await h.store.devices.tenantOf('imei-held')).toBe(acme.tenantId);
    const globexIds = json<{ devices: Array<{ id: string }> }>(
      await h.app.inject({ method: 'GET', url: '/api/v1/devices?limit=1000', headers: globex.owner.headers }),
    ).devices.map((d) => d.id);
    expect(globexIds).not.toContain('imei-held');
  });

  it('an id released by its holder can be registered by another tenant', async () => {
    await post(h.app, acme.owner, '/api/v1/devices', { id: 'imei-sold', name: 'old phone' });
    expect((await h.app.inject({ method: 'DELETE', url: '/api/v1/devices/imei-sold', headers: acme.owner.headers })).statusCode).toBe(204);
    await post(h.app, globex.owner, '/api/v1/devices', { id: 'imei-sold', name: 'bought second hand' });
    expect(await h.store.devices.tenantOf('imei-sold')).toBe(globex.tenantId);
  });
});
