import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let owner: Session;

beforeAll(async () => {
  h = await startHarness();
  operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner } = await createTenant(h.app, operator, 'Acme'));
});
afterAll(async () => {
  await h.close();
});

interface ErrorReply {
  error: { code: string; message: string; issues?: Array<{ field: string; message: string }> };
}

async function expectIssue(
  req: { method: 'GET' | 'POST' | 'PATCH'; url: string; payload?: object; session?: Session },
  status: number,
  code: string,
  field: string,
) {
  const res = await h.app.inject({
    method: req.method,
    url: req.url,
    headers: (req.session ?? owner).headers,
    ...(req.payload && { payload: req.payload }),
  });
  expect(res.statusCode, res.body).toBe(status);
  const body = json<ErrorReply>(res);
  expect(body.error.code).toBe(code);
  expect(body.error.issues?.map((i) => i.field)).toContain(field);
  expect(body.error.message).toContain(field);
}

describe('request validation names the field', () => {
  it('bad body field', async () => {
    await expectIssue({ method: 'POST', url: '/api/v1/devices', payload: { name: '' } }, 400, 'VALIDATION_FAILED', 'body.name');
    await expectIssue({ method: 'POST', url: '/api/v1/devices', payload: {} }, 400, 'VALIDATION_FAILED', 'body.name');
  });

  it('device id must be topic-safe', async () => {
    await expectIssue(
      { method: 'POST', url: '/api/v1/devices', payload: { id: 'bad/id+#', name: 'x' } },
      400,
      'VALIDATION_FAILED',
      'body.id',
    );
  });

  it('unknown body field', async () => {
    await expectIssue(
      { method: 'POST', url: '/api/v1/roles', payload: { name: 'r', colour: 'red' } },
      400,
      'VALIDATION_FAILED',
      'body.colour',
    );
  });

  it('nested body field', async () => {
    await expectIssue(
      { method: 'POST', url: '/api/v1/tenants', payload: { name: 'X', owner: { email: 'x@x.test', password: 'short' } }, session: operator },
      400,
      'VALIDATION_FAILED',
      'body.owner.password',
    );
  });

  it('bad query limit', async () => {
    for (const limit of ['0', '1001', 'abc', '1.5']) {
      await expectIssue({ method: 'GET', url: `/api/v1/devices?limit=${limit}` }, 400, 'VALIDATION_FAILED', 'query.limit');
    }
  });

  it('unknown enum values', async () => {
    await expectIssue(
      { method: 'POST', url: '/api/v1/policies', payload: { name: 'p', severity: 'extreme' } },
      400,
      'VALIDATION_FAILED',
      'body.severity',
    );
    await expectIssue({ method: 'GET', url: '/api/v1/app-usage?effect=maybe' }, 400, 'VALIDATION_FAILED', 'query.effect');
    await expectIssue(
      { method: 'POST', url: '/api/v1/console-users', payload: { email: 'a@acme.test', password: 'long enough password', console_role: 'god' } },
      400,
      'VALIDATION_FAILED',
      'body.console_role',
    );
  });

  it('cursor and page together, and a forged cursor', async () => {
    await expectIssue({ method: 'GET', url: '/api/v1/devices?cursor=abc&page=2' }, 400, 'VALIDATION_FAILED', 'query.page');
    await expectIssue({ method: 'GET', url: '/api/v1/devices?cursor=not-a-real-cursor' }, 400, 'VALIDATION_FAILED', 'query.cursor');
  });

  it('a lone surrogate escape is refused naming the field, so two names cannot collapse into one stored name', async () => {
    const send = (payload: string) =>
      h.app.inject({ method: 'POST', url: '/api/v1/roles', headers: { ...owner.headers, 'content-type': 'application/json' }, payload });
    // Both would be stored as the same U+FFFD text, past the per-tenant name uniqueness.
    for (const name of ['\\ud800', '\\udbff', 'x\\udc00y']) {
      const res = await send(`{"name":"${name}"}`);
      expect(res.statusCode, res.body).toBe(400);
      expect(json<ErrorReply>(res).error.issues).toEqual([{ field: 'body.name', message: expect.stringContaining('surrogate') }]);
    }
    // In a key, and deep inside nesting the call stack could not walk.
    const deep = `${'['.repeat(100_000)}"\\ud800"${']'.repeat(100_000)}`;
    for (const payload of ['{"\\ud800":1}', `{"name":${deep}}`]) {
      const res = await send(payload);
      expect(res.statusCode, res.body).toBe(400);
      expect(json<ErrorReply>(res).error.code).toBe('VALIDATION_FAILED');
    }
    // A well-formed pair, escaped or not, is ordinary text.
    const paired = await send('{"name":"rocket \\ud83d\\ude80 🚀"}');
    expect(paired.statusCode, paired.body).toBe(201);
    expect(json<{ role: { name: string } }>(paired).role.name).toBe('rocket 🚀 🚀');
    const list = json<{ roles: Array<{ name: string }> }>(await h.app.inject({ method: 'GET', url: '/api/v1/roles', headers: owner.headers }));
    expect(list.roles.map((r) => r.name)).toEqual(['rocket 🚀 🚀']);
  });
});

describe('policy rules', () => {
  it('app and action must be catalogue keys or "*"', async () => {
    const { policy } = await post<{ policy: { id: string } }>(h.app, owner, '/api/v1/policies', { name: 'No uploads' });
    await post(h.app, owner, '/api/v1/apps', { key: 'dropbox', name: 'Dropbox' });
    await post(h.app, owner, '/api/v1/actions', { key: 'upload_file', name: 'Upload' });
    const rule = { policy_id: policy.id, app: 'dropbox', action: 'upload_file', permission: 'deny' };

    await expectIssue({ method: 'POST', url: '/api/v1/policy-rules', payload: { ...rule, app: 'slack' } }, 400, 'VALIDATION_FAILED', 'body.app');
    await expectIssue(
      { method: 'POST', url: '/api/v1/policy-rules', payload: { ...rule, action: 'download' } },
      400,
      'VALIDATION_FAILED',
      'body.action',
    );
    await expectIssue(
      { method: 'POST', url: '/api/v1/policy-rules', payload: { ...rule, app: 'Not A Key' } },
      400,
      'VALIDATION_FAILED',
      'body.app',
    );
    await expectIssue(
      { method: 'POST', url: '/api/v1/policy-rules', payload: { ...rule, permission: 'maybe' } },
      400,
      'VALIDATION_FAILED',
      'body.permission',
    );

    const ok = await post<{ rule: { id: string; app: string } }>(h.app, owner, '/api/v1/policy-rules', rule);
    expect(ok.rule.app).toBe('dropbox');
    const wildcard = await post<{ rule: { app: string; action: string } }>(h.app, owner, '/api/v1/policy-rules', {
      ...rule,
      app: '*',
      action: '*',
    });
    expect(wildcard.rule).toMatchObject({ app: '*', action: '*' });

    await expectIssue(
      { method: 'PATCH', url: `/api/v1/policy-rules/${ok.rule.id}`, payload: { app: 'slack' } },
      400,
      'VALIDATION_FAILED',
      'body.app',
    );
  });

  it('a reference to a policy that does not exist is 404 naming the field', async () => {
    await post(h.app, owner, '/api/v1/apps', { key: 'mail', name: 'Mail' });
    await expectIssue(
      { method: 'POST', url: '/api/v1/policy-rules', payload: { policy_id: '01ARZ3NDEKTSV4RRFFQ69G5FAV', app: 'mail', action: '*', permission: 'allow' } },
      404,
      'NOT_FOUND',
      'body.policy_id',
    );
  });
});
