/**
 * The audit trail through the real API: every mutating route family leaves a record of who
 * (actor), what (action, resource, before/after), when (the server clock) and from where (ip,
 * user agent); refused attempts too; secrets never; tenants see only their own trail, operators
 * the platform's; filters and pagination; retention purge by the worker on an injected clock.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../shared/auth/secrets.js';
import { InProcessBus } from '../shared/bus.js';
import type { AuditRecord } from '../shared/domain.js';
import type { AuditFilter } from '../shared/store/port.js';
import { testWorkerContext } from '../workers/test-support.js';
import { RetentionJob } from '../workers/retention-job.js';
import { REDACTED } from './audit.js';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, startHarness, type Harness, type Session } from './test-support.js';

const UA = 'audit-suite/1.0 (+https://example.test)';
const DAY_MS = 86_400_000;

let h: Harness;
let operator: Session;
let operatorId: string;
let owner: Session;
let ownerId: string;
let ownerEmail: string;
let tenantA: string;
let ownerB: Session;
let tenantB: string;
let viewer: Session;

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

function call(session: Session | null, method: Method, url: string, payload?: object): Promise<LightMyRequestResponse> {
  return h.app.inject({
    method,
    url,
    headers: { 'user-agent': UA, ...session?.headers },
    ...(payload !== undefined && { payload }),
  });
}

async function ok<T = Record<string, unknown>>(res: LightMyRequestResponse, status: number): Promise<T> {
  expect(res.statusCode, res.body).toBe(status);
  return status === 204 ? ({} as T) : json<T>(res);
}

/** Every stored record of a scope (after the writes in flight), newest first. */
async function trail(tenantId: string | null, filter: AuditFilter = {}): Promise<AuditRecord[]> {
  await h.app.auditTrail.flush();
  const out: AuditRecord[] = [];
  let cursor: string | null = null;
  do {
    const page = await h.store.audit.list(tenantId, { ...filter, limit: 1000, cursor });
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return out;
}

async function latest(tenantId: string | null, action: string): Promise<AuditRecord> {
  const [entry] = await trail(tenantId, { action });
  if (!entry) throw new Error(`no audit record '${action}' in ${tenantId ?? 'platform'}`);
  return entry;
}

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 100_000 });
  operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId: tenantA, ownerEmail } = await createTenant(h.app, operator, 'Acme'));
  ({ owner: ownerB, tenantId: tenantB } = await createTenant(h.app, operator, 'Globex'));
  ownerId = (await ok<{ user: { id: string } }>(await call(owner, 'GET', '/api/v1/me'), 200)).user.id;
  operatorId = (await ok<{ user: { id: string } }>(await call(operator, 'GET', '/api/v1/me'), 200)).user.id;
  await ok(await call(owner, 'POST', '/api/v1/console-users', { email: 'viewer@acme.test', password: PASSWORD, console_role: 'viewer' }), 201);
  viewer = await login(h.app, 'viewer@acme.test');
});
afterAll(async () => {
  await h.close();
});

describe('who, what, when, where', () => {
  interface Family {
    family: string;
    resource_type: string;
    create: object;
    patch: object;
  }
  const families: Family[] = [
    { family: 'users', resource_type: 'user', create: { name: 'Ada' }, patch: { name: 'Ada Lovelace' } },
    { family: 'roles', resource_type: 'role', create: { name: 'field' }, patch: { description: 'on site' } },
    { family: 'policies', resource_type: 'policy', create: { name: 'No uploads' }, patch: { severity: 'critical' } },
    { family: 'apps', resource_type: 'app', create: { key: 'slack', name: 'Slack' }, patch: { name: 'Slack Enterprise' } },
    { family: 'actions', resource_type: 'action', create: { key: 'upload_file', name: 'Upload' }, patch: { name: 'Upload a file' } },
    { family: 'devices', resource_type: 'device', create: { id: 'dev-audit-1', name: 'phone' }, patch: { os: 'android' } },
    {
      family: 'webhooks',
      resource_type: 'webhook',
      create: { url: 'https://hooks.example.test/a', events: ['alert.opened'] },
      patch: { enabled: false },
    },
  ];

  it.each(families)('$family: create, update and delete are recorded with before and after', async (f) => {
    const url = `/api/v1/${f.family}`;
    const who = {
      tenant_id: tenantA,
      actor_kind: 'console_user',
      actor_id: ownerId,
      actor_label: ownerEmail,
      ip: '127.0.0.1',
      user_agent: UA,
    };

    h.clock.advance(1000);
    const createdAt = h.clock.now;
    const created = Object.values(await ok<Record<string, { id: string }>>(await call(owner, 'POST', url, f.create), 201))[0]!;
    expect(await latest(tenantA, `${f.family}.create`)).toMatchObject({
      ...who,
      resource_type: f.resource_type,
      resource_id: created.id,
      method: 'POST',
      path: url,
      status_code: 201,
      before: null,
      after: created,
      at: createdAt,
    });

    h.clock.advance(1000);
    const updated = Object.values(await ok<Record<string, { id: string }>>(await call(owner, 'PATCH', `${url}/${created.id}`, f.patch), 200))[0]!;
    expect(updated).toMatchObject(f.patch);
    expect(await latest(tenantA, `${f.family}.update`)).toMatchObject({
      ...who,
      resource_id: created.id,
      method: 'PATCH',
      path: `${url}/${created.id}`,
      status_code: 200,
      before: created,
      after: updated,
      at: h.clock.now,
    });

    h.clock.advance(1000);
    await ok(await call(owner, 'DELETE', `${url}/${created.id}`), 204);
    expect(await latest(tenantA, `${f.family}.delete`)).toMatchObject({
      ...who,
      resource_id: created.id,
      method: 'DELETE',
      status_code: 204,
      before: updated,
      after: null,
      at: h.clock.now,
    });
  });

  it('policy rules, assignments, console users, the tenant and manual remediations', async () => {
    const policy = (await ok<{ policy: { id: string } }>(await call(owner, 'POST', '/api/v1/policies', { name: 'P' }), 201)).policy;
    await ok(await call(owner, 'POST', '/api/v1/apps', { key: 'dropbox', name: 'Dropbox' }), 201);
    await ok(await call(owner, 'POST', '/api/v1/actions', { key: 'upload', name: 'Upload' }), 201);
    const rule = (
      await ok<{ rule: { id: string; permission: string } }>(
        await call(owner, 'POST', '/api/v1/policy-rules', { policy_id: policy.id, app: 'dropbox', action: 'upload', permission: 'deny' }),
        201,
      )
    ).rule;
    expect(await latest(tenantA, 'policy-rules.create')).toMatchObject({ resource_type: 'rule', resource_id: rule.id, after: rule });
    const patched = (await ok<{ rule: object }>(await call(owner, 'PATCH', `/api/v1/policy-rules/${rule.id}`, { permission: 'allow' }), 200)).rule;
    expect(await latest(tenantA, 'policy-rules.update')).toMatchObject({ before: rule, after: patched });
    await ok(await call(owner, 'DELETE', `/api/v1/policy-rules/${rule.id}`), 204);
    expect(await latest(tenantA, 'policy-rules.delete')).toMatchObject({ before: patched, after: null });

    // Links: the resource is the pair.
    const user = (await ok<{ user: { id: string } }>(await call(owner, 'POST', '/api/v1/users', { name: 'Bob' }), 201)).user;
    const role = (await ok<{ role: { id: string } }>(await call(owner, 'POST', '/api/v1/roles', { name: 'sales' }), 201)).role;
    await ok(await call(owner, 'POST', '/api/v1/users/roles/assign', { user_id: user.id, role_id: role.id }), 200);
    expect(await latest(tenantA, 'user-roles.assign')).toMatchObject({
      resource_type: 'user_role',
      resource_id: `${user.id}/${role.id}`,
      after: { user_id: user.id, role_id: role.id, assigned: true },
    });
    await ok(await call(owner, 'DELETE', `/api/v1/users/${user.id}/roles/${role.id}`), 204);
    expect(await latest(tenantA, 'user-roles.unassign')).toMatchObject({ before: { user_id: user.id, role_id: role.id }, after: null });
    await ok(await call(owner, 'POST', '/api/v1/roles/policies/assign', { role_id: role.id, policy_id: policy.id }), 200);
    expect(await latest(tenantA, 'role-policies.assign')).toMatchObject({ resource_id: `${role.id}/${policy.id}` });
    await ok(await call(owner, 'DELETE', `/api/v1/roles/${role.id}/policies/${policy.id}`), 204);
    expect(await latest(tenantA, 'role-policies.unassign')).toMatchObject({ status_code: 204 });

    const cu = (
      await ok<{ user: { id: string } }>(
        await call(owner, 'POST', '/api/v1/console-users', { email: 'analyst@acme.test', password: PASSWORD, console_role: 'analyst' }),
        201,
      )
    ).user;
    const cuEntry = await latest(tenantA, 'console-users.create');
    expect(cuEntry).toMatchObject({ resource_type: 'console_user', resource_id: cu.id, after: { email: 'analyst@acme.test', console_role: 'analyst' } });
    expect(cuEntry.after).not.toHaveProperty('password_hash');

    await ok(await call(owner, 'PATCH', '/api/v1/tenant', { alert_window_s: 600 }), 200);
    expect(await latest(tenantA, 'tenant.update')).toMatchObject({
      resource_type: 'tenant',
      resource_id: tenantA,
      before: { id: tenantA, alert_window_s: 300 },
      after: { id: tenantA, alert_window_s: 600 },
    });

    await ok(await call(owner, 'POST', '/api/v1/devices', { id: 'dev-remediate', name: 'x' }), 201);
    await seedUsage(h.store, tenantA, 'twr-audit', [{ device_id: 'dev-remediate', app: 'dropbox', action: 'upload', effect: 'allow' }]);
    const command = (
      await ok<{ command: { id: string } }>(
        await call(owner, 'POST', '/api/v1/remedial-actions', { device_id: 'dev-remediate', type: 'notify', reason: 'audit' }),
        201,
      )
    ).command;
    expect(await latest(tenantA, 'remedial-actions.create')).toMatchObject({
      resource_type: 'command',
      resource_id: command.id,
      after: { id: command.id, status: 'pending', issued_by: ownerId, tower_id: 'twr-audit' },
    });
  });

  it('platform changes by operators are platform records (tenant_id null)', async () => {
    const who = { tenant_id: null, actor_kind: 'console_user', actor_id: operatorId, actor_label: OPERATOR_EMAIL };
    const tenant = (await ok<{ tenant: { id: string } }>(await call(operator, 'POST', '/api/v1/tenants', { name: 'Initech' }), 201)).tenant;
    expect(await latest(null, 'tenants.create')).toMatchObject({
      ...who,
      resource_type: 'tenant',
      resource_id: tenant.id,
      after: { tenant, owner: null },
    });
    await ok(await call(operator, 'PATCH', `/api/v1/tenants/${tenant.id}`, { plan_id: 'premium' }), 200);
    expect(await latest(null, 'tenants.update')).toMatchObject({ ...who, before: { plan_id: 'free' }, after: { plan_id: 'premium' } });

    const plan = { id: 'gold', name: 'Gold', auto_remediation: true, retention_days: 30 };
    await ok(await call(operator, 'POST', '/api/v1/plans', plan), 201);
    await ok(await call(operator, 'PATCH', '/api/v1/plans/gold', { retention_days: 60 }), 200);
    await ok(await call(operator, 'DELETE', '/api/v1/plans/gold'), 204);
    expect(await latest(null, 'plans.create')).toMatchObject({ ...who, resource_id: 'gold', after: plan });
    expect(await latest(null, 'plans.update')).toMatchObject({ before: { retention_days: 30 }, after: { retention_days: 60 } });
    expect(await latest(null, 'plans.delete')).toMatchObject({ before: { retention_days: 60 }, after: null });

    await ok(await call(operator, 'POST', '/api/v1/towers', { id: 'twr-p1', name: 'North' }), 201);
    await ok(await call(operator, 'PATCH', '/api/v1/towers/twr-p1', { name: 'North 2' }), 200);
    expect(await latest(null, 'towers.update')).toMatchObject({ resource_id: 'twr-p1', before: { name: 'North' }, after: { name: 'North 2' } });
    const carrier = (await ok<{ carrier: { id: string } }>(await call(operator, 'POST', '/api/v1/carriers', { name: 'Orange' }), 201)).carrier;
    await ok(await call(operator, 'PATCH', `/api/v1/carriers/${carrier.id}`, { mcc_mnc: '20801' }), 200);
    expect(await latest(null, 'carriers.update')).toMatchObject({ before: { mcc_mnc: null }, after: { mcc_mnc: '20801' } });
    await ok(await call(operator, 'POST', '/api/v1/towers/twr-p1/carriers', { carrier_id: carrier.id }), 200);
    expect(await latest(null, 'tower-carriers.link')).toMatchObject({ resource_id: `twr-p1/${carrier.id}`, after: { linked: true } });
    await ok(await call(operator, 'DELETE', `/api/v1/towers/twr-p1/carriers/${carrier.id}`), 204);
    expect(await latest(null, 'tower-carriers.unlink')).toMatchObject({ status_code: 204 });
    await ok(await call(operator, 'DELETE', `/api/v1/carriers/${carrier.id}`), 204);
    expect(await latest(null, 'carriers.delete')).toMatchObject({ before: { id: carrier.id, name: 'Orange' } });

    const issued = await ok<{ credential: { id: string } }>(await call(operator, 'POST', '/api/v1/towers/twr-p1/credentials'), 201);
    expect(await latest(null, 'tower-credentials.create')).toMatchObject({ resource_id: issued.credential.id, after: issued.credential });
    h.clock.advance(1000);
    await ok(await call(operator, 'DELETE', `/api/v1/towers/twr-p1/credentials/${issued.credential.id}`), 204);
    expect(await latest(null, 'tower-credentials.revoke')).toMatchObject({
      before: { id: issued.credential.id, revoked_at: null },
      after: { id: issued.credential.id, revoked_at: h.clock.now },
    });
    await ok(await call(operator, 'DELETE', '/api/v1/towers/twr-p1'), 204);
    expect(await latest(null, 'towers.delete')).toMatchObject({ before: { id: 'twr-p1', name: 'North 2' } });

    // None of it reached a tenant's trail.
    expect((await trail(tenantA)).filter((e) => e.actor_id === operatorId)).toEqual([]);
  });

  it('sign-in, refresh and sign-out are recorded by e-mail, in the account’s tenant', async () => {
    const session = await login(h.app, ownerEmail);
    const signIn = await latest(tenantA, 'auth.login');
    expect(signIn).toMatchObject({
      actor_kind: 'console_user',
      actor_id: ownerId,
      actor_label: ownerEmail,
      resource_type: 'console_user',
      resource_id: ownerId,
      status_code: 200,
      before: null,
      after: null,
    });
    await ok(await call(null, 'POST', '/api/v1/auth/refresh', { refresh_token: session.refresh }), 200);
    expect(await latest(tenantA, 'auth.refresh')).toMatchObject({ actor_id: ownerId, actor_label: ownerEmail, status_code: 200 });
    await ok(await call(null, 'POST', '/api/v1/auth/logout', { refresh_token: session.refresh }), 204);
    expect(await latest(tenantA, 'auth.logout')).toMatchObject({ actor_id: ownerId, status_code: 204 });

    // Failed attempts: against a tenant account in that tenant's trail, against nobody on the platform's.
    await ok(await call(null, 'POST', '/api/v1/auth/login', { email: ownerEmail, password: 'not the password' }), 401);
    expect(await latest(tenantA, 'auth.login')).toMatchObject({ actor_id: ownerId, actor_label: ownerEmail, status_code: 401 });
    await ok(await call(null, 'POST', '/api/v1/auth/login', { email: 'mallory@evil.test', password: 'guess' }), 401);
    expect(await latest(null, 'auth.login')).toMatchObject({ actor_id: null, actor_label: 'mallory@evil.test', status_code: 401 });
  });

  it('API keys are recorded as the actor by id and name', async () => {
    const created = await ok<{ api_key: { id: string }; key: string }>(
      await call(owner, 'POST', '/api/v1/api-keys', { name: 'provisioner', scopes: ['devices:write', 'devices:read'] }),
      201,
    );
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: { authorization: `Bearer ${created.key}`, 'user-agent': UA },
      payload: { id: 'dev-by-key', name: 'provisioned' },
    });
    await ok(res, 201);
    expect(await latest(tenantA, 'devices.create')).toMatchObject({
      tenant_id: tenantA,
      actor_kind: 'api_key',
      actor_id: created.api_key.id,
      actor_label: 'provisioner',
      resource_id: 'dev-by-key',
    });
    expect(await trail(tenantA, { actor_kind: 'api_key' })).toHaveLength(1);
  });
});

describe('refused attempts', () => {
  it('a forbidden, an unauthenticated, an invalid and a 404 call are recorded, with nothing after', async () => {
    const viewerId = (await ok<{ user: { id: string } }>(await call(viewer, 'GET', '/api/v1/me'), 200)).user.id;
    await ok(await call(viewer, 'POST', '/api/v1/devices', { name: 'sneaky' }), 403);
    expect(await latest(tenantA, 'devices.create')).toMatchObject({
      actor_id: viewerId,
      actor_label: 'viewer@acme.test',
      status_code: 403,
      resource_id: null,
      after: null,
    });

    await ok(await call(null, 'DELETE', '/api/v1/devices/dev-x'), 401);
    expect(await latest(null, 'devices.delete')).toMatchObject({ actor_id: null, status_code: 401, resource_id: 'dev-x', ip: '127.0.0.1' });

    await ok(await call(owner, 'POST', '/api/v1/roles', { name: '' }), 400);
    expect(await latest(tenantA, 'roles.create')).toMatchObject({ actor_id: ownerId, status_code: 400, after: null });

    await ok(await call(owner, 'PATCH', '/api/v1/users/01ARZ3NDEKTSV4RRFFQ69G5FAV', { name: 'ghost' }), 404);
    expect(await latest(tenantA, 'users.update')).toMatchObject({
      status_code: 404,
      resource_id: '01ARZ3NDEKTSV4RRFFQ69G5FAV',
      before: null,
      after: null,
    });
  });

  it('an API key refused for its scope, or after revocation, still names itself', async () => {
    const created = await ok<{ api_key: { id: string }; key: string }>(
      await call(owner, 'POST', '/api/v1/api-keys', { name: 'read-only', scopes: ['devices:read'] }),
      201,
    );
    const withKey = (url: string, payload: object) =>
      h.app.inject({ method: 'POST', url, headers: { 'x-api-key': created.key, 'user-agent': UA }, payload });
    await ok(await withKey('/api/v1/devices', { name: 'nope' }), 403);
    expect(await latest(tenantA, 'devices.create')).toMatchObject({
      actor_kind: 'api_key',
      actor_id: created.api_key.id,
      actor_label: 'read-only',
      status_code: 403,
    });
    await ok(await call(owner, 'DELETE', `/api/v1/api-keys/${created.api_key.id}`), 204);
    await ok(await withKey('/api/v1/roles', { name: 'nope' }), 401);
    expect(await latest(tenantA, 'roles.create')).toMatchObject({ actor_kind: 'api_key', actor_id: created.api_key.id, status_code: 401 });
  });

  it('another tenant’s id is a 404 recorded in the caller’s trail, not the owner’s', async () => {
    const device = (await ok<{ device: { id: string } }>(await call(owner, 'POST', '/api/v1/devices', { id: 'dev-a-only', name: 'A' }), 201)).device;
    await ok(await call(ownerB, 'DELETE', `/api/v1/devices/${device.id}`), 404);
    expect(await latest(tenantB, 'devices.delete')).toMatchObject({ tenant_id: tenantB, status_code: 404, before: null });
    expect((await trail(tenantA, { resource_id: device.id })).map((e) => e.action)).toEqual(['devices.create']);
  });

  it('a mutating route that fills nothing still gets a generic entry', async () => {
    // api-keys.ts describes nothing: the hook names the entry after the route.
    const created = await ok<{ api_key: { id: string } }>(
      await call(owner, 'POST', '/api/v1/api-keys', { name: 'generic', scopes: ['devices:read'] }),
      201,
    );
    await ok(await call(owner, 'DELETE', `/api/v1/api-keys/${created.api_key.id}`), 204);
    const entries = await trail(tenantA, { resource_id: created.api_key.id });
    const generic = entries.find((e) => e.method === 'DELETE');
    expect(generic).toMatchObject({
      actor_id: ownerId,
      status_code: 204,
      path: `/api/v1/api-keys/${created.api_key.id}`,
    });
    // Either the route describes itself or the generic name applies; never an empty action.
    expect(generic?.action).toMatch(/^(DELETE \/api\/v1\/api-keys\/:id|[a-z-]+\.[a-z]+)$/);
  });
});

describe('secrets', () => {
  it('never reach the store: passwords, tokens, webhook and tower secrets, API keys, hashes', async () => {
    const secrets: string[] = [PASSWORD];
    const webhook = await ok<{ secret: string }>(
      await call(owner, 'POST', '/api/v1/webhooks', { url: 'https://hooks.example.test/s', events: ['command.updated'] }),
      201,
    );
    secrets.push(webhook.secret);
    await ok(await call(operator, 'POST', '/api/v1/towers', { id: 'twr-secret', name: 'S' }), 201);
    const cred = await ok<{ mqtt: { password: string } }>(await call(operator, 'POST', '/api/v1/towers/twr-secret/credentials'), 201);
    const towerSecret = cred.mqtt.password.split('.')[1]!;
    secrets.push(cred.mqtt.password, towerSecret, sha256(towerSecret));
    const key = await ok<{ key: string }>(await call(owner, 'POST', '/api/v1/api-keys', { name: 'k', scopes: ['devices:read'] }), 201);
    secrets.push(key.key, sha256(key.key));
    await ok(
      await call(owner, 'POST', '/api/v1/console-users', { email: 'admin2@acme.test', password: 'another long passphrase', console_role: 'admin' }),
      201,
    );
    secrets.push('another long passphrase');
    const session = await login(h.app, 'admin2@acme.test', 'another long passphrase');
    secrets.push(session.access, session.refresh, sha256(session.refresh));
    const refreshed = await ok<{ access_token: string; refresh_token: string }>(
      await call(null, 'POST', '/api/v1/auth/refresh', { refresh_token: session.refresh }),
      200,
    );
    secrets.push(refreshed.access_token, refreshed.refresh_token);
    await ok(await call(null, 'POST', '/api/v1/auth/logout', { refresh_token: refreshed.refresh_token }), 204);
    const hash = (await h.store.consoleUsers.findByEmail('admin2@acme.test'))!.password_hash;
    secrets.push(hash);

    const stored = JSON.stringify([...(await trail(tenantA)), ...(await trail(tenantB)), ...(await trail(null))]);
    for (const secret of secrets) expect(stored.includes(secret), `secret leaked: ${secret.slice(0, 8)}…`).toBe(false);
    // The records that were written are there (the check above is not vacuous).
    expect(stored).toContain('webhooks.create');
    expect(stored).toContain('tower-credentials.create');
    expect(stored).toContain('auth.refresh');
  });

  it('redacts secret-named fields at any depth, whatever a handler passes', async () => {
    const { redactSecrets } = await import('./audit.js');
    expect(
      redactSecrets({ name: 'x', key: 'slack', secret: 's', nested: { password_hash: 'h', refresh_token: 't', list: [{ api_key: 'k' }] } }),
    ).toEqual({ name: 'x', key: 'slack', secret: REDACTED, nested: { password_hash: REDACTED, refresh_token: REDACTED, list: [{ api_key: REDACTED }] } });
  });
});

describe('reading the trail', () => {
  it('tenant users see their tenant only; operators see the platform only; analysts and viewers nothing', async () => {
    const a = await ok<{ records: AuditRecord[] }>(await call(owner, 'GET', '/api/v1/audit?limit=1000'), 200);
    expect(a.records.length).toBeGreaterThan(10);
    expect(new Set(a.records.map((r) => r.tenant_id))).toEqual(new Set([tenantA]));
    const b = await ok<{ records: AuditRecord[] }>(await call(ownerB, 'GET', '/api/v1/audit?limit=1000'), 200);
    expect(b.records.every((r) => r.tenant_id === tenantB)).toBe(true);
    const aIds = new Set(a.records.map((r) => r.id));
    expect(b.records.some((r) => aIds.has(r.id))).toBe(false);
    const p = await ok<{ records: AuditRecord[] }>(await call(operator, 'GET', '/api/v1/audit?limit=1000'), 200);
    expect(p.records.every((r) => r.tenant_id === null)).toBe(true);
    expect(p.records.map((r) => r.action)).toContain('tenants.create');

    const one = a.records[0]!;
    expect((await ok<{ record: AuditRecord }>(await call(owner, 'GET', `/api/v1/audit/${one.id}`), 200)).record).toEqual(one);
    await ok(await call(ownerB, 'GET', `/api/v1/audit/${one.id}`), 404);
    await ok(await call(operator, 'GET', `/api/v1/audit/${one.id}`), 404);
    await ok(await call(viewer, 'GET', '/api/v1/audit'), 403);
    // Reads are not audited (exports are: see export.test.ts).
    expect((await trail(tenantA)).some((e) => e.method === 'GET')).toBe(false);
  });

  it('filters by actor, action, resource and time, and pages with a cursor', async () => {
    const get = async (query: string) =>
      (await ok<{ records: AuditRecord[]; next_cursor: string | null }>(await call(owner, 'GET', `/api/v1/audit?${query}`), 200));
    const start = h.clock.now + 1;
    h.clock.advance(10_000);
    const ids: string[] = [];
    for (const name of ['f1', 'f2', 'f3']) {
      h.clock.advance(1000);
      ids.push((await ok<{ role: { id: string } }>(await call(owner, 'POST', '/api/v1/roles', { name }), 201)).role.id);
    }
    const end = h.clock.now;
    await h.app.auditTrail.flush();

    const byTime = await get(`since=${start}&until=${end + 1}&action=roles.create`);
    expect(byTime.records.map((r) => r.resource_id)).toEqual([...ids].reverse());
    expect((await get(`since=${start}&until=${end}&action=roles.create`)).records).toHaveLength(2);
    expect((await get(`resource_type=role&resource_id=${ids[1]}`)).records.map((r) => r.action)).toEqual(['roles.create']);
    const mine = await get(`actor_id=${ownerId}&actor_kind=console_user&limit=1000`);
    expect(mine.records.every((r) => r.actor_id === ownerId && r.actor_kind === 'console_user')).toBe(true);
    expect((await get('actor_kind=system')).records).toEqual([]);

    const pages: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { records: AuditRecord[]; next_cursor: string | null } = await get(
        `since=${start}&action=roles.create&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      pages.push(...page.records.map((r) => r.resource_id ?? ''));
      cursor = page.next_cursor;
    } while (cursor !== null);
    expect(pages).toEqual([...ids].reverse());

    await ok(await call(owner, 'GET', `/api/v1/audit?since=${end}&until=${start}`), 400);
    await ok(await call(owner, 'GET', '/api/v1/audit?actor_kind=robot'), 400);
  });
});

describe('retention', () => {
  it('PATCH /tenant sets audit_retention_days within bounds; the retention job purges older records per tenant', async () => {
    const res = await call(owner, 'PATCH', '/api/v1/tenant', { audit_retention_days: 1 });
    expect(res.statusCode).toBe(400);
    expect(json<{ error: { issues: Array<{ field: string }> } }>(res).error.issues[0]?.field).toBe('body.audit_retention_days');
    expect((await ok<{ tenant: { audit_retention_days: number } }>(await call(owner, 'GET', '/api/v1/tenant'), 200)).tenant.audit_retention_days).toBe(365);

    const oldA = (await trail(tenantA)).length;
    const oldB = (await trail(tenantB)).length;
    expect(oldA).toBeGreaterThan(0);
    expect(oldB).toBeGreaterThan(0);

    h.clock.advance(40 * DAY_MS);
    // Re-sign in: the clock jump expired the access tokens.
    const owner2 = await login(h.app, ownerEmail);
    const patched = await ok<{ tenant: { audit_retention_days: number } }>(
      await call(owner2, 'PATCH', '/api/v1/tenant', { audit_retention_days: 30 }),
      200,
    );
    expect(patched.tenant.audit_retention_days).toBe(30);
    expect(await latest(tenantA, 'tenant.update')).toMatchObject({
      before: { audit_retention_days: 365 },
      after: { audit_retention_days: 30 },
    });

    const job = new RetentionJob(
      testWorkerContext({ store: h.store, bus: new InProcessBus(), downlink: { publish: async () => {} }, now: () => h.clock.now }),
      { intervalS: 3600 },
    );
    const purged = await job.run();
    expect(purged.audit).toBe(oldA);
    // What is left is what happened within the last 30 days: the new sign-in and the PATCH.
    expect((await trail(tenantA)).map((e) => e.action).sort()).toEqual(['auth.login', 'tenant.update']);
    // Globex keeps the default 365 days.
    expect(await trail(tenantB)).toHaveLength(oldB);
  });
});
