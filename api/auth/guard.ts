/**
 * Authentication, rate limiting and authorization in one place: a root onRequest hook reads the
 * route's declared permission, resolves the caller (bearer access token or API key), charges the
 * caller's request quota and checks the permission table. It runs before the body is parsed, so
 * unauthenticated or throttled callers cost no parsing.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { TENANT_CONSOLE_ROLES } from '../../shared/domain.js';
import { createError } from '../../shared/errors.js';
import { addressSubject, isRateLimitExempt, type ChargeRequest } from '../rate-limit.js';
import { checkCarrierKey, looksLikeCarrierKey } from '../../shared/auth/carrier-keys.js';
import type { CarrierPrincipal, Principal, UserPrincipal } from '../types.js';
import { authenticateApiKey, looksLikeApiKey } from './api-keys.js';
import { holds } from './permissions.js';
import { consoleSessionStands } from '../../shared/auth/console-session.js';

const BEARER_RE = /^Bearer\s+(\S+)\s*$/i;

/**
 * The presented credential. `Authorization: Bearer` carries an access JWT or an API key (told
 * apart by the `epk_` marker); `x-api-key` carries a key for clients that reserve Authorization.
 * When both headers are present Authorization wins.
 */
function credentialOf(request: FastifyRequest): { kind: 'jwt' | 'api_key' | 'carrier'; value: string } {
  const authorization = request.headers.authorization;
  if (authorization !== undefined) {
    const match = BEARER_RE.exec(authorization);
    if (!match) throw createError('UNAUTHENTICATED', 'missing bearer access token');
    const value = match[1]!;
    return { kind: looksLikeApiKey(value) ? 'api_key' : looksLikeCarrierKey(value) ? 'carrier' : 'jwt', value };
  }
  const apiKey = request.headers['x-api-key'];
  if (typeof apiKey === 'string' && apiKey.trim() !== '') return { kind: 'api_key', value: apiKey.trim() };
  throw createError('UNAUTHENTICATED', 'missing bearer access token');
}

/**
 * A verified access token is also checked against its account, on every request: the account must
 * still exist, be enabled, and be at the session version the token was issued under (a role change,
 * disable or password change moved it), and the sign-in it was issued for must not have ended
 * (signed out: its refresh-token family revoked), so a revoked token stops working at its next
 * request, on every API process, with nothing to miss. Chosen over a revocation set fed by the bus
 * (Redis pub/sub is at-most-once: a process that missed the event would honour the token until
 * expiry). Cost, measured on SQLite: one primary-key read of the account (2.5 µs) and one seek of
 * a covering index for the family (about 1 µs, whatever the number of refreshes it holds; below
 * the noise of a whole request), next to 277 µs for the ES256 signature check and ~830 µs for a
 * whole small request; on MongoDB both reads go out together, one round trip.
 */
async function authenticateToken(app: FastifyInstance, token: string): Promise<UserPrincipal> {
  const claims = await app.tokens.verify(token);
  // A token whose tenant binding contradicts its role was not minted by us: refuse it outright.
  const isTenantRole = (TENANT_CONSOLE_ROLES as readonly string[]).includes(claims.role);
  if (isTenantRole !== (claims.tenant_id !== null)) {
    throw createError('UNAUTHENTICATED', 'access token is invalid');
  }
  const user = await consoleSessionStands(app.store, {
    userId: claims.sub,
    tenantId: claims.tenant_id,
    sessionVersion: claims.sv ?? 0,
    sessionId: claims.sid,
  });
  if (!user) throw createError('UNAUTHENTICATED', 'access token is no longer valid: sign in again');
  return {
    kind: 'user',
    userId: user.id,
    tenantId: user.tenant_id,
    role: user.console_role,
    actorId: user.id,
    label: null,
    ...(claims.sid !== undefined && { sessionId: claims.sid }),
  };
}

/** A carrier's feed credential; one message for every failure, like API keys. */
async function authenticateCarrier(app: FastifyInstance, key: string): Promise<CarrierPrincipal> {
  const check = await checkCarrierKey(key, (id) => app.store.carrierCredentials.get(id));
  if (!check.ok) throw createError('UNAUTHENTICATED', 'carrier credential is invalid or revoked');
  return {
    kind: 'carrier',
    carrierId: check.carrierId,
    credentialId: check.credentialId,
    tenantId: null,
    actorId: `carrier:${check.carrierId}`,
    label: `carrier:${check.carrierId}`,
  };
}

async function authenticate(app: FastifyInstance, request: FastifyRequest): Promise<Principal> {
  const credential = credentialOf(request);
  if (credential.kind === 'api_key') return authenticateApiKey(app.store, credential.value, app.clock(), app.storeFaults);
  if (credential.kind === 'carrier') return authenticateCarrier(app, credential.value);
  return authenticateToken(app, credential.value);
}

/** Quota subject: the principal when known, else the client address. Namespaced so ids never collide. */
function subjectOf(request: FastifyRequest, principal: Principal | null): string {
  if (!principal) return addressSubject(request);
  if (principal.kind === 'carrier') return `carrier:${principal.carrierId}`;
  return principal.kind === 'user' ? `user:${principal.userId}` : `api_key:${principal.keyId}`;
}

export function registerGuard(app: FastifyInstance, charge: ChargeRequest): void {
  app.decorateRequest('principal', null);

  // Fail at startup, not in production, when an API route forgets to declare who may call it.
  app.addHook('onRoute', (route: RouteOptions) => {
    const config = route.config ?? {};
    // Documented wherever the guard asks for a credential (also /metrics, outside /api): a
    // client generated from the document then sends one.
    if (config.permission) {
      route.schema = { ...route.schema, security: [{ bearerAuth: [] }] };
    }
    if (!route.url.startsWith('/api/')) return;
    if (!config.permission && !config.public) {
      throw new Error(`route ${String(route.method)} ${route.url} declares neither a permission nor public`);
    }
  });

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (isRateLimitExempt(request.routeOptions.url)) return;
    const { permission } = request.routeOptions.config;
    if (!permission) {
      await charge(request, reply, subjectOf(request, null));
      return;
    }
    let principal: Principal;
    try {
      principal = await authenticate(app, request);
    } catch (err) {
      // Failed authentications count against the address, so guessing credentials is throttled too.
      await charge(request, reply, subjectOf(request, null));
      throw err;
    }
    await charge(request, reply, subjectOf(request, principal));
    if (!holds(principal, permission)) {
      throw createError(
        'FORBIDDEN',
        principal.kind === 'user'
          ? `console role '${principal.role}' lacks permission '${permission}'`
          : principal.kind === 'carrier'
            ? `a carrier credential only pushes the carrier's own feeds, not '${permission}'`
            : `API key lacks scope '${permission}'`,
      );
    }
    request.principal = principal;
  });
}

export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw createError('UNAUTHENTICATED', 'authentication required');
  return request.principal;
}

/** The caller as a console user, for operations that act on behalf of a person (a role is needed). */
export function userPrincipalOf(request: FastifyRequest): UserPrincipal {
  const principal = principalOf(request);
  if (principal.kind !== 'user') throw createError('FORBIDDEN', 'this operation requires a signed-in console user');
  return principal;
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
