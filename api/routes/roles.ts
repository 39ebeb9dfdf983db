/** Policy ROLEs of a tenant (what device users are grouped by; policies attach to roles). */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { recordCreate, recordDelete, recordUpdate } from '../audit.js';
import { tenantIdOf } from '../auth/guard.js';
import { IdParams, ListQuery, NextCursor, NoContent, errorResponses, existed, found, paginate, sortQuery } from '../schemas/common.js';
import { RoleSchema } from '../schemas/records.js';

const fields = {
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000).nullable(),
};
const CreateRoleBody = z
  .strictObject({ name: fields.name, description: fields.description.optional() })
  .meta({ example: { name: 'field-engineer', description: 'Engineers working on site' } });
const PatchRoleBody = z.strictObject({ name: fields.name.optional(), description: fields.description.optional() });
const RoleReply = z.object({ role: RoleSchema });

export const roleRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/roles',
    {
      config: { permission: 'roles:write', audit: { action: 'roles.create', resource_type: 'role' } },
      schema: { summary: 'Create a role', body: CreateRoleBody, response: { 201: RoleReply, ...errorResponses } },
    },
    async (request, reply) => {
      const role = await recordCreate(request, () => app.store.roles.create(tenantIdOf(request), request.body));
      return reply.code(201).send({ role });
    },
  );

  app.get(
    '/roles',
    {
      config: { permission: 'roles:read' },
      schema: {
        summary: 'List roles',
        querystring: ListQuery.extend(sortQuery(['name', 'created_at'])),
        response: { 200: z.object({ roles: z.array(RoleSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const page = await paginate(request.query, (o) => app.store.roles.list(tenantId, o));
      return { roles: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/roles/:id',
    {
      config: { permission: 'roles:read' },
      schema: { summary: 'Get a role', params: IdParams, response: { 200: RoleReply, ...errorResponses } },
    },
    async (request) => ({ role: found(await app.store.roles.get(tenantIdOf(request), request.params.id), 'role') }),
  );

  app.patch(
    '/roles/:id',
    {
      config: { permission: 'roles:write', audit: { action: 'roles.update', resource_type: 'role' } },
      schema: { summary: 'Update a role', params: IdParams, body: PatchRoleBody, response: { 200: RoleReply, ...errorResponses } },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      const role = await recordUpdate(
        request,
        id,
        () => app.store.roles.get(tenantId, id),
        () => app.store.roles.update(tenantId, id, request.body),
      );
      return { role: found(role, 'role') };
    },
  );

  app.delete(
    '/roles/:id',
    {
      config: { permission: 'roles:write', audit: { action: 'roles.delete', resource_type: 'role' } },
      schema: { summary: 'Delete a role', params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      const deleted = await recordDelete(
        request,
        id,
        () => app.store.roles.get(tenantId, id),
        () => app.store.roles.delete(tenantId, id),
      );
      existed(deleted, 'role');
      return reply.code(204).send();
    },
  );
};
