/**
 * Contract: plans (seeds, CRUD, conflicts), a tenant's plan (default, change, snapshot) and the
 * plan's device limit.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { PlanInput, Store } from '../port.js';
import { expectError, ids, must, seedWorld, walk, type ContractState, type PolicyChange } from './harness.js';

const planInput = (id: string, extra: Partial<PlanInput> = {}): PlanInput => ({
  id,
  name: id.toUpperCase(),
  auto_remediation: false,
  retention_days: 30,
  ...extra,
});

export function describePlanContract(state: ContractState): void {
  let store: Store;
  let changes: PolicyChange[];
  beforeEach(() => {
    store = state.store;
    changes = state.changes;
  });
  const { expectBump } = state;

  describe('plans', () => {
    it('comes with the free and premium plans', async () => {
      const seeded = (await store.plans.list()).items;
      expect(seeded.map(({ created_at: _c, updated_at: _u, ...plan }) => plan)).toEqual([
        { id: 'free', name: 'Free', auto_remediation: false, max_devices: 100, max_events_per_s: 200, retention_days: 7 },
        {
          id: 'premium',
          name: 'Premium',
          auto_remediation: true,
          max_devices: 100_000,
          max_events_per_s: 50_000,
          retention_days: 90,
        },
      ]);
      expect(await store.plans.get('free')).toEqual(seeded[0]);
      expect(await store.plans.get('no-such-plan')).toBeNull();
    });

    it('creates, lists, updates and deletes plans', async () => {
      const gold = await store.plans.create(planInput('gold', { auto_remediation: true, retention_days: 365 }));
      expect(gold).toMatchObject({ id: 'gold', name: 'GOLD', auto_remediation: true, max_devices: null, max_events_per_s: null });
      expect(gold.updated_at).toBe(gold.created_at);
      expect(await store.plans.get('gold')).toEqual(gold);
      expect(ids((await store.plans.list()).items)).toEqual(['free', 'gold', 'premium']);
      expect(ids(await walk((cursor) => store.plans.list({ limit: 1, cursor })))).toEqual(['free', 'gold', 'premium']);

      const capped = must(await store.plans.update('gold', { auto_remediation: false, max_devices: 10, max_events_per_s: 5 }));
      expect(capped).toMatchObject({ id: 'gold', name: 'GOLD', auto_remediation: false, max_devices: 10, max_events_per_s: 5 });
      expect(capped.updated_at).toBeGreaterThanOrEqual(gold.updated_at);
      expect(must(await store.plans.update('gold', { max_devices: null }))).toMatchObject({ max_devices: null, retention_days: 365 });
      expect(await store.plans.update('no-such-plan', { name: 'x' })).toBeNull();

      expect(await store.plans.delete('gold')).toBe(true);
      expect(await store.plans.get('gold')).toBeNull();
      expect(await store.plans.delete('gold')).toBe(false);
    });

    it('refuses an existing plan id, and deleting a plan in use or the default plan', async () => {
      await store.plans.create(planInput('gold'));
      await expectError(store.plans.create(planInput('gold', { name: 'Again' })), 'CONFLICT', 'gold');
      await expectError(store.plans.create(planInput('premium')), 'CONFLICT', 'premium');
      expect(must(await store.plans.get('gold')).name).toBe('GOLD');
      expect(must(await store.plans.get('premium')).name).toBe('Premium');

      const t = await store.tenants.create({ name: 'acme', plan_id: 'gold' });
      await expectError(store.plans.delete('gold'), 'CONFLICT', 'gold');
      expect(await store.plans.get('gold')).not.toBeNull();
      await store.tenants.update(t.id, { plan_id: 'premium' });
      expect(await store.plans.delete('gold')).toBe(true);
      // New tenants fall back to free, so it cannot go even when no tenant is on it.
      await expectError(store.plans.delete('free'), 'CONFLICT', 'free');
      expect(await store.plans.get('free')).not.toBeNull();
    });

    it('a plan deleted while a tenant is created on it or moved onto it never leaves that tenant on no plan', async () => {
      // The delete counts the tenants on the plan; the tenant write must conflict with it (it
      // writes a guard on the plan), else both commit and the tenant names a deleted plan.
      const moving = await store.tenants.create({ name: 'mover', plan_id: 'premium' });
      for (let round = 0; round < 10; round++) {
        const plan = `race${round}`;
        await store.plans.create(planInput(plan));
        const write = round % 2 === 0 ? store.tenants.create({ name: `t${round}`, plan_id: plan }) : store.tenants.update(moving.id, { plan_id: plan });
        const [deleted, written] = await Promise.allSettled([store.plans.delete(plan), write]);
        const planGone = deleted.status === 'fulfilled' && deleted.value === true;
        const onPlan = (await store.tenants.list({ limit: 1000 })).items.filter((t) => t.plan_id === plan);
        // Exactly one of them wins: the plan is gone and no tenant is on it, or the tenant is on
        // the plan and the delete was refused.
        expect({ round, planGone, onPlan: onPlan.length, written: written.status }).toEqual(
          planGone ? { round, planGone, onPlan: 0, written: 'rejected' } : { round, planGone, onPlan: 1, written: 'fulfilled' },
        );
        if (!planGone) {
          if (round % 2 === 0) await store.tenants.delete(onPlan[0]!.id);
          else await store.tenants.update(moving.id, { plan_id: 'premium' });
        }
      }
    });

    it('a plan change that alters what decisions do bumps every tenant on it', async () => {
      await store.plans.create(planInput('gold'));
      const a = await store.tenants.create({ name: 'a', plan_id: 'gold' });
      const b = await store.tenants.create({ name: 'b', plan_id: 'gold' });
      const other = await store.tenants.create({ name: 'c' });
      await expectBump(a.id, 0, () => store.plans.update('gold', { name: 'Gold' }));
      await expectBump(a.id, 0, () => store.plans.update('gold', { auto_remediation: false }));
      const heard = changes.length;
      await store.plans.update('gold', { auto_remediation: true });
      const announced = changes.slice(heard);
      expect(announced.map((c) => c.tenantId).sort()).toEqual([a.id, b.id].sort());
      for (const c of announced) expect(must(await store.tenants.get(c.tenantId)).policy_version).toBe(c.version);
      expect(must(await store.tenants.get(other.id)).policy_version).toBe(other.policy_version);
    });
  });

  describe('tenant plan', () => {
    it('defaults to free, accepts a known plan and refuses an unknown one naming plan_id', async () => {
      const t = await store.tenants.create({ name: 'a' });
      expect(t.plan_id).toBe('free');
      expect(await store.tenants.create({ name: 'b', plan_id: 'premium' })).toMatchObject({ plan_id: 'premium' });
      await expectError(store.tenants.create({ name: 'c', plan_id: 'no-such-plan' }), 'NOT_FOUND', 'plan_id');
      expect((await store.tenants.list()).items).toHaveLength(2);
      await expectError(store.tenants.update(t.id, { plan_id: 'no-such-plan' }), 'NOT_FOUND', 'plan_id');
      expect(await store.tenants.get(t.id)).toEqual(t);
    });

    it('changing the plan bumps the version once, and the snapshot carries the plan', async () => {
      const w = await seedWorld(store, 'a');
      const t = w.tenant.id;
      expect(must(await store.policySnapshot(t)).plan).toEqual(await store.plans.get('free'));
      await expectBump(t, 0, () => store.tenants.update(t, { plan_id: 'free' }));
      const moved = await expectBump(t, 1, () => store.tenants.update(t, { plan_id: 'premium' }));
      expect(moved).toMatchObject({ plan_id: 'premium' });
      const snap = must(await store.policySnapshot(t));
      expect(snap.tenant).toEqual(moved);
      expect(snap.plan).toEqual(await store.plans.get('premium'));
      await expectBump(t, 1, () => store.tenants.update(t, { plan_id: 'free', default_effect: 'deny' }));
      expect(must(await store.policySnapshot(t)).plan.id).toBe('free');
    });
  });

  describe('device limit', () => {
    it('refuses a device beyond the plan’s max_devices and writes nothing', async () => {
      await store.plans.create(planInput('tiny', { max_devices: 2 }));
      const t = await store.tenants.create({ name: 'a', plan_id: 'tiny' });
      const other = await store.tenants.create({ name: 'b', plan_id: 'tiny' });
      await store.devices.create(t.id, { id: 'd1', name: 'phone' });
      await store.devices.create(t.id, { id: 'd2', name: 'phone' });
      const version = must(await store.tenants.get(t.id)).policy_version;
      const heard = changes.length;

      await expectError(store.devices.create(t.id, { id: 'd3', name: 'phone' }), 'PLAN_LIMIT_EXCEEDED', 'plan tiny allows 2 devices');
      expect(await store.devices.tenantOf('d3')).toBeNull();
      expect(ids((await store.devices.list(t.id)).items)).toEqual(['d1', 'd2']);
      expect(must(await store.tenants.get(t.id)).policy_version).toBe(version);
      expect(changes.length).toBe(heard);

      // The limit counts one tenant's devices; a freed slot or an unlimited plan lets the next in.
      await store.devices.create(other.id, { id: 'd3', name: 'phone' });
      await store.devices.delete(t.id, 'd1');
      await store.devices.create(t.id, { id: 'd4', name: 'phone' });
      await expectError(store.devices.create(t.id, { id: 'd5', name: 'phone' }), 'PLAN_LIMIT_EXCEEDED');
      await store.plans.update('tiny', { max_devices: null });
      await store.devices.create(t.id, { id: 'd5', name: 'phone' });
      expect((await store.dashboard(t.id)).devices).toBe(3);
    });
  });
}
