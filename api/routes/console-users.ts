/**
 * A tenant's console accounts (people who sign in), as opposed to the device users of policy.
 *
 * Owners and admins manage accounts whose role they could grant (admins never touch owners);
 * changing an account's role, disabling or deleting it ends its sessions at once: refresh tokens
 * revoked, access tokens refused at their next request, live feeds closed on every API process
 * and console MQTT sessions dropped by the brokers ('console-user.revoked' on the bus). Only
 * owners set another account's password. A tenant keeps at least one active owner (409).
 * Deleting an account also unassigns its open and acknowledged alerts, in the delete's
 * transaction (console-accounts.ts: deleteConsoleAccount).
 *
 * An e-mail used in another tenant is accepted like a fresh one (e-mails are unique per tenant),
 * so this route cannot be used to learn which e-mails other tenants have.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ConsoleRole, ConsoleUser } from '../../shared/domain.js';
import { TENANT_CONSOLE_ROLES } from '../../shared/domain.js';
import { createError } from '../../shared/errors.js';
import { ConsoleUserSchema } from '../../shared/schemas/records.js';
import type { ConsoleUserPatch } from '../../shared/store/port.js';
import { recordCreate, recordUpdate } from '../audit.js';
import { tenantIdOf, userPrincipalOf } from '../auth/guard.js';
import { grantableRoles } from '../auth/permissions.js';
import { announceEndedSessions, createConsoleAccount, deleteConsoleAccount, passwordPatch } from '../console-accounts.js';
import { IdParams, ListQuery, NextCursor, NoContent, errorResponses, existed, found, paginate } from '../schemas/common.js';
import { EmailSchema, PasswordSchema } from './tenants.js';

const CreateConsoleUserBody = z
  .strictObject({ email: EmailSchema, password: PasswordSchema, console_role: z.enum(TENANT_CONSOLE_ROLES) })
  .meta({ example: { email: 'analyst@acme.example', password: 'a long passphrase', console_role: 'analyst' } });

export const PatchConsoleUserBody = z
  .strictObject({
    console_role: z.enum(TENANT_CONSOLE_ROLES).optional(),
    disabled: z.boolean().optional().describe('true: the account cannot sign in and its sessions end; false: enabled again'),
  })
  .meta({ example: { disabled: true } });

export const SetPasswordBody = z
  .strictObject({ password: PasswordSchema })
  .meta({ example: { password: 'a new long passphrase' } });

const UserReply = z.object({ user: ConsoleUserSchema });

function requireGrantable(callerRole: ConsoleRole, role: ConsoleRole, field: string): void {
  if (!grantableRoles(callerRole).includes(role)) {
    throw createError('FORBIDDEN', `console role '${callerRole}' cannot manage '${role}' accounts`, [
      { field, message: 'not grantable by the caller' },
    ]);
  }
}

export const consoleUserRoutes: FastifyPluginAsyncZod = async (app) => {
  /** The account in the caller's tenant that the caller may manage, or 404/403. */
  const manageable = async (tenantId: string, callerRole: ConsoleRole, id: string) => {
    const user = found(await app.store.consoleUsers.get(id), 'console user');
    if (user.tenant_id !== tenantId) throw createError('NOT_FOUND', 'console user not found');
    requireGrantable(callerRole, user.console_role, 'params.id');
    return user;
  };
  /**
   * The same role check on the account as the store's transaction sees it: between `manageable`
   * and the write, an owner may have made the account an owner, which an admin must not touch.
   */
  const stillManageable = (callerRole: ConsoleRole) => (current: ConsoleUser) => requireGrantable(callerRole, current.console_role, 'params.id');

  app.post(
    '/console-users',
    {
      config: { permission: 'console-users:write', audit: { action: 'console-users.create', resource_type: 'console_user' } },
      schema: {
        summary: 'Create a console user in the caller’s tenant',
        description: '409 CONFLICT only for an e-mail already used in the caller’s tenant.',
        body: CreateConsoleUserBody,
        response: { 201: UserReply, ...errorResponses },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { role } = userPrincipalOf(request);
      const { email, password, console_role } = request.body;
      requireGrantable(role, console_role, 'body.console_role');
      const user = await recordCreate(request, () =>
        createConsoleAccount(app, { tenant_id: tenantId, email, console_role, password }, 'body.email'),
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

  app.get(
    '/console-users/:id',
    {
      config: { permission: 'console-users:read' },
      schema: { summary: 'One console user of the tenant', params: IdParams, response: { 200: UserReply, ...errorResponses } },
    },
    async (request) => {
      const user = found(await app.store.consoleUsers.get(request.params.id), 'console user');
      if (user.tenant_id !== tenantIdOf(request)) throw createError('NOT_FOUND', 'console user not found');
      return { user };
    },
  );

  app.patch(
    '/console-users/:id',
    {
      config: { permission: 'console-users:write', audit: { action: 'console-users.update', resource_type: 'console_user' } },
      schema: {
        summary: 'Change a console user’s role, or disable / enable it (ends its sessions)',
        description:
          'A role change or disabling ends every session of the account at once (tokens, live feeds, ' +
          'MQTT). 409 when it would leave the tenant without an active owner.',
        params: IdParams,
        body: PatchConsoleUserBody,
        response: { 200: UserReply, ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { role } = userPrincipalOf(request);
      const { id } = request.params;
      const patch: ConsoleUserPatch = request.body;
      const before = await manageable(tenantId, role, id);
      if (patch.console_role !== undefined) requireGrantable(role, patch.console_role, 'body.console_role');
      const after = found(
        await recordUpdate(request, id, async () => before, () => app.store.consoleUsers.update(tenantId, id, patch, stillManageable(role))),
        'console user',
      );
      announceEndedSessions(app, before, after, patch);
      return { user: after };
    },
  );

  app.delete(
    '/console-users/:id',
    {
      config: { permission: 'console-users:write', audit: { action: 'console-users.delete', resource_type: 'console_user' } },
      schema: {
        summary: 'Delete a console user (ends its sessions)',
        description:
          'Its open and acknowledged alerts are unassigned in the same transaction (an `unassigned` step by the caller in each alert’s history); resolved alerts keep their assignee. 409 when it would leave the tenant without an active owner.',
        params: IdParams,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { role } = userPrincipalOf(request);
      const { id } = request.params;
      const before = await manageable(tenantId, role, id);
      existed(await deleteConsoleAccount(app, request, before, (actor) => app.store.consoleUsers.delete(tenantId, id, stillManageable(role), actor)), 'console user');
      announceEndedSessions(app, before, null);
      return reply.code(204).send();
    },
  );

  app.put(
    '/console-users/:id/password',
    {
      config: { permission: 'console-users:credentials', audit: { action: 'console-users.password', resource_type: 'console_user' } },
      schema: {
        summary: 'Set a console user’s password (owners only; ends its sessions)',
        params: IdParams,
        body: SetPasswordBody,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { role } = userPrincipalOf(request);
      const { id } = request.params;
      const before = await manageable(tenantId, role, id);
      const patch = await passwordPatch(app, id, request.body.password);
      const after = found(
        await recordUpdate(request, id, async () => before, () => app.store.consoleUsers.update(tenantId, id, patch, stillManageable(role))),
        'console user',
      );
      announceEndedSessions(app, before, after, patch);
      return reply.code(204).send();
    },
  );
};
