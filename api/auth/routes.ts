/** Sign-in, token refresh, sign-out and the caller's own account. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createError, isEdgeplaneError } from '../../shared/errors.js';
import { NoContent, errorResponses } from '../schemas/common.js';
import { ConsoleUserSchema } from '../../shared/schemas/records.js';
import { ApiKeyViewSchema } from '../routes/api-keys.js';
import { audit } from '../audit.js';
import { PasswordSchema } from '../routes/tenants.js';
import { principalOf, userPrincipalOf } from './guard.js';

const TokenPairSchema = z
  .object({
    access_token: z.string(),
    refresh_token: z.string(),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int().describe('access token lifetime in seconds'),
  })
  .meta({
    id: 'TokenPair',
    example: { access_token: 'eyJhbGciOiJFZERTQSIsImtpZCI6IjAxSkdaNUE4In0.eyJzdWIiOiIwMUpHWjYwRzZKMEs0TDhNMk42UDBRNFI4UyJ9.c2lnbmF0dXJl', refresh_token: 'rt_4f9c2b7e8a1d4e6f9b0c3a5d7e9f1b2c', token_type: 'Bearer', expires_in: 900 },
  });

const LoginBody = z
  .strictObject({
    email: z.string().min(1).max(320),
    // Upper bound keeps a hostile caller from making scrypt hash megabytes.
    password: z.string().min(1).max(1024),
    tenant_id: z
      .string()
      .min(1)
      .max(64)
      .nullable()
      .optional()
      .describe('for an e-mail with accounts in several tenants: sign in to this one (null: the platform operator)'),
  })
  .meta({ example: { email: 'owner@acme.example', password: 'correct horse battery' } });

const ChangePasswordBody = z
  .strictObject({ current_password: z.string().min(1).max(1024), new_password: PasswordSchema })
  .meta({ example: { current_password: 'correct horse battery', new_password: 'a longer passphrase than before' } });

const RefreshBody = z
  .strictObject({ refresh_token: z.string().min(1).max(512) })
  .meta({ example: { refresh_token: 'rt_4f9c2b7e8a1d4e6f9b0c3a5d7e9f1b2c' } });

export const authRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/auth/login',
    {
      config: { public: true },
      schema: {
        summary: 'Sign in with email and password',
        description:
          'Besides the request limit, attempts are limited per (e-mail, client address), 5 then one ' +
          'every 200 s, and per client address, 100 then one every 10 s: 429 RATE_LIMITED with ' +
          'Retry-After, the same for every e-mail. Disabled accounts answer like a wrong password.',
        body: LoginBody,
        response: { 200: TokenPairSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { email, password, tenant_id } = request.body;
      const throttled = await app.loginThrottle.admit(email, request.ip);
      if (throttled) {
        reply.header('retry-after', throttled.retryAfterS);
        throw throttled.error;
      }
      let signedIn: Awaited<ReturnType<typeof app.sessions.login>>;
      try {
        signedIn = await app.sessions.login(email, password, tenant_id === undefined ? {} : { tenantId: tenant_id });
      } catch (err) {
        app.loginThrottle.failed();
        throw err;
      }
      await app.loginThrottle.succeeded(email, request.ip);
      const { user, pair } = signedIn;
      // Recorded against the account that signed in (an e-mail may have several).
      audit(request, { tenant_id: user.tenant_id, actor: { kind: 'console_user', id: user.id, label: user.email } });
      return pair;
    },
  );

  app.post(
    '/auth/refresh',
    {
      config: { public: true },
      schema: {
        summary: 'Exchange a refresh token for a new pair (the old one is consumed)',
        body: RefreshBody,
        response: { 200: TokenPairSchema, ...errorResponses },
      },
    },
    async (request) => app.sessions.refresh(request.body.refresh_token),
  );

  app.post(
    '/auth/logout',
    {
      config: { public: true },
      schema: {
        summary: 'Sign out: end the sign-in the refresh token belongs to',
        description:
          'Revokes the refresh token and every token rotated from the same sign-in, and ends that sign-in’s access ' +
          'tokens with them: they are refused from now on (REST, feeds, download links, console MQTT), and the live ' +
          'feeds and console MQTT sessions opened with them close. Other sign-ins of the account go on. An unknown ' +
          'refresh token is answered 204 too, and ends nothing.',
        body: RefreshBody,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const ended = await app.sessions.logout(request.body.refresh_token);
      // The store already refuses the sign-in's access tokens everywhere (guard, re-checks); the
      // announcement closes its live feeds and console MQTT sessions at once, on every process.
      if (ended) app.bus.publish('console-session.ended', { user_id: ended.userId, session_id: ended.sessionId });
      return reply.code(204).send();
    },
  );

  app.get(
    '/me',
    {
      config: { permission: 'session:read' },
      schema: {
        summary: 'The caller: the signed-in console user, or the API key in use',
        description: 'An API key needs the session:read scope and is answered with `api_key` instead of `user`, with the scopes it holds now (`effective_scopes`: those its creator’s current role may still delegate).',
        response: {
          200: z.union([z.object({ user: ConsoleUserSchema }), z.object({ api_key: ApiKeyViewSchema })]),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      if (principal.kind === 'api_key') {
        const apiKey = await app.store.apiKeys.get(principal.tenantId, principal.keyId);
        if (!apiKey) throw createError('UNAUTHENTICATED', 'API key is invalid, expired or revoked');
        // It authenticated just now, so it is active, with the scopes its principal was given.
        return { api_key: { ...apiKey, status: 'active' as const, effective_scopes: [...principal.scopes] } };
      }
      // Unreachable (carriers hold no 'session:read'), kept for the type.
      if (principal.kind === 'carrier') throw createError('FORBIDDEN', 'carrier credentials have no session');
      const user = await app.store.consoleUsers.get(principal.userId);
      if (!user) throw createError('UNAUTHENTICATED', 'account no longer exists');
      return { user };
    },
  );

  app.post(
    '/me/password',
    {
      config: { permission: 'session:read', audit: { action: 'me.password', resource_type: 'console_user' } },
      schema: {
        summary: 'Change the caller’s own password; every other session of the account ends',
        description:
          'Checks the current password (401 INVALID_CREDENTIALS naming body.current_password), then ends ' +
          'every session of the account, live feeds included, and returns a fresh token pair for the caller. ' +
          'Guesses share the sign-in limits (per e-mail and client address): 429 RATE_LIMITED with Retry-After beyond them.',
        body: ChangePasswordBody,
        response: { 200: TokenPairSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { userId } = userPrincipalOf(request);
      const { current_password, new_password } = request.body;
      // Checking the current password answers whether a guess is right, like sign-in: it draws on
      // the same budgets (per e-mail and address), so a stolen session cannot guess around them.
      const account = await app.store.consoleUsers.get(userId);
      if (!account) throw createError('UNAUTHENTICATED', 'account no longer exists or is disabled');
      const throttled = await app.loginThrottle.admit(account.email, request.ip);
      if (throttled) {
        reply.header('retry-after', throttled.retryAfterS);
        throw throttled.error;
      }
      let changed: Awaited<ReturnType<typeof app.sessions.changeOwnPassword>>;
      try {
        changed = await app.sessions.changeOwnPassword(userId, current_password, new_password);
      } catch (err) {
        if (isEdgeplaneError(err) && err.code === 'INVALID_CREDENTIALS') app.loginThrottle.failed();
        throw err;
      }
      await app.loginThrottle.succeeded(account.email, request.ip);
      const { pair, user } = changed;
      audit(request, { resource_id: userId });
      app.bus.publish('console-user.revoked', { user_id: userId, tenant_id: user.tenant_id, reason: 'password_changed' });
      return pair;
    },
  );
};
