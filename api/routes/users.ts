/** Device users: the people policy ROLEs are assigned to (not console accounts). */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { recordCreate, recordDelete, recordUpdate } from '../audit.js';
import { tenantIdOf } from '../auth/guard.js';
import { IdParams, ListQuery, NextCursor, NoContent, errorResponses, existed, found, paginate, sortQuery } from '../schemas/common.js';
import { UserSchema } from '../schemas/records.js';

const fields = {
  name: z.string().trim().min(1).max(200),
  email: z.email().max(320).nullable(),
};
const CreateUserBody = z
  .strictObject({ name: fields.name, email: fields.email.optional() })
  .meta({ example: { name: 'Ada Lovelace', email: 'ada@acme.example' } });
const PatchUserBody = z.strictObject({ name: fields.name.optional(), email: fields.email.optional() });
const UserReply = z.object({ user: UserSchema });

export const userRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/users',
    {
      config: { permission: 'users:write', audit: { action: 'users.create', resource_type: 'user' } },
      schema: { summary: 'Create a device user', body: CreateUserBody, response: { 201: UserReply, ...errorResponses } },
    },
    async (request, reply) => {
      const user = await recordCreate(request, () => app.store.users.create(tenantIdOf(request), request.body));
      return reply.code(201).send({ user });
    },
  );

  app.get(
    '/users',
    {
      config: { permission: 'users:read' },
      schema: {
        summary: 'List device users',
        querystring: ListQuery.extend(sortQuery(['name', 'created_at'])),
        response: { 200: z.object({ users: z.array(UserSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const page = await paginate(request.query, (o) => app.store.users.list(tenantId, o));
      return { users: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/users/:id',
    {
      config: { permission: 'users:read' },
      schema: { summary: 'Get a device user', params: IdParams, response: { 200: UserReply, ...errorResponses } },
    },
    async (request) => ({ user: found(await app.store.users.get(tenantIdOf(request), request.params.id), 'user') }),
  );

  app.patch(
    '/users/:id',
    {
      config: { permission: 'users:write', audit: { action: 'users.update', resource_type: 'user' } },
      schema: { summary: 'Update a device user', params: IdParams, body: PatchUserBody, response: { 200: UserReply, ...errorResponses } },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      const user = await recordUpdate(
        request,
        id,
        () => app.store.users.get(tenantId, id),
        () => app.store.users.update(tenantId, id, request.body),
      );
      return { user: found(user, 'user') };
    },
  );

  app.delete(
    '/users/:id',
    {
      config: { permission: 'users:write', audit: { action: 'users.delete', resource_type: 'user' } },
      schema: { summary: 'Delete a device user', params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      const deleted = await recordDelete(
        request,
        id,
        () => app.store.users.get(tenantId, id),
        () => app.store.users.delete(tenantId, id),
      );
      existed(deleted, 'user');
      return reply.code(204).send();
    },
  );
};
