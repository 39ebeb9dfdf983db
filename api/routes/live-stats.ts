/**
 * What the consoles need beyond the resource lists: the live overview of a tenant (rate, deny
 * rate, top apps and violators, the last hour per minute), the platform's traffic and each
 * tenant's usage against its plan for operators, and the caller's own permissions so a console
 * can hide what its user may not do. Statistics come from LiveStats (api/live-stats.ts), which
 * this plugin owns: started when the app is ready, stopped when it closes.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { TENANT_CONSOLE_ROLES, type ConsoleRole } from '../../shared/domain.js';
import type { Plan } from '../../shared/domain.js';
import { principalOf, tenantIdOf } from '../auth/guard.js';
import { PERMISSIONS, holds, type Permission } from '../auth/permissions.js';
import { LiveStats } from '../live-stats.js';
import { EpochMsSchema, ListQuery, NextCursor, errorResponses, intQuery, paginate } from '../schemas/common.js';

export interface LiveStatsRoutesOptions {
  /** Overrides the bucket geometry (tests); default one-minute buckets over an hour. */
  stats?: { bucketMs?: number; buckets?: number; maxKeysPerBucket?: number };
}

const MinutesQuery = z.strictObject({
  minutes: intQuery(1, 60, 60).describe('how many of the last one-minute buckets (1–60)'),
});

const windowFields = {
  since: EpochMsSchema.describe('when this API process started counting: earlier traffic is not included'),
  now: EpochMsSchema,
  bucket_s: z.number().int().describe('width of one series point in seconds'),
  events_per_s: z.number().describe(`mean over the last complete seconds`),
  denied_per_s: z.number(),
};

const TenantOverviewSchema = z
  .object({
    ...windowFields,
    series: z.array(z.object({ t: EpochMsSchema, events: z.number().int(), denied: z.number().int() })).describe('oldest first'),
    totals: z.object({ events: z.number().int(), denied: z.number().int() }),
    deny_rate: z.number().min(0).max(1),
    top_apps: z.array(z.object({ app: z.string(), events: z.number().int(), denied: z.number().int() })),
    top_violating_users: z.array(z.object({ user_id: z.string(), denied: z.number().int() })),
    top_violating_devices: z.array(z.object({ device_id: z.string(), denied: z.number().int() })),
    truncated: z.boolean().describe('more distinct apps, users or devices were seen than are ranked per minute'),
  })
  .meta({ id: 'TenantOverview' });

const PlatformOverviewSchema = z
  .object({
    ...windowFields,
    series: z.array(
      z.object({
        t: EpochMsSchema,
        events: z.number().int(),
        denied: z.number().int(),
        delay_p50_ms: z.number().nullable().describe('median of received_at − ts (tower observed → cloud received)'),
        delay_p99_ms: z.number().nullable(),
      }),
    ),
    tenants_active: z.number().int().describe('tenants with traffic within the window'),
  })
  .meta({ id: 'PlatformOverview' });

const TenantUsageSchema = z
  .object({
    tenant_id: z.string(),
    name: z.string(),
    plan_id: z.string(),
    plan_name: z.string().nullable(),
    devices: z.number().int(),
    max_devices: z.number().int().nullable().describe('null = unlimited'),
    events_per_s: z.number(),
    max_events_per_s: z.number().int().nullable().describe('null = unlimited'),
    events_last_hour: z.number().int(),
    denied_last_hour: z.number().int(),
  })
  .meta({ id: 'TenantUsage' });

const PermissionsSchema = z
  .object({
    kind: z.enum(['user', 'api_key', 'carrier']),
    role: z.enum(['operator', ...TENANT_CONSOLE_ROLES]).nullable().describe('console role; null for an API key or a carrier'),
    tenant_id: z.string().nullable(),
    permissions: z.array(z.string()).describe('every permission the caller holds (api/auth/permissions.ts)'),
  })
  .meta({ id: 'CallerPermissions' });

const ALL_PERMISSIONS = Object.keys(PERMISSIONS) as Permission[];

export const liveStatsRoutes: FastifyPluginAsyncZod<LiveStatsRoutesOptions> = async (app, opts) => {
  const stats = new LiveStats({ bus: app.bus, clock: app.clock, ...opts.stats });
  app.addHook('onReady', async () => stats.start());
  app.addHook('onClose', async () => stats.stop());

  app.get(
    '/dashboard/overview',
    {
      config: { permission: 'dashboard:read' },
      schema: {
        summary: 'Live overview of the tenant: rate, deny rate, top apps and violators, the last hour per minute',
        description:
          'Counted live by the API process from decided usage since it started (`since`); the stored totals are ' +
          '`/dashboard/metrics`. Rankings cover the buckets returned.',
        querystring: MinutesQuery,
        response: { 200: z.object({ overview: TenantOverviewSchema }), ...errorResponses },
      },
    },
    async (request) => ({ overview: stats.tenant(tenantIdOf(request), request.query.minutes) }),
  );

  app.get(
    '/platform/overview',
    {
      config: { permission: 'metrics:read' },
      schema: {
        summary: 'Platform traffic: events and denies per minute over the last hour, uplink delay percentiles',
        description: 'Counted live by the API process since it started (`since`), across every tenant.',
        querystring: MinutesQuery,
        response: { 200: z.object({ overview: PlatformOverviewSchema }), ...errorResponses },
      },
    },
    async (request) => ({ overview: stats.platform(request.query.minutes) }),
  );

  app.get(
    '/platform/tenant-usage',
    {
      config: { permission: 'tenants:read' },
      schema: {
        summary: 'Each tenant’s usage against its plan limits (devices, events/s), paginated like /tenants',
        querystring: ListQuery,
        response: { 200: z.object({ tenants: z.array(TenantUsageSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const page = await paginate(request.query, (o) => app.store.tenants.list(o));
      const plans = new Map<string, Plan | null>();
      const rows = [];
      for (const t of page.items) {
        if (!plans.has(t.plan_id)) plans.set(t.plan_id, await app.store.plans.get(t.plan_id));
        const plan = plans.get(t.plan_id) ?? null;
        const { devices } = await app.store.dashboard(t.id);
        rows.push({
          tenant_id: t.id,
          name: t.name,
          plan_id: t.plan_id,
          plan_name: plan?.name ?? null,
          devices,
          max_devices: plan?.max_devices ?? null,
          max_events_per_s: plan?.max_events_per_s ?? null,
          ...stats.traffic(t.id),
        });
      }
      return { tenants: rows, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/me/permissions',
    {
      config: { permission: 'session:read' },
      schema: {
        summary: 'The permissions the caller holds (what a console may offer its user)',
        response: { 200: PermissionsSchema, ...errorResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const role: ConsoleRole | null = principal.kind === 'user' ? principal.role : null;
      return {
        kind: principal.kind,
        role,
        tenant_id: principal.tenantId,
        permissions: ALL_PERMISSIONS.filter((p) => holds(principal, p)),
      };
    },
  );
};
