/**
 * The permission table (api/auth/permissions.ts) is the documentation; this suite proves the API
 * enforces exactly it, for EVERY route the app registers (enumerated from the running app, so
 * routes added later are covered with no edit here) × every console role:
 *  - a role the table does not list for the route's permission → exactly 403 FORBIDDEN;
 *  - a role it lists is never 401/403 (it may still be 400/404…: placeholder ids, empty bodies);
 *  - without a token every guarded route is 401, and public routes answer without one.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsoleRole } from '../shared/domain.js';
import {
  CONSOLE_ROLES,
  PLACEHOLDER_ID,
  allows,
  errorBody,
  fillPath,
  hasBodyMethod,
  listRoutes,
  send,
  signInEveryRole,
  type ApiRoute,
  type RoleSessions,
} from './test-routes.js';
import { startHarness, type Session } from './test-support.js';

// Built at collection time so each route is its own test case.
const h = await startHarness();
const routes = listRoutes(h.app);
const guarded = routes.filter((r) => r.permission !== null);
const publicRoutes = routes.filter((r) => r.permission === null);
let sessions: RoleSessions;

const tally = Object.fromEntries(CONSOLE_ROLES.map((r) => [r, { allowed: 0, denied: 0 }])) as Record<
  ConsoleRole,
  { allowed: number; denied: number }
>;

beforeAll(async () => {
  ({ sessions } = await signInEveryRole(h, 'Matrix'));
});
afterAll(async () => {
  const calls = guarded.length * CONSOLE_ROLES.length;
  const perRole = CONSOLE_ROLES.map((r) => `${r} ${tally[r].allowed}/${tally[r].denied}`).join(', ');
  console.log(
    `permission matrix: ${guarded.length} guarded routes × ${CONSOLE_ROLES.length} roles = ${calls} calls ` +
      `(allowed/denied: ${perRole}); ${publicRoutes.length} public routes; no-token → 401 on ${guarded.length}`,
  );
  await h.close();
});

function inject(route: ApiRoute, session: Session | null): Promise<LightMyRequestResponse> {
  return send(h, session, {
    method: route.method,
    url: fillPath(route.url, (p) => (p === '*' ? 'x' : PLACEHOLDER_ID)),
    ...(hasBodyMethod(route.method) && { payload: {} }),
  });
}

describe('the enumerated API', () => {
  it('is non-trivial, and every /api route is guarded or explicitly public', () => {
    // listRoutes already refused any permission missing from the table; the guard refuses to
    // start when an /api route declares neither.
    expect(guarded.length).toBeGreaterThan(50);
    expect(guarded.filter((r) => r.url.startsWith('/api/v1/')).length).toBeGreaterThan(50);
  });
});

describe.each(guarded)('$key', (route) => {
  const permission = route.permission!;

  it(`enforces '${permission}' exactly as documented`, async () => {
    for (const role of CONSOLE_ROLES) {
      const res = await inject(route, sessions[role]);
      const what = `${route.key} as ${role} → ${res.statusCode} ${res.body.slice(0, 300)}`;
      if (allows(permission, role)) {
        tally[role].allowed++;
        expect([401, 403], what).not.toContain(res.statusCode);
        expect(res.statusCode, what).toBeLessThan(500);
      } else {
        tally[role].denied++;
        expect(res.statusCode, what).toBe(403);
        expect(errorBody(res)?.error.code, what).toBe('FORBIDDEN');
      }
    }
  });

  it('answers 401 without a token', async () => {
    const res = await inject(route, null);
    expect(res.statusCode, `${route.key}: ${res.body}`).toBe(401);
    expect(errorBody(res)?.error.code).toBe('UNAUTHENTICATED');
  });
});

describe.each(publicRoutes)('$key (public)', (route) => {
  it('is reachable without a token', async () => {
    const res = await inject(route, null);
    expect([401, 403], `${route.key}: ${res.statusCode} ${res.body}`).not.toContain(res.statusCode);
    expect(res.statusCode).toBeLessThan(500);
  });
});
