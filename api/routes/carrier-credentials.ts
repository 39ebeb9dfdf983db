/**
 * A carrier's feed credentials (operators). The key is generated here, returned exactly once, and
 * stored only as SHA-256; revoking one refuses it at the next REST call and tells every broker
 * (bus 'carrier-credential.revoked') to drop the MQTT sessions opened with it.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { formatCarrierKey } from '../../shared/auth/carrier-keys.js';
import { randomSecret, sha256 } from '../../shared/auth/secrets.js';
import { mqttIdentity } from '../../shared/mqtt/topics.js';
import { CarrierCredentialSchema } from '../../shared/schemas/records.js';
import { audit, recordCreate } from '../audit.js';
import { IdParams, IdSchema, NoContent, errorResponses, found } from '../schemas/common.js';

const IssuedCarrierCredentialSchema = z
  .object({
    credential: CarrierCredentialSchema,
    key: z.string().describe('shown once: `Authorization: Bearer <key>` on REST, the password on MQTT'),
    mqtt: z.object({ username: z.string(), client_id: z.string() }),
  })
  .meta({ id: 'IssuedCarrierCredential' });

export const carrierCredentialRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/carriers/:id/credentials',
    {
      config: { permission: 'carrier-credentials:write', audit: { action: 'carrier-credentials.create', resource_type: 'carrier_credential' } },
      schema: {
        summary: "Issue a carrier's feed credential (the key is returned once)",
        params: IdParams,
        response: { 201: IssuedCarrierCredentialSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const carrier = found(await app.store.carriers.get(request.params.id), 'carrier');
      const secret = randomSecret();
      const credential = await recordCreate(request, () =>
        app.store.carrierCredentials.create({ id: app.newId(), carrier_id: carrier.id, secret_hash: sha256(secret) }),
      );
      return reply.code(201).send({
        credential,
        key: formatCarrierKey(credential.id, secret),
        mqtt: { username: mqttIdentity.carrierUsername(carrier.id), client_id: mqttIdentity.carrierClientId(carrier.id) },
      });
    },
  );

  app.get(
    '/carriers/:id/credentials',
    {
      config: { permission: 'carrier-credentials:read' },
      schema: {
        summary: "List a carrier's feed credentials (never their secrets)",
        params: IdParams,
        response: { 200: z.object({ credentials: z.array(CarrierCredentialSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const carrier = found(await app.store.carriers.get(request.params.id), 'carrier');
      return { credentials: await app.store.carrierCredentials.listForCarrier(carrier.id) };
    },
  );

  app.delete(
    '/carriers/:id/credentials/:credential_id',
    {
      config: { permission: 'carrier-credentials:write', audit: { action: 'carrier-credentials.revoke', resource_type: 'carrier_credential' } },
      schema: {
        summary: 'Revoke a carrier credential and drop its live MQTT sessions',
        params: z.object({ id: IdSchema, credential_id: IdSchema }),
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id: carrierId, credential_id } = request.params;
      audit(request, { resource_id: credential_id });
      const stored = await app.store.carrierCredentials.get(credential_id);
      const cred = found(stored?.carrier_id === carrierId ? stored : null, 'credential');
      const { secret_hash: _hash, ...before } = cred;
      audit(request, { before });
      const revokedAt = app.clock();
      const revoked = await app.store.carrierCredentials.revoke(credential_id, revokedAt);
      audit(request, { after: revoked ? { ...before, revoked_at: revokedAt } : before });
      app.bus.publish('carrier-credential.revoked', { carrier_id: carrierId, credential_id });
      return reply.code(204).send();
    },
  );
};
