/**
 * Process-level endpoints: liveness, readiness, the OpenAPI document at its conventional address,
 * the JWKS other services verify tokens with, and the Prometheus metrics (operators, or a scraper
 * with the static --metrics-token, checked in api/app.ts: they reveal traffic across tenants).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses } from '../schemas/common.js';
import type { Readiness } from '../types.js';

export interface SystemRoutesOptions {
  readiness: () => Promise<Readiness>;
}

const ReadinessSchema = z.object({
  status: z.enum(['ready', 'unavailable']),
  checks: z.record(z.string(), z.boolean()),
});

const JwksSchema = z
  .object({ keys: z.array(z.record(z.string(), z.unknown())) })
  .meta({ id: 'Jwks', description: 'RFC 7517 JSON Web Key Set (ES256 public keys)' });

export const systemRoutes: FastifyPluginAsyncZod<SystemRoutesOptions> = async (app, opts) => {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: { tags: ['system'], summary: 'Liveness', response: { 200: z.object({ status: z.literal('ok') }), ...errorResponses } },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: { public: true },
      schema: {
        tags: ['system'],
        summary: 'Readiness: 503 until every dependency answers',
        response: { 200: ReadinessSchema, 503: ReadinessSchema, ...errorResponses },
      },
    },
    async (_request, reply) => {
      let r: Readiness;
      try {
        r = await opts.readiness();
      } catch (err) {
        // A readiness probe that throws is a dependency that is not ready, not a server fault.
        reply.log.warn({ err }, 'readiness check failed');
        r = { ok: false, checks: {} };
      }
      return reply.code(r.ok ? 200 : 503).send({ status: r.ok ? 'ready' : 'unavailable', checks: r.checks });
    },
  );

  // The conventional address code generators and API gateways fetch first; the same document
  // as /docs/json (kept out of itself).
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());

  app.get(
    '/.well-known/jwks.json',
    { config: { public: true }, schema: { tags: ['system'], summary: 'Token signing keys', response: { 200: JwksSchema, ...errorResponses } } },
    async () => ({ keys: app.keyRing.jwks().keys.map((k) => ({ ...k })) }),
  );

  app.get(
    '/metrics',
    {
      config: { permission: 'metrics:read' },
      schema: {
        tags: ['system'],
        summary: 'Prometheus metrics (text exposition format): operators, or `Authorization: Bearer <--metrics-token>`',
        // Documentation only: Fastify serializes no string sent with a non-JSON type, so the
        // text/plain body leaves unquoted; the response schema gives clients its media type.
        response: {
          200: {
            description: 'Prometheus text exposition format (version 0.0.4)',
            content: { 'text/plain': { schema: z.string() } },
          },
          // Without a credential 401, for a tenant user 403, as every guarded route answers.
          ...errorResponses,
        },
      },
    },
    async (_request, reply) => reply.type(app.counters.contentType).send(await app.counters.metrics()),
  );
};
