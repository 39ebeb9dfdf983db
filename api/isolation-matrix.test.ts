/**
 * Tenant isolation over the WHOLE API, enumerated from the running app (routes added later are
 * covered with no edit, or fail loudly until their ids are mapped here).
 *
 * Tenant A is seeded with one of every resource whose create route exists, plus a tower only A's
 * devices were seen at. Then, as tenant B's owner:
 *  - every GET route (B's own ids in its path, and A's or B's ids in each id-like query key) answers
 *    without a trace of A: none of A's ids, e-mails or its name marker appear in the body;
 *  - every route with a path parameter, called with A's ids (and, for several parameters, with one
 *    of A's ids among B's), answers 404 NOT_FOUND: never data, never a 403 that would reveal the
 *    record exists. A route B's owner may not call at all is 403 FORBIDDEN for A's ids and for an
 *    unknown id alike, so it reveals nothing either;
 *  - afterwards every one of A's records is still there, reachable by A (which also proves the ids
 *    used above were real).
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedUsage } from './seed-usage.js';
import {
  PLACEHOLDER_ID,
  allows,
  createdId,
  errorBody,
  fillPath,
  hasBodyMethod,
  listRoutes,
  send,
  type ApiRoute,
  type Method,
} from './test-routes.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, login, startHarness, type Session } from './test-support.js';

/** Kinds of record a path or query parameter can name. */
type Resource =
  | 'tenant'
  | 'user'
  | 'role'
  | 'policy'
  | 'rule'
  | 'app'
  | 'action'
  | 'device'
  | 'consoleUser'
  | 'webhook'
  | 'apiKey'
  | 'command'
  | 'alert'
  | 'audit'
  | 'tower'
  | 'credential'
  | 'carrier'
  | 'plan'
  | 'usage'
  | 'policyTest'
  | 'policyVersion'
  | 'session';

/** Shared by every tenant by design (their ids are not secrets); routes naming only these are leak-checked, not 404-checked. */
const PLATFORM_RESOURCES: ReadonlySet<Resource> = new Set<Resource>(['carrier', 'plan']);

/**
 * Tenant-relative numbers, not ids: every tenant has a policy version 3. They are 404-checked
 * (A is seeded with versions B never reaches) but not searched for in B's answers (a small number
 * appears in any body).
 */
const NOT_SECRET: ReadonlySet<Resource> = new Set<Resource>(['policyVersion']);

/** The collection segment in front of a generic `:id` → what it names. */
const BY_SEGMENT: Readonly<Record<string, Resource>> = {
  tenants: 'tenant',
  enterprises: 'tenant',
  users: 'user',
  roles: 'role',
  policies: 'policy',
  'policy-rules': 'rule',
  rules: 'rule',
  apps: 'app',
  actions: 'action',
  devices: 'device',
  'console-users': 'consoleUser',
  webhooks: 'webhook',
  'api-keys': 'apiKey',
  commands: 'command',
  'remedial-actions': 'command',
  alerts: 'alert',
  audit: 'audit',
  'audit-log': 'audit',
  towers: 'tower',
  credentials: 'credential',
  carriers: 'carrier',
  plans: 'plan',
  'app-usage': 'usage',
  'policy-tests': 'policyTest',
  'policy-versions': 'policyVersion',
  sessions: 'session',
};

/** Parameter (path or query) names that say what they name, wherever they appear. */
const BY_NAME: Readonly<Record<string, Resource>> = {
  tenant_id: 'tenant',
  enterprise_id: 'tenant',
  user_id: 'user',
  user: 'user',
  role_id: 'role',
  role: 'role',
  policy_id: 'policy',
  rule_id: 'rule',
  app_id: 'app',
  action_id: 'action',
  device_id: 'device',
  console_user_id: 'consoleUser',
  actor_id: 'consoleUser',
  webhook_id: 'webhook',
  api_key_id: 'apiKey',
  key_id: 'apiKey',
  command_id: 'command',
  alert_id: 'alert',
  audit_id: 'audit',
  tower_id: 'tower',
  credential_id: 'credential',
  carrier_id: 'carrier',
  plan_id: 'plan',
  // Audit filter: any record's id; a device is as good as any.
  resource_id: 'device',
  version: 'policyVersion',
};

/**
 * Routes whose path ids are platform records every signed-in user may read (plans, carriers):
 * called with the shared id and checked for leaks only. Add a route here only if it truly holds
 * no tenant data.
 */
const PLATFORM_ONLY: ReadonlySet<string> = new Set([
  '/api/v1/plans/:id',
  '/api/v1/carriers/:id',
  '/api/v1/carriers/:id/towers',
  '/api/v1/carriers/:id/coverage',
  '/api/v1/carriers/:id/performance',
  // Not an id but a single-use secret (a download link): called with an unknown one and checked
  // for leaks; what a real link exports, and for whom, is api/download-tokens.test.ts.
  '/api/v1/downloads/:token',
]);

/**
 * Bodies that pass validation, for writes whose schema refuses `{}` (the id check sits behind
 * validation). Keyed by `METHOD url`; `ids` are the caller's (B's) own records.
 */
const VALID_BODIES: Readonly<Record<string, (ids: Ids) => object>> = {
  'POST /api/v1/towers/:id/carriers': (ids) => ({ carrier_id: ids.carrier }),
  'PUT /api/v1/console-users/:id/password': () => ({ password: 'a long enough passphrase' }),
  'POST /api/v1/dashboard/alerts/:id/assign': () => ({ assignee: null }),
};

type Ids = Partial<Record<Resource, string>>;

interface Tenant {
  name: string;
  tenantId: string;
  owner: Session;
  ownerEmail: string;
  ids: Ids;
}

const h = await startHarness();
const routes = listRoutes(h.app);
const present = new Set(routes.map((r) => r.key));
let operator: Session;
let A: Tenant;
let B: Tenant;
/** Strings that must never appear in anything B receives. */
let secrets: string[] = [];

/** First row id of the first array in a list response. */
function firstRowId(body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return null;
  for (const value of Object.values(body)) {
    if (!Array.isArray(value)) continue;
    const row: unknown = value[0];
    if (typeof row === 'object' && row !== null && 'id' in row && typeof row.id === 'string') return row.id;
  }
  return null;
}

async function call(session: Session, method: Method, url: string, payload?: object): Promise<LightMyRequestResponse> {
  return send(h, session, { method, url, ...(payload !== undefined && { payload }) });
}

async function create(session: Session, url: string, payload: object, status = 201): Promise<string> {
  const res = await call(session, 'POST', url, payload);
  if (res.statusCode !== status) throw new Error(`seeding POST ${url}: ${res.statusCode} ${res.body}`);
  return createdId(JSON.parse(res.body));
}

async function link(session: Session, url: string, payload: object): Promise<void> {
  const res = await call(session, 'POST', url, payload);
  if (res.statusCode !== 200) throw new Error(`seeding POST ${url}: ${res.statusCode} ${res.body}`);
}

/** One of every resource the API can create (detected by route presence), named with the tenant's marker. */
async function seed(t: Tenant, carrierId: string | null): Promise<void> {
  const m = t.name;
  const { ids, owner } = t;
  const has = (key: string) => present.has(key);
  ids.tenant = t.tenantId;
  if (has('POST /api/v1/users')) ids.user = await create(owner, '/api/v1/users', { name: `user ${m}`, email: `user@${m}.test` });
  if (has('POST /api/v1/roles')) ids.role = await create(owner, '/api/v1/roles', { name: `role ${m}` });
  if (has('POST /api/v1/policies')) ids.policy = await create(owner, '/api/v1/policies', { name: `policy ${m}` });
  if (has('POST /api/v1/apps')) ids.app = await create(owner, '/api/v1/apps', { key: 'dropbox', name: `Dropbox ${m}` });
  if (has('POST /api/v1/actions')) ids.action = await create(owner, '/api/v1/actions', { key: 'upload', name: `Upload ${m}` });
  if (has('POST /api/v1/policy-rules')) {
    ids.rule = await create(owner, '/api/v1/policy-rules', { policy_id: ids.policy, app: 'dropbox', action: 'upload', permission: 'deny' });
  }
  if (has('POST /api/v1/devices')) {
    ids.device = await create(owner, '/api/v1/devices', { id: `dev-${m}`, name: `phone ${m}`, user_id: ids.user });
  }
  if (has('POST /api/v1/users/roles/assign')) {
    await link(owner, '/api/v1/users/roles/assign', { user_id: ids.user, role_id: ids.role });
  }
  if (has('POST /api/v1/roles/policies/assign')) {
    await link(owner, '/api/v1/roles/policies/assign', { role_id: ids.role, policy_id: ids.policy });
  }
  if (has('POST /api/v1/console-users')) {
    ids.consoleUser = await create(owner, '/api/v1/console-users', {
      email: `analyst@${m}.test`,
      password: PASSWORD,
      console_role: 'analyst',
    });
  }
  if (has('POST /api/v1/webhooks')) {
    ids.webhook = await create(owner, '/api/v1/webhooks', { url: `https://hooks.example.com/${m}`, events: ['alert.opened'] });
  }
  if (has('POST /api/v1/api-keys')) {
    ids.apiKey = await create(owner, '/api/v1/api-keys', { name: `key ${m}`, scopes: ['devices:read'] });
  }
  if (has('POST /api/v1/policy-tests')) {
    ids.policyTest = await create(owner, '/api/v1/policy-tests', { name: `test ${m}`, device_id: ids.device, app: 'dropbox', action: 'upload', expected_effect: 'deny' });
  }

  // Platform side: a tower only this tenant's devices were seen at, with a credential and the shared carrier.
  ids.tower = await create(operator, '/api/v1/towers', { id: `twr-${m}`, name: `Tower ${m}` });
  if (has('POST /api/v1/towers/:id/credentials')) ids.credential = await create(operator, `/api/v1/towers/${ids.tower}/credentials`, {});
  if (carrierId !== null && has('POST /api/v1/towers/:id/carriers')) {
    await link(operator, `/api/v1/towers/${ids.tower}/carriers`, { carrier_id: carrierId });
  }
  const seeded = await seedUsage(h.store, t.tenantId, ids.tower, [
    { device_id: ids.device!, user_id: ids.user ?? null, app: 'dropbox', action: 'upload', effect: 'deny', rule_id: ids.rule ?? null, policy_id: ids.policy ?? null },
    { device_id: `stranger-${m}`, app: 'dropbox', action: 'upload', effect: 'allow', reason: 'unknown_device' },
  ]);
  ids.alert = seeded.alerts_opened[0]?.id;
  // A device accounting session (RADIUS), as the pipeline records it.
  if (ids.device !== undefined) {
    const recorded = await h.store.deviceSessions.record({
      tenant_id: t.tenantId,
      tower_id: ids.tower,
      records: [{ key: `k-${m}`, session_id: `acct-${m}`, status: 'start', device_id: ids.device, ts: h.clock.now, input_octets: 1, output_octets: 2 }],
      now: h.clock.now,
    });
    ids.session = recorded.sessions[0]?.id;
  }
  if (has('POST /api/v1/remedial-actions')) {
    ids.command = await create(owner, '/api/v1/remedial-actions', { device_id: ids.device, type: 'notify' });
  }
  if (has('GET /api/v1/policy-versions')) {
    // A (seeded first) makes two more versions, so its newest is a number B never reaches.
    if (t.name === 'alpha-secret') {
      for (const default_effect of ['deny', 'allow']) await call(owner, 'PATCH', '/api/v1/tenant', { default_effect });
    }
    const res = await call(owner, 'GET', '/api/v1/policy-versions?limit=1');
    ids.policyVersion = String((JSON.parse(res.body) as { versions: Array<{ version: number }> }).versions[0]!.version);
  }
  // Records only the platform writes (the audit trail, usage) are found through their list.
  for (const [resource, url] of [['audit', '/api/v1/audit'], ['usage', '/api/v1/app-usage']] as const) {
    if (!has(`GET ${url}`)) continue;
    const res = await call(owner, 'GET', url);
    const id = res.statusCode === 200 ? firstRowId(JSON.parse(res.body)) : null;
    if (id !== null) ids[resource] = id;
  }
}

beforeAll(async () => {
  operator = await login(h.app, OPERATOR_EMAIL);
  const carrier = present.has('POST /api/v1/carriers') ? await create(operator, '/api/v1/carriers', { name: 'Shared carrier' }) : null;
  const plan = 'free';
  for (const name of ['alpha-secret', 'bravo-public']) {
    const t = await createTenant(h.app, operator, name);
    const tenant: Tenant = { name, tenantId: t.tenantId, owner: t.owner, ownerEmail: t.ownerEmail, ids: {} };
    if (carrier !== null) tenant.ids.carrier = carrier;
    tenant.ids.plan = plan;
    await seed(tenant, carrier);
    if (name === 'alpha-secret') A = tenant;
    else B = tenant;
  }
  secrets = [
    ...Object.entries(A.ids)
      .filter(([k]) => !PLATFORM_RESOURCES.has(k as Resource) && !NOT_SECRET.has(k as Resource))
      .map(([, v]) => v),
    A.ownerEmail,
    A.name,
  ];
  console.log(`isolation: tenant A seeded with ${Object.keys(A.ids).join(', ')}`);
});
afterAll(async () => {
  console.log(
    `isolation: ${idRoutes.length} routes with path ids → ${idChecks} calls as B with A's ids; ` +
      `${readRoutes.length} read routes → ${leakChecks} reads scanned for A's data`,
  );
  await h.close();
});

let idChecks = 0;
let leakChecks = 0;

/** What a parameter names: its own name first (user_id…), else the collection segment before it. */
function resourceOf(route: ApiRoute, param: string): Resource | null {
  const byName = BY_NAME[param];
  if (byName) return byName;
  const segments = route.url.split('/');
  const at = segments.findIndex((s) => s === `:${param}` || s.startsWith(`:${param}(`));
  const before = at > 0 ? segments[at - 1] : undefined;
  return before !== undefined ? (BY_SEGMENT[before] ?? null) : null;
}

function ownerMayCall(route: ApiRoute): boolean {
  return route.permission === null || allows(route.permission, 'owner');
}

function leaks(body: string): string[] {
  return secrets.filter((s) => body.includes(s));
}

/** Resolved parameters of a route, or a loud explanation of what is missing. */
function resolve(route: ApiRoute): Array<{ param: string; resource: Resource }> {
  return route.params.map((param) => {
    const resource = resourceOf(route, param);
    if (resource === null) {
      throw new Error(
        `isolation-matrix: no id mapping for ':${param}' of ${route.key}. Map it in BY_NAME/BY_SEGMENT ` +
          '(and seed tenant A with such a record), or list the route in PLATFORM_ONLY if it holds no tenant data.',
      );
    }
    if (A.ids[resource] === undefined || B.ids[resource] === undefined) {
      throw new Error(`isolation-matrix: ${route.key} needs a '${resource}' id but the seed made none: seed one in seed().`);
    }
    return { param, resource };
  });
}

function idValue(t: Tenant, resource: Resource): string {
  return t.ids[resource]!;
}

const byPhase = (m: Method) => (m === 'GET' ? 0 : m === 'DELETE' ? 2 : 1);
const readRoutes = routes.filter((r) => r.method === 'GET');
// Reads and writes first, deletes last: if isolation broke, a delete would hide later findings.
const idRoutes = routes.filter((r) => r.params.length > 0).sort((a, b) => byPhase(a.method) - byPhase(b.method));

describe("B's reads never carry A's data", () => {
  // Before any attack: B's own audit trail would otherwise (rightly) name the A ids B tried.
  it.each(readRoutes.map((r) => [r.key, r] as const))('%s', async (_key, route) => {
    if (!ownerMayCall(route)) return;
    const platformOnly = PLATFORM_ONLY.has(route.url);
    const path = fillPath(route.url, (p) => {
      if (platformOnly) {
        const r = resourceOf(route, p);
        return r !== null && B.ids[r] !== undefined ? idValue(B, r) : PLACEHOLDER_ID;
      }
      return idValue(B, resolve(route).find((x) => x.param === p)!.resource);
    });
    const variants: Array<{ url: string; aIdInQuery: boolean }> = [{ url: path, aIdInQuery: false }];
    for (const key of route.queryKeys) {
      const resource = BY_NAME[key];
      if (resource === undefined) {
        if (/_id$/.test(key)) {
          throw new Error(`isolation-matrix: query key '${key}' of ${route.key} looks like an id: map it in BY_NAME.`);
        }
        continue;
      }
      for (const t of [A, B]) {
        const v = t.ids[resource];
        if (v !== undefined) variants.push({ url: `${path}?${key}=${encodeURIComponent(v)}`, aIdInQuery: t === A });
      }
    }
    for (const { url, aIdInQuery } of variants) {
      const res = await call(B.owner, 'GET', url);
      leakChecks++;
      const what = `GET ${url} as B → ${res.statusCode} ${res.body.slice(0, 300)}`;
      expect(res.statusCode, what).toBeLessThan(500);
      expect(leaks(res.body), what).toEqual([]);
      // A's id in a filter: an empty answer or 404, never a 403 that tells the id exists.
      if (aIdInQuery && res.statusCode === 403) expect.fail(`${what}: 403 reveals the id exists`);
    }
  });
});

describe("B's calls with A's ids answer 404", () => {
  it.each(idRoutes.map((r) => [r.key, r] as const))('%s', async (_key, route) => {
    const body = hasBodyMethod(route.method) ? (VALID_BODIES[route.key]?.(B.ids) ?? {}) : undefined;

    if (!ownerMayCall(route)) {
      // The guard refuses before any lookup: the same 403 for A's ids and for an unknown one.
      const withA = fillPath(route.url, (p) => {
        const r = resourceOf(route, p);
        return r !== null && A.ids[r] !== undefined ? idValue(A, r) : PLACEHOLDER_ID;
      });
      const unknown = fillPath(route.url, () => PLACEHOLDER_ID);
      const [a, u] = [await call(B.owner, route.method, withA, body), await call(B.owner, route.method, unknown, body)];
      idChecks++;
      expect(a.statusCode, `${route.method} ${withA}: ${a.body}`).toBe(403);
      expect(errorBody(a)?.error.code).toBe('FORBIDDEN');
      expect(errorBody(u), `${route.method} ${unknown}`).toEqual(errorBody(a));
      return;
    }

    // Platform records (carriers, plans) are shared: called with the shared id, B must still see
    // nothing of A through them (e.g. a carrier's towers list leaves out the tower only A was seen at).
    const params = PLATFORM_ONLY.has(route.url) ? [] : resolve(route);
    const privateParams = params.filter((p) => !PLATFORM_RESOURCES.has(p.resource));
    if (privateParams.length === 0) {
      const url = fillPath(route.url, (p) => {
        const r = resourceOf(route, p);
        return r !== null && A.ids[r] !== undefined ? idValue(A, r) : PLACEHOLDER_ID;
      });
      const res = await call(B.owner, route.method, url, body);
      idChecks++;
      expect(res.statusCode, `${route.method} ${url}`).toBeLessThan(500);
      expect(leaks(res.body), `${route.method} ${url}`).toEqual([]);
      return;
    }
    // All of A's ids; and with several tenant parameters, each of A's ids among B's own.
    const variants: Array<ReadonlySet<string>> = [new Set(privateParams.map((p) => p.param))];
    if (privateParams.length > 1) for (const p of privateParams) variants.push(new Set([p.param]));
    for (const fromA of variants) {
      const url = fillPath(route.url, (name) => {
        const p = params.find((x) => x.param === name)!;
        return idValue(fromA.has(name) ? A : B, p.resource);
      });
      const res = await call(B.owner, route.method, url, body);
      idChecks++;
      const what = `${route.method} ${url} as B (A's: ${[...fromA].join(',')}) → ${res.statusCode} ${res.body.slice(0, 300)}`;
      if (res.statusCode === 400) {
        expect.fail(`${what}\nThe request never reached the id check: add a valid body for '${route.key}' to VALID_BODIES.`);
      }
      expect(res.statusCode, what).toBe(404);
      expect(errorBody(res)?.error.code, what).toBe('NOT_FOUND');
      expect(leaks(res.body), what).toEqual([]);
    }
  });
});

describe("A's records survived and the ids used were real", () => {
  it('every GET route with path ids still answers A', async () => {
    let checked = 0;
    for (const route of idRoutes) {
      if (route.method !== 'GET' || !ownerMayCall(route) || PLATFORM_ONLY.has(route.url)) continue;
      const params = resolve(route);
      const url = fillPath(route.url, (name) => idValue(A, params.find((x) => x.param === name)!.resource));
      const res = await call(A.owner, 'GET', url);
      checked++;
      expect(res.statusCode, `GET ${url} as A: ${res.body.slice(0, 300)}`).toBe(200);
    }
    expect(checked).toBeGreaterThan(10);
  });
});
