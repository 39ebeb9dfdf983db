/**
 * Contract: the usage hot path (batches, idempotency, alerts, discovery, dashboard) and platform
 * discovery reports.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { DecidedUsage, Store } from '../port.js';
import {
  denyEvent,
  eventId,
  expectError,
  ids,
  must,
  ruleInput,
  seedWorld,
  T0,
  usageEvent,
  type ContractState,
  type World,
} from './harness.js';

export function describeUsageContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });
  const { recordBatch } = state;

  describe('usage: where a device was last seen', () => {
    it('is the tower of the latest RECEIVED event, whatever time or id a tower put on its events', async () => {
      const w = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      expect(await store.usage.lastSeen(w.tenant.id, w.device.id)).toBeNull();
      await recordBatch(w, [usageEvent(w, { tower_id: 'tower-1', received_at: T0 })]);
      expect(await store.usage.lastSeen(w.tenant.id, w.device.id)).toEqual({ tower_id: 'tower-1', at: T0 });
      // A later receipt at another tower moves it at once…
      await recordBatch(w, [usageEvent(w, { tower_id: 'tower-2', received_at: T0 + 1000 })]);
      expect(await store.usage.lastSeen(w.tenant.id, w.device.id)).toEqual({ tower_id: 'tower-2', at: T0 + 1000 });
      // …but an event a tower stamped far in the future, received earlier, does not.
      const forged = usageEvent(w, { id: '7ZZZZZZZZZZZZZZZZZZZZZZZZZ', tower_id: 'tower-9', ts: T0 + 10 ** 12, received_at: T0 + 500 });
      await recordBatch(w, [forged]);
      expect(await store.usage.lastSeen(w.tenant.id, w.device.id)).toEqual({ tower_id: 'tower-2', at: T0 + 1000 });
      // Another tenant learns nothing about this device.
      expect(await store.usage.lastSeen(b.tenant.id, w.device.id)).toBeNull();
    });
  });

  describe('usage: filtered pages', () => {
    it('following next_cursor collects exactly the device’s (or user’s) events, newest first', async () => {
      const w = await seedWorld(store, 'a');
      const other = await store.devices.create(w.tenant.id, { id: `other-${eventId().slice(-8)}`, name: 'other', user_id: null });
      const mine: DecidedUsage[] = [];
      for (let i = 0; i < 5; i++) {
        const batch: DecidedUsage[] = [];
        for (let j = 0; j < 7; j++) batch.push(usageEvent(w, { device_id: other.id, user_id: null }));
        const ev = usageEvent(w);
        mine.push(ev);
        batch.push(ev);
        await recordBatch(w, batch);
      }
      for (const filter of [{ device_id: w.device.id }, { user_id: w.user.id }]) {
        const collected: string[] = [];
        let cursor: string | null = null;
        for (let guard = 0; guard < 100; guard++) {
          const page = await store.usage.list(w.tenant.id, { ...filter, limit: 2, cursor });
          expect(page.items.length).toBeLessThanOrEqual(2);
          collected.push(...ids(page.items));
          cursor = page.next_cursor;
          if (cursor === null) break;
        }
        expect(collected).toEqual(ids(mine).reverse());
      }
    });
  });

  describe('usage', () => {
    it('stores decided events and lists them newest first, exactly as recorded', async () => {
      const w = await seedWorld(store, 'a');
      const events = [usageEvent(w), usageEvent(w, { bytes: null, user_id: null }), denyEvent(w)];
      const res = await recordBatch(w, events);
      expect(res).toMatchObject({ inserted: 3, duplicates: 0 });
      const listed = (await store.usage.list(w.tenant.id)).items;
      const expected = events.map(({ severity: _s, ...rest }) => ({ ...rest, local_effect: null, local_policy_version: null, disagreement: false })).reverse();
      expect(listed).toEqual(expected);
    });

    it("records the tower's local decision and the disagreement with the cloud's, and filters on it", async () => {
      const w = await seedWorld(store, 'a');
      const agreed = usageEvent(w, { local_effect: 'allow', local_policy_version: 3 });
      const overturned = denyEvent(w, { local_effect: 'allow', local_policy_version: 3 });
      const lifted = usageEvent(w, { local_effect: 'deny', local_policy_version: 2 });
      const online = usageEvent(w);
      await recordBatch(w, [agreed, overturned, lifted, online]);
      const got = async (id: string) => must(await store.usageHistory.get(w.tenant.id, id));
      expect(await got(agreed.id)).toMatchObject({ effect: 'allow', local_effect: 'allow', local_policy_version: 3, disagreement: false });
      expect(await got(overturned.id)).toMatchObject({ effect: 'deny', local_effect: 'allow', local_policy_version: 3, disagreement: true });
      expect(await got(lifted.id)).toMatchObject({ effect: 'allow', local_effect: 'deny', local_policy_version: 2, disagreement: true });
      expect(await got(online.id)).toMatchObject({ local_effect: null, local_policy_version: null, disagreement: false });
      expect(ids((await store.usage.list(w.tenant.id, { disagreement: true })).items).sort()).toEqual([overturned.id, lifted.id].sort());
      expect(ids((await store.usage.list(w.tenant.id, { disagreement: false })).items).sort()).toEqual([agreed.id, online.id].sort());
      expect(ids((await store.usage.list(w.tenant.id, { disagreement: true, effect: 'deny' })).items)).toEqual([overturned.id]);
      // Paged: the cursor walks the filtered rows only.
      const first = await store.usage.list(w.tenant.id, { disagreement: true, limit: 1 });
      const second = await store.usage.list(w.tenant.id, { disagreement: true, limit: 1, cursor: first.next_cursor });
      expect([...ids(first.items), ...ids(second.items)].sort()).toEqual([overturned.id, lifted.id].sort());
      expect(second.next_cursor).toBeNull();
      // Another tenant's filter sees none of it.
      const b = await seedWorld(store, 'b');
      expect((await store.usage.list(b.tenant.id, { disagreement: true })).items).toEqual([]);
    });

    it('records a local decision reported after the event was stored, once, against the stored decision', async () => {
      const w = await seedWorld(store, 'a');
      const event = denyEvent(w);
      await recordBatch(w, [event]);
      // The tower decided locally after its first send (the cloud's answer was late) and reports
      // it with the same event id; the cloud re-decides it as allow now, but the stored deny stands.
      const report = usageEvent(w, { id: event.id, local_effect: 'allow', local_policy_version: 4 });
      const res = await recordBatch(w, [report]);
      expect(res).toMatchObject({ inserted: 0, duplicates: 1 });
      expect(res.local_recorded).toEqual([{ id: event.id, local_effect: 'allow', effect: 'deny', disagreement: true }]);
      expect(must(await store.usageHistory.get(w.tenant.id, event.id))).toMatchObject({ effect: 'deny', local_effect: 'allow', local_policy_version: 4, disagreement: true });
      // A second report changes nothing, and raises nothing again.
      const again = await recordBatch(w, [{ ...report, local_effect: 'deny' }]);
      expect(again.local_recorded).toEqual([]);
      expect(must(await store.usageHistory.get(w.tenant.id, event.id))).toMatchObject({ local_effect: 'allow', disagreement: true });
      expect(must((await store.alerts.list(w.tenant.id)).items[0]).count).toBe(1);
    });

    it('is idempotent by event id: redelivery writes nothing else', async () => {
      const w = await seedWorld(store, 'a');
      const unknown = usageEvent(w, { device_id: 'stranger', user_id: null, reason: 'unknown_device', effect: 'deny' });
      const events = [denyEvent(w), unknown];
      const first = await recordBatch(w, events);
      expect(first).toMatchObject({ inserted: 2, duplicates: 0 });
      expect(first.alerts_opened).toHaveLength(1);
      expect(first.discovered).toHaveLength(1);
      const again = await recordBatch(w, [...events, usageEvent(w)]);
      // Duplicates come back with the decision stored the first time, in input order.
      const stored = events.map((e) => ({
        id: e.id,
        effect: e.effect,
        reason: e.reason,
        rule_id: e.rule_id,
        policy_id: e.policy_id,
        policy_version: e.policy_version,
      }));
      expect(again).toEqual({
        inserted: 1,
        duplicates: 2,
        stored_decisions: stored,
        alerts_opened: [],
        alerts_updated: [],
        discovered: [],
        local_recorded: [],
      });
      const alert = must((await store.alerts.list(w.tenant.id)).items[0]);
      expect(alert.count).toBe(1);
      expect(must((await store.discovered.list(w.tenant.id)).items[0]).count).toBe(1);
      expect((await store.usage.list(w.tenant.id)).items).toHaveLength(3);
    });

    it('opens one alert per device and rule, bumps it within the window, opens anew after it', async () => {
      const w = await seedWorld(store, 'a');
      const first = await recordBatch(w, [denyEvent(w), denyEvent(w, { tower_id: 'tower-2' }), usageEvent(w)], T0);
      expect(first.alerts_opened).toHaveLength(1);
      expect(first.alerts_updated).toEqual([]);
      const opened = must(first.alerts_opened[0]);
      expect(opened).toMatchObject({
        tenant_id: w.tenant.id,
        device_id: w.device.id,
        user_id: w.user.id,
        rule_id: w.rule.id,
        policy_id: w.policy.id,
        app: 'slack',
        action: 'upload',
        tower_id: 'tower-2',
        severity: 'high',
        count: 2,
        first_seen: T0,
        last_seen: T0,
        status: 'open',
      });
      expect(await store.alerts.get(w.tenant.id, opened.id)).toEqual(opened);

      const later = T0 + 200_000;
      const second = await recordBatch(w, [denyEvent(w, { tower_id: 'tower-3' })], later, 300);
      expect(second.alerts_opened).toEqual([]);
      expect(second.alerts_updated).toEqual([{ ...opened, count: 3, last_seen: later, tower_id: 'tower-3' }]);

      const muchLater = later + 301_000;
      const third = await recordBatch(w, [denyEvent(w)], muchLater, 300);
      expect(third.alerts_updated).toEqual([]);
      expect(third.alerts_opened).toHaveLength(1);
      expect(must(third.alerts_opened[0])).toMatchObject({ count: 1, first_seen: muchLater, last_seen: muchLater });
      expect(must(third.alerts_opened[0]).id).not.toBe(opened.id);
      expect((await store.alerts.list(w.tenant.id)).items).toHaveLength(2);
    });

    it('alerts only for rule denies, keyed by rule, with medium as the default severity', async () => {
      const w = await seedWorld(store, 'a');
      const rule2 = await store.rules.create(w.tenant.id, ruleInput(w.policy.id, { app: 'mail' }));
      const res = await recordBatch(w, [
        denyEvent(w, { severity: null }),
        denyEvent(w, { rule_id: rule2.id, app: 'mail' }),
        usageEvent(w, { effect: 'deny', reason: 'default' }),
        usageEvent(w, { effect: 'allow', reason: 'rule', rule_id: w.rule.id, policy_id: w.policy.id }),
      ]);
      expect(res.alerts_opened.map((a) => [a.rule_id, a.severity, a.count])).toEqual([
        [w.rule.id, 'medium', 1],
        [rule2.id, 'high', 1],
      ]);
      expect(res.alerts_updated).toEqual([]);
    });

    it('lists alerts newest first with status and device filters, per tenant', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const d2 = await store.devices.create(a.tenant.id, { name: 'd2', user_id: a.user.id });
      await recordBatch(a, [denyEvent(a)]);
      await recordBatch(a, [denyEvent(a, { device_id: d2.id })]);
      await recordBatch(b, [denyEvent(b)]);
      const listed = (await store.alerts.list(a.tenant.id)).items;
      expect(listed.map((x) => x.device_id)).toEqual([d2.id, a.device.id]);
      expect(ids(listed)).toEqual(ids(listed).sort().reverse());
      expect((await store.alerts.list(a.tenant.id, { device_id: d2.id })).items.map((x) => x.device_id)).toEqual([d2.id]);
      expect((await store.alerts.list(a.tenant.id, { status: 'open' })).items).toHaveLength(2);
      expect((await store.alerts.list(a.tenant.id, { status: 'resolved' })).items).toEqual([]);
      const bAlert = must((await store.alerts.list(b.tenant.id)).items[0]);
      expect(await store.alerts.get(a.tenant.id, bAlert.id)).toBeNull();
    });

    it('folds unknown devices into tenant-scoped discovered devices', async () => {
      const w = await seedWorld(store, 'a');
      const unknown = (ts: number, tower: string): DecidedUsage =>
        usageEvent(w, { device_id: 'stranger', user_id: null, reason: 'unknown_device', ts, tower_id: tower });
      const first = await recordBatch(w, [unknown(T0 + 10, 'tower-1'), unknown(T0 + 5, 'tower-2')]);
      expect(first.discovered).toHaveLength(1);
      expect(must(first.discovered[0])).toMatchObject({
        tenant_id: w.tenant.id,
        device_id: 'stranger',
        first_seen: T0 + 5,
        last_seen: T0 + 10,
        count: 2,
        tower_id: 'tower-1',
      });
      const second = await recordBatch(w, [unknown(T0 + 50, 'tower-3')]);
      const folded = must(second.discovered[0]);
      expect(folded).toMatchObject({
        id: must(first.discovered[0]).id,
        first_seen: T0 + 5,
        last_seen: T0 + 50,
        count: 3,
        tower_id: 'tower-3',
      });
      expect((await store.discovered.list(w.tenant.id)).items).toEqual([folded]);
      expect((await store.discovered.list(null)).items).toEqual([]);
    });

    it('filters usage by device, user, effect and tower, and never across tenants', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const d2 = await store.devices.create(a.tenant.id, { name: 'd2' });
      const e1 = usageEvent(a);
      const e2 = denyEvent(a, { tower_id: 'tower-9' });
      const e3 = usageEvent(a, { device_id: d2.id, user_id: null });
      await recordBatch(a, [e1, e2, e3]);
      await recordBatch(b, [usageEvent(b)]);
      const t = a.tenant.id;
      expect(ids((await store.usage.list(t, { device_id: d2.id })).items)).toEqual([e3.id]);
      expect(ids((await store.usage.list(t, { user_id: a.user.id })).items)).toEqual([e2.id, e1.id]);
      expect(ids((await store.usage.list(t, { effect: 'deny' })).items)).toEqual([e2.id]);
      expect(ids((await store.usage.list(t, { tower_id: 'tower-9' })).items)).toEqual([e2.id]);
      expect(ids((await store.usage.list(t, { effect: 'allow', device_id: a.device.id })).items)).toEqual([e1.id]);
      expect((await store.usage.list(t, { device_id: b.device.id })).items).toEqual([]);
      expect(await store.usage.list('no-such-tenant')).toEqual({ items: [], next_cursor: null });
    });

    it('filters usage by app and an event-time window, pages through it, and counts a window by effect', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const e1 = usageEvent(a, { ts: T0 });
      const e2 = denyEvent(a, { ts: T0 + 1000 });
      const e3 = usageEvent(a, { ts: T0 + 2000, app: 'mail' });
      const e4 = usageEvent(a, { ts: T0 + 3000 });
      await recordBatch(a, [e1, e2, e3, e4]);
      await recordBatch(b, [usageEvent(b, { ts: T0 + 1000 })]);
      const t = a.tenant.id;
      const list = async (f: Parameters<Store['usage']['list']>[1]) => ids((await store.usage.list(t, f)).items);
      expect(await list({ app: 'mail' })).toEqual([e3.id]);
      expect(await list({ since: T0 + 1000 })).toEqual([e4.id, e3.id, e2.id]);
      expect(await list({ until: T0 + 1000 })).toEqual([e1.id]);
      expect(await list({ since: T0 + 1000, until: T0 + 3000, app: 'slack' })).toEqual([e2.id]);
      expect(await list({ since: T0, device_id: a.device.id, effect: 'allow' })).toEqual([e4.id, e3.id, e1.id]);
      const first = await store.usage.list(t, { since: T0 + 1000, limit: 2, sort: { field: 'ts', dir: 'desc' } });
      expect(ids(first.items)).toEqual([e4.id, e3.id]);
      const second = await store.usage.list(t, { since: T0 + 1000, limit: 2, sort: { field: 'ts', dir: 'desc' }, cursor: first.next_cursor });
      expect(ids(second.items)).toEqual([e2.id]);
      expect(await store.usage.countByEffect(t, { since: T0, until: T0 + 3000 })).toEqual({ allow: 2, deny: 1 });
      expect(await store.usage.countByEffect(t, { since: T0 + 3001, until: T0 + 9000 })).toEqual({ allow: 0, deny: 0 });
      expect(await store.usage.countByEffect(b.tenant.id, { since: T0, until: T0 + 9000 })).toEqual({ allow: 1, deny: 0 });
    });

    it('recordBatches applies a group exactly like sequential recordBatch calls', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const first = [denyEvent(a), usageEvent(a)];
      const input = (w: World, records: DecidedUsage[]) => ({
        tenant_id: w.tenant.id,
        tower_id: 'tower-1',
        batch_id: eventId(),
        now: T0,
        alert_window_s: 300,
        records,
      });
      const results = await store.usage.recordBatches([
        input(a, first),
        // A redelivery of the first batch plus one new violation by the same device and rule.
        input(a, [...first, denyEvent(a)]),
        input(b, [denyEvent(b)]),
      ]);
      expect(results.map((r) => [r.inserted, r.duplicates])).toEqual([
        [2, 0],
        [1, 2],
        [1, 0],
      ]);
      expect(results[0]!.alerts_opened).toHaveLength(1);
      expect(results[1]!.alerts_opened).toHaveLength(0);
      expect(results[1]!.alerts_updated.map((x) => x.count)).toEqual([2]);
      expect((await store.alerts.list(a.tenant.id)).items.map((x) => x.count)).toEqual([2]);
      expect((await store.alerts.list(b.tenant.id)).items.map((x) => x.count)).toEqual([1]);
      expect((await store.usage.list(a.tenant.id)).items).toHaveLength(3);
      expect(await store.usage.recordBatches([])).toEqual([]);
    });

    it('recordBatches is all or nothing', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const good = { tenant_id: a.tenant.id, tower_id: 't', batch_id: eventId(), now: T0, alert_window_s: 60, records: [denyEvent(a)] };
      await expectError(
        store.usage.recordBatches([good, { ...good, batch_id: eventId(), records: [usageEvent(b)] }]),
        'VALIDATION_FAILED',
        'tenant_id',
      );
      await expectError(
        store.usage.recordBatches([good, { ...good, tenant_id: 'no-such-tenant', records: [usageEvent(a, { tenant_id: 'no-such-tenant' })] }]),
        'NOT_FOUND',
        'tenant_id',
      );
      expect((await store.usage.list(a.tenant.id)).items).toEqual([]);
      expect((await store.alerts.list(a.tenant.id)).items).toEqual([]);
      expect((await store.dashboard(a.tenant.id)).usage_total).toBe(0);
    });

    it('rejects a batch for an unknown tenant or with a foreign record, writing nothing', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      await expectError(
        store.usage.recordBatch({
          tenant_id: 'no-such-tenant',
          tower_id: 't',
          batch_id: 'b',
          now: T0,
          alert_window_s: 60,
          records: [usageEvent(a, { tenant_id: 'no-such-tenant' })],
        }),
        'NOT_FOUND',
        'tenant_id',
      );
      await expectError(recordBatch(a, [denyEvent(a), usageEvent(b)]), 'VALIDATION_FAILED', 'tenant_id');
      expect((await store.usage.list(a.tenant.id)).items).toEqual([]);
      expect((await store.alerts.list(a.tenant.id)).items).toEqual([]);
    });

    it('counts the dashboard for one tenant only', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      await store.devices.create(a.tenant.id, { name: 'd2' });
      const stranger = usageEvent(a, { device_id: 'stranger', user_id: null, reason: 'unknown_device', effect: 'deny' });
      const batch = [usageEvent(a), usageEvent(a), denyEvent(a), stranger];
      await recordBatch(a, batch);
      await recordBatch(a, batch);
      await recordBatch(b, [denyEvent(b), usageEvent(b)]);
      expect(await store.dashboard(a.tenant.id)).toEqual({
        devices: 2,
        users: 1,
        policies: 1,
        rules: 1,
        alerts_open: 1,
        alerts_acknowledged: 0,
        usage_total: 4,
        usage_allowed: 2,
        usage_denied: 2,
        discovered_devices: 1,
      });
      expect(await store.dashboard('no-such-tenant')).toMatchObject({ devices: 0, usage_total: 0, alerts_open: 0 });
    });
  });

  describe('usage retention', () => {
    it('purges only that tenant’s rows received before the cutoff and keeps the dashboard totals', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const old = [usageEvent(a, { received_at: T0 - 2000 }), denyEvent(a, { received_at: T0 - 1 })];
      const kept = [usageEvent(a, { received_at: T0 }), usageEvent(a, { received_at: T0 + 1000 })];
      const foreign = usageEvent(b, { received_at: T0 - 2000 });
      await recordBatch(a, [...old, ...kept]);
      await recordBatch(b, [foreign]);
      const dashboard = await store.dashboard(a.tenant.id);

      expect(await store.purgeUsage(a.tenant.id, T0)).toBe(2);
      expect(ids((await store.usage.list(a.tenant.id)).items).sort()).toEqual(ids(kept).sort());
      expect(ids((await store.usage.list(b.tenant.id)).items)).toEqual([foreign.id]);
      expect(await store.purgeUsage(a.tenant.id, T0)).toBe(0);
      expect(await store.purgeUsage('no-such-tenant', T0 + 10_000)).toBe(0);
      // The dashboard counts everything ever decided; retention governs only the stored rows.
      expect(await store.dashboard(a.tenant.id)).toEqual(dashboard);
      expect((await store.alerts.list(a.tenant.id)).items).toHaveLength(1);
    });

    it('stores decisions made by an active remediation (reason blocked)', async () => {
      const w = await seedWorld(store, 'a');
      const blocked = usageEvent(w, { effect: 'deny', reason: 'blocked' });
      const res = await recordBatch(w, [blocked]);
      expect(res).toMatchObject({ inserted: 1, alerts_opened: [], discovered: [] });
      const { severity: _s, ...stored } = blocked;
      expect((await store.usage.list(w.tenant.id)).items).toEqual([{ ...stored, local_effect: null, local_policy_version: null, disagreement: false }]);
    });
  });

  describe('platform discovery', () => {
    it('upserts tower reports by device and ignores a batch seen before', async () => {
      const w = await seedWorld(store, 'a');
      const report = (device_id: string, first_seen: number, last_seen: number, count: number) => ({
        device_id,
        first_seen,
        last_seen,
        count,
      });
      const firstReports = [report('x', T0, T0 + 10, 3), report('y', T0, T0, 1)];
      expect(await store.discovered.recordReports('tower-1', 'batch-1', firstReports, T0)).toBe(true);
      expect(await store.discovered.recordReports('tower-1', 'batch-1', [report('x', T0, T0 + 10, 3)], T0)).toBe(false);
      expect(await store.discovered.recordReports('tower-2', 'batch-2', [report('x', T0 - 5, T0 + 20, 2)], T0)).toBe(true);
      const listed = (await store.discovered.list(null)).items;
      expect(listed.map(({ id: _id, ...rest }) => rest).sort((p, q) => (p.device_id < q.device_id ? -1 : 1))).toEqual([
        { tenant_id: null, device_id: 'x', tower_id: 'tower-2', first_seen: T0 - 5, last_seen: T0 + 20, count: 5 },
        { tenant_id: null, device_id: 'y', tower_id: 'tower-1', first_seen: T0, last_seen: T0, count: 1 },
      ]);
      expect((await store.discovered.list(w.tenant.id)).items).toEqual([]);
    });
  });
}
