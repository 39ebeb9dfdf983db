/**
 * Rotation of the access-token signing key (operators). Rotating adds a key that signs from now
 * on; older keys stay in the JWKS and keep verifying the tokens they signed until those expire.
 * Retiring drops old verification keys, which ends every token they signed (e.g. after a leak).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { EpochMsSchema, errorResponses } from '../schemas/common.js';

const KeyRingStateSchema = z.object({
  kid: z.string().describe('id of the key that signs new tokens'),
  jwks_keys: z.number().int().describe('keys published in /.well-known/jwks.json'),
});

const RetireBody = z
  .strictObject({ before: EpochMsSchema.min(0).describe('verification keys created before this are dropped') })
  .meta({ example: { before: 1767225600000 } });

export const signingKeyRoutes: FastifyPluginAsyncZod = async (app) => {
  const state = () => ({ kid: app.keyRing.currentKid, jwks_keys: app.keyRing.jwks().keys.length });

  app.post(
    '/signing-keys/rotate',
    {
      config: { permission: 'signing-keys:write' },
      schema: {
        summary: 'Start signing access tokens with a new key',
        description: 'Tokens signed with older keys keep verifying until they expire: the JWKS serves old and new.',
        response: { 200: KeyRingStateSchema, ...errorResponses },
      },
    },
    async () => {
      await app.keyRing.rotate(app.clock());
      return state();
    },
  );

  app.post(
    '/signing-keys/retire',
    {
      config: { permission: 'signing-keys:write' },
      schema: {
        summary: 'Drop verification keys created before a time (the signing key is always kept)',
        description: 'Access tokens signed with a dropped key answer 401, and the live feeds they opened close (4401), at once on this process; on every other process sharing the key file, within 5 s (feeds: at their next heartbeat).',
        body: RetireBody,
        response: { 200: KeyRingStateSchema, ...errorResponses },
      },
    },
    async (request) => {
      await app.keyRing.retire(request.body.before);
      // Live feeds opened with tokens of a dropped key close too (other processes: at a heartbeat).
      await app.feeds.recheck();
      return state();
    },
  );
};
