/**
 * Input hygiene audit: human names cannot carry controls, bidi overrides or invisible characters
 * (which made lookalike "unique" names and names that display as others), and integer query
 * values are plain decimal digits (z.coerce.number() read "0x10" as 16 and "1e2" as 100).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, createTenant, json, login, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let owner: Session;
let tenantId: string;

beforeAll(async () => {
  // Hundreds of refused requests from one principal: lift the per-minute limit.
  h = await startHarness({ rateLimitPerMin: 100_000 });
  operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Acme'));
});
afterAll(async () => {
  await h.close();
});

interface ErrorReply {
  error: { code: string; message: string; issues?: Array<{ field: string; message: string }> };
}

type Method = 'GET' | 'POST' | 'PATCH';

async function send(method: Method, url: string, payload?: object, session: Session = owner) {
  return h.app.inject({ method, url, headers: session.headers, ...(payload && { payload }) });
}

async function expect400(method: Method, url: string, field: string, payload?: object, session: Session = owner): Promise<string> {
  const res = await send(method, url, payload, session);
  expect(res.statusCode, `${method} ${url} ${JSON.stringify(payload)}: ${res.body}`).toBe(400);
  const body = json<ErrorReply>(res);
  expect(body.error.code).toBe('VALIDATION_FAILED');
  expect(body.error.issues?.map((i) => i.field)).toContain(field);
  return body.error.message;
}

describe('human names', () => {
  const BAD = {
    nul: 'eng\u0000ineer',
    newline: 'engi\nneer',
    c1: 'engineer\u0085x',
    rlo: '\u202Egnp.exe',
    isolate: 'a\u2066b\u2069',
    zwsp: 'engineer\u200B',
    bom: 'eng\uFEFFineer',
    wordJoiner: 'engi\u2060neer',
    strayZwj: 'engineer\u200D',
    zwnjInAscii: 'engi\u200Cneer',
  };

  it('every route that takes a name refuses controls, bidi overrides and invisible characters, naming the field', async () => {
    const role = json<{ role: { id: string } }>(await send('POST', '/api/v1/roles', { name: 'engineer' })).role;
    const tenantRoutes: Array<[Method, string, (name: string) => object, string]> = [
      ['POST', '/api/v1/roles', (name) => ({ name }), 'body.name'],
      ['PATCH', `/api/v1/roles/${role.id}`, (name) => ({ name }), 'body.name'],
      ['POST', '/api/v1/users', (name) => ({ name }), 'body.name'],
      ['POST', '/api/v1/policies', (name) => ({ name }), 'body.name'],
      ['POST', '/api/v1/devices', (name) => ({ name }), 'body.name'],
      ['POST', '/api/v1/apps', (name) => ({ key: 'maps', name }), 'body.name'],
      ['POST', '/api/v1/api-keys', (name) => ({ name, scopes: ['devices:read'] }), 'body.name'],
      ['POST', '/api/v1/onboarding/import', (name) => [{ user_email: 'a@acme.test', user_name: name }], 'body.0.user_name'],
    ];
    for (const [method, url, body, field] of tenantRoutes) {
      for (const name of Object.values(BAD)) await expect400(method, url, field, body(name));
    }
    for (const [url, body] of [
      ['/api/v1/tenants', (name: string) => ({ name, owner: { email: 'o@other.test', password: 'correct horse battery staple' } })],
      ['/api/v1/towers', (name: string) => ({ name })],
      ['/api/v1/carriers', (name: string) => ({ name })],
      ['/api/v1/plans', (name: string) => ({ name })],
    ] as const) {
      for (const name of Object.values(BAD)) await expect400('POST', url, 'body.name', body(name), operator);
    }
    const message = await expect400('POST', '/api/v1/roles', 'body.name', { name: BAD.zwsp });
    expect(message).toContain('U+200B');
    // Nothing looking like "engineer" was created next to it.
    const roles = json<{ roles: Array<{ name: string }> }>(await send('GET', '/api/v1/roles')).roles;
    expect(roles.map((r) => r.name)).toEqual(['engineer']);
  });

  it('joiners stay allowed where they shape non-Latin text or emoji', async () => {
    for (const name of ['\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645', '\u{1F469}\u200D\u{1F527} crew', 'Ingénieur·e']) {
      const res = await send('POST', '/api/v1/roles', { name });
      expect(res.statusCode, res.body).toBe(201);
      expect(json<{ role: { name: string } }>(res).role.name).toBe(name);
    }
  });

  it('a name stored before the rule still works: read, looked up by name, edited', async () => {
    const legacy = await h.store.roles.create(tenantId, { name: 'legacy\u200B' });
    const byName = await send('GET', `/api/v1/roles/${encodeURIComponent('legacy\u200B')}`);
    expect(byName.statusCode, byName.body).toBe(200);
    expect(json<{ role: { id: string } }>(byName).role.id).toBe(legacy.id);
    const edited = await send('PATCH', `/api/v1/roles/${legacy.id}`, { description: 'kept' });
    expect(edited.statusCode, edited.body).toBe(200);
    const renamed = await send('PATCH', `/api/v1/roles/${legacy.id}`, { name: 'legacy' });
    expect(json<{ role: { name: string } }>(renamed).role.name).toBe('legacy');
  });
});

describe('integer query values are strict decimal integers', () => {
  const NOT_DECIMAL = ['0x10', '1e2', ' 5', '5 ', '5.0', '05', '+5', '-0', '', '1_000', 'Infinity'];

  it('limit and page', async () => {
    expect((await send('GET', '/api/v1/roles?limit=5')).statusCode).toBe(200);
    for (const v of NOT_DECIMAL) {
      await expect400('GET', `/api/v1/roles?limit=${encodeURIComponent(v)}`, 'query.limit');
      await expect400('GET', `/api/v1/roles?page=${encodeURIComponent(v)}`, 'query.page');
    }
    await expect400('GET', '/api/v1/roles?limit=5&limit=6', 'query.limit');
  });

  it('minutes and version numbers', async () => {
    expect((await send('GET', '/api/v1/dashboard/overview?minutes=10')).statusCode).toBe(200);
    for (const v of NOT_DECIMAL) {
      await expect400('GET', `/api/v1/dashboard/overview?minutes=${encodeURIComponent(v)}`, 'query.minutes');
      // An empty path segment is another route (the list).
      if (v !== '') await expect400('GET', `/api/v1/policy-versions/${encodeURIComponent(v)}`, 'params.version');
    }
  });

  it('the OpenAPI document still calls them integers, with their defaults', async () => {
    const doc = json<{ paths: Record<string, Record<string, { parameters?: Array<{ name: string; schema: Record<string, unknown> }> }>> }>(
      await h.app.inject({ method: 'GET', url: '/docs/json' }),
    );
    const param = (path: string, name: string) => doc.paths[path]?.get?.parameters?.find((p) => p.name === name)?.schema;
    expect(param('/api/v1/roles', 'limit')).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000, default: 50 });
    expect(param('/api/v1/roles', 'page')).toMatchObject({ type: 'integer', minimum: 1 });
    expect(param('/api/v1/dashboard/overview', 'minutes')).toMatchObject({ type: 'integer', default: 60 });
    expect(param('/api/v1/policy-versions/{version}', 'version')).toMatchObject({ type: 'integer', minimum: 1 });
  });
});

describe('cursors are tied to their list and tenant', () => {
  const firstCursor = async (url: string, session: Session = owner): Promise<string> => {
    const res = await send('GET', url, undefined, session);
    expect(res.statusCode, res.body).toBe(200);
    const next = json<{ next_cursor: string | null }>(res).next_cursor;
    expect(next).not.toBeNull();
    return next!;
  };

  it('a list walks on with its own cursor, and refuses another list’s or another tenant’s', async () => {
    for (const name of ['c-one', 'c-two', 'c-three']) await send('POST', '/api/v1/users', { name });
    const { owner: other } = await createTenant(h.app, operator, 'Globex');
    for (const name of ['g-one', 'g-two']) await send('POST', '/api/v1/roles', { name }, other);

    // Its own cursor reaches every row exactly once.
    const seen: string[] = [];
    let url: string | null = '/api/v1/users?limit=1';
    while (url !== null) {
      const page: { users: Array<{ name: string }>; next_cursor: string | null } = json(await send('GET', url));
      seen.push(...page.users.map((u) => u.name));
      url = page.next_cursor === null ? null : `/api/v1/users?limit=1&cursor=${encodeURIComponent(page.next_cursor)}`;
    }
    expect(seen.sort()).toEqual(['c-one', 'c-three', 'c-two']);

    const usersCursor = encodeURIComponent(await firstCursor('/api/v1/users?limit=1'));
    const message = await expect400('GET', `/api/v1/roles?limit=1&cursor=${usersCursor}`, 'query.cursor');
    expect(message).toContain('not a cursor of this list');
    const rolesCursor = encodeURIComponent(await firstCursor('/api/v1/roles?limit=1', other));
    await expect400('GET', `/api/v1/roles?limit=1&cursor=${rolesCursor}`, 'query.cursor');
    expect((await send('GET', `/api/v1/roles?limit=1&cursor=${rolesCursor}`, undefined, other)).statusCode).toBe(200);
  });

  it('a list under a path value refuses the cursor of the same list under another value', async () => {
    const user = json<{ user: { id: string } }>(await send('POST', '/api/v1/users', { name: 'cursor-owner' })).user.id;
    for (const id of ['cur-dev-a', 'cur-dev-b']) {
      expect((await send('POST', '/api/v1/devices', { id, name: `phone ${id}`, user_id: user })).statusCode).toBe(201);
      const event = { device_id: id, user_id: user, app: 'slack', action: 'send', effect: 'allow' as const };
      await seedUsage(h.store, tenantId, 'twr-cursor', [event, event, event]);
    }
    const cursorA = encodeURIComponent(await firstCursor('/api/v1/devices/cur-dev-a/usage?limit=1'));
    // Its own list walks on; the other device's list refuses it instead of paging from A's position.
    const next = await send('GET', `/api/v1/devices/cur-dev-a/usage?limit=1&cursor=${cursorA}`);
    expect(next.statusCode, next.body).toBe(200);
    expect(json<{ usage: Array<{ device_id: string }> }>(next).usage.map((u) => u.device_id)).toEqual(['cur-dev-a']);
    await expect400('GET', `/api/v1/devices/cur-dev-b/usage?limit=1&cursor=${cursorA}`, 'query.cursor');
  });

  it('an export resumes from a cursor of its own list', async () => {
    const cursor = encodeURIComponent(await firstCursor('/api/v1/audit?limit=1'));
    const csv = await send('GET', `/api/v1/audit?format=csv&cursor=${cursor}`);
    expect(csv.statusCode, csv.body).toBe(200);
    const usersCursor = encodeURIComponent(await firstCursor('/api/v1/users?limit=1'));
    await expect400('GET', `/api/v1/audit?format=csv&cursor=${usersCursor}`, 'query.cursor');
  });
});

describe('free text refuses controls and bidi overrides, and keeps what writing uses', () => {
  const HIDDEN = ['nul\u0000', 'esc\u001b[31m', 'del\u007f', 'c1\u0085', 'lre\u202a', 'rlo\u202e', 'rli\u2067', 'pdi\u2069'];

  it('descriptions of roles, users and policies', async () => {
    const role = json<{ role: { id: string } }>(await send('POST', '/api/v1/roles', { name: 'text-role' })).role.id;
    const user = json<{ user: { id: string } }>(await send('POST', '/api/v1/users', { name: 'text-user' })).user.id;
    for (const text of HIDDEN) {
      await expect400('PATCH', `/api/v1/roles/${role}`, 'body.description', { description: `a ${text}` });
      await expect400('PATCH', `/api/v1/users/${user}`, 'body.description', { description: `a ${text}` });
      await expect400('POST', '/api/v1/policies', 'body.description', { name: `p-${HIDDEN.indexOf(text)}`, description: `a ${text}` });
    }
    // Line breaks, tabs, right-to-left text with its marks and emoji joiners are ordinary text.
    const kept = 'line one\n\tline two\r\nשלום\u200f עולם 👩\u200d💻';
    const patched = await send('PATCH', `/api/v1/roles/${role}`, { description: kept });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(json<{ role: { description: string } }>(patched).role.description).toBe(kept);
    expect((await send('POST', '/api/v1/policies', { name: 'p-kept', description: kept })).statusCode).toBe(201);
  });

  it('a command reason', async () => {
    const user = json<{ user: { id: string } }>(await send('POST', '/api/v1/users', { name: 'reason-user' })).user.id;
    expect((await send('POST', '/api/v1/devices', { id: 'reason-dev', name: 'phone', user_id: user })).statusCode).toBe(201);
    const body = { device_id: 'reason-dev', type: 'notify', tower_id: 'twr-text' };
    await expect400('POST', '/api/v1/remedial-actions', 'body.reason', { ...body, reason: 'see \u202egnp.exe' });
  });
});
