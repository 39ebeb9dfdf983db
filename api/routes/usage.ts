/**
 * Decided usage events (newest first): what each device did and what the platform answered.
 * One page as JSON by default; every matching row as a streamed JSON, CSV or XML download on
 * request (api/export.ts).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { EffectSchema } from '../../shared/mqtt/payloads.js';
import { audit } from '../audit.js';
import { tenantIdOf } from '../auth/guard.js';
import { EXPORT_PAGE_SIZE, exportQueryFields, requestedExport, sendExport } from '../export.js';
import { IdSchema, NextCursor, errorResponses, listQuery, paginate, sortQuery } from '../schemas/common.js';
import { UsageRecordSchema } from '../../shared/schemas/records.js';

const UsageQuery = listQuery({
  user_id: IdSchema.optional(),
  device_id: IdSchema.optional(),
  effect: EffectSchema.optional(),
  tower_id: IdSchema.optional(),
  ...sortQuery(['ts', 'received_at']),
  ...exportQueryFields,
});

const USAGE_COLUMNS = Object.keys(UsageRecordSchema.shape) as Array<keyof typeof UsageRecordSchema.shape>;

export const usageRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/app-usage',
    {
      config: { permission: 'usage:read' },
      schema: {
        summary: 'Decided usage events, newest first (or all of them as a JSON, CSV or XML download)',
        description:
          'A page of JSON by default. `?format=csv|xml|json`, `Accept: text/csv` or `application/xml`, ' +
          'or `?export=true` (JSON) stream every matching row as an attachment instead: ' +
          'filters apply, `limit` and `page` do not, `cursor` starts the export there.',
        querystring: UsageQuery,
        response: { 200: z.object({ usage: z.array(UsageRecordSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { user_id, device_id, effect, tower_id } = request.query;
      const filters = {
        ...(user_id !== undefined && { user_id }),
        ...(device_id !== undefined && { device_id }),
        ...(effect !== undefined && { effect }),
        ...(tower_id !== undefined && { tower_id }),
      };
      const format = requestedExport(request, reply, request.query);
      if (format !== null) {
        // Bulk reads of a tenant's data are worth knowing about: exports are audited.
        audit(request, { action: 'app-usage.export', resource_type: 'usage', after: { format, filters } });
        return sendExport(
          reply,
          format,
          {
            name: 'usage',
            item: 'record',
            columns: USAGE_COLUMNS,
            filename: 'app-usage',
            fetchPage: (cursor) => app.store.usage.list(tenantId, { ...filters, limit: EXPORT_PAGE_SIZE, cursor }),
          },
          { now: app.clock(), startCursor: request.query.cursor ?? null },
        );
      }
      const page = await paginate(request.query, (o) => app.store.usage.list(tenantId, { ...o, ...filters }));
      return { usage: page.items, next_cursor: page.next_cursor };
    },
  );
};
