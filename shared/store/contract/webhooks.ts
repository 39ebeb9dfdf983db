/**
 * Contract: tenant webhooks (the secret never leaves through CRUD) and the delivery queue.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Alert, WebhookDelivery, WebhookEventType } from '../../domain.js';
import type { CommandInput, Store, WebhookInput } from '../port.js';
import type { WebhookEventBody } from '../rules/webhook-outbox.js';
import { consoleUser, denyEvent, expectError, ids, must, seedWorld, T0, usageEvent, walk, type ContractState } from './harness.js';

const hookInput = (events: WebhookEventType[], secret = 'whsec-1'): WebhookInput => ({
  url: 'https://hooks.example.com/edgeplane',
  events,
  secret,
});

export function describeWebhookContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });

  const delivery = (tenant_id: string, webhook_id: string, next_attempt_at: number) => ({
    tenant_id,
    webhook_id,
    event: 'alert.opened' as const,
    body: JSON.stringify({ type: 'alert.opened', at: next_attempt_at }),
    next_attempt_at,
  });

  describe('webhooks', () => {
    it('creates, reads, updates and deletes without ever returning the secret', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const hook = await store.webhooks.create(a, hookInput(['alert.opened', 'command.updated'], 'top-secret'));
      expect(hook).toEqual({
        id: hook.id,
        tenant_id: a,
        url: 'https://hooks.example.com/edgeplane',
        events: ['alert.opened', 'command.updated'],
        enabled: true,
        created_at: hook.created_at,
        updated_at: hook.created_at,
      });
      expect(await store.webhooks.get(a, hook.id)).toEqual(hook);
      expect((await store.webhooks.list(a)).items).toEqual([hook]);
      const disabled = must(await store.webhooks.update(a, hook.id, { enabled: false, events: ['device.discovered'] }));
      expect(disabled).toMatchObject({ id: hook.id, enabled: false, events: ['device.discovered'], url: hook.url });
      const moved = must(await store.webhooks.update(a, hook.id, { url: 'https://other.example.com/x' }));
      expect(moved).toMatchObject({ enabled: false, events: ['device.discovered'], url: 'https://other.example.com/x' });
      const everything = [hook, disabled, moved, await store.webhooks.get(a, hook.id), (await store.webhooks.list(a)).items];
      expect(JSON.stringify(everything)).not.toContain('top-secret');
      expect(disabled).not.toHaveProperty('secret');

      expect(await store.webhooks.get(b, hook.id)).toBeNull();
      expect((await store.webhooks.list(b)).items).toEqual([]);
      expect(await store.webhooks.update(b, hook.id, { enabled: true })).toBeNull();
      expect(await store.webhooks.delete(b, hook.id)).toBe(false);
      expect(await store.webhooks.get(a, hook.id)).toEqual(moved);
      await expectError(store.webhooks.create('no-such-tenant', hookInput(['alert.opened'])), 'NOT_FOUND', 'tenant_id');

      expect(await store.webhooks.delete(a, hook.id)).toBe(true);
      expect(await store.webhooks.get(a, hook.id)).toBeNull();
      expect(await store.webhooks.delete(a, hook.id)).toBe(false);
    });

    it('subscribers are the tenant’s enabled webhooks for that event, with their secret', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const alerts = await store.webhooks.create(a, hookInput(['alert.opened'], 's1'));
      const both = await store.webhooks.create(a, hookInput(['alert.opened', 'command.updated'], 's2'));
      const off = await store.webhooks.create(a, hookInput(['alert.opened'], 's3'));
      await store.webhooks.update(a, off.id, { enabled: false });
      const foreign = await store.webhooks.create(b, hookInput(['alert.opened'], 's4'));

      expect(await store.webhooks.subscribers(a, 'alert.opened')).toEqual([
        { ...alerts, secret: 's1' },
        { ...both, secret: 's2' },
      ]);
      expect(await store.webhooks.subscribers(a, 'command.updated')).toEqual([{ ...both, secret: 's2' }]);
      expect(await store.webhooks.subscribers(a, 'device.discovered')).toEqual([]);
      expect(await store.webhooks.subscribers(b, 'alert.opened')).toEqual([{ ...foreign, secret: 's4' }]);
      const on = must(await store.webhooks.update(a, off.id, { enabled: true }));
      expect(ids(await store.webhooks.subscribers(a, 'alert.opened'))).toEqual([alerts.id, both.id, on.id]);
    });
  });

  describe('webhook deliveries', () => {
    it('queues deliveries, hands out the due ones across tenants and records attempts', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const hookA = await store.webhooks.create(a, hookInput(['alert.opened']));
      const hookB = await store.webhooks.create(b, hookInput(['alert.opened']));
      const d1 = await store.webhookDeliveries.create(delivery(a, hookA.id, T0));
      expect(d1).toEqual({
        ...delivery(a, hookA.id, T0),
        id: d1.id,
        status: 'pending',
        attempts: 0,
        last_status_code: null,
        last_error: null,
        created_at: d1.created_at,
        updated_at: d1.created_at,
      });
      const d2 = await store.webhookDeliveries.create(delivery(b, hookB.id, T0 - 10));
      const d3 = await store.webhookDeliveries.create(delivery(a, hookA.id, T0 + 1000));
      await expectError(store.webhookDeliveries.create(delivery(a, hookB.id, T0)), 'NOT_FOUND', 'webhook_id');
      expect(await store.webhookDeliveries.get(a, d1.id)).toEqual(d1);
      expect(await store.webhookDeliveries.get(b, d1.id)).toBeNull();
      expect(await store.webhookDeliveries.get(a, 'no-such-delivery')).toBeNull();

      // Due = pending with next_attempt_at <= now, the longest overdue first.
      expect(ids(await store.webhookDeliveries.dueFair(T0, 10, 10))).toEqual([d2.id, d1.id]);
      expect(ids(await store.webhookDeliveries.dueFair(T0, 10, 1))).toEqual([d2.id]);
      expect(await store.webhookDeliveries.dueFair(T0 - 11, 10, 10)).toEqual([]);

      const retry = { status: 'pending' as const, at: T0 + 1, status_code: 503, error: 'unavailable', next_attempt_at: T0 + 500 };
      await store.webhookDeliveries.recordAttempt(d2.id, retry);
      expect(ids(await store.webhookDeliveries.dueFair(T0, 10, 10))).toEqual([d1.id]);
      expect((await store.webhookDeliveries.list(b, hookB.id)).items).toEqual([
        { ...d2, attempts: 1, last_status_code: 503, last_error: 'unavailable', next_attempt_at: T0 + 500, updated_at: T0 + 1 },
      ]);
      const ok = { status: 'delivered' as const, at: T0 + 2, status_code: 200, error: null, next_attempt_at: null };
      await store.webhookDeliveries.recordAttempt(d1.id, ok);
      const gaveUp = { status: 'failed' as const, at: T0 + 3, status_code: null, error: 'timeout', next_attempt_at: T0 + 9 };
      await store.webhookDeliveries.recordAttempt(d3.id, gaveUp);
      expect((await store.webhookDeliveries.list(a, hookA.id)).items).toEqual([
        { ...d3, status: 'failed', attempts: 1, last_error: 'timeout', next_attempt_at: null, updated_at: T0 + 3 },
        { ...d1, status: 'delivered', attempts: 1, last_status_code: 200, next_attempt_at: null, updated_at: T0 + 2 },
      ]);
      expect(ids(await store.webhookDeliveries.dueFair(T0 + 10_000, 10, 10))).toEqual([d2.id]);

      // Retention: the tenant's finished deliveries last updated before the cutoff go; pending
      // ones and other tenants' stay.
      expect(await store.webhookDeliveries.purge(a, T0 + 3)).toBe(1); // d1, delivered at T0 + 2
      expect(await store.webhookDeliveries.get(a, d1.id)).toBeNull();
      expect(await store.webhookDeliveries.purge(b, T0 + 10_000)).toBe(0); // d2 is still pending
      expect(await store.webhookDeliveries.purge(a, T0 + 10_000)).toBe(1); // d3, failed
      expect(await store.webhookDeliveries.get(b, d2.id)).not.toBeNull();
      expect(await store.webhookDeliveries.purge('no-such-tenant', T0 + 10_000)).toBe(0);
    });

    it('dueFair: a tenant’s backlog of due deliveries does not push another tenant’s out', async () => {
      const a = (await store.tenants.create({ name: 'stuck' })).id;
      const b = (await store.tenants.create({ name: 'quiet' })).id;
      const c = (await store.tenants.create({ name: 'busy' })).id;
      const idle = (await store.tenants.create({ name: 'idle' })).id;
      const hookA = await store.webhooks.create(a, hookInput(['alert.opened']));
      const hookB = await store.webhooks.create(b, hookInput(['alert.opened']));
      const hookC = await store.webhooks.create(c, hookInput(['alert.opened']));
      const hookIdle = await store.webhooks.create(idle, hookInput(['alert.opened']));
      // A: 12 due deliveries, every one older than B's and C's (an unreachable receiver and a flood).
      const aDue = [];
      for (let i = 0; i < 12; i++) aDue.push(await store.webhookDeliveries.create(delivery(a, hookA.id, T0 - 1000 + i)));
      const aLater = await store.webhookDeliveries.create(delivery(a, hookA.id, T0 + 1));
      const c0 = await store.webhookDeliveries.create(delivery(c, hookC.id, T0 - 500));
      // Same time: by id.
      const c1 = await store.webhookDeliveries.create(delivery(c, hookC.id, T0 - 400));
      const c2 = await store.webhookDeliveries.create(delivery(c, hookC.id, T0 - 400));
      const [cFirst, cSecond] = [c1.id, c2.id].sort() as [string, string];
      const b0 = await store.webhookDeliveries.create(delivery(b, hookB.id, T0));
      // Finished deliveries of B, even "older" ones, and a tenant with nothing due yet, never come back.
      const bDone = await store.webhookDeliveries.create(delivery(b, hookB.id, T0 - 5000));
      await store.webhookDeliveries.recordAttempt(bDone.id, { status: 'delivered', at: T0 - 4000, status_code: 200, error: null, next_attempt_at: null });
      const bFailed = await store.webhookDeliveries.create(delivery(b, hookB.id, T0 - 5000));
      await store.webhookDeliveries.recordAttempt(bFailed.id, { status: 'failed', at: T0 - 4000, status_code: 500, error: 'HTTP 500', next_attempt_at: T0 - 3000 });
      const idleLater = await store.webhookDeliveries.create(delivery(idle, hookIdle.id, T0 + 60_000));

      // Each tenant's first, by its most overdue (A, C, B), then each one's second, third…
      const fair = await store.webhookDeliveries.dueFair(T0, 3, 100);
      expect(ids(fair)).toEqual([aDue[0]!.id, c0.id, b0.id, aDue[1]!.id, cFirst, aDue[2]!.id, cSecond]);
      // Whole records, each under its own tenant: the store's own row, never another tenant's.
      const created = new Map([...aDue, c0, c1, c2, b0].map((d) => [d.id, d]));
      for (const d of fair) {
        expect(d).toEqual(created.get(d.id));
        expect(await store.webhookDeliveries.get(d.tenant_id, d.id)).toEqual(d);
      }
      const byTenant = (rows: typeof fair, tenant: string) => ids(rows.filter((d) => d.tenant_id === tenant));
      expect(byTenant(fair, a)).toEqual(ids(aDue.slice(0, 3)));
      expect(byTenant(fair, b)).toEqual([b0.id]);
      expect(byTenant(fair, c)).toEqual([c0.id, cFirst, cSecond]);
      // Never the finished ones, nor any not yet due.
      const returned = new Set(ids(fair));
      for (const d of [bDone, bFailed, aLater, idleLater]) expect(returned.has(d.id)).toBe(false);

      // Per-tenant cap and overall limit.
      expect(ids(await store.webhookDeliveries.dueFair(T0, 1, 100))).toEqual([aDue[0]!.id, c0.id, b0.id]);
      expect(ids(await store.webhookDeliveries.dueFair(T0, 3, 4))).toEqual([aDue[0]!.id, c0.id, b0.id, aDue[1]!.id]);
      expect(ids(await store.webhookDeliveries.dueFair(T0, 3, 2))).toEqual([aDue[0]!.id, c0.id]);
      expect(ids(await store.webhookDeliveries.dueFair(T0, 20, 100))).toHaveLength(12 + 3 + 1);

      // What is due follows `now` and the recorded attempts.
      expect(ids(await store.webhookDeliveries.dueFair(T0 - 1000, 3, 100))).toEqual([aDue[0]!.id]);
      expect(await store.webhookDeliveries.dueFair(T0 - 1001, 3, 100)).toEqual([]);
      await store.webhookDeliveries.recordAttempt(b0.id, { status: 'pending', at: T0, status_code: 503, error: 'unavailable', next_attempt_at: T0 + 10 });
      expect(byTenant(await store.webhookDeliveries.dueFair(T0, 3, 100), b)).toEqual([]);
      const later = await store.webhookDeliveries.dueFair(T0 + 60_000, 2, 100);
      expect(ids(later)).toEqual([aDue[0]!.id, c0.id, b0.id, idleLater.id, aDue[1]!.id, cFirst]);

      // A deleted tenant's deliveries go with it.
      await store.tenants.delete(a);
      expect(ids(await store.webhookDeliveries.dueFair(T0, 3, 100))).toEqual([c0.id, cFirst, cSecond]);
    });

    it('lists a webhook’s deliveries newest first, per tenant, and deletes them with it', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const hook = await store.webhooks.create(a, hookInput(['alert.opened']));
      const sibling = await store.webhooks.create(a, hookInput(['alert.opened']));
      const made: string[] = [];
      for (let i = 0; i < 3; i++) made.push((await store.webhookDeliveries.create(delivery(a, hook.id, T0 + i))).id);
      const other = await store.webhookDeliveries.create(delivery(a, sibling.id, T0));
      expect(ids((await store.webhookDeliveries.list(a, hook.id)).items)).toEqual([...made].reverse());
      expect(ids(await walk((cursor) => store.webhookDeliveries.list(a, hook.id, { limit: 2, cursor })))).toEqual(
        [...made].reverse(),
      );
      expect(await store.webhookDeliveries.list(b, hook.id)).toEqual({ items: [], next_cursor: null });

      expect(await store.webhooks.delete(a, hook.id)).toBe(true);
      expect((await store.webhookDeliveries.list(a, hook.id)).items).toEqual([]);
      expect(ids(await store.webhookDeliveries.dueFair(T0 + 10, 10, 10))).toEqual([other.id]);
      await store.tenants.delete(a);
      expect(await store.webhookDeliveries.dueFair(T0 + 10, 10, 10)).toEqual([]);
    });
  });

  describe('outbox: deliveries committed with the record', () => {
    const bodyOf = (d: WebhookDelivery): WebhookEventBody => JSON.parse(d.body) as WebhookEventBody;
    /** Every delivery of the tenant's webhooks, oldest first. */
    const deliveriesOf = async (tenantId: string, hookIds: string[]): Promise<WebhookDelivery[]> => {
      const all: WebhookDelivery[] = [];
      for (const id of hookIds) all.push(...(await walk((cursor) => store.webhookDeliveries.list(tenantId, id, { cursor }))));
      return all.sort((x, y) => (x.id < y.id ? -1 : 1));
    };

    it('writes one pending delivery per subscriber for alerts and discoveries a batch commits, none on redelivery', async () => {
      const { recordBatch } = state;
      const w = await seedWorld(store, 'a');
      const other = await seedWorld(store, 'b');
      const opened = await store.webhooks.create(w.tenant.id, hookInput(['alert.opened', 'device.discovered']));
      const both = await store.webhooks.create(w.tenant.id, hookInput(['alert.opened', 'alert.updated']));
      const off = await store.webhooks.create(w.tenant.id, hookInput(['alert.opened']));
      await store.webhooks.update(w.tenant.id, off.id, { enabled: false });
      const foreign = await store.webhooks.create(other.tenant.id, hookInput(['alert.opened', 'alert.updated', 'device.discovered']));
      const hooks = [opened.id, both.id, off.id];

      const deny = denyEvent(w);
      const stranger = usageEvent(w, { device_id: 'stranger', user_id: null, reason: 'unknown_device' });
      const first = await recordBatch(w, [deny, stranger]);
      const alert = must(first.alerts_opened[0]);
      const seen = must(first.discovered[0]);
      let made = await deliveriesOf(w.tenant.id, hooks);
      expect(made.map((d) => [d.webhook_id, d.event, d.status, d.attempts])).toEqual([
        [opened.id, 'alert.opened', 'pending', 0],
        [both.id, 'alert.opened', 'pending', 0],
        [opened.id, 'device.discovered', 'pending', 0],
      ]);
      const [toOpened, toBoth, discovery] = made.map(bodyOf);
      expect(toOpened).toEqual({ id: expect.any(String), type: 'alert.opened', tenant_id: w.tenant.id, created_at: made[0]!.created_at, data: alert });
      // One event id for every subscriber of the event; another for each event.
      expect(toBoth!.id).toBe(toOpened!.id);
      expect(discovery).toMatchObject({ type: 'device.discovered', data: seen });
      expect(discovery!.id).not.toBe(toOpened!.id);

      // The same events again (a batch redelivered after a crash): nothing new to announce.
      await recordBatch(w, [deny, stranger]);
      expect(await deliveriesOf(w.tenant.id, hooks)).toEqual(made);

      const bumped = must((await recordBatch(w, [denyEvent(w)])).alerts_updated[0]);
      made = await deliveriesOf(w.tenant.id, hooks);
      expect(made.slice(3).map((d) => [d.webhook_id, d.event, bodyOf(d).data])).toEqual([[both.id, 'alert.updated', bumped]]);
      expect((await store.webhookDeliveries.list(other.tenant.id, foreign.id)).items).toEqual([]);
    });

    it('writes one command.updated delivery per command change, none for a no-op', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const hook = await store.webhooks.create(a, hookInput(['command.updated']));
      const foreign = await store.webhooks.create(b, hookInput(['command.updated']));
      const input: CommandInput & { id: string } = {
        id: 'cmd-1',
        tenant_id: a,
        tower_id: 'tw-1',
        device_id: 'dev-1',
        type: 'block_app',
        app: 'slack',
        duration_s: 600,
        reason: null,
        source: 'auto',
        rule_id: 'r1',
        expires_at: T0 + 60_000,
      };
      const { command } = await store.commands.createIfAbsent(input);
      expect((await store.commands.createIfAbsent(input)).created).toBe(false);
      const delivered = must(await store.commands.transition(a, command.id, 'delivered', T0 + 1)).command;
      expect(must(await store.commands.transition(a, command.id, 'delivered', T0 + 2)).changed).toBe(false);
      await store.commands.markPublished(a, command.id, T0 + 3);
      const made = await deliveriesOf(a, [hook.id]);
      expect(made.map((d) => [d.event, bodyOf(d).type, bodyOf(d).data])).toEqual([
        ['command.updated', 'command.updated', command],
        ['command.updated', 'command.updated', delivered],
      ]);
      expect(new Set(made.map((d) => bodyOf(d).id)).size).toBe(2);
      expect((await store.webhookDeliveries.list(b, foreign.id)).items).toEqual([]);
    });

    it('writes one delivery per subscriber for each alert workflow step, none for a step that already held', async () => {
      const { recordBatch } = state;
      const w = await seedWorld(store, 'a');
      const other = await seedWorld(store, 'b');
      const steps = await store.webhooks.create(w.tenant.id, hookInput(['alert.acknowledged', 'alert.assigned', 'alert.resolved']));
      const resolvedOnly = await store.webhooks.create(w.tenant.id, hookInput(['alert.resolved']));
      const foreign = await store.webhooks.create(other.tenant.id, hookInput(['alert.acknowledged', 'alert.assigned', 'alert.resolved']));
      const analyst = await store.consoleUsers.create(consoleUser(w.tenant.id, 'ana@a.test'));
      const alert = must((await recordBatch(w, [denyEvent(w)])).alerts_opened[0]);
      const t = w.tenant.id;

      const acked = must(await store.alerts.act(t, alert.id, { kind: 'acknowledge', by: 'u-1', at: T0 + 1 })).alert;
      expect(must(await store.alerts.act(t, alert.id, { kind: 'acknowledge', by: 'u-2', at: T0 + 2 })).step).toBeNull();
      const assigned = must(await store.alerts.act(t, alert.id, { kind: 'assign', assignee: analyst.id, by: 'u-1', at: T0 + 3 })).alert;
      expect(must(await store.alerts.act(t, alert.id, { kind: 'assign', assignee: analyst.id, by: 'u-1', at: T0 + 4 })).step).toBeNull();
      const resolved = must(await store.alerts.act(t, alert.id, { kind: 'resolve', by: 'u-1', at: T0 + 5 })).alert;
      expect(must(await store.alerts.act(t, alert.id, { kind: 'resolve', by: 'u-1', at: T0 + 6 })).step).toBeNull();

      const made = await deliveriesOf(t, [steps.id, resolvedOnly.id]);
      expect(made.map((d) => [d.webhook_id, d.event, d.status, bodyOf(d).type, bodyOf(d).tenant_id, bodyOf(d).data])).toEqual([
        [steps.id, 'alert.acknowledged', 'pending', 'alert.acknowledged', t, acked],
        [steps.id, 'alert.assigned', 'pending', 'alert.assigned', t, assigned],
        [steps.id, 'alert.resolved', 'pending', 'alert.resolved', t, resolved],
        [resolvedOnly.id, 'alert.resolved', 'pending', 'alert.resolved', t, resolved],
      ]);
      // One event id for every subscriber of a step; another for each step.
      expect(bodyOf(made[3]!).id).toBe(bodyOf(made[2]!).id);
      expect(new Set(made.map((d) => bodyOf(d).id)).size).toBe(3);
      expect((await store.webhookDeliveries.list(other.tenant.id, foreign.id)).items).toEqual([]);
    });

    it("writes an alert.assigned delivery for each active alert a deleted account's delete unassigns", async () => {
      const { recordBatch } = state;
      const w = await seedWorld(store, 'a');
      const hook = await store.webhooks.create(w.tenant.id, hookInput(['alert.assigned']));
      const analyst = await store.consoleUsers.create(consoleUser(w.tenant.id, 'ana@a.test'));
      const alert = must((await recordBatch(w, [denyEvent(w)])).alerts_opened[0]);
      await store.alerts.act(w.tenant.id, alert.id, { kind: 'assign', assignee: analyst.id, by: 'u-1', at: T0 + 1 });

      const deletion = must(await store.consoleUsers.delete(w.tenant.id, analyst.id, undefined, { by: 'u-1', at: T0 + 2 }));
      const unassigned = must(deletion.unassigned[0]).alert;
      expect(unassigned).toMatchObject({ id: alert.id, assigned_to: null });
      const made = await deliveriesOf(w.tenant.id, [hook.id]);
      expect(made.map((d) => [d.event, (bodyOf(d).data as Alert).assigned_to])).toEqual([
        ['alert.assigned', analyst.id],
        ['alert.assigned', null],
      ]);
      expect(bodyOf(made[1]!)).toMatchObject({ type: 'alert.assigned', tenant_id: w.tenant.id, data: unassigned });
    });
  });
}
