/**
 * RADIUS accounting clients (operators): which NAS, by its NAS-Identifier, reports for which
 * tower, and the shared secret its packets are authenticated with. The secret is given by the
 * operator (it is also configured on the NAS) or generated and shown once; it is never returned
 * afterwards. A client with a `radsec_identity` reports over RADIUS/TLS only (RadSec,
 * broker/radius/radsec-plugin.ts), from a TLS peer whose certificate names that identity. A
 * change takes effect for the next packet.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { randomSecret } from '../../shared/auth/secrets.js';
import { RadiusClientSchema } from '../../shared/schemas/records.js';
import { recordCreate, recordDelete, recordUpdate } from '../audit.js';
import { IdParams, IdSchema, NextCursor, NoContent, errorResponses, existed, found, listQuery, paginate, referenceNotFound } from '../schemas/common.js';

/** [RFC 2865 §3] the secret SHOULD be at least 16 octets; printable, so it can be typed on a NAS. */
const Secret = z
  .string()
  .min(16, 'must be at least 16 characters (RFC 2865 §3)')
  .max(128)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');
const NasIdentifier = z.string().min(1).max(253).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces').describe('NAS-Identifier the NAS sends');

/** A certificate's DNS name or subject CN: printable ASCII, inner spaces allowed (a CN may hold them). */
const RadsecIdentity = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/, 'printable ASCII, no leading or trailing space')
  .describe(
    'RADIUS/TLS (RadSec) only: the identity (DNS subjectAltName, else subject CN; case-insensitive) of the TLS peer that carries this NAS’s accounting, the NAS or its proxy. Its UDP packets are then refused',
  );

const CreateBody = z
  .strictObject({
    nas_identifier: NasIdentifier,
    tower_id: IdSchema,
    secret: Secret.optional().describe('generated (and returned once) when absent'),
    radsec_identity: RadsecIdentity.optional(),
  })
  .meta({ example: { nas_identifier: 'bng-paris-1', tower_id: 'twr-paris-001' } });
const PatchBody = z.strictObject({
  nas_identifier: NasIdentifier.optional(),
  tower_id: IdSchema.optional(),
  secret: Secret.optional(),
  radsec_identity: RadsecIdentity.nullable().optional().describe('null: back to RADIUS/UDP with the shared secret'),
}).meta({ example: { tower_id: 'twr-paris-002' } });
const ClientReply = z.object({ client: RadiusClientSchema });

export const radiusClientRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/radius/clients',
    {
      config: { permission: 'radius-clients:write', audit: { action: 'radius-clients.create', resource_type: 'radius_client' } },
      schema: {
        summary: 'Register a RADIUS accounting client (NAS) for a tower',
        body: CreateBody,
        response: { 201: ClientReply.extend({ secret: z.string().optional().describe('the generated secret, shown once') }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { secret, ...rest } = request.body;
      if (!(await app.store.towers.get(rest.tower_id))) referenceNotFound('body.tower_id', 'tower');
      const generated = secret === undefined ? randomSecret(24) : null;
      const client = await recordCreate(request, () => app.store.radiusClients.create({ ...rest, secret: secret ?? generated! }));
      return reply.code(201).send({ client, ...(generated !== null && { secret: generated }) });
    },
  );

  app.get(
    '/radius/clients',
    {
      config: { permission: 'radius-clients:read' },
      schema: {
        summary: 'List RADIUS accounting clients (never their secrets)',
        querystring: listQuery({ tower_id: IdSchema.optional() }),
        response: { 200: z.object({ clients: z.array(RadiusClientSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const { tower_id } = request.query;
      const page = await paginate(request.query, (o) => app.store.radiusClients.list({ ...o, ...(tower_id !== undefined && { tower_id }) }));
      return { clients: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/radius/clients/:id',
    {
      config: { permission: 'radius-clients:read' },
      schema: { summary: 'Get a RADIUS accounting client', params: IdParams, response: { 200: ClientReply, ...errorResponses } },
    },
    async (request) => ({ client: found(await app.store.radiusClients.get(request.params.id), 'RADIUS client') }),
  );

  app.patch(
    '/radius/clients/:id',
    {
      config: { permission: 'radius-clients:write', audit: { action: 'radius-clients.update', resource_type: 'radius_client' } },
      schema: {
        summary: 'Change a RADIUS client (its tower, NAS-Identifier, secret or RadSec identity)',
        params: IdParams,
        body: PatchBody,
        response: { 200: ClientReply, ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (request.body.tower_id !== undefined && !(await app.store.towers.get(request.body.tower_id))) referenceNotFound('body.tower_id', 'tower');
      const client = await recordUpdate(
        request,
        id,
        () => app.store.radiusClients.get(id),
        () => app.store.radiusClients.update(id, request.body),
      );
      return { client: found(client, 'RADIUS client') };
    },
  );

  app.delete(
    '/radius/clients/:id',
    {
      config: { permission: 'radius-clients:write', audit: { action: 'radius-clients.delete', resource_type: 'radius_client' } },
      schema: { summary: 'Remove a RADIUS client (its packets are dropped from then on)', params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      const { id } = request.params;
      existed(await recordDelete(request, id, () => app.store.radiusClients.get(id), () => app.store.radiusClients.delete(id)), 'RADIUS client');
      return reply.code(204).send();
    },
  );
};
