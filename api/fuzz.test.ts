/**
 * Fuzzing every route the app registers (enumerated from the running app, so routes added later
 * are fuzzed with no edit): for each route, a caller its permission admits throws generated bad
 * bodies, bad query strings and bad path parameters at it. Whatever it is sent, the API must never
 * answer 5xx, and every 4xx must carry the error body `{error:{code,message}}`.
 *
 * The generator is a small seeded PRNG (no dependency). The seed is printed; replay a run with
 * FUZZ_SEED=<seed>. Each route derives its own stream from the seed and its key, so a failure
 * replays on its own whatever routes were added since.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ConsoleRole } from '../shared/domain.js';
import { registeredRoutes } from './app.js';
import { mulberry32 } from '../simulator/prng.js';
import { seedUsage } from './seed-usage.js';
import {
  PLACEHOLDER_ID,
  allows,
  createdId,
  errorBody,
  fillPath,
  listRoutes,
  resign,
  send,
  signInEveryRole,
  type ApiRoute,
  type RoleSessions,
} from './test-routes.js';
import { startHarness, type Session } from './test-support.js';

const BODIES_PER_ROUTE = 30;
const QUERIES_PER_ROUTE = 12;
const PATHS_PER_ROUTE = 10;

// A fixed default keeps CI deterministic; FUZZ_SEED=random (or a number) explores further locally.
const SEED =
  process.env.FUZZ_SEED === 'random'
    ? (Date.now() ^ (process.pid << 16)) >>> 0
    : process.env.FUZZ_SEED !== undefined
      ? Number(process.env.FUZZ_SEED) >>> 0
      : 20261121;

// ---------------------------------------------------------------------------------------------
// A small seeded generator.

const prng = mulberry32;

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const BAD_STRINGS: readonly string[] = [
  '',
  ' ',
  '\t\n',
  'a',
  'x'.repeat(129),
  'x'.repeat(201),
  'x'.repeat(2049),
  '💥🔥👩‍👩‍👧‍👦',
  'ñandú Ünïcödé 漢字 العربية',
  '\u202Eevil\u202C',
  '\u0000',
  '\uD800',
  'e\u0301\u0301\u0301',
  '<script>alert(1)</script>',
  "'; DROP TABLE users; --",
  '../../../../etc/passwd',
  '%00%2e%2e%2f',
  '${jndi:ldap://x/a}',
  '{{7*7}}',
  '__proto__',
  'constructor',
  'null',
  'true',
  '-1',
  '1e309',
  'NaN',
  '2024-13-45T25:61:61Z',
  'http://',
  'javascript:alert(1)',
  'ftp://example.com/x',
  'https://exa mple.com',
  'UPPER_CASE-Key',
  '*',
  'deny',
  'allow',
  'owner',
  PLACEHOLDER_ID,
];

const BAD_NUMBERS: readonly number[] = [
  0,
  -1,
  -0,
  1.5,
  -1e-9,
  2 ** 31,
  2 ** 53 + 2,
  Number.MAX_SAFE_INTEGER,
  -Number.MAX_SAFE_INTEGER,
  1e308,
  -1e308,
  8_640_000_000_000_001,
];

class Gen {
  readonly #next: () => number;
  constructor(seed: number) {
    this.#next = prng(seed);
  }
  float(): number {
    return this.#next();
  }
  int(n: number): number {
    return Math.floor(this.#next() * n);
  }
  chance(p: number): boolean {
    return this.#next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  string(): string {
    switch (this.int(5)) {
      case 0:
        return 'x'.repeat(this.pick([1, 64, 65, 128, 129, 200, 201, 512, 513, 1024, 1025, 5000, 100_000]));
      case 1: {
        let s = '';
        const n = 1 + this.int(40);
        for (let i = 0; i < n; i++) s += String.fromCodePoint(this.pick([0x20 + this.int(95), 0xa0 + this.int(0x2000), 0x1f300 + this.int(0x300)]));
        return s;
      }
      default:
        return this.pick(BAD_STRINGS);
    }
  }
  number(): number {
    return this.chance(0.7) ? this.pick(BAD_NUMBERS) : (this.float() - 0.5) * 10 ** this.int(20);
  }
  deep(levels: number, asArray: boolean): Json {
    let v: Json = this.scalar();
    for (let i = 0; i < levels; i++) v = asArray ? [v] : { a: v };
    return v;
  }
  scalar(): Json {
    switch (this.int(5)) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.number();
      default:
        return this.string();
    }
  }
  /** Any JSON value, biased towards the shapes validators trip on. */
  value(depth = 0): Json {
    const kind = this.int(depth > 2 ? 4 : 9);
    switch (kind) {
      case 0:
      case 1:
      case 2:
      case 3:
        return this.scalar();
      case 4:
        return [];
      case 5: {
        const n = this.pick([1, 2, 65, 1000]);
        // Long arrays hold small items: the point is the count, not megabytes of payload.
        return Array.from({ length: n }, () => (n > 2 ? this.pick<Json>(['x', 1, null, -1.5, '']) : this.scalar()));
      }
      case 6:
        return this.deep(this.pick([10, 100, 2000]), this.chance(0.5));
      case 7: {
        const o: Record<string, Json> = {};
        const n = this.pick([0, 1, 3, 500]);
        for (let i = 0; i < n; i++) o[this.chance(0.5) ? `k${i}` : this.string().slice(0, 50)] = n > 3 ? i : this.value(depth + 1);
        return o;
      }
      default:
        return { [this.pick(['id', 'name', 'tenant_id', 'type', 'permission'])]: this.value(depth + 1) };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// What is known of a route's body: its fields and a documented example, to mutate into bad ones.

interface BodyShape {
  fields: string[];
  example: Record<string, Json> | null;
}

function bodyShapes(): Map<string, BodyShape> {
  const shapes = new Map<string, BodyShape>();
  for (const route of registeredRoutes(h.app)) {
    const schema: unknown = route.schema?.body;
    if (!(schema instanceof z.ZodType)) continue;
    const fields = schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
    const meta = schema.meta();
    const example = meta && typeof meta.example === 'object' && meta.example !== null ? (meta.example as Record<string, Json>) : null;
    for (const m of Array.isArray(route.method) ? route.method : [route.method]) {
      shapes.set(`${String(m).toUpperCase()} ${route.url}`, { fields, example });
    }
  }
  return shapes;
}

interface Case {
  kind: 'body' | 'query' | 'path';
  url: string;
  headers: Record<string, string>;
  /** Sent as is (already serialized or deliberately not JSON). */
  payload?: string;
  note: string;
}

const HUGE_BODY = JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 10) });

function bodyCase(g: Gen, shape: BodyShape | undefined, i: number): { payload: string; contentType: string | null; note: string } {
  const json = (v: Json, note: string) => ({ payload: JSON.stringify(v), contentType: 'application/json', note });
  const template: Record<string, Json> = { ...(shape?.example ?? {}) };
  const fields = shape && shape.fields.length > 0 ? shape.fields : Object.keys(template);
  if (i === 0) return { payload: HUGE_BODY, contentType: 'application/json', note: 'body over the size limit' };
  switch (g.int(12)) {
    case 0:
      return {
        payload: g.pick(['not json', '{', '{"a":', '{"a":1,}', "{'a':1}", '\u0000', '[1,2', 'undefined', '{"a":NaN}', '0x10']),
        contentType: 'application/json',
        note: 'non-JSON text as JSON',
      };
    case 1:
      return { payload: g.pick(['', 'null', '[]', '"text"', '42', 'true']), contentType: 'application/json', note: 'non-object JSON' };
    case 2:
      return {
        payload: g.pick(['{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"admin":true}}}', '{"a":1,"a":2}']),
        contentType: 'application/json',
        note: 'prototype pollution / duplicate keys',
      };
    case 3:
      return {
        payload: JSON.stringify(template),
        contentType: g.pick(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/json; charset=utf-16', 'application/jsonx']),
        note: 'wrong content type',
      };
    case 4:
      return json(g.value(), 'random JSON value');
    case 5: {
      // Every field wrong.
      const o: Record<string, Json> = {};
      for (const f of fields) o[f] = g.value(1);
      return json(o, 'every field a bad value');
    }
    case 6: {
      if (fields.length === 0) return json({ [g.string().slice(0, 30) || 'x']: g.value(1) }, 'unknown field');
      const f = g.pick(fields);
      return json({ ...template, [f]: g.value(1) }, `bad value for ${f}`);
    }
    case 7: {
      if (fields.length === 0) return json({}, 'empty object');
      const f = g.pick(fields);
      const { [f]: _dropped, ...rest } = template;
      return json(rest, `missing ${f}`);
    }
    case 8:
      return json({ ...template, [g.pick(['tenant_id', 'id', 'extra', '__proto__', 'created_at', 'role'])]: g.value(1) }, 'extra field');
    case 9: {
      const o: Record<string, Json> = {};
      for (const f of fields) o[f] = null;
      return json(o, 'every field null');
    }
    case 10:
      return json([template], 'array instead of object');
    default: {
      const o: Record<string, Json> = { ...template };
      for (const f of fields) if (g.chance(0.5)) o[f] = g.chance(0.5) ? g.number() : g.string();
      return json(o, 'numbers and strings swapped');
    }
  }
}

const QUERY_VALUES: readonly string[] = [
  '-1',
  '0',
  'abc',
  '1.5',
  '1e309',
  '99999999999999999999',
  '1001',
  '',
  '%00',
  '%FF',
  '%E0%A4%A',
  'garbage',
  'x'.repeat(600),
  'x'.repeat(10_000),
  'bogus-enum',
  '%F0%9F%92%A5',
  'true',
  'null',
  '[]',
  // Valid enum values, so exports and filters run alongside the bad keys.
  'csv',
  'xml',
  'json',
];

/** Well-formed (base64url) cursors the store never issued. */
const CURSOR_VALUES: readonly string[] = ['x', '\u0000', "' OR 1=1 --", 'zzzzzzzzzzzzzzzzzzzzzzzzzz', '9'.repeat(300), '1|2|3', '{"a":1}'].map((v) =>
  Buffer.from(v, 'utf8').toString('base64url'),
);

/** encodeURIComponent, except that a lone surrogate becomes its (invalid UTF-8) CESU bytes instead of throwing. */
function encodeQuery(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return '%ED%A0%80';
  }
}

function queryCase(g: Gen, route: ApiRoute): { query: string; accept: string | null; note: string } {
  const keys = [...route.queryKeys, 'limit', 'cursor', 'page', 'format', 'export', 'status', 'unknown_key'];
  const parts: string[] = [];
  const n = 1 + g.int(3);
  for (let i = 0; i < n; i++) {
    const key = g.pick(keys);
    const shape = g.int(6);
    const value =
      key === 'cursor' && g.chance(0.5) ? g.pick(CURSOR_VALUES) : g.chance(0.6) ? g.pick(QUERY_VALUES) : encodeQuery(g.string());
    if (shape === 0) parts.push(`${key}=${value}&${key}=${g.pick(QUERY_VALUES)}`);
    else if (shape === 1) parts.push(`${key}[]=${value}`);
    else if (shape === 2) parts.push(`${key}[a][b]=${value}`);
    else if (shape === 3) parts.push(key);
    else parts.push(`${key}=${value}`);
  }
  if (g.chance(0.2)) parts.push('page=2&cursor=abc');
  const accept = g.chance(0.3) ? g.pick(['text/csv', 'application/xml', '*/*', 'text/html', 'application/json;q=0', 'garbage/;;;']) : null;
  return { query: parts.join('&'), accept, note: 'bad query string' };
}

const PATH_VALUES: readonly string[] = [
  '%20',
  'x'.repeat(129),
  'x'.repeat(5000),
  '%00',
  '..',
  '..%2F..%2Fetc%2Fpasswd',
  '%F0%9F%92%A5',
  '%ZZ',
  '%E0%A4%A',
  'null',
  '-1',
  '0',
  '1e309',
  '__proto__',
  'constructor',
  '%27%20OR%201%3D1%20--',
  'a%2Fb',
  'a;b',
  '*',
];

// ---------------------------------------------------------------------------------------------

const h = await startHarness();
const routes = listRoutes(h.app);
const shapes = bodyShapes();
let sessions: RoleSessions;
/** Real records of the fuzzing tenant, by the collection segment that names them. */
const realIds: Record<string, string> = { plans: 'free' };
let total = 0;
const statusCounts = new Map<number, number>();

/**
 * Known bugs, each named, so the rest of the route is still fuzzed. `skip: 'case'` does not send
 * the case at all (for a 5xx); `skip: 'shape'` still sends it and still fails on a 5xx, but waives
 * the error-body check. Remove an entry with its fix.
 */
// Cases waived because of a known, documented bug (none open). The router-level error shape bug
// this suite found (bad %-encoding, params over 100 chars) is fixed by app.ts `frameworkErrors`.
const KNOWN_BUGS: ReadonlyArray<{ bug: string; skip: 'case' | 'shape'; matches: (route: ApiRoute, c: Case) => boolean }> = [];
const knownBugsHit = new Map<string, number>();

const ROLE_PREFERENCE: readonly ConsoleRole[] = ['owner', 'admin', 'analyst', 'viewer', 'operator'];

function callerFor(route: ApiRoute): Session | null {
  if (route.permission === null) return null;
  const role = ROLE_PREFERENCE.find((r) => allows(route.permission!, r));
  return role === undefined ? null : sessions[role];
}

function realParam(route: ApiRoute, param: string): string {
  const byName: Record<string, string> = { user_id: 'users', role_id: 'roles', policy_id: 'policies', carrier_id: 'carriers' };
  const segments = route.url.split('/');
  const at = segments.indexOf(`:${param}`);
  const segment = byName[param] ?? (at > 0 ? segments[at - 1]! : '');
  return realIds[segment] ?? PLACEHOLDER_ID;
}

/** Path params: real ids of the fuzzing tenant where known (deeper handler paths), except for deletes. */
function basePath(route: ApiRoute): string {
  return fillPath(route.url, (p) => (route.method === 'DELETE' ? PLACEHOLDER_ID : realParam(route, p)));
}

function casesFor(route: ApiRoute): Case[] {
  const g = new Gen(hash(`${SEED}:${route.key}`));
  const cases: Case[] = [];
  const path = basePath(route);
  const shape = shapes.get(route.key);
  for (let i = 0; i < BODIES_PER_ROUTE; i++) {
    const b = bodyCase(g, shape, i);
    cases.push({
      kind: 'body',
      url: path,
      headers: b.contentType === null ? {} : { 'content-type': b.contentType },
      payload: b.payload,
      note: b.note,
    });
  }
  for (let i = 0; i < QUERIES_PER_ROUTE; i++) {
    const q = queryCase(g, route);
    cases.push({
      kind: 'query',
      url: `${path}?${q.query}`,
      headers: q.accept === null ? {} : { accept: q.accept },
      ...(route.method !== 'GET' && route.method !== 'DELETE' && { payload: '{}', headers: { 'content-type': 'application/json' } }),
      note: q.note,
    });
  }
  if (route.params.length > 0) {
    for (let i = 0; i < PATHS_PER_ROUTE; i++) {
      // Raw: some values are deliberately not valid percent-encoding.
      const bad = g.pick(PATH_VALUES);
      const target = g.pick(route.params);
      const url = route.url
        .split('/')
        .map((s) => (s === '*' || s === `:${target}` ? bad : s.startsWith(':') ? realParam(route, s.slice(1)) : s))
        .join('/');
      cases.push({
        kind: 'path',
        url,
        headers: route.method === 'GET' || route.method === 'DELETE' ? {} : { 'content-type': 'application/json' },
        ...(route.method !== 'GET' && route.method !== 'DELETE' && { payload: '{}' }),
        note: `bad path param :${target}`,
      });
    }
  }
  return cases;
}

function describeCase(route: ApiRoute, c: Case, res: LightMyRequestResponse): string {
  const payload = c.payload === undefined ? '' : ` payload=${c.payload.length > 200 ? `${c.payload.slice(0, 200)}…(${c.payload.length} chars)` : c.payload}`;
  const url = c.url.length > 300 ? `${c.url.slice(0, 300)}…` : c.url;
  return `[seed ${SEED}] ${route.method} ${url} (${c.note}; ${JSON.stringify(c.headers)})${payload} → ${res.statusCode} ${res.body.slice(0, 300)}`;
}

async function seedRecords(): Promise<void> {
  const { owner, operator } = sessions;
  const make = async (session: Session, url: string, payload: object): Promise<string> => {
    const res = await send(h, session, { method: 'POST', url, payload });
    if (res.statusCode !== 201) throw new Error(`fuzz seed POST ${url}: ${res.statusCode} ${res.body}`);
    return createdId(JSON.parse(res.body));
  };
  const has = (key: string) => routes.some((r) => r.key === key);
  realIds.users = await make(owner, '/api/v1/users', { name: 'fuzz user' });
  realIds.roles = await make(owner, '/api/v1/roles', { name: 'fuzz role' });
  realIds.policies = await make(owner, '/api/v1/policies', { name: 'fuzz policy' });
  realIds.apps = await make(owner, '/api/v1/apps', { key: 'dropbox', name: 'Dropbox' });
  realIds.actions = await make(owner, '/api/v1/actions', { key: 'upload', name: 'Upload' });
  realIds['policy-rules'] = await make(owner, '/api/v1/policy-rules', {
    policy_id: realIds.policies,
    app: 'dropbox',
    action: 'upload',
    permission: 'deny',
  });
  realIds.devices = await make(owner, '/api/v1/devices', { id: 'dev-fuzz', name: 'fuzz phone', user_id: realIds.users });
  realIds.webhooks = await make(owner, '/api/v1/webhooks', { url: 'https://hooks.example.com/fuzz', events: ['alert.opened'] });
  realIds.towers = await make(operator, '/api/v1/towers', { id: 'twr-fuzz', name: 'Fuzz tower' });
  realIds.carriers = await make(operator, '/api/v1/carriers', { name: 'Fuzz carrier' });
  const seeded = await seedUsage(h.store, sessionsTenant, 'twr-fuzz', [
    { device_id: 'dev-fuzz', user_id: realIds.users, app: 'dropbox', action: 'upload', effect: 'deny', rule_id: realIds['policy-rules'], policy_id: realIds.policies },
  ]);
  if (seeded.alerts_opened[0]) realIds.alerts = seeded.alerts_opened[0].id;
  if (has('POST /api/v1/remedial-actions')) realIds.commands = await make(owner, '/api/v1/remedial-actions', { device_id: 'dev-fuzz', type: 'notify' });
  if (has('POST /api/v1/api-keys')) realIds['api-keys'] = await make(owner, '/api/v1/api-keys', { name: 'fuzz key', scopes: ['devices:read'] });
  realIds.tenants = sessionsTenant;
}

let sessionsTenant = '';

beforeAll(async () => {
  console.log(`fuzz: seed ${SEED} (replay with FUZZ_SEED=${SEED})`);
  ({ sessions, tenantId: sessionsTenant } = await signInEveryRole(h, 'Fuzz'));
  await seedRecords();
});
afterAll(async () => {
  const byStatus = [...statusCounts.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ');
  console.log(`fuzz: ${total} cases over ${routes.length} routes (seed ${SEED}); statuses ${byStatus}`);
  for (const [bug, n] of knownBugsHit) console.log(`fuzz: known bug waived on ${n} cases: ${bug}`);
  await h.close();
});

describe(`fuzz (seed ${SEED})`, () => {
  it.each(routes.map((r) => [r.key, r] as const))('%s', async (_key, route) => {
    const session = callerFor(route);
    // Re-signed per route: a fuzzed POST /signing-keys/retire may have dropped the key of the last token.
    if (session) await resign(h, session);
    const failures: string[] = [];
    for (const c of casesFor(route)) {
      const known = KNOWN_BUGS.find((b) => b.matches(route, c));
      if (known) knownBugsHit.set(known.bug, (knownBugsHit.get(known.bug) ?? 0) + 1);
      if (known?.skip === 'case') continue;
      const res = await send(h, session, {
        method: route.method,
        url: c.url,
        headers: c.headers,
        ...(c.payload !== undefined && { payload: c.payload }),
      });
      total++;
      statusCounts.set(res.statusCode, (statusCounts.get(res.statusCode) ?? 0) + 1);
      if (res.statusCode >= 500) failures.push(`5xx: ${describeCase(route, c, res)}`);
      else if (res.statusCode >= 400 && known === undefined && errorBody(res) === null) failures.push(`error body shape: ${describeCase(route, c, res)}`);
    }
    expect(failures, failures.join('\n')).toEqual([]);
  });
});
