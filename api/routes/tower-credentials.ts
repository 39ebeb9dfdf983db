/**
 * MQTT credentials of a tower. The secret is generated here, returned exactly once, and stored
 * only as SHA-256; revoking one tells every broker (bus 'credential.revoked') to drop sessions
 * that authenticated with it.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { formatTowerPassword, randomSecret, sha256 } from '../../shared/auth/secrets.js';
import { audit, recordCreate } from '../audit.js';
import { IdParams, IdSchema, NoContent, errorResponses, found } from '../schemas/common.js';
import { TowerCredentialSchema } from '../../shared/schemas/records.js';

const IssuedCredentialSchema = z
  .object({
    credential: TowerCredentialSchema,
    mqtt: z.object({
      username: z.string().describe('the tower id'),
      password: z.string().describe('shown once; store it in the tower agent’s configuration'),
      client_id: z.string(),
    }),
  })
  .meta({ id: 'IssuedTowerCredential' });

export const towerCredentialRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/towers/:id/credentials',
    {
      config: { permission: 'tower-credentials:write', audit: { action: 'tower-credentials.create', resource_type: 'tower_credential' } },
      schema: {
        summary: 'Issue an MQTT credential for a tower (the password is returned once)',
        params: IdParams,
        response: { 201: IssuedCredentialSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const tower = found(await app.store.towers.get(request.params.id), 'tower');
      const secret = randomSecret();
      // The audit trail gets the credential record only: never the secret nor its hash.
      const credential = await recordCreate(request, () =>
        app.store.towerCredentials.create({ id: app.newId(), tower_id: tower.id, secret_hash: sha256(secret) }),
      );
      return reply.code(201).send({
        credential,
        mqtt: {
          username: tower.id,
          password: formatTowerPassword(credential.id, secret),
          client_id: `tower-${tower.id}`,
        },
      });
    },
  );

  app.get(
    '/towers/:id/credentials',
    {
      config: { permission: 'tower-credentials:read' },
      schema: {
        summary: 'List a tower’s credentials (never their secrets)',
        params: IdParams,
        response: { 200: z.object({ credentials: z.array(TowerCredentialSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const tower = found(await app.store.towers.get(request.params.id), 'tower');
      return { credentials: await app.store.towerCredentials.listForTower(tower.id) };
    },
  );

  app.delete(
    '/towers/:id/credentials/:credential_id',
    {
      config: { permission: 'tower-credentials:write', audit: { action: 'tower-credentials.revoke', resource_type: 'tower_credential' } },
      schema: {
        summary: 'Revoke a tower credential and drop its live MQTT sessions',
        params: z.object({ id: IdSchema, credential_id: IdSchema }),
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id: towerId, credential_id } = request.params;
      audit(request, { resource_id: credential_id });
      const stored = await app.store.towerCredentials.get(credential_id);
      const cred = found(stored?.tower_id === towerId ? stored : null, 'credential');
      const { secret_hash: _hash, ...before } = cred;
      audit(request, { before });
      const revokedAt = app.clock();
      const revoked = await app.store.towerCredentials.revoke(credential_id, revokedAt);
      audit(request, { after: revoked ? { ...before, revoked_at: revokedAt } : before });
      // Published even when it was already revoked: dropping sessions again is harmless, and a
      // broker that missed the first event gets another chance.
      app.bus.publish('credential.revoked', { tower_id: towerId, credential_id });
      return reply.code(204).send();
    },
  );
};
