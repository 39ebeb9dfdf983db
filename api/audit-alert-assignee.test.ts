/**
 * Adversarial audit: an alert assignee named by e-mail resolves to the account of the caller's
 * tenant even when other tenants (or the operator) hold an account with the same e-mail.
 * E-mails are unique per tenant only, so looking the e-mail up platform-wide found whichever
 * account signs in first: another tenant's made the caller's own account unreachable by e-mail,
 * and the 404 told the caller that the e-mail had an account elsewhere (an enumeration oracle
 * the console-users routes are careful never to offer).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Alert } from '../shared/domain.js';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let ownerA: Session;
let ownerB: Session;
let tenantB: string;
let alertB: string;
let sharedInA: string;
let sharedInB: string;
const SHARED = 'shared.person@corp.test';

beforeAll(async () => {
  h = await startHarness();
  const operator = await login(h.app, OPERATOR_EMAIL);
  const a = await createTenant(h.app, operator, 'Alpha');
  const b = await createTenant(h.app, operator, 'Bravo');
  ownerA = a.owner;
  ownerB = b.owner;
  tenantB = b.tenantId;
  // Tenant A's account is created first, so it is first in sign-in order for the e-mail.
  sharedInA = (await post<{ user: { id: string } }>(h.app, ownerA, '/api/v1/console-users', { email: SHARED, password: PASSWORD, console_role: 'viewer' })).user.id;
  sharedInB = (await post<{ user: { id: string } }>(h.app, ownerB, '/api/v1/console-users', { email: SHARED, password: `${PASSWORD} b`, console_role: 'admin' })).user.id;
  const user = await h.store.users.create(tenantB, { name: 'Ada' });
  const policy = await h.store.policies.create(tenantB, { name: 'DLP', severity: 'high' });
  const rule = await h.store.rules.create(tenantB, { policy_id: policy.id, app: 'dropbox', action: 'upload', permission: 'deny' });
  const seeded = await seedUsage(h.store, tenantB, 'twr-1', [
    { device_id: 'dev-b', user_id: user.id, app: 'dropbox', action: 'upload', effect: 'deny', rule_id: rule.id, policy_id: policy.id },
  ]);
  alertB = seeded.alerts_opened[0]!.id;
});
afterAll(async () => {
  await h.close();
});

describe('alert assignee by e-mail shared with another tenant', () => {
  it("assigns the caller's own account, never another tenant's", async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: `/api/v1/dashboard/alerts/${alertB}/assign`,
      headers: ownerB.headers,
      payload: { assignee: SHARED.toUpperCase() },
    });
    expect(res.statusCode).toBe(200);
    expect(json<{ alert: Alert }>(res).alert.assigned_to).toBe(sharedInB);
    expect(json<{ alert: Alert }>(res).alert.assigned_to).not.toBe(sharedInA);
  });

  it('filters the alert list by that e-mail', async () => {
    const res = await h.app.inject({
      method: 'GET',
      url: `/api/v1/dashboard/alerts?assigned_to=${encodeURIComponent(SHARED)}`,
      headers: ownerB.headers,
    });
    expect(res.statusCode).toBe(200);
    expect(json<{ alerts: Alert[] }>(res).alerts.map((x) => x.id)).toEqual([alertB]);
  });

  it("answers the same whether or not the e-mail (or the operator's) has an account elsewhere", async () => {
    const assign = async (email: string) => {
      await post(h.app, ownerB, '/api/v1/console-users', { email, password: PASSWORD, console_role: 'viewer' });
      return h.app.inject({ method: 'POST', url: `/api/v1/dashboard/alerts/${alertB}/assign`, headers: ownerB.headers, payload: { assignee: email } });
    };
    expect((await assign('only-in-bravo@corp.test')).statusCode).toBe(200);
    expect((await assign(OPERATOR_EMAIL)).statusCode).toBe(200);
  });
});
