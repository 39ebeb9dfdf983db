/**
 * Audit (data integrity): alerts stayed assigned to a deleted console account. Deleting an account
 * removed it and its refresh tokens only; its alerts kept `assigned_to` pointing at nobody, so
 * they looked taken care of while appearing in no one's "my alerts". Now the delete unassigns the
 * account's active alerts in its own transaction, each by an ordinary 'unassigned' step of the
 * caller (history, audit of the delete, 'alert.assigned' on the bus); resolved alerts keep their
 * assignee as history. Another tenant's account with the same e-mail is not touched.
 *
 * Assignment racing the delete, both orders made deterministic by committing the other request
 * through the API between the route's checks and its store call: an alert assigned just before
 * the delete's write is unassigned by it, and an assignment whose account is deleted just before
 * its write is refused (404) by the check inside the assignment's transaction.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BusEvents } from '../shared/bus.js';
import type { Alert, AlertEvent, ConsoleUser } from '../shared/domain.js';
import { ASSIGNEE_DELETED_NOTE } from '../shared/store/rules/alerts.js';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let operatorId: string;
const tenants: Record<'a' | 'b', { id: string; owner: Session; ownerId: string; ruleId: string; policyId: string }> = {} as never;
const SHARED = 'shared.analyst@corp.test';
const announced: Array<BusEvents['alert.assigned']> = [];
let seq = 0;

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 100_000 });
  operator = await login(h.app, OPERATOR_EMAIL);
  operatorId = (await h.store.consoleUsers.findByEmail(OPERATOR_EMAIL))!.id;
  for (const [key, name] of [['a', 'Alpha'], ['b', 'Bravo']] as const) {
    const { tenantId, owner, ownerEmail } = await createTenant(h.app, operator, name);
    const policy = await h.store.policies.create(tenantId, { name: 'DLP', severity: 'high' });
    const rule = await h.store.rules.create(tenantId, { policy_id: policy.id, app: 'dropbox', action: 'upload', permission: 'deny' });
    const ownerId = (await h.store.consoleUsers.findAllByEmail(ownerEmail)).find((u) => u.tenant_id === tenantId)!.id;
    tenants[key] = { id: tenantId, owner, ownerId, ruleId: rule.id, policyId: policy.id };
  }
  h.bus.subscribe('alert.assigned', (payload) => announced.push(payload));
});
afterAll(async () => {
  vi.restoreAllMocks();
  await h?.close();
});

async function call(session: Session, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) {
  const res = await h.app.inject({ method, url: `/api/v1${url}`, headers: session.headers, ...(payload !== undefined && { payload }) });
  return { status: res.statusCode, body: res.body ? json<Record<string, unknown>>(res) : {} };
}

async function account(t: 'a' | 'b', email: string, console_role = 'analyst'): Promise<string> {
  return (await post<{ user: ConsoleUser }>(h.app, tenants[t].owner, '/api/v1/console-users', { email, password: PASSWORD, console_role })).user.id;
}

async function openAlert(t: 'a' | 'b'): Promise<string> {
  const { id, ruleId, policyId } = tenants[t];
  const seeded = await seedUsage(
    h.store,
    id,
    'twr-1',
    [{ device_id: `dev-${++seq}`, app: 'dropbox', action: 'upload', effect: 'deny', rule_id: ruleId, policy_id: policyId }],
    h.clock.now,
  );
  return seeded.alerts_opened[0]!.id;
}

async function assign(t: 'a' | 'b', alertId: string, assignee: string, session = tenants[t].owner) {
  return call(session, 'POST', `/dashboard/alerts/${alertId}/assign`, { assignee });
}

async function alertOf(t: 'a' | 'b', alertId: string): Promise<Alert> {
  const res = await call(tenants[t].owner, 'GET', `/dashboard/alerts/${alertId}`);
  expect(res.status).toBe(200);
  return res.body.alert as Alert;
}

async function historyOf(t: 'a' | 'b', alertId: string): Promise<AlertEvent[]> {
  const res = await call(tenants[t].owner, 'GET', `/dashboard/alerts/${alertId}/events`);
  expect(res.status).toBe(200);
  return res.body.events as AlertEvent[];
}

async function listIds(t: 'a' | 'b', query: string): Promise<string[]> {
  const res = await call(tenants[t].owner, 'GET', `/dashboard/alerts?${query}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return (res.body.alerts as Alert[]).map((x) => x.id);
}

describe('deleting a console account that alerts are assigned to', () => {
  it("unassigns its open and acknowledged alerts by the deleter's recorded step; resolved ones and the other tenant's are untouched", async () => {
    const inA = await account('a', SHARED);
    const inB = await account('b', SHARED);
    const [open, acked, resolved] = [await openAlert('a'), await openAlert('a'), await openAlert('a')];
    const other = await openAlert('b');
    for (const id of [open, acked, resolved]) expect((await assign('a', id, SHARED)).status).toBe(200);
    expect((await assign('b', other, SHARED)).body).toMatchObject({ alert: { assigned_to: inB } });
    expect((await call(tenants.a.owner, 'POST', `/dashboard/alerts/${acked}/acknowledge`, {})).status).toBe(200);
    expect((await call(tenants.a.owner, 'POST', `/dashboard/alerts/${resolved}/resolve`, {})).status).toBe(200);
    expect((await listIds('a', `assigned_to=${inA}`)).sort()).toEqual([open, acked, resolved].sort());
    const otherBefore = await alertOf('b', other);
    const otherHistory = await historyOf('b', other);
    const resolvedBefore = await alertOf('a', resolved);

    h.clock.advance(60_000);
    announced.length = 0;
    expect((await call(tenants.a.owner, 'DELETE', `/console-users/${inA}`)).status).toBe(204);

    for (const id of [open, acked]) {
      expect(await alertOf('a', id)).toMatchObject({ assigned_to: null, assigned_at: null, assigned_by: tenants.a.ownerId, note: ASSIGNEE_DELETED_NOTE });
      expect((await historyOf('a', id)).at(-1)).toMatchObject({
        kind: 'unassigned',
        actor_id: tenants.a.ownerId,
        at: h.clock.now,
        assignee: null,
        note: ASSIGNEE_DELETED_NOTE,
      });
    }
    expect(await alertOf('a', acked)).toMatchObject({ status: 'acknowledged', acknowledged_by: tenants.a.ownerId });
    expect(await alertOf('a', resolved)).toEqual(resolvedBefore);
    expect(await listIds('a', 'status=open&assigned_to=' + inA)).toEqual([]);
    expect(await listIds('a', 'status=acknowledged&assigned_to=' + inA)).toEqual([]);
    // Announced like any unassignment, so live feeds and webhooks drop the assignee too.
    expect(announced.map((e) => [e.tenant_id, e.alert.id, e.step.kind, e.alert.assigned_to]).sort()).toEqual(
      [
        [tenants.a.id, open, 'unassigned', null],
        [tenants.a.id, acked, 'unassigned', null],
      ].sort(),
    );

    // Tenant B's account with the same e-mail keeps its alert, its history and its sign-in.
    expect(await alertOf('b', other)).toEqual(otherBefore);
    expect(await historyOf('b', other)).toEqual(otherHistory);
    expect(await listIds('b', `assigned_to=${encodeURIComponent(SHARED)}`)).toEqual([other]);
    expect((await call(tenants.b.owner, 'GET', `/console-users/${inB}`)).status).toBe(200);

    await h.app.auditTrail.flush();
    const entries = (await h.store.audit.list(tenants.a.id, { resource_type: 'console_user', limit: 100 })).items;
    expect(entries.find((e) => e.resource_id === inA && e.action === 'console-users.delete')).toMatchObject({ status_code: 204, before: { id: inA } });
  });

  it("an operator deleting a tenant's owner unassigns the owner's alerts as the operator", async () => {
    const second = await account('a', `owner-${++seq}@alpha.test`, 'owner');
    const alert = await openAlert('a');
    expect((await assign('a', alert, second)).status).toBe(200);
    h.clock.advance(1000);
    expect((await call(operator, 'DELETE', `/tenants/${tenants.a.id}/owners/${second}`)).status).toBe(204);
    expect(await alertOf('a', alert)).toMatchObject({ assigned_to: null, assigned_by: operatorId });
    expect((await historyOf('a', alert)).map((e) => [e.kind, e.actor_id, e.at])).toEqual([
      ['assigned', tenants.a.ownerId, expect.any(Number)],
      ['unassigned', operatorId, h.clock.now],
    ]);
  });
});

describe('assignment racing the deletion of its assignee', () => {
  it('in either order, no alert ends up assigned to the deleted account', async () => {
    // Assigned between the delete's check and its write: the delete's transaction unassigns it.
    const late = await account('a', `late-${++seq}@alpha.test`);
    const first = await openAlert('a');
    const users = h.store.consoleUsers;
    const deleteAccount = users.delete.bind(users);
    vi.spyOn(users, 'delete').mockImplementationOnce(async (...args) => {
      expect((await assign('a', first, late)).body).toMatchObject({ alert: { assigned_to: late } });
      return deleteAccount(...args);
    });
    expect((await call(tenants.a.owner, 'DELETE', `/console-users/${late}`)).status).toBe(204);
    vi.restoreAllMocks();
    expect(await alertOf('a', first)).toMatchObject({ assigned_to: null });
    expect((await historyOf('a', first)).map((e) => e.kind)).toEqual(['assigned', 'unassigned']);

    // Deleted between the assignment's check (the route resolved the assignee) and its write: the
    // check inside the assignment's transaction refuses it (404) and nothing is recorded.
    const gone = await account('a', `gone-${++seq}@alpha.test`);
    const second = await openAlert('a');
    const alerts = h.store.alerts;
    const act = alerts.act.bind(alerts);
    vi.spyOn(alerts, 'act').mockImplementationOnce(async (...args) => {
      expect((await call(tenants.a.owner, 'DELETE', `/console-users/${gone}`)).status).toBe(204);
      return act(...args);
    });
    const res = await assign('a', second, gone);
    vi.restoreAllMocks();
    expect(res).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
    expect(await alertOf('a', second)).toMatchObject({ assigned_to: null, assigned_at: null });
    expect(await historyOf('a', second)).toEqual([]);

    expect(await listIds('a', `assigned_to=${late}`)).toEqual([]);
    expect(await listIds('a', `assigned_to=${gone}`)).toEqual([]);
  });
});
