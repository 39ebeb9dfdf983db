/** Sign-in, token refresh, sign-out and the caller's own account. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createError } from '../../shared/errors.js';
import { NoContent, errorResponses } from '../schemas/common.js';
import { ConsoleUserSchema } from '../schemas/records.js';
import { principalOf } from './guard.js';

const TokenPairSchema = z
  .object({
    access_token: z.string(),
    refresh_token: z.string(),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int().describe('access token lifetime in seconds'),
  })
  .meta({ id: 'TokenPair' });

const LoginBody = z
  .strictObject({
    email: z.string().min(1).max(320),
    // Upper bound keeps a hostile caller from making scrypt hash megabytes.
    password: z.string().min(1).max(1024),
  })
  .meta({ example: { email: 'owner@acme.example', password: 'correct horse battery' } });

const RefreshBody = z.strictObject({ refresh_token: z.string().min(1).max(512) });

export const authRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/auth/login',
    {
      config: { public: true },
      schema: {
        summary: 'Sign in with email and password',
        body: LoginBody,
        response: { 200: TokenPairSchema, ...errorResponses },
      },
    },
    async (request) => app.sessions.login(request.body.email, request.body.password),
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
        summary: 'Revoke the refresh token and every token rotated from the same sign-in',
        body: RefreshBody,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      await app.sessions.logout(request.body.refresh_token);
      return reply.code(204).send();
    },
  );

  app.get(
    '/me',
    {
      config: { permission: 'session:read' },
      schema: { summary: 'The signed-in console user', response: { 200: z.object({ user: ConsoleUserSchema }), ...errorResponses } },
    },
    async (request) => {
      const user = await app.store.consoleUsers.get(principalOf(request).userId);
      if (!user) throw createError('UNAUTHENTICATED', 'account no longer exists');
      return { user };
    },
  );
};
