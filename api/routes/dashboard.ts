/**
 * What the tenant's dashboard shows: headline counts (all time, or over a time window) and the
 * alerts raised by deny decisions. The alert workflow (acknowledge, assign, resolve) is alerts.ts.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Alert } from '../../shared/domain.js';
import { CatalogKey, SeveritySchema } from '../../shared/mqtt/payloads.js';
import type { AlertFilter } from '../../shared/store/port.js';
import { audit } from '../audit.js';
import { principalOf, tenantIdOf } from '../auth/guard.js';
import { readableNames } from '../auth/reveal.js';
import { EXPORT_PAGE_SIZE, exportQueryFields, exportableListResponse, requestedExport, sendExport } from '../export.js';
import { decisionLabels } from '../export-names.js';
import {
  DurationQuery,
  EpochMsSchema,
  IdParams,
  IdSchema,
  NextCursor,
  checkTimeRange,
  definedOf,
  errorResponses,
  found,
  invalidField,
  listQuery,
  paginate,
  sortQuery,
  timeRangeQuery,
} from '../schemas/common.js';
import { AlertSchema, DashboardMetricsSchema } from '../../shared/schemas/records.js';
import { assigneeOf } from './alerts.js';

const AlertsQuery = listQuery({
  status: z.enum(['open', 'acknowledged', 'resolved']).optional(),
  device_id: IdSchema.optional(),
  app: CatalogKey.optional().describe('app key'),
  severity: SeveritySchema.optional(),
  assigned_to: z.string().trim().min(1).max(320).optional().describe("console user id or e-mail of the assignee, or 'me'"),
  ...timeRangeQuery,
  ...sortQuery(['last_seen', 'count', 'severity', 'first_seen']),
  ...exportQueryFields,
});

const MetricsQuery = z.object({
  window: DurationQuery.optional().describe('the last 90s, 15m, 24h, 7d… up to now (instead of since/until)'),
  ...timeRangeQuery,
});

const WindowMetricsSchema = z
  .object({
    since: EpochMsSchema,
    until: EpochMsSchema,
    usage_total: z.number().int().describe('events decided in the window (by event time)'),
    usage_allowed: z.number().int(),
    usage_denied: z.number().int(),
    alerts_active: z.number().int().describe('alerts active in the window (seen in it, raised before its end)'),
  })
  .meta({ id: 'WindowMetrics' });

const SessionSummarySchema = z
  .object({
    sessions: z.number().int().describe('device accounting sessions (RADIUS) ever recorded'),
    active: z.number().int().describe('sessions started and not stopped'),
    input_octets: z.number().int().describe('bytes from devices over those sessions'),
    output_octets: z.number().int().describe('bytes to devices'),
  })
  .meta({ id: 'SessionSummary' });

const ALERT_COLUMNS = Object.keys(AlertSchema.shape) as Array<keyof typeof AlertSchema.shape>;
const ALERT_TIME_COLUMNS = ['first_seen', 'last_seen', 'acknowledged_at', 'assigned_at', 'resolved_at'] as const;

export const dashboardRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/dashboard/metrics',
    {
      config: { permission: 'dashboard:read' },
      schema: {
        summary: 'Headline counts of the tenant; with ?window= (or since/until) also the counts of that window',
        querystring: MetricsQuery,
        response: {
          200: z.object({ metrics: DashboardMetricsSchema, sessions: SessionSummarySchema, window: WindowMetricsSchema.optional() }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const q = request.query;
      // App usage from towers next to traffic from accounting (per device / tower: /sessions/totals).
      const [metrics, sessions] = await Promise.all([app.store.dashboard(tenantId), app.store.deviceSessions.summary(tenantId)]);
      if (q.window === undefined && q.since === undefined && q.until === undefined) return { metrics, sessions };
      if (q.window !== undefined && (q.since !== undefined || q.until !== undefined)) {
        invalidField('query.window', 'give either window or since/until, not both');
      }
      checkTimeRange(q);
      const now = app.clock();
      const until = q.window !== undefined ? now : (q.until ?? now);
      const since = q.window !== undefined ? now - q.window : (q.since ?? 0);
      const [counts, alertsActive] = await Promise.all([
        app.store.usage.countByEffect(tenantId, { since, until }),
        app.store.alerts.count(tenantId, { since, until }),
      ]);
      return {
        metrics,
        sessions,
        window: {
          since,
          until,
          usage_total: counts.allow + counts.deny,
          usage_allowed: counts.allow,
          usage_denied: counts.deny,
          alerts_active: alertsActive,
        },
      };
    },
  );

  app.get(
    '/dashboard/alerts',
    {
      config: { permission: 'alerts:read' },
      schema: {
        summary: 'Alerts, newest first (filter by status, device, app, severity, assignee, time; or all of them as a download)',
        description:
          'since/until (epoch ms or ISO 8601) select alerts active in that window: last seen at or after `since`, ' +
          'first seen before `until`. An unknown parameter is a 400. ' +
          'A page of JSON by default. `?format=csv|xml|json`, `Accept: text/csv` or `application/xml`, ' +
          'or `?export=true` (JSON) stream every matching alert as an attachment instead; CSV and XML carry ' +
          'ISO 8601 times, CSV adds user_name, policy_name and rule next to their ids.',
        querystring: AlertsQuery,
        response: {
          200: exportableListResponse(z.object({ alerts: z.array(AlertSchema), next_cursor: NextCursor }), 'alerts', AlertSchema),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const q = request.query;
      checkTimeRange(q);
      const filters: AlertFilter = {
        ...definedOf(q, ['status', 'device_id', 'app', 'severity', 'since', 'until'] as const),
        ...(q.assigned_to !== undefined && { assigned_to: await assigneeOf(app.store, request, q.assigned_to, 'query.assigned_to', false) }),
      };
      const format = requestedExport(request, reply, q);
      if (format !== null) {
        audit(request, { action: 'alerts.export', resource_type: 'alert', after: { format, filters } });
        return sendExport<Alert>(
          reply,
          format,
          {
            name: 'alerts',
            item: 'alert',
            columns: ALERT_COLUMNS,
            filename: 'alerts',
            times: ALERT_TIME_COLUMNS,
            labels: decisionLabels(app.store, tenantId, readableNames(principalOf(request))),
            fetchPage: (cursor) => app.store.alerts.list(tenantId, { ...filters, limit: EXPORT_PAGE_SIZE, cursor }),
          },
          { now: app.clock(), startCursor: q.cursor ?? null },
        );
      }
      const page = await paginate(q, (o) => app.store.alerts.list(tenantId, { ...o, ...filters }));
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
