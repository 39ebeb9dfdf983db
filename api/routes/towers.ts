/**
 * Cell towers: platform infrastructure that operators register. Tenant users may read the towers
 * where their devices have been seen, and nothing about the others (not even that they exist).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { TopicId } from '../../shared/mqtt/payloads.js';
import type { Page, Store } from '../../shared/store/port.js';
import type { Tower } from '../../shared/domain.js';
import { recordCreate, recordDelete, recordUpdate } from '../audit.js';
import { principalOf } from '../auth/guard.js';
import { IdParams, ListQuery, NextCursor, NoContent, errorResponses, existed, found, humanName, paginate, sortQuery } from '../schemas/common.js';
import { TowerSchema } from '../../shared/schemas/records.js';
import type { Principal } from '../types.js';

const fields = {
  name: humanName(),
  lat: z.number().min(-90).max(90).nullable(),
  lon: z.number().min(-180).max(180).nullable(),
  radius_m: z.number().positive().max(100_000).nullable().describe('coverage radius in metres'),
};
const CreateTowerBody = z
  .strictObject({
    id: TopicId.optional().describe('operator-assigned id; it appears in MQTT topics'),
    name: fields.name,
    lat: fields.lat.optional(),
    lon: fields.lon.optional(),
    radius_m: fields.radius_m.optional(),
  })
  .meta({ example: { id: 'twr-paris-001', name: 'Paris Nord', lat: 48.88, lon: 2.355, radius_m: 1500 } });
const PatchTowerBody = z.strictObject({
  name: fields.name.optional(),
  lat: fields.lat.optional(),
  lon: fields.lon.optional(),
  radius_m: fields.radius_m.optional(),
}).meta({ example: { name: 'Paris Nord 2', radius_m: 2000 } });
const TowerReply = z.object({ tower: TowerSchema });

/**
 * The tower if the principal may see it: operators see all, tenant users only towers where their
 * devices were seen (a short keyset walk over that tenant's towers).
 */
export async function visibleTower(store: Store, principal: Principal, towerId: string): Promise<Tower | null> {
  const tower = await store.towers.get(towerId);
  if (!tower || principal.tenantId === null) return tower;
  let cursor: string | null = null;
  do {
    const page: Page<Tower> = await store.towers.listSeenByTenant(principal.tenantId, { limit: 1000, cursor });
    if (page.items.some((t) => t.id === towerId)) return tower;
    cursor = page.next_cursor;
  } while (cursor !== null);
  return null;
}

export const towerRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/towers',
    {
      config: { permission: 'towers:write', audit: { action: 'towers.create', resource_type: 'tower' } },
      schema: { summary: 'Register a tower', body: CreateTowerBody, response: { 201: TowerReply, ...errorResponses } },
    },
    async (request, reply) => {
      const tower = await recordCreate(request, () => app.store.towers.create(request.body));
      return reply.code(201).send({ tower });
    },
  );

  app.get(
    '/towers',
    {
      config: { permission: 'towers:read' },
      schema: {
        summary: 'List towers (tenant users: those where their devices were seen)',
        querystring: ListQuery.extend(sortQuery(['name', 'last_seen', 'state'])),
        response: { 200: z.object({ towers: z.array(TowerSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const { tenantId } = principalOf(request);
      const page = await paginate(request.query, (o) =>
        tenantId === null ? app.store.towers.list(o) : app.store.towers.listSeenByTenant(tenantId, o),
      );
      return { towers: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/towers/:id',
    {
      config: { permission: 'towers:read' },
      schema: { summary: 'Get a tower', params: IdParams, response: { 200: TowerReply, ...errorResponses } },
    },
    async (request) => ({
      tower: found(await visibleTower(app.store, principalOf(request), request.params.id), 'tower'),
    }),
  );

  app.patch(
    '/towers/:id',
    {
      config: { permission: 'towers:write', audit: { action: 'towers.update', resource_type: 'tower' } },
      schema: { summary: 'Update a tower', params: IdParams, body: PatchTowerBody, response: { 200: TowerReply, ...errorResponses } },
    },
    async (request) => {
      const { id } = request.params;
      const tower = await recordUpdate(
        request,
        id,
        () => app.store.towers.get(id),
        () => app.store.towers.update(id, request.body),
      );
      return { tower: found(tower, 'tower') };
    },
  );

  app.delete(
    '/towers/:id',
    {
      config: { permission: 'towers:write', audit: { action: 'towers.delete', resource_type: 'tower' } },
      schema: { summary: 'Delete a tower', params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      const { id } = request.params;
      existed(await recordDelete(request, id, () => app.store.towers.get(id), () => app.store.towers.delete(id)), 'tower');
      // Brokers end the tower's live MQTT sessions (broker/broker.ts), as for a revoked credential.
      app.bus.publish('tower.deleted', { tower_id: id });
      return reply.code(204).send();
    },
  );
};
