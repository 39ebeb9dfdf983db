/**
 * Registered devices of a tenant, and the devices towers saw that no registration claims
 * (`/devices/discovered`: the tenant's, or for operators the platform's unclaimed ones).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { TopicId } from '../../shared/mqtt/payloads.js';
import { recordCreate, deleteTenantRecord, recordUpdate } from '../audit.js';
import { principalOf, tenantIdOf } from '../auth/guard.js';
import { ErrorBodySchema, IdParams, ListQuery, NextCursor, NoContent, errorResponses, found, humanName, listQuery, paginate, sortQuery } from '../schemas/common.js';
import type { DeviceMetadata } from '../../shared/domain.js';
import type { Store } from '../../shared/store/port.js';
import { DeviceMetadataSchema, DeviceSchema, DiscoveredDeviceSchema } from '../../shared/schemas/records.js';
import { idOrSelf, refField } from './natural-keys.js';

const fields = {
  user_id: refField('user').nullable().describe('the device user who owns the device: id or e-mail'),
  name: humanName(),
  os: humanName(100).nullable(),
};
const CreateDeviceBody = z
  .strictObject({
    id: TopicId.optional().describe('the identifier towers report; generated when absent'),
    user_id: fields.user_id.optional(),
    name: fields.name,
    os: fields.os.optional(),
  })
  .meta({ example: { id: 'imei-356938035643809', name: 'Ada’s phone', os: 'android' } });
const PatchDeviceBody = z.strictObject({
  user_id: fields.user_id.optional(),
  name: fields.name.optional(),
  os: fields.os.optional(),
}).meta({ example: { name: 'Ada’s work phone', user_id: 'ada@acme.example' } });
const metadataField = { metadata: DeviceMetadataSchema.nullable().describe("what the device's carrier says (OS, model, type); null when no carrier feed named it") };
const ListedDeviceSchema = DeviceSchema.extend(metadataField);
const ListedDiscoveredSchema = DiscoveredDeviceSchema.extend(metadataField);
const DeviceReply = z.object({ device: DeviceSchema });

/**
 * Carrier metadata is platform-level, keyed by device id: joined here, for the ids on the page.
 * The new key comes first: V8 (Node 20) builds `{ ...item, metadata }`, a spread followed by a key
 * the source lacks, through its slow path, ~1 µs per object (a 50-device page: ~50 µs of a ~500 µs
 * request); `{ metadata, ...item }` takes ~0.1 µs. The serializer writes keys in schema order.
 */
async function withMetadata<T>(store: Store, items: T[], idOf: (item: T) => string): Promise<Array<T & { metadata: DeviceMetadata | null }>> {
  const byId = new Map((await store.deviceMetadata.forDevices(items.map(idOf))).map((m) => [m.device_id, m]));
  return items.map((item) => ({ metadata: byId.get(idOf(item)) ?? null, ...item }));
}

export const deviceRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/devices',
    {
      config: { permission: 'devices:write', audit: { action: 'devices.create', resource_type: 'device' } },
      schema: {
        summary: 'Register a device',
        description: "403 PLAN_LIMIT_EXCEEDED when the tenant's plan max_devices is reached.",
        body: CreateDeviceBody,
        response: {
          201: DeviceReply,
          403: ErrorBodySchema.describe("PLAN_LIMIT_EXCEEDED: the tenant's plan max_devices is reached (or FORBIDDEN)"),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { user_id, ...rest } = request.body;
      const owner = user_id === undefined || user_id === null ? user_id : await idOrSelf(app.store, tenantId, 'user', user_id);
      const device = await recordCreate(request, () => app.store.devices.create(tenantId, { ...rest, ...(owner !== undefined && { user_id: owner }) }));
      return reply.code(201).send({ device });
    },
  );

  app.get(
    '/devices',
    {
      config: { permission: 'devices:read' },
      schema: {
        summary: 'List registered devices (filter by user_id)',
        querystring: listQuery({ user_id: refField('user').optional(), ...sortQuery(['name', 'created_at', 'updated_at']) }),
        response: { 200: z.object({ devices: z.array(ListedDeviceSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const user_id = request.query.user_id === undefined ? undefined : await idOrSelf(app.store, tenantId, 'user', request.query.user_id);
      const page = await paginate(request.query, (o) =>
        app.store.devices.list(tenantId, { ...o, ...(user_id !== undefined && { user_id }) }),
      );
      return { devices: await withMetadata(app.store, page.items, (d) => d.id), next_cursor: page.next_cursor };
    },
  );

  // The router prefers this static path over /devices/:id, so a device whose id is literally
  // "discovered" is reachable only through the list (accepted: ids are IMEI-like in practice).
  app.get(
    '/devices/discovered',
    {
      config: { permission: 'discovered:read' },
      schema: {
        summary: 'Devices seen at towers that no registration claims',
        description:
          'Sightings of devices no registration claims (for operators: that no tenant registered). Registering a ' +
          'device (approving it) takes it off this list; a page may therefore hold fewer than `limit` items.',
        querystring: ListQuery,
        response: { 200: z.object({ devices: z.array(ListedDiscoveredSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const { tenantId } = principalOf(request);
      const page = await paginate(request.query, (o) => app.store.discovered.list(tenantId, o));
      // Sightings stay in the store as history; what is claimed since is filtered here (one key lookup each).
      const claimed = await Promise.all(
        page.items.map(async (d) =>
          tenantId === null ? (await app.store.devices.tenantOf(d.device_id)) !== null : (await app.store.devices.get(tenantId, d.device_id)) !== null,
        ),
      );
      const unclaimed = page.items.filter((_d, i) => !claimed[i]);
      return { devices: await withMetadata(app.store, unclaimed, (d) => d.device_id), next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/devices/:id',
    {
      config: { permission: 'devices:read' },
      schema: { summary: 'Get a device (with its carrier metadata)', params: IdParams, response: { 200: z.object({ device: ListedDeviceSchema }), ...errorResponses } },
    },
    async (request) => {
      const device = found(await app.store.devices.get(tenantIdOf(request), request.params.id), 'device');
      return { device: (await withMetadata(app.store, [device], (d) => d.id))[0]! };
    },
  );

  app.patch(
    '/devices/:id',
    {
      config: { permission: 'devices:write', audit: { action: 'devices.update', resource_type: 'device' } },
      schema: {
        summary: 'Update a device',
        params: IdParams,
        body: PatchDeviceBody,
        response: { 200: DeviceReply, ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      const { user_id, ...rest } = request.body;
      const owner = user_id === undefined || user_id === null ? user_id : await idOrSelf(app.store, tenantId, 'user', user_id);
      const device = await recordUpdate(
        request,
        id,
        () => app.store.devices.get(tenantId, id),
        () => app.store.devices.update(tenantId, id, { ...rest, ...(owner !== undefined && { user_id: owner }) }),
      );
      return { device: found(device, 'device') };
    },
  );

  app.delete(
    '/devices/:id',
    {
      config: { permission: 'devices:write', audit: { action: 'devices.delete', resource_type: 'device' } },
      schema: { summary: 'Delete a device', params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      await deleteTenantRecord(request, app.store.devices, tenantId, id, 'device');
      return reply.code(204).send();
    },
  );
};
