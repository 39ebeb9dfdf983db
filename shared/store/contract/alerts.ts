/**
 * Contract: the alert workflow (acknowledge, assign, resolve, with history), how workflow states
 * fold new denies, the alert list filters, and what deleting an assignee's account does to its
 * alerts.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Alert } from '../../domain.js';
import { createError } from '../../errors.js';
import type { Store } from '../port.js';
import { ASSIGNEE_DELETED_NOTE } from '../rules/alerts.js';
import { consoleUser, denyEvent, expectError, ids, must, ruleInput, seedWorld, T0, type ContractState, type World } from './harness.js';

export function describeAlertContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });
  const { recordBatch } = state;

  describe('alert workflow', () => {
    it('acknowledges, assigns and resolves, recording who, when and the note of each step', async () => {
      const w = await seedWorld(store, 'a');
      const analyst = await store.consoleUsers.create(consoleUser(w.tenant.id, 'ana@a.test'));
      const alert = must((await recordBatch(w, [denyEvent(w)])).alerts_opened[0]);
      expect(alert).toMatchObject({ status: 'open', acknowledged_by: null, assigned_to: null, resolved_at: null, note: null });

      const acked = must(await store.alerts.act(w.tenant.id, alert.id, { kind: 'acknowledge', by: 'u-1', at: T0 + 1, note: 'looking' }));
      expect(acked.alert).toEqual({ ...alert, status: 'acknowledged', acknowledged_by: 'u-1', acknowledged_at: T0 + 1, note: 'looking' });
      expect(acked.step).toMatchObject({ alert_id: alert.id, kind: 'acknowledged', actor_id: 'u-1', note: 'looking' });
      const assigned = must(await store.alerts.act(w.tenant.id, alert.id, { kind: 'assign', assignee: analyst.id, by: 'u-1', at: T0 + 2 }));
      expect(assigned.alert).toMatchObject({ status: 'acknowledged', assigned_to: analyst.id, assigned_at: T0 + 2, assigned_by: 'u-1', note: null });
      const resolved = must(await store.alerts.act(w.tenant.id, alert.id, { kind: 'resolve', by: 'api_key:k1', at: T0 + 3, note: 'fixed' }));
      expect(resolved.alert).toMatchObject({ status: 'resolved', resolved_by: 'api_key:k1', resolved_at: T0 + 3, acknowledged_by: 'u-1', assigned_to: analyst.id, note: 'fixed' });
      expect(await store.alerts.get(w.tenant.id, alert.id)).toEqual(resolved.alert);

      const history = await store.alerts.events(w.tenant.id, alert.id);
      expect(history[2]).toEqual(resolved.step);
      expect(history.map(({ id: _id, ...e }) => e)).toEqual([
        { tenant_id: w.tenant.id, alert_id: alert.id, kind: 'acknowledged', at: T0 + 1, actor_id: 'u-1', assignee: null, note: 'looking' },
        { tenant_id: w.tenant.id, alert_id: alert.id, kind: 'assigned', at: T0 + 2, actor_id: 'u-1', assignee: analyst.id, note: null },
        { tenant_id: w.tenant.id, alert_id: alert.id, kind: 'resolved', at: T0 + 3, actor_id: 'api_key:k1', assignee: null, note: 'fixed' },
      ]);
      expect(ids(history)).toEqual(ids(history).sort());
    });

    it('repeating a step that already holds changes and records nothing; a resolved alert is closed', async () => {
      const w = await seedWorld(store, 'a');
      const alert = must((await recordBatch(w, [denyEvent(w)])).alerts_opened[0]);
      const t = w.tenant.id;
      await store.alerts.act(t, alert.id, { kind: 'acknowledge', by: 'u-1', at: T0 + 1 });
      const again = must(await store.alerts.act(t, alert.id, { kind: 'acknowledge', by: 'u-2', at: T0 + 2, note: 'me too' }));
      expect(again.step).toBeNull();
      expect(again.alert).toMatchObject({ acknowledged_by: 'u-1', acknowledged_at: T0 + 1, note: null });
      expect(must(await store.alerts.act(t, alert.id, { kind: 'assign', assignee: null, by: 'u-1', at: T0 + 3 })).step).toBeNull();
      await store.alerts.act(t, alert.id, { kind: 'resolve', by: 'u-1', at: T0 + 4 });
      expect(must(await store.alerts.act(t, alert.id, { kind: 'resolve', by: 'u-2', at: T0 + 5 })).step).toBeNull();
      await expectError(store.alerts.act(t, alert.id, { kind: 'acknowledge', by: 'u-1', at: T0 + 6 }), 'CONFLICT', 'resolved');
      await expectError(store.alerts.act(t, alert.id, { kind: 'assign', assignee: null, by: 'u-1', at: T0 + 6 }), 'CONFLICT', 'status');
      expect((await store.alerts.events(t, alert.id)).map((e) => e.kind)).toEqual(['acknowledged', 'resolved']);
    });

    it('an alert resolves straight from open, and unassigning records a step', async () => {
      const w = await seedWorld(store, 'a');
      const owner = await store.consoleUsers.create(consoleUser(w.tenant.id, 'own@a.test'));
      const alert = must((await recordBatch(w, [denyEvent(w)])).alerts_opened[0]);
      await store.alerts.act(w.tenant.id, alert.id, { kind: 'assign', assignee: owner.id, by: owner.id, at: T0 + 1 });
      const unassigned = must(await store.alerts.act(w.tenant.id, alert.id, { kind: 'assign', assignee: null, by: owner.id, at: T0 + 2, note: 'not mine' }));
      expect(unassigned.alert).toMatchObject({ status: 'open', assigned_to: null, assigned_at: null, note: 'not mine' });
      const resolved = must(await store.alerts.act(w.tenant.id, alert.id, { kind: 'resolve', by: owner.id, at: T0 + 3 }));
      expect(resolved.alert).toMatchObject({ status: 'resolved', acknowledged_by: null });
      expect((await store.alerts.events(w.tenant.id, alert.id)).map((e) => [e.kind, e.assignee])).toEqual([
        ['assigned', owner.id],
        ['unassigned', null],
        ['resolved', null],
      ]);
    });

    it('assigns only to console users of the tenant, and never acts across tenants', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const bUser = await store.consoleUsers.create(consoleUser(b.tenant.id, 'bob@b.test'));
      const operator = await store.consoleUsers.create(consoleUser(null, 'op@platform.test'));
      const alert = must((await recordBatch(a, [denyEvent(a)])).alerts_opened[0]);
      for (const assignee of [bUser.id, operator.id, 'no-such-user']) {
        await expectError(store.alerts.act(a.tenant.id, alert.id, { kind: 'assign', assignee, by: null, at: T0 }), 'NOT_FOUND', 'assignee');
      }
      expect(await store.alerts.act(b.tenant.id, alert.id, { kind: 'resolve', by: null, at: T0 })).toBeNull();
      expect(await store.alerts.act(a.tenant.id, 'no-such-alert', { kind: 'resolve', by: null, at: T0 })).toBeNull();
      expect(await store.alerts.events(b.tenant.id, alert.id)).toEqual([]);
      expect(must(await store.alerts.get(a.tenant.id, alert.id)).status).toBe('open');
      expect(await store.alerts.events(a.tenant.id, alert.id)).toEqual([]);
    });

    it('an acknowledged alert keeps folding denies; after resolution the next deny opens a new alert', async () => {
      const w = await seedWorld(store, 'a');
      const first = must((await recordBatch(w, [denyEvent(w)], T0)).alerts_opened[0]);
      await store.alerts.act(w.tenant.id, first.id, { kind: 'acknowledge', by: 'u-1', at: T0 + 1 });
      const bumped = await recordBatch(w, [denyEvent(w)], T0 + 10);
      expect(bumped.alerts_opened).toEqual([]);
      expect(bumped.alerts_updated).toEqual([expect.objectContaining({ id: first.id, count: 2, status: 'acknowledged', acknowledged_by: 'u-1' })]);

      await store.alerts.act(w.tenant.id, first.id, { kind: 'resolve', by: 'u-1', at: T0 + 20 });
      // Well inside the alert window: a resolved alert still never folds.
      const refired = await recordBatch(w, [denyEvent(w)], T0 + 30);
      expect(refired.alerts_updated).toEqual([]);
      const second = must(refired.alerts_opened[0]);
      expect(second).toMatchObject({ status: 'open', count: 1, first_seen: T0 + 30, acknowledged_by: null, resolved_at: null });
      expect(second.id).not.toBe(first.id);
      expect(must(await store.alerts.get(w.tenant.id, first.id))).toMatchObject({ status: 'resolved', count: 2 });
      expect(await store.dashboard(w.tenant.id)).toMatchObject({ alerts_open: 1, alerts_acknowledged: 0 });
    });
  });

  describe('alert filters', () => {
    it('filters by app, severity, assignee and an activity window, per tenant', async () => {
      const w = await seedWorld(store, 'a');
      const other = await seedWorld(store, 'b');
      const ana = await store.consoleUsers.create(consoleUser(w.tenant.id, 'ana@a.test'));
      const mailRule = await store.rules.create(w.tenant.id, ruleInput(w.policy.id, { app: 'mail' }));
      const slack = must((await recordBatch(w, [denyEvent(w)], T0)).alerts_opened[0]);
      const mail = must((await recordBatch(w, [denyEvent(w, { rule_id: mailRule.id, app: 'mail', severity: 'low' })], T0 + 1000)).alerts_opened[0]);
      await recordBatch(w, [denyEvent(w)], T0 + 5000);
      await recordBatch(other, [denyEvent(other)], T0);
      await store.alerts.act(w.tenant.id, mail.id, { kind: 'assign', assignee: ana.id, by: null, at: T0 + 2000 });
      const list = async (f: Parameters<Store['alerts']['list']>[1]) => ids((await store.alerts.list(w.tenant.id, f)).items);

      expect(await list({ app: 'mail' })).toEqual([mail.id]);
      expect(await list({ severity: 'high' })).toEqual([slack.id]);
      expect(await list({ severity: 'critical' })).toEqual([]);
      expect(await list({ assigned_to: ana.id })).toEqual([mail.id]);
      // slack: first_seen T0, last_seen T0+5000; mail: T0+1000 only.
      expect(await list({ since: T0 + 2000 })).toEqual([slack.id]);
      expect(await list({ until: T0 + 1000 })).toEqual([slack.id]);
      expect(await list({ since: T0 + 1000, until: T0 + 1001 })).toEqual([mail.id, slack.id]);
      expect(await list({ since: T0 + 6000 })).toEqual([]);
      expect(await list({ app: 'mail', severity: 'high' })).toEqual([]);
      expect(await store.alerts.count(w.tenant.id)).toBe(2);
      expect(await store.alerts.count(w.tenant.id, { since: T0 + 2000 })).toBe(1);
      expect(await store.alerts.count(w.tenant.id, { assigned_to: ana.id, status: 'open' })).toBe(1);
      expect(await store.alerts.count(other.tenant.id, { app: 'mail' })).toBe(0);
    });
  });

  describe("deleting an assignee's console account", () => {
    /** Alerts of `w` opened on distinct devices, by device. */
    async function openAlerts(w: World, devices: string[]): Promise<Record<string, Alert>> {
      const opened = (await recordBatch(w, devices.map((device_id) => denyEvent(w, { device_id })))).alerts_opened;
      return Object.fromEntries(devices.map((d) => [d, must(opened.find((a) => a.device_id === d))]));
    }
    const assign = (t: string, alertId: string, assignee: string, at: number) =>
      store.alerts.act(t, alertId, { kind: 'assign', assignee, by: 'u-lead', at });

    it("unassigns the account's active alerts in the delete's write, each by a recorded step; resolved and other accounts' alerts keep theirs", async () => {
      const w = await seedWorld(store, 'a');
      const t = w.tenant.id;
      const ana = await store.consoleUsers.create(consoleUser(t, 'ana@a.test'));
      const bea = await store.consoleUsers.create(consoleUser(t, 'bea@a.test'));
      const a = await openAlerts(w, ['d-open', 'd-acked', 'd-resolved', 'd-bea']);
      for (const d of ['d-open', 'd-acked', 'd-resolved']) await assign(t, a[d]!.id, ana.id, T0 + 1);
      await assign(t, a['d-bea']!.id, bea.id, T0 + 1);
      await store.alerts.act(t, a['d-acked']!.id, { kind: 'acknowledge', by: ana.id, at: T0 + 2 });
      await store.alerts.act(t, a['d-resolved']!.id, { kind: 'resolve', by: ana.id, at: T0 + 3 });
      const untouched = [must(await store.alerts.get(t, a['d-resolved']!.id)), must(await store.alerts.get(t, a['d-bea']!.id))];

      const deletion = must(await store.consoleUsers.delete(t, ana.id, undefined, { by: 'u-admin', at: T0 + 10 }));

      const after = (d: string) => store.alerts.get(t, a[d]!.id);
      const unassigned = { assigned_to: null, assigned_at: null, assigned_by: 'u-admin', note: ASSIGNEE_DELETED_NOTE };
      expect(await after('d-open')).toMatchObject({ status: 'open', ...unassigned });
      expect(await after('d-acked')).toMatchObject({ status: 'acknowledged', acknowledged_by: ana.id, ...unassigned });
      expect([await after('d-resolved'), await after('d-bea')]).toEqual(untouched);
      expect(untouched.map((x) => x.assigned_to)).toEqual([ana.id, bea.id]);

      // The result names exactly what changed, as stored, with the step each alert's history got.
      expect(deletion.unassigned.map((u) => u.alert).sort((x, y) => x.id.localeCompare(y.id))).toEqual(
        [await after('d-open'), await after('d-acked')].sort((x, y) => must(x).id.localeCompare(must(y).id)),
      );
      for (const { alert, step } of deletion.unassigned) {
        const history = await store.alerts.events(t, alert.id);
        expect(history[history.length - 1]).toEqual(step);
        expect(step).toMatchObject({ tenant_id: t, alert_id: alert.id, kind: 'unassigned', at: T0 + 10, actor_id: 'u-admin', assignee: null, note: ASSIGNEE_DELETED_NOTE });
      }
      expect((await store.alerts.events(t, a['d-open']!.id)).map((e) => e.kind)).toEqual(['assigned', 'unassigned']);
      expect((await store.alerts.events(t, a['d-resolved']!.id)).map((e) => e.kind)).toEqual(['assigned', 'resolved']);
      expect(await store.alerts.count(t, { assigned_to: ana.id, status: 'open' })).toBe(0);
      expect(await store.alerts.count(t, { assigned_to: ana.id, status: 'acknowledged' })).toBe(0);
      expect(await store.consoleUsers.get(ana.id)).toBeNull();
      // The deleted account can no longer be assigned.
      await expectError(assign(t, a['d-open']!.id, ana.id, T0 + 11), 'NOT_FOUND', 'assignee');
    });

    it("touches only the account's own tenant: another tenant's account with the same e-mail keeps its alerts", async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const anaA = await store.consoleUsers.create(consoleUser(a.tenant.id, 'ana@shared.test'));
      const anaB = await store.consoleUsers.create(consoleUser(b.tenant.id, 'ana@shared.test'));
      const inA = must((await recordBatch(a, [denyEvent(a)])).alerts_opened[0]);
      const inB = must((await recordBatch(b, [denyEvent(b)])).alerts_opened[0]);
      await assign(a.tenant.id, inA.id, anaA.id, T0 + 1);
      const bBefore = must(must(await assign(b.tenant.id, inB.id, anaB.id, T0 + 1)).alert);
      const bHistory = await store.alerts.events(b.tenant.id, inB.id);

      // Without an actor the steps are the system's.
      const deletion = must(await store.consoleUsers.delete(a.tenant.id, anaA.id));
      expect(deletion.unassigned.map((u) => [u.alert.id, u.alert.tenant_id, u.step.actor_id])).toEqual([[inA.id, a.tenant.id, null]]);
      expect(must(await store.alerts.get(a.tenant.id, inA.id)).assigned_to).toBeNull();

      expect(await store.alerts.get(b.tenant.id, inB.id)).toEqual(bBefore);
      expect(await store.alerts.events(b.tenant.id, inB.id)).toEqual(bHistory);
      expect(await store.alerts.count(b.tenant.id, { assigned_to: anaB.id })).toBe(1);
      expect(await store.consoleUsers.get(anaB.id)).toMatchObject({ tenant_id: b.tenant.id });
    });

    it('a refused delete unassigns nothing; the delete that goes through does', async () => {
      const w = await seedWorld(store, 'a');
      const t = w.tenant.id;
      const owner = await store.consoleUsers.create({ ...consoleUser(t, 'own@a.test'), console_role: 'owner' });
      const alert = must((await recordBatch(w, [denyEvent(w)])).alerts_opened[0]);
      const assigned = must(await assign(t, alert.id, owner.id, T0 + 1)).alert;
      // The last active owner stays (CONFLICT); a caller's check refuses (FORBIDDEN).
      await expectError(store.consoleUsers.delete(t, owner.id, undefined, { by: 'u-admin', at: T0 + 2 }), 'CONFLICT', 'owner');
      const refuse = () => {
        throw createError('FORBIDDEN', 'cannot manage owner accounts');
      };
      await store.consoleUsers.create({ ...consoleUser(t, 'own2@a.test'), console_role: 'owner' });
      await expectError(store.consoleUsers.delete(t, owner.id, refuse, { by: 'u-admin', at: T0 + 3 }), 'FORBIDDEN');
      expect(await store.alerts.get(t, alert.id)).toEqual(assigned);
      expect((await store.alerts.events(t, alert.id)).map((e) => e.kind)).toEqual(['assigned']);

      expect(must(await store.consoleUsers.delete(t, owner.id, undefined, { by: 'u-admin', at: T0 + 4 })).unassigned).toHaveLength(1);
      expect(must(await store.alerts.get(t, alert.id)).assigned_to).toBeNull();
      expect((await store.alerts.events(t, alert.id)).map((e) => e.kind)).toEqual(['assigned', 'unassigned']);
    });
  });
}
