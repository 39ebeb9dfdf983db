/**
 * Test helper for the suites that walk the whole API (permission-matrix, isolation-matrix, fuzz):
 * the routes of a built app as registered (app.ts records them through an onRoute hook), each
 * with its declared permission, path parameters and query keys, plus one signed-in session per
 * console role. Routes added later are picked up with no edit here. Not a test file itself.
 */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse, RouteOptions } from 'fastify';
import { z } from 'zod';
import type { ConsoleRole } from '../shared/domain.js';
import { registeredRoutes } from './app.js';
import { PERMISSIONS, type Permission } from './auth/permissions.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, login, post, type Harness, type Session } from './test-support.js';

export const CONSOLE_ROLES = ['operator', 'owner', 'admin', 'analyst', 'viewer'] as const satisfies readonly ConsoleRole[];

/** An id no record has: what a route sees when the id is well-formed but unknown. */
export const PLACEHOLDER_ID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';
const METHODS: ReadonlySet<string> = new Set<Method>(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export interface ApiRoute {
  method: Method;
  /** Full path as registered, e.g. /api/v1/users/:user_id/roles/:role_id. */
  url: string;
  /** `METHOD url`, unique. */
  key: string;
  /** null: the route is public (declares `public: true`, or lies outside the guarded /api tree). */
  permission: Permission | null;
  /** Path parameter names in order (`*` for a wildcard). */
  params: string[];
  /** Keys of the declared query-string schema (empty when none or not an object schema). */
  queryKeys: string[];
  /** Whether a body schema is declared. */
  hasBody: boolean;
  /** A WebSocket route (@fastify/websocket: `websocket: true` or a `wsHandler`). */
  websocket: boolean;
}

function pathParams(url: string): string[] {
  const names: string[] = [];
  for (const segment of url.split('/')) {
    if (segment === '*') names.push('*');
    // Fastify allows several params in one segment (":from-:to") and regexes (":id(^\\d+)").
    for (const m of segment.matchAll(/:([A-Za-z0-9_]+)/g)) names.push(m[1]!);
  }
  return names;
}

function queryKeys(schema: unknown): string[] {
  if (schema instanceof z.ZodObject) return Object.keys(schema.shape);
  // A refined/piped object still exposes its input object.
  if (schema instanceof z.ZodPipe && schema.in instanceof z.ZodObject) return Object.keys(schema.in.shape);
  return [];
}

function isPermission(p: unknown): p is Permission {
  return typeof p === 'string' && Object.hasOwn(PERMISSIONS, p);
}

/**
 * Every route of the app except the docs' static assets and the HEAD twins Fastify adds for GETs.
 * A route whose config names a permission missing from the table throws: the table is the
 * documentation, so an undocumented permission is a bug in itself.
 */
export function listRoutes(app: FastifyInstance): ApiRoute[] {
  const seen = new Map<string, ApiRoute>();
  for (const route of registeredRoutes(app) as readonly RouteOptions[]) {
    if (route.url === '/docs' || route.url.startsWith('/docs/')) continue;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const config: { permission?: unknown } = route.config ?? {};
    if (config.permission !== undefined && !isPermission(config.permission)) {
      throw new Error(`${String(route.method)} ${route.url}: permission '${String(config.permission)}' is not in PERMISSIONS`);
    }
    const permission = isPermission(config.permission) ? config.permission : null;
    const ws = route as { websocket?: unknown; wsHandler?: unknown };
    const websocket = ws.websocket === true || typeof ws.wsHandler === 'function';
    for (const raw of methods) {
      const method = String(raw).toUpperCase();
      if (!METHODS.has(method)) continue;
      const key = `${method} ${route.url}`;
      if (seen.has(key)) continue;
      seen.set(key, {
        method: method as Method,
        url: route.url,
        key,
        permission,
        params: pathParams(route.url),
        queryKeys: queryKeys(route.schema?.querystring),
        hasBody: route.schema?.body !== undefined,
        websocket,
      });
    }
  }
  return [...seen.values()].sort((a, b) => (a.url === b.url ? a.method.localeCompare(b.method) : a.url.localeCompare(b.url)));
}

/** Fills a route's path parameters (values are URL-encoded). */
export function fillPath(url: string, value: (param: string) => string): string {
  return url
    .split('/')
    .map((segment) => {
      if (segment === '*') return encodeURIComponent(value('*'));
      return segment.replace(/:([A-Za-z0-9_]+)(\([^)]*\))?/g, (_m, name: string) => encodeURIComponent(value(name)));
    })
    .join('/');
}

export function allows(permission: Permission, role: ConsoleRole): boolean {
  return (PERMISSIONS[permission] as readonly ConsoleRole[]).includes(role);
}

export type RoleSessions = Record<ConsoleRole, Session>;

/** The operator plus one console user per tenant role, all in one new tenant, each signed in. */
export async function signInEveryRole(h: Harness, tenantName: string): Promise<{ sessions: RoleSessions; tenantId: string }> {
  const operator = await login(h.app, OPERATOR_EMAIL);
  const { owner, tenantId } = await createTenant(h.app, operator, tenantName);
  const domain = `${tenantName.toLowerCase()}.test`;
  const others = {} as Record<'admin' | 'analyst' | 'viewer', Session>;
  for (const role of ['admin', 'analyst', 'viewer'] as const) {
    await post(h.app, owner, '/api/v1/console-users', { email: `${role}@${domain}`, password: PASSWORD, console_role: role });
    others[role] = await login(h.app, `${role}@${domain}`);
  }
  return { sessions: { operator, owner, ...others }, tenantId };
}

/** A carrier with a feed credential, as a session whose bearer is the carrier key. */
export async function carrierSession(h: Harness, operator: Session, name: string): Promise<Session> {
  const { carrier } = await post<{ carrier: { id: string } }>(h.app, operator, '/api/v1/carriers', { name });
  const { key } = await post<{ key: string }>(h.app, operator, `/api/v1/carriers/${carrier.id}/credentials`, {});
  return { access: key, refresh: '', headers: { authorization: `Bearer ${key}` } };
}

export interface ErrorShape {
  error: { code: string; message: string };
}

/** The parsed `{error:{code,message}}` body, or null when the body is not that shape. */
export function errorBody(res: LightMyRequestResponse): ErrorShape | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || !('error' in parsed)) return null;
  const error: unknown = parsed.error;
  if (typeof error !== 'object' || error === null) return null;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || code === '' || typeof message !== 'string') return null;
  return { error: { code, message } };
}

/** The id of the record a create route answered (`{ user: { id } }`, `{ webhook, secret }`…). */
export function createdId(body: unknown): string {
  if (typeof body === 'object' && body !== null) {
    for (const value of Object.values(body)) {
      if (typeof value === 'object' && value !== null && 'id' in value && typeof value.id === 'string') return value.id;
    }
  }
  throw new Error(`no created record with an id in ${JSON.stringify(body)}`);
}

/** A request's body for methods that carry one (an empty object for the matrix's probes). */
export function hasBodyMethod(method: Method): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH';
}

/** The claims of one of our access tokens (read without verifying: the test minted it). */
function claimsOf(access: string): { sub: string; tenant_id: string | null; role: ConsoleRole } {
  const payload = access.split('.')[1] ?? '';
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub: string; tenant_id: string | null; role: ConsoleRole };
}

/** A fresh access token with the same claims, signed by the current key (updates `session`). */
export async function resign(h: Harness, session: Session): Promise<void> {
  session.access = await h.app.tokens.sign(claimsOf(session.access));
  session.headers.authorization = `Bearer ${session.access}`;
}

const MAX_RETRIES = 6;

/**
 * `app.inject` as a patient client: the API limits requests per principal (and per address when
 * unauthenticated), and these suites make thousands. A 429 moves the harness clock past its
 * Retry-After (at least one full window) and retries; a token that expired because the clock moved
 * is re-signed with the same claims (and `session` updated). Anything else is returned as is.
 */
export async function send(h: Harness, session: Session | null, opts: InjectOptions): Promise<LightMyRequestResponse> {
  let res: LightMyRequestResponse | undefined;
  for (let attempt = 0; attempt <= MAX_RETRIES; attempt++) {
    const headers = { ...(opts.headers ?? {}), ...(session && session.headers) };
    res = await h.app.inject({ ...opts, headers });
    if (res.statusCode === 429) {
      const retryAfterS = Number(res.headers['retry-after'] ?? 0);
      h.clock.advance(Math.max(60_000, (Number.isFinite(retryAfterS) ? retryAfterS : 0) * 1000 + 1000));
      continue;
    }
    if (session && res.statusCode === 401 && errorBody(res)?.error.code === 'TOKEN_EXPIRED') {
      await resign(h, session);
      continue;
    }
    return res;
  }
  return res!;
}
