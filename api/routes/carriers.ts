/** Carriers (platform-level; everyone reads, operators write) and which towers they run. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { audit, recordCreate, recordDelete, recordUpdate } from '../audit.js';
import { principalOf } from '../auth/guard.js';
import { IdParams, IdSchema, ListQuery, NextCursor, NoContent, errorResponses, existed, found, humanName, paginate, referenceNotFound } from '../schemas/common.js';
import { CarrierSchema } from '../../shared/schemas/records.js';
import { visibleTower } from './towers.js';

const fields = {
  name: humanName(),
  mcc_mnc: z
    .string()
    .regex(/^\d{5,6}$/, 'must be the 5-6 digit MCC+MNC, e.g. "20801"')
    .nullable(),
};
const CreateCarrierBody = z
  .strictObject({ name: fields.name, mcc_mnc: fields.mcc_mnc.optional() })
  .meta({ example: { name: 'Orange France', mcc_mnc: '20801' } });
const PatchCarrierBody = z
  .strictObject({ name: fields.name.optional(), mcc_mnc: fields.mcc_mnc.optional() })
  .meta({ example: { mcc_mnc: '20801' } });
const CarrierReply = z.object({ carrier: CarrierSchema });

export const carrierRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/carriers',
    {
      config: { permission: 'carriers:write', audit: { action: 'carriers.create', resource_type: 'carrier' } },
      schema: { summary: 'Create a carrier', body: CreateCarrierBody, response: { 201: CarrierReply, ...errorResponses } },
    },
    async (request, reply) => {
      const carrier = await recordCreate(request, () => app.store.carriers.create(request.body));
      return reply.code(201).send({ carrier });
    },
  );

  app.get(
    '/carriers',
    {
      config: { permission: 'carriers:read' },
      schema: {
        summary: 'List carriers',
        querystring: ListQuery,
        response: { 200: z.object({ carriers: z.array(CarrierSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const page = await paginate(request.query, (o) => app.store.carriers.list(o));
      return { carriers: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/carriers/:id',
    {
      config: { permission: 'carriers:read' },
      schema: { summary: 'Get a carrier', params: IdParams, response: { 200: CarrierReply, ...errorResponses } },
    },
    async (request) => ({ carrier: found(await app.store.carriers.get(request.params.id), 'carrier') }),
  );

  app.patch(
    '/carriers/:id',
    {
      config: { permission: 'carriers:write', audit: { action: 'carriers.update', resource_type: 'carrier' } },
      schema: {
        summary: 'Update a carrier',
        params: IdParams,
        body: PatchCarrierBody,
        response: { 200: CarrierReply, ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      const carrier = await recordUpdate(
        request,
        id,
        () => app.store.carriers.get(id),
        () => app.store.carriers.update(id, request.body),
      );
      return { carrier: found(carrier, 'carrier') };
    },
  );

  app.delete(
    '/carriers/:id',
    {
      config: { permission: 'carriers:write', audit: { action: 'carriers.delete', resource_type: 'carrier' } },
      schema: { summary: 'Delete a carrier', params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      const { id } = request.params;
      // Its credentials go with it; brokers drop the MQTT sessions opened with them.
      const credentials = await app.store.carrierCredentials.listForCarrier(id);
      existed(await recordDelete(request, id, () => app.store.carriers.get(id), () => app.store.carriers.delete(id)), 'carrier');
      for (const c of credentials) app.bus.publish('carrier-credential.revoked', { carrier_id: id, credential_id: c.id });
      return reply.code(204).send();
    },
  );

  app.get(
    '/towers/:id/carriers',
    {
      config: { permission: 'towers:read' },
      schema: {
        summary: 'Carriers operating a tower',
        params: IdParams,
        response: { 200: z.object({ tower_id: z.string(), carriers: z.array(CarrierSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const tower = found(await visibleTower(app.store, principalOf(request), request.params.id), 'tower');
      return { tower_id: tower.id, carriers: await app.store.towerCarriers.carriersOfTower(tower.id) };
    },
  );

  app.post(
    '/towers/:id/carriers',
    {
      config: { permission: 'towers:write', audit: { action: 'tower-carriers.link', resource_type: 'tower_carrier' } },
      schema: {
        summary: 'Link a carrier to a tower (idempotent)',
        params: IdParams,
        body: z.strictObject({ carrier_id: IdSchema }).meta({ example: { carrier_id: '01JGZ5V2C8N4R6T0W3Y5A7D9FG' } }),
        response: {
          200: z.object({ tower_id: z.string(), carrier_id: z.string(), linked: z.boolean().describe('false when it already was') }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { carrier_id } = request.body;
      audit(request, { resource_id: `${request.params.id}/${carrier_id}` });
      const tower = found(await app.store.towers.get(request.params.id), 'tower');
      if (!(await app.store.carriers.get(carrier_id))) referenceNotFound('body.carrier_id', 'carrier');
      const linked = await app.store.towerCarriers.link(tower.id, carrier_id);
      audit(request, { after: { tower_id: tower.id, carrier_id, linked } });
      return { tower_id: tower.id, carrier_id, linked };
    },
  );

  app.delete(
    '/towers/:id/carriers/:carrier_id',
    {
      config: { permission: 'towers:write', audit: { action: 'tower-carriers.unlink', resource_type: 'tower_carrier' } },
      schema: {
        summary: 'Unlink a carrier from a tower',
        params: z.object({ id: IdSchema, carrier_id: IdSchema }),
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id: towerId, carrier_id } = request.params;
      audit(request, { resource_id: `${towerId}/${carrier_id}`, before: { tower_id: towerId, carrier_id } });
      existed(await app.store.towerCarriers.unlink(towerId, carrier_id), 'carrier link');
      return reply.code(204).send();
    },
  );
};
