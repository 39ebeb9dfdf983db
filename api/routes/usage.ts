/**
 * Decided usage events (newest first): what each device did and what the platform answered.
 * One page as JSON by default; every matching row as a streamed JSON, CSV or XML download on
 * request (api/export.ts). Filters: user (id or e-mail), device, effect, tower, app, and an
 * event-time window (since/until on `ts`), disagreement (events a tower decided locally with
 * another effect than the cloud); any other query parameter is a 400.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { UsageRecord } from '../../shared/domain.js';
import { CatalogKey, EffectSchema } from '../../shared/mqtt/payloads.js';
import type { UsageFilter } from '../../shared/store/port.js';
import { audit } from '../audit.js';
import { principalOf, tenantIdOf } from '../auth/guard.js';
import { readableNames } from '../auth/reveal.js';
import { EXPORT_PAGE_SIZE, exportQueryFields, exportableListResponse, requestedExport, sendExport } from '../export.js';
import { decisionLabels } from '../export-names.js';
import { BooleanQuery, IdSchema, NextCursor, checkTimeRange, definedOf, errorResponses, listQuery, paginate, sortQuery, timeRangeQuery } from '../schemas/common.js';
import { UsageRecordSchema } from '../../shared/schemas/records.js';
import { idOrSelf, refField } from './natural-keys.js';

const UsageQuery = listQuery({
  user_id: refField('user').optional(),
  device_id: IdSchema.optional(),
  effect: EffectSchema.optional(),
  tower_id: IdSchema.optional(),
  app: CatalogKey.optional().describe('app key'),
  disagreement: BooleanQuery.optional().describe("true: only events a tower decided itself with another effect than the cloud's; false: the others"),
  ...timeRangeQuery,
  ...sortQuery(['ts', 'received_at']),
  ...exportQueryFields,
});

const USAGE_COLUMNS = Object.keys(UsageRecordSchema.shape) as Array<keyof typeof UsageRecordSchema.shape>;
export const USAGE_TIME_COLUMNS = ['ts', 'received_at'] as const;

export const usageRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/app-usage',
    {
      config: { permission: 'usage:read' },
      schema: {
        summary: 'Decided usage events, newest first (or all of them as a JSON, CSV or XML download)',
        description:
          'Filters: user_id (id or e-mail), device_id, effect, tower_id, app, disagreement (true: events a tower ' +
          "decided locally, with another effect than the cloud's decision stored here), since/until (event time `ts`, " +
          'epoch ms or ISO 8601; since inclusive, until exclusive); an unknown parameter is a 400. ' +
          'A page of JSON by default. `?format=csv|xml|json`, `Accept: text/csv` or `application/xml`, ' +
          'or `?export=true` (JSON) stream every matching row as an attachment instead: ' +
          'filters apply, `limit` and `page` do not, `cursor` starts the export there. CSV and XML ' +
          'carry ISO 8601 times; CSV adds user_name, policy_name and rule next to their ids. ' +
          'With device_id or user_id on the embedded (SQLite) store a page reads at most 50,000 events, so it may ' +
          'hold fewer than `limit` (even none) and still carry a next_cursor: follow next_cursor until it is null.',
        querystring: UsageQuery,
        response: {
          200: exportableListResponse(z.object({ usage: z.array(UsageRecordSchema), next_cursor: NextCursor }), 'usage', UsageRecordSchema),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const q = request.query;
      checkTimeRange(q);
      const filters: UsageFilter = {
        ...definedOf(q, ['device_id', 'effect', 'tower_id', 'app', 'since', 'until', 'disagreement'] as const),
        ...(q.user_id !== undefined && { user_id: await idOrSelf(app.store, tenantId, 'user', q.user_id) }),
      };
      const format = requestedExport(request, reply, q);
      if (format !== null) {
        // Bulk reads of a tenant's data are worth knowing about: exports are audited.
        audit(request, { action: 'app-usage.export', resource_type: 'usage', after: { format, filters } });
        return sendExport<UsageRecord>(
          reply,
          format,
          {
            name: 'usage',
            item: 'record',
            columns: USAGE_COLUMNS,
            filename: 'app-usage',
            times: USAGE_TIME_COLUMNS,
            labels: decisionLabels(app.store, tenantId, readableNames(principalOf(request))),
            fetchPage: (cursor) => app.store.usage.list(tenantId, { ...filters, limit: EXPORT_PAGE_SIZE, cursor }),
          },
          { now: app.clock(), startCursor: q.cursor ?? null },
        );
      }
      const page = await paginate(q, (o) => app.store.usage.list(tenantId, { ...o, ...filters }));
      return { usage: page.items, next_cursor: page.next_cursor };
    },
  );
};
