/**
 * `/devices/discovered` lists sightings that no registration claims: registering (approving) a
 * device takes it off the list, for its tenant and, when any tenant registers it, for operators.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

describe('discovered devices', () => {
  let h: Harness;
  let operator: Session;
  let owner: Session;
  let tenantId: string;
  beforeAll(async () => {
    h = await startHarness();
    operator = await login(h.app, OPERATOR_EMAIL);
    ({ owner, tenantId } = await createTenant(h.app, operator, 'Discovery'));
  });
  afterAll(() => h.close());

  const listed = async (s: Session) =>
    json<{ devices: Array<{ device_id: string }> }>(await h.app.inject({ url: '/api/v1/devices/discovered', headers: s.headers })).devices.map((d) => d.device_id);

  it("leave the tenant's list once registered", async () => {
    await seedUsage(h.store, tenantId, 'T1', [
      { device_id: 'seen-1', app: 'slack', action: 'open', effect: 'allow', reason: 'unknown_device' },
      { device_id: 'seen-2', app: 'slack', action: 'open', effect: 'allow', reason: 'unknown_device' },
    ]);
    expect((await listed(owner)).sort()).toEqual(['seen-1', 'seen-2']);
    await post(h.app, owner, '/api/v1/devices', { id: 'seen-1', name: 'approved phone' });
    expect(await listed(owner)).toEqual(['seen-2']);
  });

  it("leave the operators' list of unclaimed devices once a tenant registers them", async () => {
    await h.store.discovered.recordReports('T1', 'batch-1', [{ device_id: 'stray-1', first_seen: 1, last_seen: 2, count: 3 }, { device_id: 'stray-2', first_seen: 1, last_seen: 2, count: 1 }], 2);
    expect((await listed(operator)).sort()).toEqual(['stray-1', 'stray-2']);
    await post(h.app, owner, '/api/v1/devices', { id: 'stray-2', name: 'claimed' });
    expect(await listed(operator)).toEqual(['stray-1']);
  });
});
