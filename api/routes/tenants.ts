/**
 * Tenants: operators create and manage them (`/tenants`); a tenant's own console users read and
 * tune their tenant through `/tenant`, which never takes an id. Only operators choose a tenant's
 * plan: it is the subscription, so `PATCH /tenant` refuses `plan_id` like any unknown field.
 * Owners and admins may tune how long their audit trail is kept, but not below a floor: whoever
 * could shorten it to a day could erase the record of their own changes.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { EffectSchema, TopicId } from '../../shared/mqtt/payloads.js';
import { audit, recordUpdate } from '../audit.js';
import { tenantIdOf } from '../auth/guard.js';
import { createTenantWithOwner } from '../console-accounts.js';
import { IdParams, ListQuery, NextCursor, errorResponses, found, humanName, paginate, sortQuery } from '../schemas/common.js';
import { ConsoleUserSchema, TenantSchema } from '../../shared/schemas/records.js';
import { PlanReply } from './plans.js';

export const PasswordSchema = z.string().min(12, 'must be at least 12 characters').max(1024);
export const EmailSchema = z.email().max(320);
/** The shortest audit retention a tenant may choose. */
export const MIN_AUDIT_RETENTION_DAYS = 30;

const tenantFields = {
  name: humanName(),
  default_effect: EffectSchema.describe('effect when no rule matches'),
  alert_window_s: z.number().int().min(1).max(7 * 24 * 3600).describe('deny alerts for one device+rule merge within this window'),
  plan_id: TopicId.describe("the tenant's plan (features and limits); default 'free'"),
  audit_retention_days: z
    .number()
    .int()
    .min(MIN_AUDIT_RETENTION_DAYS)
    .max(3650)
    .describe(`audit records older than this are purged (${MIN_AUDIT_RETENTION_DAYS}..3650, default 365)`),
};

const CreateTenantBody = z
  .strictObject({
    name: tenantFields.name,
    default_effect: tenantFields.default_effect.optional(),
    alert_window_s: tenantFields.alert_window_s.optional(),
    plan_id: tenantFields.plan_id.optional(),
    audit_retention_days: tenantFields.audit_retention_days.optional(),
    owner: z.strictObject({ email: EmailSchema, password: PasswordSchema }).optional(),
  })
  .meta({ example: { name: 'Acme', default_effect: 'allow', plan_id: 'premium', owner: { email: 'owner@acme.example', password: 'a long passphrase' } } });

/** What a tenant's owners may change about their own tenant (not its plan). */
const PatchOwnTenantBody = z.strictObject({
  name: tenantFields.name.optional(),
  default_effect: tenantFields.default_effect.optional(),
  alert_window_s: tenantFields.alert_window_s.optional(),
  audit_retention_days: tenantFields.audit_retention_days.optional(),
});
const PatchTenantBody = PatchOwnTenantBody.extend({ plan_id: tenantFields.plan_id.optional() }).meta({ example: { plan_id: 'premium' } });

const TenantReply = z.object({ tenant: TenantSchema });

export const tenantRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/tenants',
    {
      config: { permission: 'tenants:write', audit: { action: 'tenants.create', resource_type: 'tenant' } },
      schema: {
        summary: 'Create a tenant, optionally with its first owner',
        body: CreateTenantBody,
        response: { 201: z.object({ tenant: TenantSchema, owner: ConsoleUserSchema.optional() }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { owner, ...input } = request.body;
      if (!owner) {
        const tenant = await app.store.tenants.create(input);
        audit(request, { resource_id: tenant.id, after: { tenant, owner: null } });
        return reply.code(201).send({ tenant });
      }
      // One transaction: a tenant is never left without the owner it was created with.
      const created = await createTenantWithOwner(app, input, owner);
      audit(request, { resource_id: created.tenant.id, after: created });
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/tenants',
    {
      config: { permission: 'tenants:read' },
      schema: {
        summary: 'List tenants',
        querystring: ListQuery.extend(sortQuery(['name', 'created_at'])),
        response: { 200: z.object({ tenants: z.array(TenantSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const page = await paginate(request.query, (o) => app.store.tenants.list(o));
      return { tenants: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/tenants/:id',
    {
      config: { permission: 'tenants:read' },
      schema: { summary: 'Get a tenant', params: IdParams, response: { 200: TenantReply, ...errorResponses } },
    },
    async (request) => ({ tenant: found(await app.store.tenants.get(request.params.id), 'tenant') }),
  );

  app.patch(
    '/tenants/:id',
    {
      config: { permission: 'tenants:write', audit: { action: 'tenants.update', resource_type: 'tenant' } },
      schema: { summary: 'Update a tenant', params: IdParams, body: PatchTenantBody, response: { 200: TenantReply, ...errorResponses } },
    },
    async (request) => {
      const { id } = request.params;
      const tenant = await recordUpdate(
        request,
        id,
        () => app.store.tenants.get(id),
        () => app.store.tenants.update(id, request.body),
      );
      return { tenant: found(tenant, 'tenant') };
    },
  );

  app.get(
    '/tenant',
    {
      config: { permission: 'tenant:read' },
      schema: { summary: "The caller's tenant", response: { 200: TenantReply, ...errorResponses } },
    },
    async (request) => ({ tenant: found(await app.store.tenants.get(tenantIdOf(request)), 'tenant') }),
  );

  app.patch(
    '/tenant',
    {
      config: { permission: 'tenant:write', audit: { action: 'tenant.update', resource_type: 'tenant' } },
      schema: { summary: "Update the caller's tenant (not its plan)", body: PatchOwnTenantBody.meta({ example: { default_effect: 'deny', alert_window_s: 600 } }), response: { 200: TenantReply, ...errorResponses } },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const tenant = await recordUpdate(
        request,
        tenantId,
        () => app.store.tenants.get(tenantId),
        () => app.store.tenants.update(tenantId, request.body),
      );
      return { tenant: found(tenant, 'tenant') };
    },
  );

  app.get(
    '/tenant/plan',
    {
      config: { permission: 'tenant:read' },
      schema: { summary: "The caller's plan: its features and limits", response: { 200: PlanReply, ...errorResponses } },
    },
    async (request) => {
      const tenant = found(await app.store.tenants.get(tenantIdOf(request)), 'tenant');
      return { plan: found(await app.store.plans.get(tenant.plan_id), 'plan') };
    },
  );
};
