/** Decided usage events (newest first): what each device did and what the platform answered. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { EffectSchema } from '../../shared/mqtt/payloads.js';
import { tenantIdOf } from '../auth/guard.js';
import { IdSchema, NextCursor, errorResponses, listQuery, paginate } from '../schemas/common.js';
import { UsageRecordSchema } from '../schemas/records.js';

const UsageQuery = listQuery({
  user_id: IdSchema.optional(),
  device_id: IdSchema.optional(),
  effect: EffectSchema.optional(),
  tower_id: IdSchema.optional(),
});

export const usageRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/app-usage',
    {
      config: { permission: 'usage:read' },
      schema: {
        summary: 'Decided usage events, newest first',
        querystring: UsageQuery,
        response: { 200: z.object({ usage: z.array(UsageRecordSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { user_id, device_id, effect, tower_id } = request.query;
      const filters = {
        ...(user_id !== undefined && { user_id }),
        ...(device_id !== undefined && { device_id }),
        ...(effect !== undefined && { effect }),
        ...(tower_id !== undefined && { tower_id }),
      };
      const page = await paginate(request.query, (o) => app.store.usage.list(tenantId, { ...o, ...filters }));
      return { usage: page.items, next_cursor: page.next_cursor };
    },
  );
};
