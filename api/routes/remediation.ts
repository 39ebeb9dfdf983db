/**
 * Remediation commands: corrective actions sent to a tower (block, quarantine, throttle, notify).
 * Automatic and escalated ones come from the policy workers; here admins issue manual ones and
 * everyone in the tenant follows each command's lifecycle (pending → delivered → applied|failed,
 * or expired). The API issues through the command service, which records the command and
 * schedules its sending; the workers (or the embedded process) send it to its tower.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createError } from '../../shared/errors.js';
import { CatalogKey, CommandTypeSchema, TopicId, type CommandType } from '../../shared/mqtt/payloads.js';
import { recordCreate } from '../audit.js';
import { principalOf, tenantIdOf } from '../auth/guard.js';
import {
  IdParams,
  NextCursor,
  errorResponses,
  found,
  invalidField,
  listQuery,
  paginate,
  plainText,
  referenceNotFound,
  sortQuery,
} from '../schemas/common.js';
import { CommandEventSchema, CommandRecordSchema } from '../../shared/schemas/records.js';
import type { Principal } from '../types.js';
import { MAX_REMEDIATION_S } from './policy-rules.js';
import { visibleTower } from './towers.js';

const APP_TYPES: ReadonlySet<CommandType> = new Set(['block_app', 'unblock_app']);
/** Actions that hold at the tower until lifted: the edge needs to know when to lift them. */
const TIMED_TYPES: ReadonlySet<CommandType> = new Set(['block_device', 'block_app', 'quarantine', 'throttle']);

const CreateRemedialActionBody = z
  .strictObject({
    device_id: TopicId.describe('a registered device of the caller’s tenant'),
    type: CommandTypeSchema,
    app: CatalogKey.optional().describe('required for block_app and unblock_app'),
    duration_s: z
      .number()
      .int()
      .min(1)
      .max(MAX_REMEDIATION_S)
      .optional()
      .describe('required for block_device, block_app, quarantine and throttle'),
    reason: z.string().trim().min(1).max(500).superRefine(plainText).optional(),
    tower_id: TopicId.optional().describe('default: the tower where the device was last seen'),
  })
  .meta({ example: { device_id: 'imei-356938035643809', type: 'block_app', app: 'dropbox', duration_s: 3600, reason: 'exfiltration' } });

const RemedialActionsQuery = listQuery({
  status: z.enum(['pending', 'delivered', 'applied', 'failed', 'expired']).optional(),
  device_id: TopicId.optional(),
  tower_id: TopicId.optional(),
  ...sortQuery(['created_at', 'updated_at', 'status']),
});

const TAGS = ['remediation'];

export const remediationRoutes: FastifyPluginAsyncZod = async (app) => {
  /** The explicit tower, or the one where the device was last seen. */
  async function targetTower(principal: Principal, tenantId: string, deviceId: string, towerId: string | undefined): Promise<string> {
    if (towerId !== undefined) {
      // Tenant users know only towers where their devices were seen (towers.ts); any other id,
      // existing or not, is the same 404, so no tenant can probe or command the platform's towers.
      const tower = await visibleTower(app.store, principal, towerId);
      if (!tower) referenceNotFound('body.tower_id', 'tower');
      return tower.id;
    }
    // By the time the cloud received the device's events: a tower cannot make itself the device's
    // latest by stamping its events (ids or times) in the future.
    const last = await app.store.usage.lastSeen(tenantId, deviceId);
    if (!last) {
      throw createError('UNPROCESSABLE', `device ${deviceId} has not been seen at any tower; give tower_id`, [
        { field: 'body.tower_id', message: 'required: the device has not been seen at any tower' },
      ]);
    }
    return last.tower_id;
  }

  app.post(
    '/remedial-actions',
    {
      config: { permission: 'remediation:write', audit: { action: 'remedial-actions.create', resource_type: 'command' } },
      schema: {
        tags: TAGS,
        summary: 'Issue a manual remediation to the tower where a device is',
        description:
          'Allowed on every plan: a manual command is an explicit admin action (automatic remediation ' +
          'by rules is the premium feature). The command starts pending; the dispatcher sends it to the ' +
          'tower and its lifecycle is readable at GET /commands/{id}. tower_id defaults to the tower ' +
          'where the device was last seen (422 when it never was).',
        body: CreateRemedialActionBody,
        response: { 201: z.object({ command: CommandRecordSchema }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const tenantId = tenantIdOf(request);
      const body = request.body;
      if (APP_TYPES.has(body.type) && body.app === undefined) invalidField('body.app', `required for ${body.type}`);
      if (TIMED_TYPES.has(body.type) && body.duration_s === undefined) {
        invalidField('body.duration_s', `required for ${body.type}`);
      }
      const device = await app.store.devices.get(tenantId, body.device_id);
      if (!device) referenceNotFound('body.device_id', 'device');
      const towerId = await targetTower(principal, tenantId, device.id, body.tower_id);
      const command = await recordCreate(request, async () =>
        (await app.commands.issue({
          tenant_id: tenantId,
          tower_id: towerId,
          device_id: device.id,
          type: body.type,
          app: body.app ?? null,
          duration_s: body.duration_s ?? null,
          reason: body.reason ?? null,
          source: 'manual',
          issued_by: principal.actorId,
        })).command,
      );
      return reply.code(201).send({ command });
    },
  );

  app.get(
    '/remedial-actions',
    {
      config: { permission: 'remediation:read' },
      schema: {
        tags: TAGS,
        summary: 'Remediation commands of the tenant (automatic, escalated and manual)',
        querystring: RemedialActionsQuery,
        response: {
          200: z.object({ remedial_actions: z.array(CommandRecordSchema), next_cursor: NextCursor }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { status, device_id, tower_id } = request.query;
      const filters = {
        ...(status !== undefined && { status }),
        ...(device_id !== undefined && { device_id }),
        ...(tower_id !== undefined && { tower_id }),
      };
      const page = await paginate(request.query, (o) => app.store.commands.list(tenantId, { ...o, ...filters }));
      return { remedial_actions: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/commands/:id',
    {
      config: { permission: 'remediation:read' },
      schema: {
        tags: TAGS,
        summary: 'A remediation command and every step of its lifecycle',
        params: IdParams,
        response: { 200: z.object({ command: CommandRecordSchema, events: z.array(CommandEventSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const command = found(await app.store.commands.get(tenantId, request.params.id), 'command');
      return { command, events: await app.store.commands.events(tenantId, command.id) };
    },
  );
};
