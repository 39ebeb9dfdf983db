/**
 * Plans: the subscription tiers (features and limits) operators define and put tenants on.
 * Every signed-in user may read them, so a console can show what each tier offers.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { TopicId } from '../../shared/mqtt/payloads.js';
import { recordCreate, recordDelete, recordUpdate } from '../audit.js';
import { IdParams, ListQuery, NextCursor, NoContent, errorResponses, existed, found, humanName, paginate } from '../schemas/common.js';
import { PlanSchema } from '../../shared/schemas/records.js';

const fields = {
  name: humanName(),
  auto_remediation: z.boolean().describe('rules with a remediation act at the tower automatically when they deny'),
  max_devices: z.number().int().min(0).max(100_000_000).nullable().describe('registered devices; null = unlimited'),
  max_events_per_s: z.number().int().min(0).max(10_000_000).nullable().describe('usage events per second at ingest; null = unlimited'),
  retention_days: z.number().int().min(1).max(3650).describe('usage older than this is purged'),
};
const CreatePlanBody = z
  .strictObject({
    id: TopicId.describe('operator-chosen slug, e.g. "enterprise"'),
    name: fields.name,
    auto_remediation: fields.auto_remediation,
    max_devices: fields.max_devices.optional(),
    max_events_per_s: fields.max_events_per_s.optional(),
    retention_days: fields.retention_days,
  })
  .meta({
    example: { id: 'enterprise', name: 'Enterprise', auto_remediation: true, max_devices: null, max_events_per_s: 5000, retention_days: 365 },
  });
const PatchPlanBody = z.strictObject({
  name: fields.name.optional(),
  auto_remediation: fields.auto_remediation.optional(),
  max_devices: fields.max_devices.optional(),
  max_events_per_s: fields.max_events_per_s.optional(),
  retention_days: fields.retention_days.optional(),
}).meta({ example: { max_devices: 5000 } });
export const PlanReply = z.object({ plan: PlanSchema });

export const planRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/plans',
    {
      config: { permission: 'plans:read' },
      schema: {
        summary: 'List plans',
        querystring: ListQuery,
        response: { 200: z.object({ plans: z.array(PlanSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const page = await paginate(request.query, (o) => app.store.plans.list(o));
      return { plans: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/plans/:id',
    {
      config: { permission: 'plans:read' },
      schema: { summary: 'Get a plan', params: IdParams, response: { 200: PlanReply, ...errorResponses } },
    },
    async (request) => ({ plan: found(await app.store.plans.get(request.params.id), 'plan') }),
  );

  app.post(
    '/plans',
    {
      config: { permission: 'plans:write', audit: { action: 'plans.create', resource_type: 'plan' } },
      schema: { summary: 'Create a plan', body: CreatePlanBody, response: { 201: PlanReply, ...errorResponses } },
    },
    async (request, reply) => {
      const plan = await recordCreate(request, () => app.store.plans.create(request.body));
      return reply.code(201).send({ plan });
    },
  );

  app.patch(
    '/plans/:id',
    {
      config: { permission: 'plans:write', audit: { action: 'plans.update', resource_type: 'plan' } },
      schema: {
        summary: 'Update a plan (takes effect at once for every tenant on it)',
        params: IdParams,
        body: PatchPlanBody,
        response: { 200: PlanReply, ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      const plan = await recordUpdate(
        request,
        id,
        () => app.store.plans.get(id),
        () => app.store.plans.update(id, request.body),
      );
      return { plan: found(plan, 'plan') };
    },
  );

  app.delete(
    '/plans/:id',
    {
      config: { permission: 'plans:write', audit: { action: 'plans.delete', resource_type: 'plan' } },
      schema: {
        summary: 'Delete a plan (409 while a tenant is on it)',
        params: IdParams,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      existed(await recordDelete(request, id, () => app.store.plans.get(id), () => app.store.plans.delete(id)), 'plan');
      return reply.code(204).send();
    },
  );
};
