/**
 * Adversarial audit: whose audit trail a failed sign-in lands in. E-mails are unique per tenant
 * only, so any tenant's admin may create a console account under another tenant's owner's
 * e-mail. A failed sign-in is recorded (with the client's address and user agent) in the trail
 * of each tenant whose account it was checked against. A sign-in that names its tenant
 * (`tenant_id`, as the console sends once the user picked one) is checked against that tenant's
 * account only, yet it was recorded in every tenant holding the e-mail: the other tenant read,
 * in its own trail, when and from where the first tenant's owner mistyped a password. Now such
 * an attempt is recorded where it was checked (or on the platform's trail when that tenant has
 * no such account).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

interface Entry {
  action: string;
  tenant_id: string | null;
  actor_id: string | null;
  status_code: number | null;
  ip: string | null;
  user_agent: string | null;
}

let h: Harness;
let tenantA: string;
let ownerA: Session;
let ownerB: Session;
let ownerEmailA: string;

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 1_000_000 });
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ tenantId: tenantA, owner: ownerA, ownerEmail: ownerEmailA } = await createTenant(h.app, operator, 'Alpha'));
  ({ owner: ownerB } = await createTenant(h.app, operator, 'Bravo'));
  // Bravo's owner opens an account under Alpha's owner's e-mail (accepted like any fresh e-mail).
  await post(h.app, ownerB, '/api/v1/console-users', { email: ownerEmailA, password: 'bravo chose this password', console_role: 'viewer' });
});
afterAll(async () => {
  await h.close();
});

async function signInAttempt(payload: object, userAgent: string): Promise<number> {
  const res = await h.app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    remoteAddress: '198.51.100.23',
    headers: { 'user-agent': userAgent },
    payload,
  });
  // Sign-ins are written just after their answer.
  await h.app.auditTrail.flush();
  return res.statusCode;
}

async function signIns(session: Session): Promise<Entry[]> {
  const res = await h.app.inject({ method: 'GET', url: '/api/v1/audit?action=auth.login&limit=1000', headers: session.headers });
  expect(res.statusCode, res.body).toBe(200);
  return json<{ records: Entry[] }>(res).records;
}

describe('a failed sign-in that names its tenant', () => {
  it("is recorded in that tenant's trail only, never in another tenant holding the e-mail", async () => {
    const ua = 'alpha-owner-browser/1';
    expect(await signInAttempt({ email: ownerEmailA, password: 'a typo of the real one', tenant_id: tenantA }, ua)).toBe(401);

    const alpha = (await signIns(ownerA)).filter((e) => e.user_agent === ua);
    expect(alpha).toHaveLength(1);
    expect(alpha[0]).toMatchObject({ tenant_id: tenantA, status_code: 401, ip: '198.51.100.23' });
    // Bravo's account was never checked: Bravo learns nothing of the attempt (time, address, agent).
    expect((await signIns(ownerB)).filter((e) => e.user_agent === ua)).toEqual([]);
  });

  it('naming a tenant without such an account is recorded on the platform trail, not in the tenants holding the e-mail', async () => {
    const ua = 'wrong-tenant-probe/1';
    expect(await signInAttempt({ email: ownerEmailA, password: 'whatever it is', tenant_id: 'no-such-tenant' }, ua)).toBe(401);
    expect((await signIns(ownerA)).filter((e) => e.user_agent === ua)).toEqual([]);
    expect((await signIns(ownerB)).filter((e) => e.user_agent === ua)).toEqual([]);
    const platform = await h.store.audit.list(null, { action: 'auth.login', limit: 1000 });
    expect(platform.items.filter((e) => e.user_agent === ua)).toMatchObject([{ tenant_id: null, actor_id: null, status_code: 401 }]);
  });

  it('without a tenant the attempt was checked against every account of the e-mail, and each tenant records it', async () => {
    const ua = 'unscoped-attempt/1';
    expect(await signInAttempt({ email: ownerEmailA, password: 'matches neither account' }, ua)).toBe(401);
    expect((await signIns(ownerA)).filter((e) => e.user_agent === ua)).toHaveLength(1);
    expect((await signIns(ownerB)).filter((e) => e.user_agent === ua)).toHaveLength(1);
    // And a sign-in that succeeds is recorded in its own tenant only.
    expect(await signInAttempt({ email: ownerEmailA, password: PASSWORD }, 'alpha-ok/1')).toBe(200);
    expect((await signIns(ownerB)).filter((e) => e.user_agent === 'alpha-ok/1')).toEqual([]);
  });
});
