/**
 * Exports saved by the browser itself (api/download-tokens.ts): `POST /downloads` turns one export
 * request of the signed-in console user into a single-use link, and `GET /downloads/<token>`
 * answers that request, streamed, as an attachment.
 *
 * Redeeming does not serve the export itself: it re-checks the account (still enabled, same tenant,
 * same session version, so a role change since the link was issued ends it) and the sign-in (not
 * signed out since) and then routes the
 * bound request through the API again, as that account, with a fresh access token in its
 * Authorization header. The export therefore passes the same guard (permission of the account's
 * current role, rate limit charged to the account), strict query, cursor scope, redaction of names
 * the role may not read and audit entry as an export fetched with the token in a header, and a
 * route that changes its rules changes them here too. The request logged and audited is the
 * export's URL; the token never is (the log line's URL is redacted, app.ts).
 *
 * A link works only with the cookie its issuing response set (api/download-tokens.ts): the
 * console's same-origin fetch stores it and the browser sends it when it opens the link. A client
 * that keeps no cookies gets the same 404 as for an unknown link.
 *
 * Links are for console users: an API key can stream an export with the key in a header.
 */
import type { FastifyRequest, RouteOptions } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Redis } from 'ioredis';
import { parseCookie, stringifySetCookie } from 'cookie';
import { z } from 'zod';
import { consoleSessionStands } from '../../shared/auth/console-session.js';
import { createError, type FieldIssue } from '../../shared/errors.js';
import { audit } from '../audit.js';
import { userPrincipalOf } from '../auth/guard.js';
import { holds, type Permission } from '../auth/permissions.js';
import {
  DOWNLOAD_TOKEN_TTL_MS,
  DOWNLOADS_PATH,
  InProcessDownloadTokens,
  RedisDownloadTokens,
  downloadCookieName,
  newDownloadCookie,
  newDownloadToken,
  redeemDownloadToken,
  type DownloadTokenStore,
} from '../download-tokens.js';
import { errorResponses } from '../schemas/common.js';
import { acceptedQueryKeys } from '../strict-query.js';

export interface DownloadTokenRoutesOptions {
  /** Every route of the app as registered (app.ts): the export routes a link may stand for. */
  routes: readonly RouteOptions[];
  /** The API prefix the export routes live under (`/api/v1`). */
  apiPrefix: string;
  /** Shared by the API processes of a deployment; without it tokens live in this process. */
  redis: { connection: Redis; prefix: string } | null;
  /** Where tokens live, replacing the choice above (tests). */
  store?: DownloadTokenStore;
}

const FORMATS = ['json', 'csv', 'xml'] as const;

const IssueBody = z.object({
  path: z.string().min(1).max(200).describe('the export route, e.g. /api/v1/app-usage'),
  query: z
    .record(z.string().max(100), z.string().max(2000))
    .optional()
    .describe("the list's query parameters (filters, sort, cursor), as the URL would carry them"),
  format: z.enum(FORMATS),
}).meta({ example: { path: '/api/v1/app-usage', query: { effect: 'deny' }, format: 'csv' } });

const IssuedLink = z.object({
  url: z.string().describe('open (navigate to, or download) this once, within expires_at; it carries no other credential'),
  expires_at: z.number().int().describe('epoch ms'),
});

/** The GET route at `path` that streams exports (its querystring takes `format`), or null. */
function exportRoute(routes: readonly RouteOptions[], path: string): RouteOptions | null {
  for (const route of routes) {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (route.url === path && methods.includes('GET') && acceptedQueryKeys(route.schema?.querystring).has('format')) return route;
  }
  return null;
}

/** 400 naming every issue of `query` against the route's querystring schema, or nothing. */
function checkQuery(route: RouteOptions, query: Record<string, string>): void {
  const schema = route.schema?.querystring;
  const accepted = acceptedQueryKeys(schema);
  const issues: FieldIssue[] = Object.keys(query)
    .filter((name) => !accepted.has(name))
    .map((name) => ({ field: `body.query.${name}`, message: `unknown query parameter of ${route.url}` }));
  if (issues.length === 0 && schema instanceof z.ZodType) {
    const parsed = schema.safeParse(query);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) issues.push({ field: ['body', 'query', ...issue.path.map(String)].join('.'), message: issue.message });
    }
  }
  if (issues.length > 0) throw createError('VALIDATION_FAILED', `${issues[0]!.field}: ${issues[0]!.message}`, issues);
}

/** A store failure (Redis unreachable) as a 503 that says what failed, not a 500. */
async function reachable<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch {
    throw createError('UNAVAILABLE', 'download links are unavailable right now (their store is unreachable): try again shortly');
  }
}

/** The value the request's Cookie header carries under `name`, as a list for redeemDownloadToken (empty: none). */
function cookieValues(header: string | undefined, name: string): string[] {
  const value = header === undefined ? undefined : parseCookie(header)[name];
  return value === undefined ? [] : [value];
}

/**
 * The Set-Cookie of a link's binding. Secure when the browser reached the API over TLS, directly
 * or through a proxy trusted to say so (X-Forwarded-Proto under --trust-proxy: request.protocol);
 * a browser would not send a Secure cookie back over plain HTTP.
 */
function bindingCookie(request: FastifyRequest, path: string, name: string, value: string, maxAgeS: number): string {
  return stringifySetCookie(name, value, { maxAge: maxAgeS, path, httpOnly: true, sameSite: 'strict', secure: request.protocol === 'https' });
}

/** The same answer for every refused link, so a refusal does not tell an unknown link from one opened elsewhere. */
const LINK_REFUSED =
  'This download link is unknown, already used or expired, or was opened without the cookie its POST /downloads set ' +
  '(a link works only in the browser or cookie jar that asked for it): start the export again.';

/** The exact request a link stands for: sorted parameters, the format among them. */
function boundUrl(path: string, query: Record<string, string>): string {
  const params = new URLSearchParams(Object.entries(query).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return `${path}?${params.toString()}`;
}

export const downloadTokenRoutes: FastifyPluginAsyncZod<DownloadTokenRoutesOptions> = async (app, opts) => {
  const cookiePath = `${opts.apiPrefix}${DOWNLOADS_PATH}`;
  const store =
    opts.store ??
    (opts.redis ? new RedisDownloadTokens(opts.redis.connection, opts.redis.prefix, app.clock) : new InProcessDownloadTokens(app.clock));

  app.post(
    DOWNLOADS_PATH,
    {
      config: { permission: 'session:read', audit: { action: 'exports.link', resource_type: 'export' } },
      schema: {
        summary: 'A single-use link that downloads one export (console users)',
        description:
          'For a browser, which cannot put a bearer token on a link: the signed-in console user names one export ' +
          '(`path` of a list that takes `?format=`, its `query`, the `format`) and gets a URL carrying only a ' +
          `single-use token, valid ${DOWNLOAD_TOKEN_TTL_MS / 1000} s, that streams that export as an attachment of any ` +
          "size. The export is checked now (route, parameters, the caller's permission) and again when the link is " +
          'opened, as the account is then (a role change, disable or password change since ends the link, and so does ' +
          'signing out of the session that asked for it). ' +
          `The answer also sets a cookie for that link (HttpOnly, SameSite=Strict, Path=${DOWNLOADS_PATH} under the API prefix, ` +
          `Max-Age ${DOWNLOAD_TOKEN_TTL_MS / 1000}, Secure over HTTPS): the link works only when opened with it, so keep cookies ` +
          '(a browser does; a script needs a cookie jar). ' +
          'API keys stream exports directly (`?format=` with the key in a header).',
        body: IssueBody,
        response: { 201: IssuedLink, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = userPrincipalOf(request);
      const { path, format } = request.body;
      const route = exportRoute(opts.routes, path);
      if (route === null) {
        const message = `${path} is not a list the API exports (one that takes ?format=)`;
        throw createError('VALIDATION_FAILED', `body.path: ${message}`, [{ field: 'body.path', message }]);
      }
      const permission = route.config?.permission as Permission | undefined;
      if (permission === undefined || !holds(principal, permission)) {
        throw createError('FORBIDDEN', `console role '${principal.role}' lacks permission '${permission ?? 'none'}' for ${path}`);
      }
      const query: Record<string, string> = { ...request.body.query, format };
      delete query.export;
      checkQuery(route, query);
      const user = await app.store.consoleUsers.get(principal.userId);
      if (!user) throw createError('UNAUTHENTICATED', 'access token is no longer valid: sign in again');
      const url = boundUrl(path, query);
      const expiresAt = app.clock() + DOWNLOAD_TOKEN_TTL_MS;
      const { token, hash } = newDownloadToken();
      const cookie = newDownloadCookie();
      await reachable(
        store.put(hash, {
          tenant_id: principal.tenantId,
          user_id: user.id,
          session_version: user.session_version,
          ...(principal.sessionId !== undefined && { session_id: principal.sessionId }),
          url,
          expires_at: expiresAt,
          cookie_hash: cookie.hash,
        }),
      );
      audit(request, { after: { path, query, format, expires_at: expiresAt } });
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .header('set-cookie', bindingCookie(request, cookiePath, downloadCookieName(token), cookie.nonce, DOWNLOAD_TOKEN_TTL_MS / 1000))
        .send({ url: `${opts.apiPrefix}${DOWNLOADS_PATH}/${token}`, expires_at: expiresAt });
    },
  );

  app.get(
    `${DOWNLOADS_PATH}/:token`,
    {
      // The link is the credential; the address pays the rate limit here, the account when routed.
      config: { public: true },
      // A HEAD (a link preview, a prefetch) must not spend the token.
      exposeHeadRoute: false,
      schema: {
        summary: 'Downloads the export a single-use link stands for (POST /downloads)',
        description:
          'Streams the export as an attachment. A link works once, within its lifetime, with the cookie its ' +
          'POST /downloads set, while the account that asked for it is as it was then; otherwise 404 (unknown, ' +
          'used, expired or opened without its cookie, all alike; a refusal for the cookie leaves the link usable ' +
          'with it) or 401 (the session ended).',
        params: z.object({ token: z.string().min(1).max(200) }),
        response: {
          200: {
            description: 'the export (CSV, JSON or XML, as the link was issued for), streamed as an attachment',
            content: {
              'text/csv': { schema: z.string().describe('the CSV export') },
              'application/json': { schema: z.record(z.string(), z.array(z.unknown())).describe("the JSON export: the list's rows under its name") },
              'application/xml': { schema: z.string().describe('the XML export') },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { token } = request.params;
      const cookieName = downloadCookieName(token);
      const grant = await reachable(redeemDownloadToken(store, token, cookieValues(request.headers.cookie, cookieName), app.clock()));
      if (grant === null) throw createError('NOT_FOUND', LINK_REFUSED);
      const user = await consoleSessionStands(app.store, {
        userId: grant.user_id,
        tenantId: grant.tenant_id,
        sessionVersion: grant.session_version,
        sessionId: grant.session_id,
      });
      if (!user) {
        throw createError('UNAUTHENTICATED', 'The session this download link was issued to has ended: sign in and start the export again.');
      }
      // Of the same sign-in, so signing out while the export streams ends it too (its page re-checks).
      const access = await app.tokens.sign({
        sub: user.id,
        tenant_id: user.tenant_id,
        role: user.console_role,
        sv: user.session_version,
        ...(grant.session_id !== undefined && { sid: grant.session_id }),
      });
      // The bound request replaces this one on the same connection: only what it was issued for,
      // authenticated as the account, whatever else the browser sent.
      const raw = request.raw;
      raw.url = grant.url;
      raw.headers.authorization = `Bearer ${access}`;
      raw.headers.accept = '*/*';
      // The link's cookie has done its work: the browser drops it with the export's answer.
      reply.raw.setHeader('set-cookie', bindingCookie(request, cookiePath, cookieName, '', 0));
      for (const header of ['cookie', 'x-api-key', 'if-none-match', 'if-match', 'if-modified-since', 'range']) delete raw.headers[header];
      reply.hijack();
      app.routing(raw, reply.raw);
      return reply;
    },
  );
};
