/**
 * Authentication and authorization in one place: a root onRequest hook reads the route's declared
 * permission, verifies the bearer access token and checks the role against the permission table.
 * It runs before the body is parsed, so unauthenticated callers cost no parsing.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import { TENANT_CONSOLE_ROLES } from '../../shared/domain.js';
import { createError } from '../../shared/errors.js';
import type { Principal } from '../types.js';
import { isAllowed } from './permissions.js';

const BEARER_RE = /^Bearer\s+(\S+)\s*$/i;

async function authenticate(app: FastifyInstance, request: FastifyRequest): Promise<Principal> {
  const match = BEARER_RE.exec(request.headers.authorization ?? '');
  if (!match) throw createError('UNAUTHENTICATED', 'missing bearer access token');
  const claims = await app.tokens.verify(match[1]!);
  // A token whose tenant binding contradicts its role was not minted by us: refuse it outright.
  const isTenantRole = (TENANT_CONSOLE_ROLES as readonly string[]).includes(claims.role);
  if (isTenantRole !== (claims.tenant_id !== null)) {
    throw createError('UNAUTHENTICATED', 'access token is invalid');
  }
  return { userId: claims.sub, tenantId: claims.tenant_id, role: claims.role };
}

export function registerGuard(app: FastifyInstance): void {
  app.decorateRequest('principal', null);

  // Fail at startup, not in production, when an API route forgets to declare who may call it.
  app.addHook('onRoute', (route: RouteOptions) => {
    if (!route.url.startsWith('/api/')) return;
    const config = route.config ?? {};
    if (!config.permission && !config.public) {
      throw new Error(`route ${String(route.method)} ${route.url} declares neither a permission nor public`);
    }
    if (config.permission) {
      route.schema = { ...route.schema, security: [{ bearerAuth: [] }] };
    }
  });

  app.addHook('onRequest', async (request) => {
    const { permission } = request.routeOptions.config;
    if (!permission) return;
    const principal = await authenticate(app, request);
    if (!isAllowed(principal.role, permission)) {
      throw createError('FORBIDDEN', `console role '${principal.role}' lacks permission '${permission}'`);
    }
    request.principal = principal;
  });
}

export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw createError('UNAUTHENTICATED', 'authentication required');
  return request.principal;
}

/**
 * The caller's tenant: the only tenant id a tenant-scoped handler may pass to the store. Never
 * read from the body or query string.
 */
export function tenantIdOf(request: FastifyRequest): string {
  const { tenantId } = principalOf(request);
  if (tenantId === null) throw createError('FORBIDDEN', 'platform operators cannot access tenant data');
  return tenantId;
}
