/**
 * Tenant API keys for integrations. A key is shown once, at creation; afterwards only its prefix
 * is visible. Its scopes are a subset of what its creator holds and never include managing keys or
 * console users, so a key cannot mint a credential broader than itself. It works only while its
 * creator's account does (auth/api-keys.ts); the replies say whether it works now, and with what.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiKey, ConsoleUser } from '../../shared/domain.js';
import { createError, type FieldIssue } from '../../shared/errors.js';
import { API_KEY_STATUSES, apiKeyStanding, creatorsOf, generateApiKey, type ApiKeyStatus } from '../auth/api-keys.js';
import { tenantIdOf, userPrincipalOf } from '../auth/guard.js';
import { apiKeyScopeProblem } from '../auth/permissions.js';
import { EpochMsSchema, IdParams, ListQuery, NextCursor, NoContent, errorResponses, found, humanName, paginate } from '../schemas/common.js';

export const ApiKeySchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    name: z.string(),
    prefix: z.string().describe('first 12 characters of the key'),
    scopes: z.array(z.string()),
    created_by: z.string().nullable().describe('console user who created the key'),
    created_at: EpochMsSchema,
    last_used_at: EpochMsSchema.nullable().describe('updated at most once a minute'),
    revoked_at: EpochMsSchema.nullable(),
    expires_at: EpochMsSchema.nullable(),
  })
  .meta({
    id: 'ApiKey',
    example: {
      id: '01JGZ61H7K1L5M9N3P7Q1R5S9T',
      tenant_id: '01JGZ5Q8X3T0V8N2C6M4K7R9PA',
      name: 'siem_export',
      prefix: 'epk_Qx2f8Kd1',
      scopes: ['devices:read', 'usage:read'],
      created_by: '01JGZ60G6J0K4L8M2N6P0Q4R8S',
      created_at: 1767225600000,
      last_used_at: 1767229200000,
      revoked_at: null,
      expires_at: 1774998000000,
    } satisfies ApiKey,
  });

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
/** Compiles only while the schema matches the domain type. */
export type ApiKeySchemaMatchesDomain = Assert<Same<z.output<typeof ApiKeySchema>, ApiKey>>;

/** A key as the tenant's admins see it: the stored record and whether it authenticates now. */
export interface ApiKeyView extends ApiKey {
  status: ApiKeyStatus;
  effective_scopes: string[];
}

export const ApiKeyViewSchema = ApiKeySchema.extend({
  status: z
    .enum(API_KEY_STATUSES)
    .describe('active, or why requests with the key answer 401: revoked, expired, creator_disabled (works again once the account is enabled), creator_missing (the creating account was deleted or is not recorded)'),
  effective_scopes: z
    .array(z.string())
    .describe('the scopes the key holds now: those its creator’s current console role may still delegate; empty unless active'),
}).meta({
  id: 'ApiKeyView',
  example: {
    ...(ApiKeySchema.meta()?.example as ApiKey),
    status: 'active',
    effective_scopes: ['devices:read', 'usage:read'],
  } satisfies ApiKeyView,
});

/** Compiles only while the schema matches the view type. */
export type ApiKeyViewSchemaMatchesView = Assert<Same<z.output<typeof ApiKeyViewSchema>, ApiKeyView>>;

function viewOf(key: ApiKey, creators: ReadonlyMap<string, ConsoleUser | null>, now: number): ApiKeyView {
  const standing = apiKeyStanding(key, key.created_by === null ? null : (creators.get(key.created_by) ?? null), now);
  return { ...key, status: standing.status, effective_scopes: standing.effectiveScopes };
}

const MAX_EXPIRY_S = 10 * 365 * 24 * 3600;

const CreateApiKeyBody = z
  .strictObject({
    name: humanName(100),
    scopes: z
      .array(z.string().min(1).max(64))
      .min(1)
      .max(64)
      .describe('permissions the key holds: tenant permissions the creator holds, except api-keys:* and console-users:write'),
    expires_in_s: z.number().int().min(60).max(MAX_EXPIRY_S).optional().describe('lifetime in seconds; no expiry when absent'),
  })
  .meta({ example: { name: 'SIEM export', scopes: ['devices:read', 'usage:read'], expires_in_s: 7776000 } });

export const apiKeyRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/api-keys',
    {
      config: { permission: 'api-keys:write' },
      schema: {
        summary: 'Create an API key (the key is in this response only)',
        description:
          'Use it as `Authorization: Bearer epk_…` or `x-api-key: epk_…`. A key acts in the tenant ' +
          'with exactly its scopes; 400 naming body.scopes.N for a scope the creator may not delegate.',
        body: CreateApiKeyBody,
        response: {
          201: z.object({ api_key: ApiKeyViewSchema, key: z.string().meta({ example: 'epk_Qx2f8Kd1mVb9sLw4nRt6yHc3jZa0pUeQ8vX2bN5mK7w' }) }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const creator = userPrincipalOf(request);
      const { name, scopes, expires_in_s } = request.body;
      const issues: FieldIssue[] = [];
      scopes.forEach((scope, i) => {
        const problem = apiKeyScopeProblem(creator.role, scope);
        if (problem) issues.push({ field: `body.scopes.${i}`, message: problem });
      });
      const first = issues[0];
      if (first) throw createError('VALIDATION_FAILED', `${first.field}: ${first.message}`, issues);

      const generated = generateApiKey();
      const apiKey = await app.store.apiKeys.create({
        tenant_id: tenantId,
        name,
        prefix: generated.prefix,
        scopes: [...new Set(scopes)],
        secret_hash: generated.secretHash,
        created_by: creator.userId,
        expires_at: expires_in_s === undefined ? null : app.clock() + expires_in_s * 1000,
      });
      // The key must never be cached by anything between us and the caller.
      reply.header('cache-control', 'no-store');
      const view = viewOf(apiKey, await creatorsOf(app.store, [apiKey]), app.clock());
      return reply.code(201).send({ api_key: view, key: generated.key });
    },
  );

  app.get(
    '/api-keys',
    {
      config: { permission: 'api-keys:read' },
      schema: {
        summary: 'List the tenant’s API keys (revoked and expired included)',
        querystring: ListQuery,
        response: { 200: z.object({ api_keys: z.array(ApiKeyViewSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const page = await paginate(request.query, (o) => app.store.apiKeys.list(tenantId, o));
      const creators = await creatorsOf(app.store, page.items);
      const now = app.clock();
      return { api_keys: page.items.map((k) => viewOf(k, creators, now)), next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/api-keys/:id',
    {
      config: { permission: 'api-keys:read' },
      schema: {
        summary: 'One API key',
        params: IdParams,
        response: { 200: z.object({ api_key: ApiKeyViewSchema }), ...errorResponses },
      },
    },
    async (request) => {
      const key = found(await app.store.apiKeys.get(tenantIdOf(request), request.params.id), 'API key');
      return { api_key: viewOf(key, await creatorsOf(app.store, [key]), app.clock()) };
    },
  );

  app.delete(
    '/api-keys/:id',
    {
      config: { permission: 'api-keys:write' },
      schema: {
        summary: 'Revoke an API key (idempotent); requests with it answer 401 and its live feeds close',
        params: IdParams,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      if (!(await app.store.apiKeys.revoke(tenantId, request.params.id, app.clock()))) {
        // revoke() is false for an unknown id and for a key already revoked: only the first is 404.
        found(await app.store.apiKeys.get(tenantId, request.params.id), 'API key');
      }
      // Every API process closes the feeds it has open with the key (requests are refused already).
      app.bus.publish('api-key.revoked', { key_id: request.params.id, tenant_id: tenantId });
      return reply.code(204).send();
    },
  );
};
