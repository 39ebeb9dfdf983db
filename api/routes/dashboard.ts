/** What the tenant's dashboard shows: headline counts and the alerts raised by deny decisions. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { tenantIdOf } from '../auth/guard.js';
import { IdParams, IdSchema, NextCursor, errorResponses, found, listQuery, paginate } from '../schemas/common.js';
import { AlertSchema, DashboardMetricsSchema } from '../schemas/records.js';

const AlertsQuery = listQuery({
  status: z.enum(['open', 'acknowledged', 'resolved']).optional(),
  device_id: IdSchema.optional(),
});

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
        summary: 'Alerts, newest first (filter by status, device_id)',
        querystring: AlertsQuery,
        response: { 200: z.object({ alerts: z.array(AlertSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { status, device_id } = request.query;
      const page = await paginate(request.query, (o) =>
        app.store.alerts.list(tenantId, {
          ...o,
          ...(status !== undefined && { status }),
          ...(device_id !== undefined && { device_id }),
        }),
      );
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
