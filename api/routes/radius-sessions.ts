/**
 * Device accounting sessions of the tenant (from RADIUS accounting, or towers reporting their
 * own), and their bytes per device and per tower: the counterpart of /app-usage for traffic.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DeviceSessionSchema, SessionTotalsSchema } from '../../shared/schemas/records.js';
import { tenantIdOf } from '../auth/guard.js';
import { IdParams, IdSchema, NextCursor, errorResponses, found, listQuery, paginate } from '../schemas/common.js';

export const radiusSessionRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/sessions',
    {
      config: { permission: 'sessions:read' },
      schema: {
        summary: 'Device accounting sessions, newest first (filter by device, tower, status)',
        querystring: listQuery({
          device_id: IdSchema.optional(),
          tower_id: IdSchema.optional(),
          status: z.enum(['active', 'stopped']).optional(),
        }),
        response: { 200: z.object({ sessions: z.array(DeviceSessionSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { device_id, tower_id, status } = request.query;
      const page = await paginate(request.query, (o) =>
        app.store.deviceSessions.list(tenantId, {
          ...o,
          ...(device_id !== undefined && { device_id }),
          ...(tower_id !== undefined && { tower_id }),
          ...(status !== undefined && { status }),
        }),
      );
      return { sessions: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/sessions/totals',
    {
      config: { permission: 'sessions:read' },
      schema: {
        summary: 'Sessions and bytes per device or per tower',
        querystring: listQuery({ by: z.enum(['device', 'tower']).describe('group by device id or tower id') }),
        response: { 200: z.object({ by: z.enum(['device', 'tower']), totals: z.array(SessionTotalsSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { by } = request.query;
      const page = await paginate(request.query, (o) => app.store.deviceSessions.totals(tenantId, by, o));
      return { by, totals: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/sessions/:id',
    {
      config: { permission: 'sessions:read' },
      schema: { summary: 'Get a device session', params: IdParams, response: { 200: z.object({ session: DeviceSessionSchema }), ...errorResponses } },
    },
    async (request) => ({ session: found(await app.store.deviceSessions.get(tenantIdOf(request), request.params.id), 'session') }),
  );
};
