/**
 * The live feeds (WebSocket). Both need 'feeds:read' and a tenant: the guard authenticates the
 * upgrade request (bearer header, `Sec-WebSocket-Protocol: bearer, <token>` or `?access_token=`,
 * see api/feeds.ts) and refuses it with 401/403 before any handshake. Every message is JSON
 * `{type, data}`; the first one is `{type: 'ready', data: {feed, tenant_id, …}}`.
 *
 * - `GET /ws/alerts`: `alert.opened` / `alert.updated` (data: Alert) and `remediation`
 *   (data: Command, on every lifecycle step) of the caller's tenant.
 * - `GET /api/v1/stream`: `usage.decided` (data: {tower_id, records: UsageRecord[]}), one message
 *   per stored batch, only the records matching `?device_id=` / `?effect=` when given.
 *
 * A plain HTTP GET answers 400 BAD_REQUEST (with `Upgrade: websocket`).
 * Close codes: 1001 shutdown, 1013 slow consumer (reconnect and catch up over REST), 4401 the
 * credential expired or was revoked (account disabled, deleted, re-roled, password changed; API
 * key revoked), 4403 not a tenant user, 4429 too many feed connections for the tenant.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createError } from '../../shared/errors.js';
import { EffectSchema } from '../../shared/mqtt/payloads.js';
import { principalOf } from '../auth/guard.js';
import type { Permission } from '../auth/permissions.js';
import { lacking } from '../auth/reveal.js';
import { credentialRecheck } from '../credential-recheck.js';
import { accessTokenExpiry, bearerOf } from '../feed-transport.js';
import { FEED_CLOSE, type FeedClient } from '../feeds.js';
import { IdSchema, errorResponses } from '../schemas/common.js';

export interface FeedRoutesOptions {
  /** Where the REST API is mounted (`/api/v1`): the usage stream lives under it. */
  apiPrefix: string;
}

const access_token = z
  .string()
  .min(1)
  .optional()
  .describe('access token, for clients that cannot set headers (prefer Sec-WebSocket-Protocol: bearer, <token>)');

const FEED_DOC =
  'WebSocket only (a plain GET answers 400). Authenticate with `Sec-WebSocket-Protocol: bearer, <token>` ' +
  '(the server selects `bearer`), `?access_token=` or `Authorization: Bearer`; an API key needs the ' +
  "'feeds:read' scope. Messages are JSON `{type, data}`, the first `{type: 'ready'}`. Close codes: 1001 " +
  'shutdown, 1013 slow consumer, 4401 credential expired or revoked, 4403 not a tenant caller, 4429 too many connections.';

const AlertsFeedQuery = z.object({ access_token });

/**
 * A feed succeeds with the WebSocket handshake, which @fastify/websocket answers (no handler ever
 * sends it): documented so that clients see the success answer, not only the errors.
 */
const feedResponses = {
  101: z.undefined().describe('Switching Protocols: the WebSocket handshake succeeded and the feed is open'),
  ...errorResponses,
} as const;

/** Who opened the feed and until when: what closes it again (expiry, revocation). */
function feedClientOf(request: FastifyRequest, tenantId: string): FeedClient {
  const principal = principalOf(request);
  // Unreachable (carriers hold no 'feeds:read'), kept for the type.
  if (principal.kind === 'carrier') throw createError('FORBIDDEN', 'carrier credentials open no feeds');
  // Authenticated again while the feed is open: a revocation whose announcement was lost still ends it.
  const authorization = credentialRecheck(request);
  const rechecked = authorization ? { authorization } : {};
  if (principal.kind === 'api_key') return { tenantId, principal: { kind: 'api_key', id: principal.keyId }, expiresAt: principal.expiresAt, ...rechecked };
  // An access token stops verifying when its signing key is retired: the hub asks again.
  const token = bearerOf(request);
  const tokens = request.server.tokens;
  return {
    tenantId,
    principal: { kind: 'user', id: principal.userId, ...(principal.sessionId !== undefined && { sessionId: principal.sessionId }) },
    expiresAt: accessTokenExpiry(request),
    ...rechecked,
    ...(token !== undefined ? { stillValid: () => tokens.verify(token).then(() => true, () => false) } : {}),
  };
}
const StreamQuery = z.object({
  access_token,
  device_id: IdSchema.optional().describe('only records of this device'),
  effect: EffectSchema.optional().describe('only allowed or only denied records'),
});

/**
 * A feed carries another permission's records (alerts and remediations, decided usage): the caller
 * must hold that permission too, before the handshake, so a key scoped to `feeds:read` alone reads
 * nothing its scopes do not cover. Every console role that holds `feeds:read` holds them.
 */
function alsoNeeds(...needed: Permission[]) {
  return async (request: FastifyRequest): Promise<void> => {
    const missing = lacking(principalOf(request), needed);
    if (missing.length > 0) throw createError('FORBIDDEN', `this feed also needs ${missing.map((p) => `'${p}'`).join(' and ')}`);
  };
}

/** A plain HTTP request reached a feed: say what it is instead of an empty 404. */
async function upgradeRequired(_request: FastifyRequest, reply: FastifyReply): Promise<never> {
  reply.header('upgrade', 'websocket');
  throw createError('BAD_REQUEST', 'this is a WebSocket endpoint: connect with an Upgrade: websocket request');
}

export const feedRoutes: FastifyPluginAsyncZod<FeedRoutesOptions> = async (app, opts) => {
  // `wsHandler` + `handler` (rather than `websocket: true`) so a non-upgrade request gets the
  // API's error body, and the feeds stay listed in the OpenAPI document.
  app.route({
    method: 'GET',
    url: '/ws/alerts',
    config: { permission: 'feeds:read' },
    schema: {
      summary: 'Live alerts and remediations of the caller’s tenant (WebSocket)',
      description: `${FEED_DOC} Also needs 'alerts:read' and 'remediation:read'.`,
      tags: ['feeds'],
      querystring: AlertsFeedQuery,
      response: feedResponses,
    },
    preHandler: alsoNeeds('alerts:read', 'remediation:read'),
    handler: upgradeRequired,
    wsHandler: (socket, request) => {
      const { tenantId } = principalOf(request);
      if (tenantId === null) {
        socket.close(FEED_CLOSE.forbidden, 'feeds are tenant data');
        return;
      }
      app.feeds.openAlerts(socket, feedClientOf(request, tenantId));
    },
  });

  app.route({
    method: 'GET',
    url: `${opts.apiPrefix}/stream`,
    config: { permission: 'feeds:read' },
    schema: {
      summary: 'Live decided usage of the caller’s tenant (WebSocket)',
      description: `${FEED_DOC} Also needs 'usage:read'.`,
      tags: ['feeds'],
      querystring: StreamQuery,
      response: feedResponses,
    },
    preHandler: alsoNeeds('usage:read'),
    handler: upgradeRequired,
    wsHandler: (socket, request) => {
      const { tenantId } = principalOf(request);
      if (tenantId === null) {
        socket.close(FEED_CLOSE.forbidden, 'feeds are tenant data');
        return;
      }
      const { device_id, effect } = request.query;
      app.feeds.openStream(
        socket,
        feedClientOf(request, tenantId),
        { ...(device_id !== undefined && { device_id }), ...(effect !== undefined && { effect }) },
      );
    },
  });
};
