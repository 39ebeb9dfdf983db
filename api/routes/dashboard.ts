/** What the tenant's dashboard shows: headline counts and the alerts raised by deny decisions. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { audit } from '../audit.js';
import { tenantIdOf } from '../auth/guard.js';
import { EXPORT_PAGE_SIZE, exportQueryFields, requestedExport, sendExport } from '../export.js';
import { IdParams, IdSchema, NextCursor, errorResponses, found, listQuery, paginate, sortQuery } from '../schemas/common.js';
import { AlertSchema, DashboardMetricsSchema } from '../../shared/schemas/records.js';

const AlertsQuery = listQuery({
  status: z.enum(['open', 'acknowledged', 'resolved']).optional(),
  device_id: IdSchema.optional(),
  ...sortQuery(['last_seen', 'count', 'severity', 'first_seen']),
  ...exportQueryFields,
});

const ALERT_COLUMNS = Object.keys(AlertSchema.shape) as Array<keyof typeof AlertSchema.shape>;

export const dashboardRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/dashboard/metrics',
    {
      config: { permission: 'dashboard:read' },
      schema: { summary: 'Headline counts of the tenant', response: { 200: z.object({ metrics: DashboardMetricsSchema }), ...errorResponses } },
    },
    async (request) => ({ metrics: await app.store.dashboard(tenantIdOf(request)) }),
  );

  app.get(
    '/dashboard/alerts',
    {
      config: { permission: 'alerts:read' },
      schema: {
        summary: 'Alerts, newest first (filter by status, device_id; or all of them as a download)',
        description:
          'A page of JSON by default. `?format=csv|xml|json`, `Accept: text/csv` or `application/xml`, ' +
          'or `?export=true` (JSON) stream every matching alert as an attachment instead.',
        querystring: AlertsQuery,
        response: { 200: z.object({ alerts: z.array(AlertSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { status, device_id } = request.query;
      const filters = {
        ...(status !== undefined && { status }),
        ...(device_id !== undefined && { device_id }),
      };
      const format = requestedExport(request, reply, request.query);
      if (format !== null) {
        audit(request, { action: 'alerts.export', resource_type: 'alert', after: { format, filters } });
        return sendExport(
          reply,
          format,
          {
            name: 'alerts',
            item: 'alert',
            columns: ALERT_COLUMNS,
            filename: 'alerts',
            fetchPage: (cursor) => app.store.alerts.list(tenantId, { ...filters, limit: EXPORT_PAGE_SIZE, cursor }),
          },
          { now: app.clock(), startCursor: request.query.cursor ?? null },
        );
      }
      const page = await paginate(request.query, (o) => app.store.alerts.list(tenantId, { ...o, ...filters }));
      return { alerts: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/dashboard/alerts/:id',
    {
      config: { permission: 'alerts:read' },
      schema: { summary: 'Get an alert', params: IdParams, response: { 200: z.object({ alert: AlertSchema }), ...errorResponses } },
    },
    async (request) => ({ alert: found(await app.store.alerts.get(tenantIdOf(request), request.params.id), 'alert') }),
  );
};
