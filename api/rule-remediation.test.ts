/** Policy rules carrying a remediation and an escalation: validation and round trip. */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PolicyRule } from '../shared/domain.js';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let owner: Session;
let policyId: string;

beforeAll(async () => {
  h = await startHarness();
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner } = await createTenant(h.app, operator, 'Acme'));
  policyId = (await post<{ policy: { id: string } }>(h.app, owner, '/api/v1/policies', { name: 'No uploads' })).policy.id;
  await post(h.app, owner, '/api/v1/apps', { key: 'dropbox', name: 'Dropbox' });
});
afterAll(async () => {
  await h.close();
});

const call = (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object) =>
  h.app.inject({ method, url, headers: owner.headers, ...(payload && { payload }) });

function expect400(res: LightMyRequestResponse, field: string, message?: RegExp) {
  expect(res.statusCode, res.body).toBe(400);
  const { error } = json<{ error: { code: string; message: string; issues: Array<{ field: string }> } }>(res);
  expect(error.code).toBe('VALIDATION_FAILED');
  expect(error.issues.map((i) => i.field)).toContain(field);
  if (message) expect(error.message).toMatch(message);
}

const REMEDIATION = { type: 'block_app', duration_s: 3600 };
const ESCALATION = { threshold: 3, window_s: 600, remediation: { type: 'quarantine', duration_s: 86_400 } };
const rule = (extra: object = {}) => ({ policy_id: policyId, app: 'dropbox', action: '*', permission: 'deny', ...extra });

describe('rule remediation', () => {
  it('round-trips remediation and escalation, and both default to null', async () => {
    const plain = await post<{ rule: PolicyRule }>(h.app, owner, '/api/v1/policy-rules', rule());
    expect(plain.rule).toMatchObject({ remediation: null, escalation: null });

    const created = await post<{ rule: PolicyRule }>(
      h.app,
      owner,
      '/api/v1/policy-rules',
      rule({ remediation: REMEDIATION, escalation: ESCALATION }),
    );
    expect(created.rule).toMatchObject({ remediation: REMEDIATION, escalation: ESCALATION });
    const got = json<{ rule: PolicyRule }>(await call('GET', `/api/v1/policy-rules/${created.rule.id}`)).rule;
    expect(got).toMatchObject({ remediation: REMEDIATION, escalation: ESCALATION });
    const listed = json<{ rules: PolicyRule[] }>(await call('GET', `/api/v1/policy-rules?policy_id=${policyId}`)).rules;
    expect(listed.find((r) => r.id === created.rule.id)).toMatchObject({ remediation: REMEDIATION });

    const patched = await call('PATCH', `/api/v1/policy-rules/${created.rule.id}`, {
      remediation: { type: 'notify', duration_s: 60 },
      escalation: null,
    });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(json<{ rule: PolicyRule }>(patched).rule).toMatchObject({ remediation: { type: 'notify', duration_s: 60 }, escalation: null });

    // Clearing the remediation and allowing in one patch is consistent.
    const allowed = await call('PATCH', `/api/v1/policy-rules/${created.rule.id}`, { permission: 'allow', remediation: null });
    expect(allowed.statusCode, allowed.body).toBe(200);
    expect(json<{ rule: PolicyRule }>(allowed).rule).toMatchObject({ permission: 'allow', remediation: null, escalation: null });
  });

  it('only deny rules remediate', async () => {
    expect400(
      await call('POST', '/api/v1/policy-rules', rule({ permission: 'allow', remediation: REMEDIATION })),
      'body.remediation',
      /only deny rules remediate/,
    );
    expect400(
      await call('POST', '/api/v1/policy-rules', rule({ permission: 'allow', escalation: ESCALATION })),
      'body.escalation',
      /only deny rules remediate/,
    );
    // null on an allow rule is fine.
    await post(h.app, owner, '/api/v1/policy-rules', rule({ permission: 'allow', remediation: null, escalation: null }));

    const allow = await post<{ rule: PolicyRule }>(h.app, owner, '/api/v1/policy-rules', rule({ permission: 'allow' }));
    expect400(await call('PATCH', `/api/v1/policy-rules/${allow.rule.id}`, { remediation: REMEDIATION }), 'body.remediation');
    // Turning a remediating deny rule into an allow rule without clearing the remediation.
    const deny = await post<{ rule: PolicyRule }>(h.app, owner, '/api/v1/policy-rules', rule({ remediation: REMEDIATION }));
    expect400(await call('PATCH', `/api/v1/policy-rules/${deny.rule.id}`, { permission: 'allow' }), 'body.remediation');
    const unchanged = json<{ rule: PolicyRule }>(await call('GET', `/api/v1/policy-rules/${deny.rule.id}`)).rule;
    expect(unchanged).toMatchObject({ permission: 'deny', remediation: REMEDIATION });
  });

  it('remediation and escalation shapes are validated, naming the field', async () => {
    const cases: Array<[object, string]> = [
      [{ remediation: { type: 'explode', duration_s: 60 } }, 'body.remediation.type'],
      [{ remediation: { type: 'unblock_device', duration_s: 60 } }, 'body.remediation.type'],
      [{ remediation: { type: 'block_device', duration_s: 0 } }, 'body.remediation.duration_s'],
      [{ remediation: { type: 'block_device', duration_s: 2_592_001 } }, 'body.remediation.duration_s'],
      [{ remediation: { type: 'block_device' } }, 'body.remediation.duration_s'],
      [{ remediation: { type: 'block_device', duration_s: 60, extra: 1 } }, 'body.remediation.extra'],
      [{ escalation: { ...ESCALATION, threshold: 1 } }, 'body.escalation.threshold'],
      [{ escalation: { ...ESCALATION, threshold: 1001 } }, 'body.escalation.threshold'],
      [{ escalation: { ...ESCALATION, window_s: 86_401 } }, 'body.escalation.window_s'],
      [{ escalation: { ...ESCALATION, remediation: { type: 'notify', duration_s: -1 } } }, 'body.escalation.remediation.duration_s'],
      [{ escalation: { threshold: 3, window_s: 60 } }, 'body.escalation.remediation'],
    ];
    for (const [extra, field] of cases) expect400(await call('POST', '/api/v1/policy-rules', rule(extra)), field);
    // The longest duration is accepted.
    await post(h.app, owner, '/api/v1/policy-rules', rule({ remediation: { type: 'block_device', duration_s: 2_592_000 } }));
  });
});
