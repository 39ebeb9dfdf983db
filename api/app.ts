/**
 * Builds the REST API (DESIGN §6) from injected dependencies. No listen here: the composition
 * root decides where it binds, and tests drive it with `app.inject()`.
 */
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type RouteOptions } from 'fastify';
import { createJsonSchemaTransform, jsonSchemaTransformObject, validatorCompiler } from 'fastify-type-provider-zod';
import { decoyHash } from '../shared/auth/passwords.js';
import type { TrustProxy } from '../shared/config.js';
import { createIdFactory } from '../shared/ids.js';
import { InProcessRateBudgets } from '../shared/workflow/rate-budgets.js';
import { StoreFaults } from '../shared/store/store-faults.js';
import { bearerMatches } from '../shared/metrics-token.js';
import { registerAuditTrail } from './audit.js';
import { consolePlugin } from './console.js';
import { registerGuard } from './auth/guard.js';
import { LoginThrottle } from './auth/login-throttle.js';
import { authRoutes } from './auth/routes.js';
import { SessionService } from './auth/sessions.js';
import { documentIfMatch, registerConditionalWrites } from './conditional-writes.js';
import { registerErrorHandling } from './errors.js';
import { documentIfNoneMatch, registerEtags } from './etag.js';
import { redactDownloadToken } from './download-tokens.js';
import { redactQueryToken, registerFeedTransport } from './feed-transport.js';
import {
  DEFAULT_HTTP_SERVER_LIMITS,
  capConnections,
  closeUnfinishedRequestsOnClose,
  fastifyServerOptions,
  type HttpServerLimits,
} from './http-server-limits.js';
import { DEFAULT_REQUESTS_PER_MIN, registerRequestRateLimits } from './rate-limit.js';
import { serializerCompiler } from './response-serializer.js';
import { nullableForOpenApi30 } from './openapi-nullable.js';
import { requireWellFormedUnicode } from './well-formed-json.js';
import { registerStrictQuery } from './strict-query.js';
import { registerCursorScope } from './cursor-scope.js';
import { feedRoutes } from './routes/feeds.js';
import { downloadTokenRoutes } from './routes/download-tokens.js';
import { apiRoutes } from './routes/index.js';
import { liveStatsRoutes } from './routes/live-stats.js';
import { systemRoutes } from './routes/system.js';
import type { ApiDeps } from './types.js';

export type { ApiDeps, Principal, Readiness } from './types.js';

export const API_PREFIX = '/api/v1';
/** Request bodies are small JSON documents; anything bigger is a mistake or an attack. */
const BODY_LIMIT_BYTES = 1024 * 1024;

/** Every route of each built app, as registered: the suites that walk the whole API read it. */
const routeRegistry = new WeakMap<FastifyInstance, RouteOptions[]>();
export function registeredRoutes(app: FastifyInstance): readonly RouteOptions[] {
  return routeRegistry.get(app) ?? [];
}

/** Groups operations in the docs by their first path segment (/api/v1/devices/… → devices). */
function tagRoute(route: RouteOptions): void {
  if (!route.url.startsWith(`${API_PREFIX}/`) || route.schema?.tags) return;
  const segment = route.url.slice(API_PREFIX.length + 1).split('/')[0] ?? 'api';
  route.schema = { ...route.schema, tags: [segment === 'me' ? 'auth' : segment] };
}

/**
 * Names every documented operation (`GET /api/v1/roles/:id` → `getRolesById`): code generators
 * name a client's methods after operationIds, and without them each invents its own names.
 * Method and path are unique per route, so the names are too (api/openapi-valid.test.ts).
 */
function nameOperation(route: RouteOptions): void {
  if (route.schema?.operationId || typeof route.method !== 'string') return;
  const path = route.url.startsWith(`${API_PREFIX}/`) ? route.url.slice(API_PREFIX.length) : route.url;
  const words = path
    .split('/')
    .filter(Boolean)
    .flatMap((segment) => (segment.startsWith(':') ? ['by', segment.slice(1)] : [segment]))
    .flatMap((segment) => segment.split(/[^A-Za-z0-9]+/))
    .filter(Boolean);
  const capitalized = words.map((w) => w[0]!.toUpperCase() + w.slice(1));
  route.schema = { ...route.schema, operationId: route.method.toLowerCase() + capitalized.join('') };
}

/**
 * Many HTTP clients send `content-type: application/json` on every request, including bodiless
 * DELETEs; Fastify would answer 400 for the empty body. Bodies of other methods still go through
 * Fastify's own parser (prototype-poisoning protection included), then must be valid Unicode
 * (api/well-formed-json.ts).
 */
function acceptEmptyJsonOnBodilessMethods(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '' && (request.method === 'DELETE' || request.method === 'GET')) {
      done(null, undefined);
      return;
    }
    const text = typeof body === 'string' ? body : body.toString('utf8');
    parseJson(request, text, (err, parsed) => {
      if (err) return done(err, undefined);
      try {
        requireWellFormedUnicode(text, parsed);
      } catch (refused) {
        return done(refused as Error, undefined);
      }
      done(null, parsed);
    });
  });
}

/**
 * Fastify's types take no hop count (its runtime does); proxy-addr counts hops from the socket
 * outwards: hop 0 is the peer, so trusting n hops trusts indexes 0..n-1.
 */
function fastifyTrustProxy(setting: TrustProxy): boolean | string[] | ((address: string, hop: number) => boolean) {
  return typeof setting === 'number' ? (_address, hop) => hop < setting : setting;
}

export interface BuildAppOptions {
  /** Serve HTTPS with these PEM contents (the composition root reads --tls-cert-file/--tls-key-file). */
  https?: { cert: Buffer; key: Buffer; ca?: Buffer };
  /** --metrics-token: a static bearer token that may scrape /metrics. */
  metricsToken?: string;
}

/**
 * A Prometheus scraper holding the static --metrics-token is answered before the guard, which
 * knows only users and tenant API keys; any other caller of /metrics goes through the guard
 * (operators only). Registered first, so a token scrape costs no authentication work.
 */
function registerMetricsToken(app: FastifyInstance, token: string): void {
  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.url !== '/metrics' || request.method !== 'GET') return;
    if (!bearerMatches(request.headers.authorization, token)) return;
    return reply.type(app.counters.contentType).send(await app.counters.metrics());
  });
}

export async function buildApp(deps: ApiDeps, opts: BuildAppOptions = {}): Promise<FastifyInstance> {
  const now = deps.now ?? Date.now;
  // Typed as Fastify's logger interface so the instance is the plain FastifyInstance plugins expect.
  // A logger already bound to module 'api' is used as is (pino would repeat the key otherwise).
  const logger: FastifyBaseLogger =
    deps.logger.bindings().module === 'api' ? deps.logger : deps.logger.child({ module: 'api' });
  const serverLimits: HttpServerLimits = {
    requestTimeoutMs: deps.config.http_request_timeout_ms ?? DEFAULT_HTTP_SERVER_LIMITS.requestTimeoutMs,
    idleTimeoutMs: deps.config.http_idle_timeout_ms ?? DEFAULT_HTTP_SERVER_LIMITS.idleTimeoutMs,
    maxConnections: deps.config.http_max_connections ?? DEFAULT_HTTP_SERVER_LIMITS.maxConnections,
  };
  const app = Fastify({
    // Slow clients (Slowloris, stalled readers) and connection floods: api/http-server-limits.ts.
    ...fastifyServerOptions(serverLimits, opts.https),
    loggerInstance: logger,
    // Fastify's own request lines would log `?access_token=` (WebSocket feeds); ours redact it.
    logController: new LogController({ disableRequestLogging: true }),
    // The router refuses some requests before any hook runs (malformed %-encoding, over-long
    // params): answer them in the same error shape as everything else.
    frameworkErrors: (error, _request, reply) => {
      const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
      void (reply as FastifyReply).code(status).send({ error: { code: 'BAD_REQUEST', message: error.message } });
    },
    bodyLimit: BODY_LIMIT_BYTES,
    // Behind a reverse proxy, who may name the client (request.ip) for per-address limits and audit.
    trustProxy: fastifyTrustProxy(deps.config.trust_proxy ?? false),
    // Ids are case-sensitive and a trailing slash is the same resource.
    routerOptions: { ignoreTrailingSlash: true },
  });
  capConnections(app.server, serverLimits, deps.counters);
  closeUnfinishedRequestsOnClose(app);
  // One line per request, with access tokens in query strings (WebSocket feeds) and download
  // tokens in paths redacted.
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      { method: request.method, url: redactDownloadToken(redactQueryToken(request.url)), status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'request completed',
    );
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  const newId = createIdFactory();
  app.decorate('store', deps.store);
  app.decorate('tokens', deps.tokens);
  app.decorate('keyRing', deps.keyRing);
  app.decorate('bus', deps.bus);
  app.decorate('commands', deps.commands);
  app.decorate('counters', deps.counters);
  app.decorate('clock', now);
  app.decorate('newId', newId);
  app.decorate('storeFaults', deps.storeFaults ?? new StoreFaults({ logger: deps.logger.child({ module: 'store' }), counters: deps.counters, now }));
  app.decorate(
    'sessions',
    new SessionService({
      store: deps.store,
      tokens: deps.tokens,
      refreshTtlS: deps.config.refresh_token_ttl_s,
      now,
      newId,
      // Computed once: every login of an unknown email verifies against it (same cost as a real one).
      decoyHash: await decoyHash(),
    }),
  );

  app.decorate(
    'loginThrottle',
    new LoginThrottle({ budgets: deps.budgets ?? new InProcessRateBudgets(), counters: deps.counters, now }),
  );
  app.decorate('apiOptions', { webhookAllowPrivate: deps.config.webhook_allow_private ?? false });

  acceptEmptyJsonOnBodilessMethods(app);
  registerErrorHandling(app);
  if (opts.metricsToken) registerMetricsToken(app, opts.metricsToken);
  // Before the guard: it lifts a WebSocket client's token into Authorization for the guard to check.
  await registerFeedTransport(app);
  registerGuard(
    app,
    await registerRequestRateLimits(app, {
      perMinute: deps.config.rate_limit_per_min ?? DEFAULT_REQUESTS_PER_MIN,
      now,
      redis: deps.redis ?? null,
      prefix: deps.config.redis_prefix ?? 'edgeplane:',
    }),
  );
  registerEtags(app);
  registerConditionalWrites(app, {
    prefix: API_PREFIX,
    redis: deps.redis ? { connection: deps.redis, prefix: deps.config.redis_prefix ?? 'edgeplane:' } : null,
  });
  registerStrictQuery(app);
  registerCursorScope(app, { prefix: API_PREFIX });
  registerAuditTrail(app, { prefix: API_PREFIX });
  app.addHook('onRoute', tagRoute);
  app.addHook('onRoute', nameOperation);
  const routes: RouteOptions[] = [];
  routeRegistry.set(app, routes);
  app.addHook('onRoute', (route) => void routes.push(route));

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'EdgePlane',
        description: 'Multi-tenant control plane for enterprise devices seen at carrier cell towers.',
        version: '1.0.0',
      },
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description:
              'An access JWT from /auth/login, or a tenant API key (epk_…); a key may also be sent as `x-api-key`.',
          },
        },
      },
    },
    transform: createJsonSchemaTransform({ skipList: ['/docs', '/docs/', '/docs/json', '/docs/yaml', '/docs/*'] }),
    // zod writes a nullable reference so that OpenAPI 3.0 reads it as not nullable: api/openapi-nullable.ts;
    // writes take If-Match: api/conditional-writes.ts; reads If-None-Match: api/etag.ts.
    transformObject: (document) => documentIfNoneMatch(documentIfMatch(nullableForOpenApi30(jsonSchemaTransformObject(document)), API_PREFIX)),
  });
  // The API explorer holds no session, but it must not be framed (clickjacking) nor sniffed: the
  // plugin's CSP, with frame-ancestors 'none' and without upgrade-insecure-requests (a plain-HTTP
  // deployment would lose its scripts), and the console's other headers. Those are set by a hook
  // of a scope of its own rather than the plugin's uiHooks, which skip its static files
  // (/docs/static/*).
  await app.register(async (docs) => {
    docs.addHook('onRequest', (_request, reply, done) => {
      reply.header('x-frame-options', 'DENY').header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
      done();
    });
    await docs.register(fastifySwaggerUi, {
      routePrefix: '/docs',
      staticCSP: true,
      transformStaticCSP: (header) =>
        header
          .replace("frame-ancestors 'self'", "frame-ancestors 'none'")
          .replace(/\s*upgrade-insecure-requests;?/, ''),
    });
  });

  await app.register(systemRoutes, {
    readiness: deps.readiness ?? (async () => ({ ok: true, checks: {} })),
  });
  await app.register(authRoutes, { prefix: API_PREFIX });
  await app.register(apiRoutes, { prefix: API_PREFIX });
  await app.register(downloadTokenRoutes, {
    prefix: API_PREFIX,
    routes,
    apiPrefix: API_PREFIX,
    redis: deps.redis ? { connection: deps.redis, prefix: deps.config.redis_prefix ?? 'edgeplane:' } : null,
  });
  await app.register(feedRoutes, { apiPrefix: API_PREFIX });
  // The consoles' overview, plan usage and permission introspection, then the console itself at `/`.
  await app.register(liveStatsRoutes, { prefix: API_PREFIX });
  await app.register(consolePlugin);
  return app;
}
