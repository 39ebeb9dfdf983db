/** Plans through the API: operator CRUD, who reads them, putting tenants on a plan, its device limit. */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '../shared/domain.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let owner: Session;
let viewer: Session;
let tenantId: string;

beforeAll(async () => {
  h = await startHarness();
  operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Acme'));
  await post(h.app, owner, '/api/v1/console-users', { email: 'viewer@acme.test', password: PASSWORD, console_role: 'viewer' });
  viewer = await login(h.app, 'viewer@acme.test');
});
afterAll(async () => {
  await h.close();
});

const as = (s: Session) => (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
  h.app.inject({ method, url, headers: s.headers, ...(payload && { payload }) });

interface ErrorReply {
  error: { code: string; message: string; issues?: Array<{ field: string }> };
}
const fields = (res: LightMyRequestResponse) => json<ErrorReply>(res).error.issues?.map((i) => i.field);

const GOLD = { id: 'gold', name: 'Gold', auto_remediation: true, max_devices: 500, retention_days: 30 };

describe('plans', () => {
  it('the seeded plans are readable by everyone signed in', async () => {
    for (const s of [operator, owner, viewer]) {
      const res = await as(s)('GET', '/api/v1/plans');
      expect(res.statusCode, res.body).toBe(200);
      const ids = json<{ plans: Plan[] }>(res).plans.map((p) => p.id);
      expect(ids).toEqual(expect.arrayContaining(['free', 'premium']));
      expect(json(await as(s)('GET', '/api/v1/plans/premium')).plan).toMatchObject({ id: 'premium', auto_remediation: true });
    }
    expect((await h.app.inject({ method: 'GET', url: '/api/v1/plans' })).statusCode).toBe(401);
    expect((await as(owner)('GET', '/api/v1/plans/nope')).statusCode).toBe(404);
  });

  it('operators create, patch and delete plans', async () => {
    const op = as(operator);
    const created = await op('POST', '/api/v1/plans', GOLD);
    expect(created.statusCode, created.body).toBe(201);
    expect(json<{ plan: Plan }>(created).plan).toMatchObject({ ...GOLD, max_events_per_s: null });
    expect((await op('POST', '/api/v1/plans', GOLD)).statusCode).toBe(409);

    const patched = await op('PATCH', '/api/v1/plans/gold', { max_devices: null, max_events_per_s: 1000 });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(json<{ plan: Plan }>(patched).plan).toMatchObject({ id: 'gold', max_devices: null, max_events_per_s: 1000 });
    expect((await op('PATCH', '/api/v1/plans/nope', { name: 'x' })).statusCode).toBe(404);

    expect((await op('DELETE', '/api/v1/plans/gold')).statusCode).toBe(204);
    expect((await op('GET', '/api/v1/plans/gold')).statusCode).toBe(404);
    expect((await op('DELETE', '/api/v1/plans/gold')).statusCode).toBe(404);
  });

  it('plan bodies are validated, naming the field', async () => {
    const op = as(operator);
    const cases: Array<[object, string]> = [
      [{ ...GOLD, id: 'bad id/' }, 'body.id'],
      [{ ...GOLD, retention_days: 0 }, 'body.retention_days'],
      [{ ...GOLD, max_devices: -1 }, 'body.max_devices'],
      [{ ...GOLD, auto_remediation: 'yes' }, 'body.auto_remediation'],
      [{ ...GOLD, colour: 'gold' }, 'body.colour'],
    ];
    for (const [payload, field] of cases) {
      const res = await op('POST', '/api/v1/plans', payload);
      expect(res.statusCode, res.body).toBe(400);
      expect(fields(res)).toContain(field);
    }
    const noFlag: Partial<typeof GOLD> = { ...GOLD };
    delete noFlag.auto_remediation;
    expect(fields(await op('POST', '/api/v1/plans', noFlag))).toContain('body.auto_remediation');
  });

  it('tenant users cannot write plans', async () => {
    for (const s of [owner, viewer]) {
      expect((await as(s)('POST', '/api/v1/plans', { ...GOLD, id: 'rogue' })).statusCode).toBe(403);
      expect((await as(s)('PATCH', '/api/v1/plans/free', { max_devices: null })).statusCode).toBe(403);
      expect((await as(s)('DELETE', '/api/v1/plans/free')).statusCode).toBe(403);
    }
  });

  it('a plan in use cannot be deleted (409)', async () => {
    await post(h.app, operator, '/api/v1/plans', { ...GOLD, id: 'busy' });
    const res = await post<{ tenant: { id: string; plan_id: string } }>(h.app, operator, '/api/v1/tenants', {
      name: 'Busy',
      plan_id: 'busy',
    });
    expect(res.tenant.plan_id).toBe('busy');
    const del = await as(operator)('DELETE', '/api/v1/plans/busy');
    expect(del.statusCode, del.body).toBe(409);
    expect(json<ErrorReply>(del).error.code).toBe('CONFLICT');
  });
});

describe("a tenant's plan", () => {
  it("defaults to 'free' and the tenant reads it through /tenant and /tenant/plan", async () => {
    expect(json(await as(viewer)('GET', '/api/v1/tenant')).tenant).toMatchObject({ id: tenantId, plan_id: 'free' });
    const res = await as(viewer)('GET', '/api/v1/tenant/plan');
    expect(res.statusCode, res.body).toBe(200);
    expect(json<{ plan: Plan }>(res).plan).toMatchObject({ id: 'free', auto_remediation: false });
    // Operators hold no tenant: /tenant/plan is a tenant route.
    expect((await as(operator)('GET', '/api/v1/tenant/plan')).statusCode).toBe(403);
  });

  it('operators change it; an unknown plan is 404 naming body.plan_id', async () => {
    const op = as(operator);
    const res = await op('PATCH', `/api/v1/tenants/${tenantId}`, { plan_id: 'premium' });
    expect(res.statusCode, res.body).toBe(200);
    expect(json(res).tenant).toMatchObject({ id: tenantId, plan_id: 'premium' });
    expect(json<{ plan: Plan }>(await as(owner)('GET', '/api/v1/tenant/plan')).plan.id).toBe('premium');

    const unknown = await op('PATCH', `/api/v1/tenants/${tenantId}`, { plan_id: 'platinum' });
    expect(unknown.statusCode, unknown.body).toBe(404);
    expect(fields(unknown)).toContain('body.plan_id');
    const onCreate = await op('POST', '/api/v1/tenants', { name: 'Nowhere', plan_id: 'platinum' });
    expect(onCreate.statusCode, onCreate.body).toBe(404);
    expect(fields(onCreate)).toContain('body.plan_id');
    const names = json<{ tenants: Array<{ name: string }> }>(await op('GET', '/api/v1/tenants')).tenants.map((t) => t.name);
    expect(names).not.toContain('Nowhere');
  });

  it('owners cannot change their own plan', async () => {
    const res = await as(owner)('PATCH', '/api/v1/tenant', { plan_id: 'free' });
    expect(res.statusCode, res.body).toBe(400);
    expect(json<ErrorReply>(res).error.code).toBe('VALIDATION_FAILED');
    expect(fields(res)).toEqual(['body.plan_id']);
    expect((await as(owner)('PATCH', `/api/v1/tenants/${tenantId}`, { plan_id: 'free' })).statusCode).toBe(403);
    expect(json(await as(owner)('GET', '/api/v1/tenant')).tenant).toMatchObject({ plan_id: 'premium' });
  });

  it("registering a device beyond the plan's max_devices is 403 PLAN_LIMIT_EXCEEDED", async () => {
    await post(h.app, operator, '/api/v1/plans', { id: 'tiny', name: 'Tiny', auto_remediation: false, max_devices: 1, retention_days: 1 });
    const { tenantId: smallId, owner: smallOwner } = await createTenant(h.app, operator, 'Small');
    expect((await as(operator)('PATCH', `/api/v1/tenants/${smallId}`, { plan_id: 'tiny' })).statusCode).toBe(200);

    await post(h.app, smallOwner, '/api/v1/devices', { id: 'only-one', name: 'first' });
    const over = await as(smallOwner)('POST', '/api/v1/devices', { id: 'one-too-many', name: 'second' });
    expect(over.statusCode, over.body).toBe(403);
    expect(json<ErrorReply>(over).error.code).toBe('PLAN_LIMIT_EXCEEDED');
    const devices = json<{ devices: Array<{ id: string }> }>(await as(smallOwner)('GET', '/api/v1/devices')).devices;
    expect(devices.map((d) => d.id)).toEqual(['only-one']);

    // Raising the limit lifts the refusal at once.
    await as(operator)('PATCH', '/api/v1/plans/tiny', { max_devices: 2 });
    expect((await as(smallOwner)('POST', '/api/v1/devices', { id: 'one-too-many', name: 'second' })).statusCode).toBe(201);
  });
});
