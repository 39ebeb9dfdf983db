/**
 * Audit (webhooks exactly once): the alert workflow steps (acknowledge, assign, resolve, and the
 * unassignments of a deleted console account) got their webhook deliveries from WebhookNotifier
 * when the API's bus announcement arrived, so an API process killed between a step's commit and
 * its announcement lost that step's webhook for good. Now the store writes them in the step's own
 * transaction (the outbox, shared/store/rules/webhook-outbox.ts). Here the announcement is lost
 * (the bus throws, as a process dying there would leave it): every step still has exactly one
 * delivery per subscribed webhook of its tenant, all with one event id, and a repeated step (no
 * change) writes none.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Alert, ConsoleUser, WebhookDelivery, WebhookEventType } from '../shared/domain.js';
import type { WebhookEventBody } from '../shared/store/rules/webhook-outbox.js';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, login, post, startHarness, type Harness, type Session } from './test-support.js';

const STEPS: WebhookEventType[] = ['alert.acknowledged', 'alert.assigned', 'alert.resolved'];

let h: Harness;
let owner: Session;
let tenantId: string;
let otherTenantId: string;
let ruleId: string;
let policyId: string;
const hooks: { all: string; resolved: string; other: string } = { all: '', resolved: '', other: '' };
let seq = 0;

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 100_000 });
  const operator = await login(h.app, OPERATOR_EMAIL);
  const created = await createTenant(h.app, operator, 'Alpha');
  tenantId = created.tenantId;
  owner = created.owner;
  otherTenantId = (await createTenant(h.app, operator, 'Bravo')).tenantId;
  const policy = await h.store.policies.create(tenantId, { name: 'DLP', severity: 'high' });
  policyId = policy.id;
  ruleId = (await h.store.rules.create(tenantId, { policy_id: policy.id, app: 'dropbox', action: 'upload', permission: 'deny' })).id;
  const url = 'https://hooks.example.com/edgeplane';
  hooks.all = (await h.store.webhooks.create(tenantId, { url, events: STEPS, secret: 's1' })).id;
  hooks.resolved = (await h.store.webhooks.create(tenantId, { url, events: ['alert.resolved'], secret: 's2' })).id;
  hooks.other = (await h.store.webhooks.create(otherTenantId, { url, events: STEPS, secret: 's3' })).id;
  // The API process "dies" at every workflow announcement: nothing reaches the bus.
  const publish = h.bus.publish.bind(h.bus);
  vi.spyOn(h.bus, 'publish').mockImplementation(((event: string, payload: never) => {
    if ((STEPS as string[]).includes(event)) throw new Error(`killed before announcing ${event}`);
    publish(event as never, payload);
  }) as typeof h.bus.publish);
});
afterAll(async () => {
  vi.restoreAllMocks();
  await h?.close();
});

async function openAlert(): Promise<string> {
  const seeded = await seedUsage(
    h.store,
    tenantId,
    'twr-1',
    [{ device_id: `dev-${++seq}`, app: 'dropbox', action: 'upload', effect: 'deny', rule_id: ruleId, policy_id: policyId }],
    h.clock.now,
  );
  return seeded.alerts_opened[0]!.id;
}

async function step(alertId: string, kind: 'acknowledge' | 'assign' | 'resolve', payload: object = {}): Promise<number> {
  const res = await h.app.inject({ method: 'POST', url: `/api/v1/dashboard/alerts/${alertId}/${kind}`, headers: owner.headers, payload });
  return res.statusCode;
}

/** The alert's deliveries per webhook: [event, alert status, assigned_to, event id]. */
async function deliveriesOf(alertId: string, tenant: string, hook: string): Promise<Array<[string, string, string | null, string]>> {
  const items: WebhookDelivery[] = (await h.store.webhookDeliveries.list(tenant, hook, { limit: 100 })).items;
  return items
    .map((d) => ({ d, body: JSON.parse(d.body) as WebhookEventBody }))
    .filter(({ body }) => (body.data as Alert).id === alertId)
    .sort((x, y) => x.d.created_at - y.d.created_at || x.d.id.localeCompare(y.d.id))
    .map(({ d, body }) => {
      expect(body).toMatchObject({ type: d.event, tenant_id: tenant });
      const alert = body.data as Alert;
      return [d.event, alert.status, alert.assigned_to, body.id];
    });
}

describe('alert workflow webhooks when the announcement is lost', () => {
  it('each step has one delivery per subscribed webhook, one event id for all; a repeated step none', async () => {
    const alertId = await openAlert();
    const analyst = (await post<{ user: ConsoleUser }>(h.app, owner, '/api/v1/console-users', { email: 'ana@corp.test', password: PASSWORD, console_role: 'analyst' })).user.id;

    // Committed, then the announcement throws: the request fails, the step stands.
    expect(await step(alertId, 'acknowledge')).toBe(500);
    expect(await step(alertId, 'acknowledge')).toBe(200);
    expect(await step(alertId, 'assign', { assignee: analyst })).toBe(500);
    expect(await step(alertId, 'assign', { assignee: analyst })).toBe(200);
    expect(await step(alertId, 'resolve')).toBe(500);
    expect(await step(alertId, 'resolve')).toBe(200);

    const all = await deliveriesOf(alertId, tenantId, hooks.all);
    expect(all.map(([event, status, assignee]) => [event, status, assignee])).toEqual([
      ['alert.acknowledged', 'acknowledged', null],
      ['alert.assigned', 'acknowledged', analyst],
      ['alert.resolved', 'resolved', analyst],
    ]);
    const resolved = await deliveriesOf(alertId, tenantId, hooks.resolved);
    expect(resolved.map(([event]) => event)).toEqual(['alert.resolved']);
    expect(resolved[0]![3]).toBe(all[2]![3]);
    expect(await deliveriesOf(alertId, otherTenantId, hooks.other)).toEqual([]);
  });

  it("a deleted account's unassignments have their deliveries", async () => {
    const alertId = await openAlert();
    const analyst = (await post<{ user: ConsoleUser }>(h.app, owner, '/api/v1/console-users', { email: 'bob@corp.test', password: PASSWORD, console_role: 'analyst' })).user.id;
    expect(await step(alertId, 'assign', { assignee: analyst })).toBe(500);

    const res = await h.app.inject({ method: 'DELETE', url: `/api/v1/console-users/${analyst}`, headers: owner.headers });
    expect(res.statusCode).toBe(500);
    expect(await h.store.consoleUsers.get(analyst)).toBeNull();

    const all = await deliveriesOf(alertId, tenantId, hooks.all);
    expect(all.map(([event, status, assignee]) => [event, status, assignee])).toEqual([
      ['alert.assigned', 'open', analyst],
      ['alert.assigned', 'open', null],
    ]);
    expect(await deliveriesOf(alertId, tenantId, hooks.resolved)).toEqual([]);
  });
});
