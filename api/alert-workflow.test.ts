/**
 * The alert workflow over the real API: acknowledge, assign (id, e-mail or 'me'), resolve, each
 * with who/when and a note, audited, announced on the bus and pushed to the live alerts feed over
 * a real WebSocket; a resolved alert that fires again starts a new alert; the list filters by
 * status, assignee, app, severity and time.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { BusEvents } from '../shared/bus.js';
import type { Alert, AlertEvent } from '../shared/domain.js';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let owner: Session;
let admin: Session;
let adminId: string;
let tenantId: string;
let otherOwnerEmail: string;
let world: { userId: string; policyId: string; ruleId: string };
const steps: Array<{ event: string; payload: BusEvents['alert.acknowledged'] }> = [];

async function call(session: Session, method: 'GET' | 'POST', url: string, payload?: object) {
  const res = await h.app.inject({ method, url, headers: session.headers, ...(payload !== undefined && { payload }) });
  return { status: res.statusCode, body: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {} };
}

async function deny(device = 'dev-1', at = h.clock.now): Promise<Alert[]> {
  const res = await seedUsage(
    h.store,
    tenantId,
    'twr-1',
    [{ device_id: device, user_id: world.userId, app: 'dropbox', action: 'upload', effect: 'deny', rule_id: world.ruleId, policy_id: world.policyId }],
    at,
  );
  return [...res.alerts_opened, ...res.alerts_updated];
}

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 100_000 });
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Workflow'));
  const created = await post<{ user: { id: string } }>(h.app, owner, '/api/v1/console-users', { email: 'admin@workflow.test', password: PASSWORD, console_role: 'admin' });
  adminId = created.user.id;
  admin = await login(h.app, 'admin@workflow.test');
  otherOwnerEmail = (await createTenant(h.app, operator, 'Elsewhere')).ownerEmail;
  const user = await h.store.users.create(tenantId, { name: 'Ada', email: 'ada@workflow.test' });
  const policy = await h.store.policies.create(tenantId, { name: 'DLP', severity: 'high' });
  const rule = await h.store.rules.create(tenantId, { policy_id: policy.id, app: 'dropbox', action: 'upload', permission: 'deny' });
  world = { userId: user.id, policyId: policy.id, ruleId: rule.id };
  for (const event of ['alert.acknowledged', 'alert.assigned', 'alert.resolved'] as const) {
    h.bus.subscribe(event, (payload) => steps.push({ event, payload }));
  }
});
afterAll(async () => {
  await h.close();
});

describe('alert workflow', () => {
  it('acknowledges, assigns and resolves with who, when and a note; repeats change nothing', async () => {
    const [alert] = await deny('dev-flow');
    const url = `/api/v1/dashboard/alerts/${alert!.id}`;
    steps.length = 0;

    h.clock.advance(1000);
    const ack = await call(admin, 'POST', `${url}/acknowledge`, { note: 'looking into it' });
    expect(ack.status).toBe(200);
    expect(ack.body).toMatchObject({ changed: true, alert: { status: 'acknowledged', acknowledged_by: adminId, acknowledged_at: h.clock.now, note: 'looking into it' } });
    expect((await call(owner, 'POST', `${url}/acknowledge`, {})).body).toMatchObject({ changed: false, alert: { acknowledged_by: adminId } });

    const mine = await call(admin, 'POST', `${url}/assign`, { assignee: 'me' });
    expect(mine.body).toMatchObject({ changed: true, alert: { assigned_to: adminId, assigned_by: adminId } });
    const byEmail = await call(admin, 'POST', `${url}/assign`, { assignee: 'OWNER@workflow.test', note: 'yours' });
    expect(byEmail.status).toBe(200);
    const ownerId = (byEmail.body.alert as Alert).assigned_to;
    expect(ownerId).not.toBe(adminId);
    expect((await call(admin, 'POST', `${url}/assign`, { assignee: otherOwnerEmail })).status).toBe(404);
    expect((await call(admin, 'POST', `${url}/assign`, { assignee: 'nobody@workflow.test' })).body).toMatchObject({ error: { code: 'NOT_FOUND' } });

    h.clock.advance(1000);
    const resolved = await call(owner, 'POST', `${url}/resolve`, { note: 'contractor briefed' });
    expect(resolved.body).toMatchObject({ changed: true, alert: { status: 'resolved', resolved_at: h.clock.now, note: 'contractor briefed' } });
    expect((await call(owner, 'POST', `${url}/resolve`)).body).toMatchObject({ changed: false });
    const late = await call(admin, 'POST', `${url}/acknowledge`, {});
    expect(late).toMatchObject({ status: 409, body: { error: { code: 'CONFLICT' } } });

    const history = await call(admin, 'GET', `${url}/events`);
    expect((history.body.events as AlertEvent[]).map((e) => [e.kind, e.actor_id, e.note])).toEqual([
      ['acknowledged', adminId, 'looking into it'],
      ['assigned', adminId, null],
      ['assigned', adminId, 'yours'],
      ['resolved', ownerId, 'contractor briefed'],
    ]);
    expect(steps.map((s) => [s.event, s.payload.step.kind, s.payload.alert.status])).toEqual([
      ['alert.acknowledged', 'acknowledged', 'acknowledged'],
      ['alert.assigned', 'assigned', 'acknowledged'],
      ['alert.assigned', 'assigned', 'acknowledged'],
      ['alert.resolved', 'resolved', 'resolved'],
    ]);

    await h.app.auditTrail.flush();
    const audit = (await h.store.audit.list(tenantId, { resource_type: 'alert', limit: 100 })).items;
    expect(audit.filter((a) => a.resource_id === alert!.id).map((a) => [a.action, a.status_code]).reverse()).toEqual([
      ['alerts.acknowledge', 200],
      ['alerts.acknowledge', 200],
      ['alerts.assign', 200],
      ['alerts.assign', 200],
      ['alerts.assign', 404],
      ['alerts.assign', 404],
      ['alerts.resolve', 200],
      ['alerts.resolve', 200],
      ['alerts.acknowledge', 409],
    ]);
    const ackEntry = audit.find((a) => a.action === 'alerts.acknowledge' && a.status_code === 200 && a.actor_id === adminId);
    expect(ackEntry).toMatchObject({ actor_label: 'admin@workflow.test', before: { status: 'open' }, after: { status: 'acknowledged', note: 'looking into it' } });
  });

  it('a resolved alert that fires again starts a new alert; an acknowledged one keeps counting', async () => {
    const [first] = await deny('dev-again');
    await call(owner, 'POST', `/api/v1/dashboard/alerts/${first!.id}/acknowledge`, {});
    const [bumped] = await deny('dev-again');
    expect(bumped).toMatchObject({ id: first!.id, count: 2, status: 'acknowledged' });
    await call(owner, 'POST', `/api/v1/dashboard/alerts/${first!.id}/resolve`, {});
    const [fresh] = await deny('dev-again');
    expect(fresh).toMatchObject({ status: 'open', count: 1 });
    expect(fresh!.id).not.toBe(first!.id);
    const open = await call(owner, 'GET', '/api/v1/dashboard/alerts?device_id=dev-again');
    expect((open.body.alerts as Alert[]).map((a) => [a.id, a.status])).toEqual([
      [fresh!.id, 'open'],
      [first!.id, 'resolved'],
    ]);
  });

  it("'me' needs a console user: an API key may act but not be the assignee", async () => {
    const [alert] = await deny('dev-key');
    const { key } = await post<{ key: string }>(h.app, owner, '/api/v1/api-keys', { name: 'soar', scopes: ['alerts:write', 'alerts:read'] });
    const headers = { authorization: `Bearer ${key}` };
    const viaKey = await h.app.inject({ method: 'POST', url: `/api/v1/dashboard/alerts/${alert!.id}/acknowledge`, headers, payload: { note: 'auto-triage' } });
    expect(json<{ alert: Alert }>(viaKey).alert.acknowledged_by).toMatch(/^api_key:/);
    const me = await h.app.inject({ method: 'POST', url: `/api/v1/dashboard/alerts/${alert!.id}/assign`, headers, payload: { assignee: 'me' } });
    expect(me.statusCode).toBe(400);
    expect(me.body).toContain('body.assignee');
  });

  it('lists by status, assignee, app, severity and an ISO 8601 window', async () => {
    const [alert] = await deny('dev-filter', h.clock.now);
    await call(admin, 'POST', `/api/v1/dashboard/alerts/${alert!.id}/assign`, { assignee: 'me' });
    const ids = async (session: Session, query: string) =>
      ((await call(session, 'GET', `/api/v1/dashboard/alerts?${query}`)).body.alerts as Alert[] | undefined)?.map((a) => a.id);
    expect(await ids(admin, 'assigned_to=me&status=open')).toEqual([alert!.id]);
    expect(await ids(owner, 'assigned_to=admin%40workflow.test&device_id=dev-filter')).toEqual([alert!.id]);
    expect(await ids(owner, 'assigned_to=nobody%40workflow.test')).toEqual([]);
    expect(await ids(owner, 'app=dropbox&severity=high&device_id=dev-filter')).toEqual([alert!.id]);
    expect(await ids(owner, 'severity=low')).toEqual([]);
    const at = new Date(h.clock.now).toISOString();
    expect(await ids(owner, `since=${encodeURIComponent(at)}&device_id=dev-filter`)).toEqual([alert!.id]);
    expect(await ids(owner, `until=${encodeURIComponent(at)}&device_id=dev-filter`)).toEqual([]);
    const bad = await call(owner, 'GET', '/api/v1/dashboard/alerts?since=yesterday');
    expect(bad).toMatchObject({ status: 400, body: { error: { issues: [{ field: 'query.since' }] } } });
    expect((await call(owner, 'GET', '/api/v1/dashboard/alerts?severity=urgent')).status).toBe(400);
  });

  it('pushes each step to the live alerts feed', async () => {
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = h.app.server.address() as AddressInfo;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/alerts`, ['bearer', owner.access]);
    const messages: Array<{ type: string; data: { alert?: Alert; step?: AlertEvent } }> = [];
    const next = () => new Promise<(typeof messages)[number]>((resolve) => ws.once('message', (raw: Buffer) => resolve(JSON.parse(raw.toString('utf8')))));
    expect((await next()).type).toBe('ready');
    // Usage written straight to the store raises no bus event; the workflow steps do.
    const [alert] = await deny('dev-live');
    const ack = next();
    await call(admin, 'POST', `/api/v1/dashboard/alerts/${alert!.id}/acknowledge`, { note: 'on it' });
    messages.push(await ack);
    const resolved = next();
    await call(admin, 'POST', `/api/v1/dashboard/alerts/${alert!.id}/resolve`, {});
    messages.push(await resolved);
    ws.close();
    await once(ws, 'close');
    expect(messages.map((m) => [m.type, m.data.alert?.status ?? null, m.data.step?.kind ?? null])).toEqual([
      ['alert.acknowledged', 'acknowledged', 'acknowledged'],
      ['alert.resolved', 'resolved', 'resolved'],
    ]);
    expect(messages[0]!.data.step).toMatchObject({ actor_id: adminId, note: 'on it' });
  });
});
