/** A tenant's console accounts (people who sign in), as opposed to the device users of policy. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { hashPassword } from '../../shared/auth/passwords.js';
import { TENANT_CONSOLE_ROLES } from '../../shared/domain.js';
import { createError } from '../../shared/errors.js';
import { recordCreate } from '../audit.js';
import { tenantIdOf, userPrincipalOf } from '../auth/guard.js';
import { grantableRoles } from '../auth/permissions.js';
import { ListQuery, NextCursor, errorResponses, paginate } from '../schemas/common.js';
import { ConsoleUserSchema } from '../../shared/schemas/records.js';
import { EmailSchema, PasswordSchema } from './tenants.js';

const CreateConsoleUserBody = z
  .strictObject({ email: EmailSchema, password: PasswordSchema, console_role: z.enum(TENANT_CONSOLE_ROLES) })
  .meta({ example: { email: 'analyst@acme.example', password: 'a long passphrase', console_role: 'analyst' } });

export const consoleUserRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/console-users',
    {
      config: { permission: 'console-users:write', audit: { action: 'console-users.create', resource_type: 'console_user' } },
      schema: {
        summary: 'Create a console user in the caller’s tenant',
        body: CreateConsoleUserBody,
        response: { 201: z.object({ user: ConsoleUserSchema }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { role } = userPrincipalOf(request);
      const { email, password, console_role } = request.body;
      if (!grantableRoles(role).includes(console_role)) {
        throw createError('FORBIDDEN', `console role '${role}' cannot create '${console_role}' users`, [
          { field: 'body.console_role', message: 'not grantable by the caller' },
        ]);
      }
      if (await app.store.consoleUsers.findByEmail(email)) {
        throw createError('CONFLICT', 'a console user with this email already exists', [
          { field: 'body.email', message: 'already in use' },
        ]);
      }
      const passwordHash = await hashPassword(password);
      const user = await recordCreate(request, () =>
        app.store.consoleUsers.create({ tenant_id: tenantId, email, console_role, password_hash: passwordHash }),
      );
      return reply.code(201).send({ user });
    },
  );

  app.get(
    '/console-users',
    {
      config: { permission: 'console-users:read' },
      schema: {
        summary: 'List the tenant’s console users',
        querystring: ListQuery,
        response: { 200: z.object({ users: z.array(ConsoleUserSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const page = await paginate(request.query, (o) => app.store.consoleUsers.list(tenantId, o));
      return { users: page.items, next_cursor: page.next_cursor };
    },
  );
};
