/**
 * Contract: stored policy tests (tenant-scoped records that never bump the policy version) and
 * the usage reads explain and what-if rely on (one event by id; a window scanned page by page in
 * event-id order, tenant-scoped).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../port.js';
import { denyEvent, eventId, expectError, must, seedWorld, usageEvent, type ContractState } from './harness.js';

export function describePolicyTestContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });
  const { expectBump, recordBatch } = state;

  describe('policy tests', () => {
    it('creates, gets, lists, updates and deletes, tenant-scoped, without bumping the version', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const t = await expectBump(a.tenant.id, 0, () =>
        store.policyTests.create(a.tenant.id, { name: 'jane cannot upload', device_id: a.device.id, app: 'dropbox', action: 'upload', expected_effect: 'deny' }),
      );
      expect(t).toMatchObject({ tenant_id: a.tenant.id, user_id: null, expected_rule_id: null });
      expect(await store.policyTests.get(a.tenant.id, t.id)).toEqual(t);
      expect(await store.policyTests.get(b.tenant.id, t.id)).toBeNull();
      expect((await store.policyTests.list(b.tenant.id)).items).toEqual([]);
      expect((await store.policyTests.list(a.tenant.id)).items.map((x) => x.id)).toEqual([t.id]);

      const moved = await expectBump(a.tenant.id, 0, () => store.policyTests.update(a.tenant.id, t.id, { device_id: null, user_id: a.user.id, expected_rule_id: a.rule.id }));
      expect(must(moved)).toMatchObject({ device_id: null, user_id: a.user.id, expected_rule_id: a.rule.id });
      expect(await store.policyTests.update(b.tenant.id, t.id, { name: 'x' })).toBeNull();
      expect(await store.policyTests.delete(b.tenant.id, t.id)).toBe(false);
      expect(await store.policyTests.delete(a.tenant.id, t.id)).toBe(true);
      expect(await store.policyTests.get(a.tenant.id, t.id)).toBeNull();
    });

    it('needs exactly one of device_id and user_id, on create and after a patch', async () => {
      const a = await seedWorld(store, 'a');
      const base = { name: 'n', app: 'x', action: 'y', expected_effect: 'allow' as const };
      await expectError(store.policyTests.create(a.tenant.id, base), 'VALIDATION_FAILED', 'device_id');
      await expectError(store.policyTests.create(a.tenant.id, { ...base, device_id: 'd', user_id: 'u' }), 'VALIDATION_FAILED', 'device_id');
      const t = await store.policyTests.create(a.tenant.id, { ...base, device_id: 'd' });
      await expectError(store.policyTests.update(a.tenant.id, t.id, { user_id: 'u' }), 'VALIDATION_FAILED', 'device_id');
      await expectError(store.policyTests.update(a.tenant.id, t.id, { device_id: null }), 'VALIDATION_FAILED', 'device_id');
      expect(await store.policyTests.get(a.tenant.id, t.id)).toEqual(t);
      await expectError(store.policyTests.create('no-such-tenant', { ...base, device_id: 'd' }), 'NOT_FOUND', 'tenant');
    });
  });

  describe('usage history', () => {
    it('gets one recorded event, tenant-scoped', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const e = denyEvent(a);
      await recordBatch(a, [e]);
      const got = must(await store.usageHistory.get(a.tenant.id, e.id));
      expect(got).toMatchObject({ id: e.id, tenant_id: a.tenant.id, effect: 'deny', rule_id: a.rule.id, policy_version: e.policy_version, batch_id: e.batch_id, bytes: e.bytes });
      expect(await store.usageHistory.get(b.tenant.id, e.id)).toBeNull();
      expect(await store.usageHistory.get(a.tenant.id, eventId())).toBeNull();
    });

    it('scans a window in event-id order, page by page, never another tenant’s rows', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const inWindow = Array.from({ length: 25 }, (_, i) => usageEvent(a, { received_at: 1000 + i }));
      const early = usageEvent(a, { received_at: 999 });
      const late = usageEvent(a, { received_at: 2000 });
      await recordBatch(a, [late, ...inWindow.slice(10), early, ...inWindow.slice(0, 10)]);
      await recordBatch(b, Array.from({ length: 5 }, () => usageEvent(b, { received_at: 1005 })));
      const seen: string[] = [];
      let after: string | null = null;
      for (let guard = 0; guard < 10; guard++) {
        const page = await store.usageHistory.scan(a.tenant.id, { since: 1000, until: 2000 }, after, 10);
        if (page.length === 0) break;
        expect(page.length).toBeLessThanOrEqual(10);
        seen.push(...page.map((r) => r.id));
        after = page[page.length - 1]!.id;
      }
      expect(seen).toEqual(inWindow.map((e) => e.id).sort());
      const row = (await store.usageHistory.scan(a.tenant.id, { since: 1000, until: 1001 }, null, 10))[0]!;
      expect(row).toEqual({
        id: inWindow[0]!.id,
        received_at: 1000,
        ts: inWindow[0]!.ts,
        device_id: a.device.id,
        user_id: a.user.id,
        app: 'slack',
        action: 'upload',
        tower_id: 'tower-1',
        effect: 'allow',
        reason: 'default',
        rule_id: null,
        policy_id: null,
        policy_version: inWindow[0]!.policy_version,
      });
      expect(await store.usageHistory.scan(b.tenant.id, { since: 0, until: 999 }, null, 10)).toEqual([]);
      expect((await store.usageHistory.scan(b.tenant.id, { since: 0, until: 3000 }, null, 100)).every((r) => r.device_id === b.device.id)).toBe(true);
    });
  });
}
