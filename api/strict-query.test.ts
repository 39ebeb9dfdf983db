/**
 * An unknown or misspelled query parameter is a 400 naming it, on EVERY route the app registers
 * (enumerated from the running app, so routes added later are covered with no edit), for a
 * caller the route admits. Before this, `?devce_id=x` was dropped silently and the answer (or an
 * export) held every device.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptedQueryKeys } from './strict-query.js';
import { PLACEHOLDER_ID, allows, carrierSession, fillPath, hasBodyMethod, listRoutes, send, signInEveryRole, type ApiRoute, type RoleSessions } from './test-routes.js';
import { startHarness, type Session } from './test-support.js';
import { registeredRoutes } from './app.js';

const h = await startHarness({ rateLimitPerMin: 100_000 });
const routes = listRoutes(h.app);
let sessions: RoleSessions;
let carrier: Session;

beforeAll(async () => {
  ({ sessions } = await signInEveryRole(h, 'Strict'));
  carrier = await carrierSession(h, sessions.operator, 'Strict carrier');
});
afterAll(async () => {
  console.log(`strict query: ${routes.length} routes refused an unknown query parameter by name`);
  await h.close();
});

function callerFor(route: ApiRoute): Session | null {
  if (route.permission === null) return null;
  // Held by carrier credentials only.
  if (route.permission === 'carrier-feeds:write') return carrier;
  const role = (['owner', 'admin', 'analyst', 'viewer', 'operator'] as const).find((r) => allows(route.permission!, r));
  return role === undefined ? null : sessions[role];
}

interface ErrorReply {
  error: { code: string; message: string; issues?: Array<{ field: string; message: string }> };
}

describe('unknown query parameters', () => {
  it.each(routes.map((r) => [r.key, r] as const))('%s → 400 naming it', async (_key, route) => {
    const url = `${fillPath(route.url, (p) => (p === '*' ? 'x' : PLACEHOLDER_ID))}?zz_not_a_filter=1`;
    const res = await send(h, callerFor(route), {
      method: route.method,
      url,
      ...(hasBodyMethod(route.method) && { payload: {} }),
    });
    expect(res.statusCode, `${route.key}: ${res.body}`).toBe(400);
    const body = JSON.parse(res.body) as ErrorReply;
    expect(body.error.code).toBe('VALIDATION_FAILED');
    expect(body.error.issues).toContainEqual(expect.objectContaining({ field: 'query.zz_not_a_filter' }));
  });

  it('names every unknown parameter, suggests the one meant, and lists what the route accepts', async () => {
    const res = await send(h, sessions.owner, { method: 'GET', url: '/api/v1/app-usage?devce_id=d1&effect=deny&colour=red' });
    expect(res.statusCode).toBe(400);
    const body = JSON.parse(res.body) as ErrorReply;
    expect(body.error.message).toMatch(/^query\.devce_id: unknown query parameter \(did you mean 'device_id'\?\)/);
    expect(body.error.issues!.map((i) => i.field)).toEqual(['query.devce_id', 'query.colour']);
    expect(body.error.issues![1]!.message).toContain('accepted: app, cursor, device_id, disagreement, effect');
    const none = await send(h, sessions.owner, { method: 'GET', url: '/api/v1/tenant?verbose=1' });
    expect((JSON.parse(none.body) as ErrorReply).error.message).toContain('this route takes no query parameters');
  });

  it('an export with a misspelled filter is refused, not a download of everything', async () => {
    const res = await send(h, sessions.owner, { method: 'GET', url: '/api/v1/app-usage?format=csv&efect=deny' });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-disposition']).toBeUndefined();
  });

  it('accepts exactly the keys each route documents in OpenAPI', async () => {
    const spec = JSON.parse((await h.app.inject({ method: 'GET', url: '/docs/json' })).body) as {
      paths: Record<string, Record<string, { parameters?: Array<{ in: string; name: string }> }>>;
    };
    let checked = 0;
    for (const route of registeredRoutes(h.app)) {
      if (!route.url.startsWith('/api/v1/')) continue;
      const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
        const op = spec.paths[path]?.[String(method).toLowerCase()];
        if (!op) continue;
        const documented = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name).sort();
        expect([...acceptedQueryKeys(route.schema?.querystring)].sort(), `${String(method)} ${route.url}`).toEqual(documented);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(50);
  });
});
