/**
 * The live API, as a client generated from our OpenAPI document (or a gateway that validates
 * responses) sees it: for EVERY operation of the document served at /openapi.json, over real HTTP
 * on a real port and a real SQLite file, a valid request, the same without credentials, with a
 * credential lacking the permission, with an unknown id and another tenant's id, and (with a JSON
 * body) a malformed body, a body of the wrong type, a JSON body sent as text/plain and one over the
 * body limit; an unknown query parameter, an over-long id and odd query values; each documented
 * export `format`; and a revalidating read (If-None-Match with the ETag just read). Every answer
 * must be documented for its operation: the status (explicitly or by a `4XX`/`5XX`/`default`
 * entry), the media type, and the body (validated with Ajv against the documented schema).
 * Another tenant's id is never answered with a 2xx. All mismatches are reported together.
 *
 * Every operation with a body documents an example request, taken with the caller's own ids.
 * The document is iterated, not a hand-written list; WebSocket upgrades (operations answering 101:
 * GET /ws/alerts, GET /api/v1/stream) are skipped — their refusals are api/feeds*.test.ts.
 */
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedUsage } from './seed-usage.js';
import { PLACEHOLDER_ID, allows, carrierSession, createdId, listRoutes } from './test-routes.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, login, startHarness, type Harness, type Session } from './test-support.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface MediaType {
  schema?: JsonObject;
  example?: Json;
}
interface ResponseObject {
  content?: Record<string, MediaType>;
}
interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  schema?: JsonObject;
}
interface Operation {
  operationId?: string;
  security?: Array<Record<string, string[]>>;
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, MediaType> };
  responses: Record<string, ResponseObject>;
}
interface OpenApiDoc {
  security?: Array<Record<string, string[]>>;
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, JsonObject> };
}

/** Ajv 8 (with its formats), as the installed ajv-formats resolves it; typed as far as used here. */
interface AjvError {
  instancePath: string;
  message?: string;
}
interface ValidateFn {
  (data: unknown): boolean;
  errors?: AjvError[] | null;
}
interface AjvInstance {
  addSchema(schema: object, key?: string): AjvInstance;
  compile(schema: object): ValidateFn;
}
const requireHere = createRequire(import.meta.url);
const requireFormats = createRequire(requireHere.resolve('ajv-formats'));
const AjvClass = (requireFormats('ajv') as { default: new (opts: object) => AjvInstance }).default;
const addFormats = (requireHere('ajv-formats') as { default: (ajv: AjvInstance) => void }).default;

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;
const DATA_KEYS = new Set(['example', 'examples', 'default', 'enum']);
const DOC_ID = 'openapi-document';

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * An OpenAPI 3.0 schema as JSON Schema draft-07 for Ajv: references point into the document
 * registered under DOC_ID; boolean `exclusiveMinimum`/`exclusiveMaximum` (draft-04 style) become
 * the numeric bound. `nullable` is Ajv's own OpenAPI keyword.
 */
function toAjv(node: Json): Json {
  if (Array.isArray(node)) return node.map(toAjv);
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'example' || key === 'examples') continue;
    if (key === '$ref' && typeof value === 'string') out[key] = `${DOC_ID}${value}`;
    else out[key] = DATA_KEYS.has(key) ? value : toAjv(value);
  }
  for (const [flag, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
    if (typeof out[flag] !== 'boolean') continue;
    if (out[flag] === true) out[flag] = out[bound] ?? null;
    else delete out[flag];
    if (out[flag] !== undefined) delete out[bound];
  }
  return out;
}

/** A value the schema accepts (enough for a request the API can take), or undefined. */
function synthesize(doc: OpenApiDoc, schema: JsonObject, depth = 0): Json | undefined {
  if (depth > 10) return undefined;
  if (schema.example !== undefined) return schema.example;
  if (typeof schema.$ref === 'string') {
    const target = doc.components?.schemas?.[schema.$ref.split('/').pop()!];
    return target ? synthesize(doc, target, depth + 1) : undefined;
  }
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    const list = schema[key];
    if (Array.isArray(list) && isObject(list[0])) return synthesize(doc, list[0], depth + 1);
  }
  if (Array.isArray(schema.enum)) return schema.enum[0] ?? null;
  switch (schema.type) {
    case 'string':
      if (schema.format === 'uri') return 'https://hooks.example.com/synthesized';
      if (schema.format === 'email') return 'synthesized@example.com';
      return 'x'.repeat(typeof schema.minLength === 'number' ? Math.max(1, schema.minLength) : 1);
    case 'integer':
    case 'number':
      return typeof schema.minimum === 'number' ? schema.minimum + (schema.exclusiveMinimum === true ? 1 : 0) : 1;
    case 'boolean':
      return true;
    case 'array': {
      const item = isObject(schema.items) ? synthesize(doc, schema.items, depth + 1) : 'x';
      return item === undefined ? [] : Array.from({ length: typeof schema.minItems === 'number' ? Math.max(1, schema.minItems) : 1 }, () => item);
    }
    case 'object': {
      const props = isObject(schema.properties) ? schema.properties : {};
      const required = Array.isArray(schema.required) ? (schema.required as string[]) : [];
      // A patch with nothing required changes its first field.
      const keys = required.length > 0 ? required : Object.keys(props).slice(0, 1);
      const out: JsonObject = {};
      for (const key of keys) {
        const prop = props[key];
        const value = isObject(prop) ? synthesize(doc, prop, depth + 1) : undefined;
        if (value !== undefined) out[key] = value;
      }
      return out;
    }
    default:
      return undefined;
  }
}

/** The documented request example: the media type's, its schema's, or that of the component it references. */
function documentedExample(doc: OpenApiDoc, media: MediaType): Json | undefined {
  if (media.example !== undefined) return media.example;
  const schema = media.schema;
  if (!schema) return undefined;
  if (schema.example !== undefined) return schema.example;
  const ref = typeof schema.$ref === 'string' ? schema.$ref : undefined;
  return ref ? doc.components?.schemas?.[ref.split('/').pop()!]?.example : undefined;
}

/** Kinds of record a path parameter names. */
type Resource =
  | 'tenant' | 'owner' | 'plan' | 'consoleUser' | 'user' | 'role' | 'policy' | 'rule' | 'usage' | 'policyTest' | 'policyVersion'
  | 'app' | 'action' | 'device' | 'tower' | 'carrier' | 'towerCredential' | 'carrierCredential' | 'radiusClient' | 'session'
  | 'webhook' | 'alert' | 'command' | 'audit' | 'apiKey' | 'download';

const BY_SEGMENT: Readonly<Record<string, Resource>> = {
  tenants: 'tenant', enterprises: 'tenant', plans: 'plan', 'console-users': 'consoleUser', users: 'user', roles: 'role',
  policies: 'policy', 'policy-rules': 'rule', 'app-usage': 'usage', 'policy-tests': 'policyTest', 'policy-versions': 'policyVersion',
  apps: 'app', actions: 'action', devices: 'device', towers: 'tower', carriers: 'carrier', clients: 'radiusClient', sessions: 'session',
  webhooks: 'webhook', alerts: 'alert', commands: 'command', audit: 'audit', 'api-keys': 'apiKey', downloads: 'download',
};
const BY_NAME: Readonly<Record<string, Resource>> = {
  userId: 'owner', user_id: 'user', role_id: 'role', policy_id: 'policy', version: 'policyVersion', carrier_id: 'carrier', token: 'download',
};
/**
 * No "another tenant's id" for these: shared by every tenant by design (plans, carriers), a bearer
 * secret rather than an id (download links), or tenant-relative numbers (every tenant has a policy
 * version 3: B's number names A's own version when A asks).
 */
const NOT_TENANT_IDS: ReadonlySet<Resource> = new Set<Resource>(['plan', 'carrier', 'download', 'policyVersion']);

function resourceOf(path: string, param: string): Resource {
  if (param === 'credential_id') return path.startsWith('/api/v1/carriers/') ? 'carrierCredential' : 'towerCredential';
  const byName = BY_NAME[param];
  if (byName) return byName;
  const segments = path.split('/');
  const before = segments[segments.indexOf(`{${param}}`) - 1];
  const resource = before !== undefined ? BY_SEGMENT[before] : undefined;
  if (!resource) throw new Error(`no resource mapping for {${param}} of ${path}: map it in BY_SEGMENT/BY_NAME`);
  return resource;
}

interface World {
  name: string;
  tenantId: string;
  owner: Session;
  ownerEmail: string;
  viewer: Session;
  /** A tenant API key that holds only devices:read. */
  narrowKey: Session;
  ids: Partial<Record<Resource, string>>;
}

type Kind = 'valid' | 'each-format' | 'if-none-match' | 'odd-id' | 'odd-query' | 'text-plain-body' | 'oversized-body' | 'no-credentials' | 'lacking-permission' | 'scoped-api-key' | 'unknown-id' | 'other-tenant-id' | 'malformed-json' | 'wrong-body-type' | 'unknown-query';

interface Probe {
  kind: Kind;
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

/** Over the API's 1 MiB body limit. */
const OVERSIZED_BODY = JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 16) });

let h: Harness;
let base = '';
let doc: OpenApiDoc;
let ajv: AjvInstance;
let operator: Session;
let carrier: Session;
let A: World;
let B: World;
let counter = 0;
const uniq = (prefix: string) => `${prefix}-${++counter}-${Date.now().toString(36)}`;

async function http(method: string, path: string, session: Session | null, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(session?.headers ?? {}), ...(body !== undefined && { 'content-type': 'application/json' }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text === '' ? null : (JSON.parse(text) as unknown) };
}

async function create(session: Session, path: string, body: unknown, status = 201): Promise<unknown> {
  const res = await http('POST', path, session, body);
  if (res.status !== status) throw new Error(`seeding POST ${path}: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json;
}
const createId = async (session: Session, path: string, body: unknown) => createdId(await create(session, path, body));

async function seedWorld(name: string, carrierId: string): Promise<World> {
  const t = await createTenant(h.app, operator, name);
  const domain = `${name}.test`;
  await create(t.owner, '/api/v1/console-users', { email: `viewer@${domain}`, password: PASSWORD, console_role: 'viewer' });
  const viewer = await login(h.app, `viewer@${domain}`);
  const { key } = (await create(t.owner, '/api/v1/api-keys', { name: 'narrow', scopes: ['devices:read'] })) as { key: string };
  const w: World = {
    name, tenantId: t.tenantId, owner: t.owner, ownerEmail: t.ownerEmail, viewer,
    narrowKey: { access: key, refresh: '', headers: { authorization: `Bearer ${key}` } }, ids: { tenant: t.tenantId, carrier: carrierId, plan: 'free' },
  };
  const { ids, owner } = w;
  ids.user = await createId(owner, '/api/v1/users', { name: `user ${name}`, email: `user@${domain}` });
  ids.role = await createId(owner, '/api/v1/roles', { name: `role ${name}` });
  ids.policy = await createId(owner, '/api/v1/policies', { name: `policy ${name}` });
  ids.app = await createId(owner, '/api/v1/apps', { key: 'dropbox', name: `Dropbox ${name}` });
  ids.action = await createId(owner, '/api/v1/actions', { key: 'upload', name: `Upload ${name}` });
  ids.rule = await createId(owner, '/api/v1/policy-rules', { policy_id: ids.policy, app: 'dropbox', action: 'upload', permission: 'deny' });
  ids.device = await createId(owner, '/api/v1/devices', { id: `dev-${name}`, name: `phone ${name}`, user_id: ids.user });
  await create(owner, '/api/v1/users/roles/assign', { user_id: ids.user, role_id: ids.role }, 200);
  await create(owner, '/api/v1/roles/policies/assign', { role_id: ids.role, policy_id: ids.policy }, 200);
  ids.consoleUser = await createId(owner, '/api/v1/console-users', { email: `analyst@${domain}`, password: PASSWORD, console_role: 'analyst' });
  ids.webhook = await createId(owner, '/api/v1/webhooks', { url: `https://hooks.example.com/${name}`, events: ['alert.opened'] });
  ids.apiKey = await createId(owner, '/api/v1/api-keys', { name: `key ${name}`, scopes: ['devices:read'] });
  ids.policyTest = await createId(owner, '/api/v1/policy-tests', { name: `test ${name}`, device_id: ids.device, app: 'dropbox', action: 'upload', expected_effect: 'deny' });
  ids.tower = await createId(operator, '/api/v1/towers', { id: `twr-${name}`, name: `Tower ${name}` });
  ids.towerCredential = await createId(operator, `/api/v1/towers/${ids.tower}/credentials`, {});
  await create(operator, `/api/v1/towers/${ids.tower}/carriers`, { carrier_id: carrierId }, 200);
  ids.radiusClient = await createId(operator, '/api/v1/radius/clients', { nas_identifier: `nas-${name}`, tower_id: ids.tower });
  const seeded = await seedUsage(h.store, w.tenantId, ids.tower, [
    { device_id: ids.device, user_id: ids.user, app: 'dropbox', action: 'upload', effect: 'deny', rule_id: ids.rule, policy_id: ids.policy },
  ]);
  ids.alert = seeded.alerts_opened[0]!.id;
  const recorded = await h.store.deviceSessions.record({
    tenant_id: w.tenantId,
    tower_id: ids.tower,
    records: [{ key: `k-${name}`, session_id: `acct-${name}`, status: 'start', device_id: ids.device, ts: h.clock.now, input_octets: 1, output_octets: 2 }],
    now: h.clock.now,
  });
  ids.session = recorded.sessions[0]!.id;
  ids.command = await createId(owner, '/api/v1/remedial-actions', { device_id: ids.device, type: 'notify' });
  const versions = (await http('GET', '/api/v1/policy-versions?limit=1', owner)).json as { versions: Array<{ version: number }> };
  ids.policyVersion = String(versions.versions[0]!.version);
  const usage = (await http('GET', '/api/v1/app-usage', owner)).json as { usage?: Array<{ id: string }>; items?: Array<{ id: string }> };
  ids.usage = firstId(usage);
  ids.audit = firstId((await http('GET', '/api/v1/audit', owner)).json);
  ids.download = await downloadToken(owner);
  return w;
}

function firstId(body: unknown): string {
  if (isObject(body)) {
    for (const value of Object.values(body)) {
      if (Array.isArray(value) && isObject(value[0]) && typeof value[0].id === 'string') return value[0].id;
    }
  }
  throw new Error(`no row in ${JSON.stringify(body)}`);
}

/** Cookies download links are bound to (a link works only with the cookie its issuing answer set), by token. */
const downloadCookies = new Map<string, string>();

async function downloadToken(session: Session): Promise<string> {
  const res = await fetch(`${base}/api/v1/downloads`, {
    method: 'POST',
    headers: { ...session.headers, 'content-type': 'application/json' },
    body: JSON.stringify({ path: '/api/v1/app-usage', format: 'csv' }),
  });
  const body = (await res.json()) as { url?: string };
  if (res.status !== 201 || typeof body.url !== 'string') throw new Error(`download link: ${res.status} ${JSON.stringify(body)}`);
  const token = body.url.split('/').pop()!;
  downloadCookies.set(token, res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; '));
  return token;
}

/** A record of its own for a write, so no write depends on another's order. `ctx` holds earlier params. */
async function fresh(resource: Resource, ctx: Record<string, string>): Promise<string> {
  const { owner, ids } = A;
  switch (resource) {
    case 'tenant': {
      const body = (await create(operator, '/api/v1/tenants', { name: uniq('t'), owner: { email: `${uniq('o')}@fresh.test`, password: PASSWORD } })) as { tenant: { id: string } };
      return body.tenant.id;
    }
    case 'owner':
      return createId(operator, `/api/v1/tenants/${ctx.id}/owners`, { email: `${uniq('owner')}@fresh.test`, password: PASSWORD });
    case 'plan':
      return createId(operator, '/api/v1/plans', { id: uniq('plan'), name: uniq('Plan'), auto_remediation: false, max_devices: null, max_events_per_s: null, retention_days: 30 });
    case 'consoleUser':
      return createId(owner, '/api/v1/console-users', { email: `${uniq('cu')}@fresh.test`, password: PASSWORD, console_role: 'analyst' });
    case 'user':
      return createId(owner, '/api/v1/users', { name: uniq('user') });
    case 'role': {
      const id = await createId(owner, '/api/v1/roles', { name: uniq('role') });
      if (ctx.user_id) await create(owner, '/api/v1/users/roles/assign', { user_id: ctx.user_id, role_id: id }, 200);
      return id;
    }
    case 'alert': {
      // A device of its own: its deny opens an alert no other write has acknowledged or resolved.
      const device = await createId(owner, '/api/v1/devices', { id: uniq('dev'), name: uniq('phone'), user_id: ids.user });
      const seeded = await seedUsage(h.store, A.tenantId, ids.tower!, [
        { device_id: device, user_id: ids.user!, app: 'dropbox', action: 'upload', effect: 'deny', rule_id: ids.rule!, policy_id: ids.policy! },
      ]);
      return seeded.alerts_opened[0]!.id;
    }
    case 'policy': {
      const id = await createId(owner, '/api/v1/policies', { name: uniq('policy') });
      if (ctx.role_id) await create(owner, '/api/v1/roles/policies/assign', { role_id: ctx.role_id, policy_id: id }, 200);
      return id;
    }
    case 'rule':
      return createId(owner, '/api/v1/policy-rules', { policy_id: ids.policy, app: 'dropbox', action: 'upload', permission: 'deny' });
    case 'policyTest':
      return createId(owner, '/api/v1/policy-tests', { name: uniq('test'), device_id: ids.device, app: 'dropbox', action: 'upload', expected_effect: 'deny' });
    case 'app':
      return createId(owner, '/api/v1/apps', { key: uniq('app'), name: uniq('App') });
    case 'action':
      return createId(owner, '/api/v1/actions', { key: uniq('act'), name: uniq('Action') });
    case 'device':
      return createId(owner, '/api/v1/devices', { id: uniq('dev'), name: uniq('phone') });
    case 'tower':
      return createId(operator, '/api/v1/towers', { id: uniq('twr'), name: uniq('Tower') });
    case 'carrier':
      // A tower route's {carrier_id} is a link of that tower: make it.
      if (ctx.id) {
        await create(operator, `/api/v1/towers/${ctx.id}/carriers`, { carrier_id: ids.carrier }, 200);
        return ids.carrier!;
      }
      return createId(operator, '/api/v1/carriers', { name: uniq('Carrier') });
    case 'towerCredential':
      return createId(operator, `/api/v1/towers/${ctx.id}/credentials`, {});
    case 'carrierCredential':
      return createId(operator, `/api/v1/carriers/${ctx.id}/credentials`, {});
    case 'radiusClient':
      return createId(operator, '/api/v1/radius/clients', { nas_identifier: uniq('nas'), tower_id: ids.tower });
    case 'webhook':
      return createId(owner, '/api/v1/webhooks', { url: `https://hooks.example.com/${uniq('w')}`, events: ['alert.opened'] });
    case 'apiKey':
      return createId(owner, '/api/v1/api-keys', { name: uniq('key'), scopes: ['devices:read'] });
    default:
      // Records only the platform writes (usage, versions, sessions…) and reads (download links): the seeded one.
      return ids[resource]!;
  }
}

/** Ids a documented example names, replaced by the caller's real records; unique fields made unique. */
function adapt(value: Json, w: World): Json {
  if (Array.isArray(value)) return value.map((v) => adapt(v, w));
  if (!isObject(value)) return value;
  const out: JsonObject = {};
  const swaps: Record<string, string | undefined> = {
    user_id: w.ids.user, role_id: w.ids.role, policy_id: w.ids.policy, device_id: w.ids.device, tower_id: w.ids.tower, carrier_id: w.ids.carrier,
    assignee: w.ownerEmail, app: 'dropbox', action: 'upload',
  };
  for (const [key, v] of Object.entries(value)) {
    const swap = swaps[key];
    if (swap !== undefined && typeof v === 'string') out[key] = swap;
    else if ((key === 'email' || key === 'user_email') && typeof v === 'string') out[key] = `${uniq('e')}@adapted.test`;
    else if ((key === 'name' || key === 'nas_identifier' || key === 'key') && typeof v === 'string') out[key] = uniq(v.replace(/[^a-z0-9]/gi, '').toLowerCase() || 'n');
    else if (key === 'roles' && Array.isArray(v)) out[key] = [`role ${w.name}`];
    else out[key] = adapt(v, w);
  }
  return out;
}

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 1_000_000 });
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  const res = await fetch(`${base}/openapi.json`);
  doc = (await res.json()) as OpenApiDoc;
  ajv = new AjvClass({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  ajv.addSchema({ components: { schemas: toAjv((doc.components?.schemas ?? {}) as Json) } }, DOC_ID);
  operator = await login(h.app, OPERATOR_EMAIL);
  carrier = await carrierSession(h, operator, 'Conformance carrier');
  const carrierId = await createId(operator, '/api/v1/carriers', { name: 'Shared carrier' });
  A = await seedWorld('alpha', carrierId);
  B = await seedWorld('bravo', carrierId);
}, 60_000);
afterAll(async () => {
  await h?.close();
});

interface Mismatch {
  where: string;
  kind: Kind;
  status: number;
  problem: string;
}

describe('every operation of the OpenAPI document, as a third-party client sees it', () => {
  it('answers only documented statuses, media types and bodies; never a 2xx for another tenant’s id', async () => {
    const permissions = new Map(listRoutes(h.app).map((r) => [r.key, r.permission]));
    const validators = new Map<string, ValidateFn>();
    const mismatches: Mismatch[] = [];
    const validNot2xx: string[] = [];
    const skipped: string[] = [];
    let operations = 0;
    let requests = 0;
    /** Answers by request kind and status, for the log: what each kind of request was answered. */
    const tally = new Map<string, number>();

    const validatorFor = (key: string, schema: JsonObject): ValidateFn => {
      let v = validators.get(key);
      if (!v) {
        v = ajv.compile(toAjv(schema) as object);
        validators.set(key, v);
      }
      return v;
    };

    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        const where = `${method.toUpperCase()} ${path}`;
        if (op.responses['101']) {
          skipped.push(`${where} (WebSocket upgrade)`);
          continue;
        }
        operations++;
        const routeKey = `${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`;
        const permission = permissions.get(routeKey);
        if (permission === undefined) throw new Error(`${where} is documented but not registered`);
        const pathParams = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
        const tenantScoped = permission !== null && (allows(permission, 'owner') || allows(permission, 'viewer'));
        const callerIsOperator = permission !== null && !tenantScoped && allows(permission, 'operator');
        const callerIsCarrier = permission === 'carrier-feeds:write';
        const caller: Session | null = callerIsCarrier ? carrier : callerIsOperator ? operator : tenantScoped ? A.owner : null;
        const write = method !== 'get';

        const pathFor = async (pick: (param: string, resource: Resource, ctx: Record<string, string>) => Promise<string>) => {
          const ctx: Record<string, string> = {};
          for (const p of pathParams) ctx[p] = await pick(p, resourceOf(path, p), ctx);
          return path.replace(/\{([^}]+)\}/g, (_m, p: string) => encodeURIComponent(ctx[p]!));
        };
        const ownIds = () => pathFor(async (p, r, ctx) => (write ? fresh(r, ctx) : A.ids[r]!));

        // Required query parameters, from the caller's records.
        const query = new URLSearchParams();
        for (const param of op.parameters ?? []) {
          if (param.in !== 'query' || !param.required) continue;
          const value = { user: A.ids.user, role: A.ids.role }[param.name] ?? (param.schema ? synthesize(doc, param.schema) : 'x');
          query.set(param.name, String(value));
        }
        const qs = (extra?: string, value = '1') => {
          const q = new URLSearchParams(query);
          if (extra) q.set(extra, value);
          const s = q.toString();
          return s ? `?${s}` : '';
        };

        // The body and the session the valid request needs.
        const media = op.requestBody?.content?.['application/json'];
        let session = caller;
        let body: Json | undefined = media ? documentedExample(doc, media) : undefined;
        if (media && body === undefined) {
          mismatches.push({ where, kind: 'valid', status: 0, problem: 'no documented request example (one was built from the schema)' });
          body = media.schema ? synthesize(doc, media.schema) : undefined;
        }
        if (body !== undefined) body = adapt(body, A);
        // What an example cannot hold: a real password, a live refresh token, a session of its own.
        if (where === 'POST /api/v1/auth/login') body = { email: A.ownerEmail, password: PASSWORD };
        if (where === 'POST /api/v1/auth/refresh' || where === 'POST /api/v1/auth/logout') body = { refresh_token: (await login(h.app, A.ownerEmail)).refresh };
        if (where === 'POST /api/v1/me/password') {
          const email = `${uniq('pw')}@fresh.test`;
          await create(A.owner, '/api/v1/console-users', { email, password: PASSWORD, console_role: 'viewer' });
          session = await login(h.app, email);
          body = { current_password: PASSWORD, new_password: 'another long enough passphrase' };
        }
        // Rows of an import name new devices: ids of their own.
        if (where === 'POST /api/v1/onboarding/import' && Array.isArray(body)) body = body.map((row) => (isObject(row) ? { ...row, device_id: uniq('imported') } : row));
        if (media && body === undefined) throw new Error(`${where}: no documented request example and none could be built`);
        const bodyText = body === undefined ? undefined : JSON.stringify(body);
        const jsonHeaders: Record<string, string> = bodyText !== undefined ? { 'content-type': 'application/json' } : {};

        const probes: Probe[] = [];
        const withSession = (s: Session | null): Record<string, string> => ({ ...(s?.headers ?? {}), ...jsonHeaders });
        const validUrl = await ownIds();
        const cookie = downloadCookies.get(validUrl.split('/').pop()!);
        const validHeaders = withSession(session);
        if (cookie !== undefined) validHeaders.cookie = cookie;
        probes.push({
          kind: 'valid', method, url: `${validUrl}${qs()}`, headers: validHeaders,
          ...(bodyText !== undefined && { body: bodyText }),
        });
        // Each representation a `format` query parameter documents (exports: CSV, JSON, XML…).
        const format = (op.parameters ?? []).find((param) => param.in === 'query' && param.name === 'format');
        const formats = format?.schema && Array.isArray(format.schema.enum) ? format.schema.enum.filter((v): v is string => typeof v === 'string') : [];
        if (!write) for (const f of formats) probes.push({ kind: 'each-format', method, url: `${validUrl}${qs('format', f)}`, headers: withSession(session) });
        // The refusals share one set of ids of their own (a write wrongly let through changes no other request's record).
        const probeIds = await ownIds();
        const probe = (kind: Kind, url: string, s: Session | null, text = bodyText, headers: Record<string, string> = {}): Probe => ({
          kind, method, url, headers: { ...(s?.headers ?? {}), ...(text !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
          ...(text !== undefined && { body: text }),
        });
        if (permission !== null) probes.push(probe('no-credentials', `${probeIds}${qs()}`, null));
        if (permission !== null) {
          const lacking = ([['viewer', A.viewer], ['operator', operator], ['owner', A.owner]] as const).find(([role]) => !allows(permission, role));
          if (lacking) probes.push(probe('lacking-permission', `${probeIds}${qs()}`, lacking[1]));
          if (tenantScoped && permission !== 'devices:read') probes.push(probe('scoped-api-key', `${probeIds}${qs()}`, A.narrowKey));
        }
        if (pathParams.length > 0) {
          probes.push(probe('unknown-id', `${await pathFor(async () => PLACEHOLDER_ID)}${qs()}`, caller));
          const resources = pathParams.map((p) => resourceOf(path, p));
          if (tenantScoped && resources.some((r) => !NOT_TENANT_IDS.has(r))) {
            probes.push(probe('other-tenant-id', `${await pathFor(async (_p, r) => B.ids[r]!)}${qs()}`, caller));
          }
        }
        if (media) {
          const wrongType = media.schema && (media.schema.type === 'array' || Array.isArray(body)) ? '{"a":1}' : '[1,2]';
          probes.push(probe('malformed-json', `${probeIds}${qs()}`, session, '{"broken":'));
          probes.push(probe('wrong-body-type', `${probeIds}${qs()}`, session, wrongType));
          if (!op.requestBody?.content?.['text/plain']) probes.push(probe('text-plain-body', `${probeIds}${qs()}`, session, bodyText, { 'content-type': 'text/plain' }));
          probes.push(probe('oversized-body', `${probeIds}${qs()}`, session, OVERSIZED_BODY));
        }
        probes.push(probe('unknown-query', `${probeIds}${qs('edgeplane_unknown_param')}`, session));
        // Values a schema-driven fuzzer sends: an over-long id, and every query parameter set to a
        // string with a NUL and non-ASCII (cursors, filters, numbers alike).
        if (pathParams.length > 0) probes.push(probe('odd-id', `${await pathFor(async () => `é\u0000${'x'.repeat(300)}`)}${qs()}`, caller));
        const queryParams = (op.parameters ?? []).filter((param) => param.in === 'query');
        if (queryParams.length > 0) {
          const odd = new URLSearchParams(queryParams.map((param): [string, string] => [param.name, 'é\u0000{"x":1}']));
          probes.push(probe('odd-query', `${probeIds}?${odd.toString()}`, session));
        }

        for (const p of probes) {
          requests++;
          const res = await fetch(`${base}${p.url}`, { method: p.method.toUpperCase(), headers: p.headers, ...(p.body !== undefined && { body: p.body }) });
          const text = await res.text();
          const status = res.status;
          // A client (or cache) revalidating what it read: RFC 9110 §13.1.2.
          const etag = res.headers.get('etag');
          if (p.kind === 'valid' && method === 'get' && etag !== null) probes.push({ ...p, kind: 'if-none-match', headers: { ...p.headers, 'if-none-match': etag } });
          tally.set(`${p.kind} ${status}`, (tally.get(`${p.kind} ${status}`) ?? 0) + 1);
          const report = (problem: string) => mismatches.push({ where, kind: p.kind, status, problem: `${problem} — ${text.slice(0, 160)}` });
          if (p.kind === 'valid' && (status < 200 || status > 299)) validNot2xx.push(`${where} → ${status} ${text.slice(0, 160)}`);
          if (p.kind === 'other-tenant-id' && status !== 404 && status !== 403) report('another tenant’s id must be 404 or 403');
          if (status >= 500) report('a 5xx for a client request');
          // A generated client sends a credential only where the operation (or the document) asks for one.
          if (p.kind === 'no-credentials' && status === 401 && (op.security ?? doc.security ?? []).length === 0) {
            report('asks for a credential but documents no security requirement');
          }
          const documented = op.responses[String(status)] ?? op.responses[`${String(status)[0]}XX`] ?? op.responses.default;
          if (!documented) {
            report(`status not documented (documented: ${Object.keys(op.responses).join(', ')})`);
            continue;
          }
          const content = documented.content ?? {};
          const mediaTypes = Object.keys(content);
          const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
          if (mediaTypes.length === 0) {
            if (text !== '') report(`a body where none is documented (content-type ${type})`);
            continue;
          }
          const mediaType = mediaTypes.find((m) => m.toLowerCase() === type);
          if (!mediaType) {
            report(`content-type '${type}' not documented (documented: ${mediaTypes.join(', ')})`);
            continue;
          }
          const schema = content[mediaType]!.schema;
          if (!schema || !/json/.test(mediaType)) continue;
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            report('a body that is not JSON');
            continue;
          }
          const validate = validatorFor(`${where} ${status} ${mediaType}`, schema);
          if (!validate(parsed)) {
            report(`body breaks the schema: ${(validate.errors ?? []).slice(0, 3).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`).join('; ')}`);
          }
        }
      }
    }

    console.log(
      `openapi conformance: ${operations} operations, ${requests} requests; skipped ${skipped.join(', ')}; ` +
        `${validNot2xx.length} valid requests not answered 2xx; answers (kind status: count): ` +
        [...tally].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k}: ${n}`).join(', '),
    );
    expect(operations).toBeGreaterThan(150);
    const lines = mismatches.map((m) => `${m.where} [${m.kind}] ${m.status}: ${m.problem}`);
    expect(lines, `${lines.length} mismatches between the API and its document:\n${lines.join('\n')}`).toEqual([]);
    // Otherwise the bodies checked above would be mostly refusals: every documented example (with
    // the caller's real ids) is taken.
    expect(validNot2xx, 'valid requests answered without a 2xx').toEqual([]);
  }, 120_000);
});
