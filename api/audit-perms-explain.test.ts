/**
 * Explanations reveal only what the caller may read. `GET /app-usage/{id}/explain` needs only
 * `usage:read` and `POST /policies/explain` only `policies:read`, yet both answered the user's
 * roles, the policies' names and every matching rule: an API key scoped to usage read the tenant's
 * rules and roles through them. Now each part needs its own read permission (every console role
 * holds them all) and `redacted` names what was left out. Real scoped API keys and console roles.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import type { Explanation } from '../shared/policy/explain.js';
import { TENANT_CONSOLE_ROLES } from '../shared/domain.js';
import { createdId, send, signInEveryRole, type RoleSessions } from './test-routes.js';
import { json, post, startHarness, type Harness, type Session } from './test-support.js';

const newId = createIdFactory();
const POLICY_NAME = 'Confidential uploads';

let h: Harness;
let sessions: RoleSessions;
let tenantId: string;
let roleId: string;
let userId: string;
let ruleId: string;
let eventId: string;

interface EventReply {
  explanation: Explanation;
  redacted: string[];
}

/** A session whose bearer is a new API key of the owner's with exactly `scopes`. */
async function keyWith(scopes: string[]): Promise<Session> {
  const { key } = await post<{ key: string }>(h.app, sessions.owner, '/api/v1/api-keys', { name: `key ${scopes.join(' ')}`, scopes });
  return { access: key, refresh: '', headers: { authorization: `Bearer ${key}` } };
}

async function explainEvent(session: Session) {
  return send(h, session, { method: 'GET', url: `/api/v1/app-usage/${eventId}/explain` });
}

async function explainHypothetical(session: Session) {
  return send(h, session, { method: 'POST', url: '/api/v1/policies/explain', payload: { device_id: 'perm-phone', app: 'dropbox', action: 'upload' } });
}

beforeAll(async () => {
  h = await startHarness();
  ({ sessions, tenantId } = await signInEveryRole(h, 'ExplainPerms'));
  const owner = sessions.owner;
  userId = createdId(await post(h.app, owner, '/api/v1/users', { name: 'Jane' }));
  roleId = createdId(await post(h.app, owner, '/api/v1/roles', { name: 'sales' }));
  await post(h.app, owner, '/api/v1/apps', { key: 'dropbox', name: 'Dropbox' });
  await post(h.app, owner, '/api/v1/actions', { key: 'upload', name: 'Upload' });
  const policyId = createdId(await post(h.app, owner, '/api/v1/policies', { name: POLICY_NAME, severity: 'high' }));
  ruleId = createdId(await post(h.app, owner, '/api/v1/policy-rules', { policy_id: policyId, app: 'dropbox', action: '*', permission: 'deny' }));
  await post(h.app, owner, '/api/v1/users/roles/assign', { user_id: userId, role_id: roleId }, 200);
  await post(h.app, owner, '/api/v1/roles/policies/assign', { role_id: roleId, policy_id: policyId }, 200);
  await post(h.app, owner, '/api/v1/devices', { id: 'perm-phone', name: 'phone', user_id: userId });

  // One event, decided by that rule at the live version, recorded as the pipeline records it.
  const version = (await h.store.tenants.get(tenantId))!.policy_version;
  eventId = newId();
  const now = h.clock.now;
  const batchId = newId();
  await h.store.usage.recordBatch({
    tenant_id: tenantId,
    tower_id: 'tower-1',
    batch_id: batchId,
    now,
    alert_window_s: 300,
    records: [
      {
        id: eventId,
        tenant_id: tenantId,
        tower_id: 'tower-1',
        batch_id: batchId,
        device_id: 'perm-phone',
        user_id: userId,
        app: 'dropbox',
        action: 'upload',
        bytes: null,
        ts: now,
        received_at: now,
        effect: 'deny',
        reason: 'rule',
        rule_id: ruleId,
        policy_id: policyId,
        policy_version: version,
        severity: 'high',
      },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

describe('GET /app-usage/{id}/explain', () => {
  it('gives a usage:read key the decision only: no roles, policy names or matching rules', async () => {
    const res = await explainEvent(await keyWith(['usage:read']));
    expect(res.statusCode, res.body).toBe(200);
    const body = json<EventReply>(res);
    expect(body.redacted).toEqual(['roles:read', 'policies:read', 'rules:read']);
    expect(body.explanation).toMatchObject({ effect: 'deny', reason: 'rule', rule_id: ruleId, roles: [], matches: [] });
    expect(body.explanation.summary).toMatch(/^Denied by rule /);
    // Nothing the key may not read appears anywhere in the answer.
    expect(res.body).not.toContain(POLICY_NAME);
    expect(res.body).not.toContain(roleId);
  });

  it('adds each part with its permission: rules without roles or policy names', async () => {
    const body = json<EventReply>(await explainEvent(await keyWith(['usage:read', 'rules:read'])));
    expect(body.redacted).toEqual(['roles:read', 'policies:read']);
    expect(body.explanation.roles).toEqual([]);
    expect(body.explanation.matches).toEqual([expect.objectContaining({ rule_id: ruleId, policy_name: null, via_roles: [], outcome: 'decided' })]);
  });

  it('gives the whole explanation to a key holding every part, and to every console role', async () => {
    const full = [await keyWith(['usage:read', 'roles:read', 'policies:read', 'rules:read']), ...TENANT_CONSOLE_ROLES.map((r) => sessions[r])];
    for (const session of full) {
      const body = json<EventReply>(await explainEvent(session));
      expect(body.redacted).toEqual([]);
      expect(body.explanation.roles).toEqual([{ role_id: roleId, policies: [expect.objectContaining({ name: POLICY_NAME })] }]);
      expect(body.explanation.matches).toEqual([expect.objectContaining({ rule_id: ruleId, policy_name: POLICY_NAME, via_roles: [roleId] })]);
      expect(body.explanation.summary).toContain(POLICY_NAME);
    }
  });
});

describe('POST /policies/explain', () => {
  it('shows a policies:read key no matching rules nor roles', async () => {
    const res = await explainHypothetical(await keyWith(['policies:read']));
    expect(res.statusCode, res.body).toBe(200);
    const body = json<EventReply>(res);
    expect(body.redacted).toEqual(['roles:read', 'rules:read', 'devices:read']);
    expect(body.explanation).toMatchObject({ effect: 'deny', rule_id: ruleId, roles: [], matches: [], user_id: null, device: { id: 'perm-phone', owner_user_id: null } });
    expect(res.body).not.toContain(roleId);
    // Who owns the device is devices:read's.
    expect(res.body).not.toContain(userId);
  });

  it('shows the rules to a key that also holds rules:read and roles:read, and to every console role', async () => {
    const full = [await keyWith(['policies:read', 'rules:read', 'roles:read', 'devices:read']), ...TENANT_CONSOLE_ROLES.map((r) => sessions[r])];
    for (const session of full) {
      const body = json<EventReply>(await explainHypothetical(session));
      expect(body.redacted).toEqual([]);
      expect(body.explanation.matches.map((m) => m.rule_id)).toEqual([ruleId]);
      expect(body.explanation.roles.map((r) => r.role_id)).toEqual([roleId]);
    }
  });
});

describe('policy versions under policies:read', () => {
  const HIDDEN = ['rules:read', 'roles:read', 'users:read', 'devices:read'];

  async function reads(session: Session) {
    const version = (await h.store.tenants.get(tenantId))!.policy_version;
    const get = (url: string) => send(h, session, { method: 'GET', url: `/api/v1${url}` });
    return { one: await get(`/policy-versions/${version}`), list: await get('/policy-versions?limit=100'), diff: await get(`/policy-versions/${version}/diff?against=1`) };
  }

  it("show a policies:read key no rule, role link, user's roles or device owner, in content, diff or change lists", async () => {
    const { one, list, diff } = await reads(await keyWith(['policies:read']));
    for (const res of [one, list, diff]) {
      expect(res.statusCode, res.body).toBe(200);
      expect(json<{ redacted: string[] }>(res).redacted).toEqual(HIDDEN);
      for (const secret of ['perm-phone', roleId, userId, ruleId]) expect(res.body).not.toContain(secret);
    }
    expect(json<{ content: object }>(one).content).toMatchObject({ rules: [], role_policies: [], user_roles: [], devices: [] });
    expect(one.body).toContain(POLICY_NAME);
  });

  it('show all of it to a key holding those scopes, and to every console role', async () => {
    const full = [await keyWith(['policies:read', ...HIDDEN]), ...TENANT_CONSOLE_ROLES.map((r) => sessions[r])];
    for (const session of full) {
      const { one, list, diff } = await reads(session);
      for (const res of [one, list, diff]) {
        expect(json<{ redacted: string[] }>(res).redacted).toEqual([]);
        for (const secret of ['perm-phone', roleId, ruleId]) expect(res.body).toContain(secret);
      }
    }
  });
});

describe('usage CSV export', () => {
  const csv = async (session: Session) => {
    const res = await send(h, session, { method: 'GET', url: '/api/v1/app-usage?format=csv' });
    expect(res.statusCode, res.body).toBe(200);
    return res.body;
  };

  it('leaves the user, policy and rule names a usage:read key may not read empty (the columns stay)', async () => {
    const body = await csv(await keyWith(['usage:read']));
    expect(body.split('\n')[0]!.split(',')).toEqual(expect.arrayContaining(['user_name', 'policy_name', 'rule']));
    expect(body).toContain(ruleId);
    for (const name of ['Jane', POLICY_NAME, 'deny dropbox/*']) expect(body).not.toContain(name);
  });

  it('fills them for a key holding users:read, policies:read and rules:read, and for console roles', async () => {
    for (const session of [await keyWith(['usage:read', 'users:read', 'policies:read', 'rules:read']), sessions.viewer]) {
      const body = await csv(session);
      for (const name of ['Jane', POLICY_NAME, 'deny dropbox/*']) expect(body).toContain(name);
    }
  });
});

describe('GET /devices/{id}/policies', () => {
  it("needs devices:read as well as policies:read: it names the device's owner", async () => {
    const url = '/api/v1/devices/perm-phone/policies';
    const policiesOnly = await send(h, await keyWith(['policies:read']), { method: 'GET', url });
    expect(policiesOnly.statusCode, policiesOnly.body).toBe(403);
    expect(policiesOnly.body).toContain('devices:read');
    expect(policiesOnly.body).not.toContain(userId);
    for (const session of [await keyWith(['policies:read', 'devices:read']), sessions.viewer]) {
      const res = await send(h, session, { method: 'GET', url });
      expect(res.statusCode, res.body).toBe(200);
      expect(json<{ user_id: string }>(res).user_id).toBe(userId);
    }
  });
});
