/**
 * Provisioning against the real embedded control plane: device users, their roles and devices go
 * through the bulk onboarding import (one audited import per chunk, no per-user or per-device
 * calls), with progress reported per phase and per chunk; a second run of the same scenario
 * provisions a second, separate world.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_EMAIL, ADMIN_PASSWORD, startTestControlPlane, type TestControlPlane } from '../test/support/control-plane.js';
import { IMPORT_CHUNK, provisionWorld } from './provision.js';
import { parseScenario, type ScenarioInput } from './scenario.js';

const SCENARIO: ScenarioInput = {
  name: 'bulk',
  duration_s: 1,
  rate_eps: 10,
  towers: { count: 2, id_prefix: 'bulk-tower' },
  tenants: [
    {
      name: 'bulk-co',
      plan: 'premium',
      apps: ['slack'],
      actions: ['open'],
      roles: [{ name: 'member' }, { name: 'lead' }],
      policies: [{ name: 'p', roles: ['member'], rules: [{ app: 'slack', action: 'open', permission: 'allow' }] }],
      users: { count: 700, roles: ['member', 'lead'] },
      devices_per_user: 2,
      mix: [{ app: 'slack', action: 'open', weight: 1 }],
    },
  ],
};

let tcp: TestControlPlane;
beforeAll(async () => {
  tcp = await startTestControlPlane({ config: { rate_limit_per_min: 100_000 } });
});
afterAll(async () => {
  await tcp.destroy();
});

describe('provisionWorld', () => {
  it('imports users, roles and devices in bulk chunks, reporting progress', async () => {
    const steps: string[] = [];
    const { world, owners } = await provisionWorld(parseScenario(SCENARIO), {
      apiUrl: tcp.cp.httpUrl,
      adminEmail: ADMIN_EMAIL,
      adminPassword: ADMIN_PASSWORD,
      runTag: 'r1',
      onStep: (m) => steps.push(m),
    });
    const tenantId = world.tenants[0]!.id;
    expect(world.tenants[0]!.device_ids).toHaveLength(1400);
    expect(IMPORT_CHUNK).toBe(1000);
    expect(steps).toEqual([
      'tenant bulk-co: provisioning (plan premium)',
      'tenant bulk-co: 1 apps, 1 actions, 2 roles, 1 policies',
      'tenant bulk-co: imported 1000/1400 rows (500 users, 1000 devices, 1000 role assignments)',
      'tenant bulk-co: imported 1400/1400 rows (700 users, 1400 devices, 1400 role assignments)',
      'towers: 2 with credentials',
    ]);
    const store = tcp.cp.store;
    expect((await store.dashboard(tenantId)).devices).toBe(1400);
    const user = await store.users.findByEmail(tenantId, 'user0-r1t0@bulk-co.sim.edgeplane.test');
    expect(user).toMatchObject({ name: 'bulk-co user 0' });
    expect((await store.userRoles.rolesOfUser(tenantId, user!.id)).map((r) => r.name).sort()).toEqual(['lead', 'member']);
    await tcp.cp.app.auditTrail.flush();
    const audit = (await store.audit.list(tenantId, { limit: 1000 })).items.map((a) => a.action);
    expect(audit.filter((a) => a === 'onboarding.import')).toHaveLength(2);
    expect(audit.filter((a) => a === 'users.create' || a === 'devices.create' || a === 'user-roles.assign')).toEqual([]);
    expect(owners[0]!.tenant_id).toBe(tenantId);

    const again = await provisionWorld(parseScenario(SCENARIO), { apiUrl: tcp.cp.httpUrl, adminEmail: ADMIN_EMAIL, adminPassword: ADMIN_PASSWORD, runTag: 'r2' });
    expect(again.world.tenants[0]!.id).not.toBe(tenantId);
    expect(again.world.towers.map((t) => t.id)).toEqual(world.towers.map((t) => t.id));
  });
});
