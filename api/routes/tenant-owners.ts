/**
 * Operators manage a tenant's owners (`/tenants/{id}/owners`): list them, add one, change an
 * owner's role, disable, enable or delete one, and set an owner's password — what an owner does
 * for the tenant's other accounts, for the accounts an operator is responsible for. Other console
 * accounts stay the tenant's business (404 here). The same rules hold: ending sessions at once,
 * and at least one active owner per tenant (409).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ConsoleUser } from '../../shared/domain.js';
import { createError } from '../../shared/errors.js';
import { ConsoleUserSchema } from '../../shared/schemas/records.js';
import type { ConsoleUserPatch } from '../../shared/store/port.js';
import { recordCreate, recordUpdate } from '../audit.js';
import { announceEndedSessions, createConsoleAccount, deleteConsoleAccount, passwordPatch } from '../console-accounts.js';
import { IdSchema, ListQuery, NextCursor, NoContent, errorResponses, existed, found, paginate } from '../schemas/common.js';
import { PatchConsoleUserBody, SetPasswordBody } from './console-users.js';
import { EmailSchema, PasswordSchema } from './tenants.js';

const TenantParams = z.object({ id: IdSchema });
const OwnerParams = z.object({ id: IdSchema, userId: IdSchema });
const UserReply = z.object({ user: ConsoleUserSchema });
const CreateOwnerBody = z
  .strictObject({ email: EmailSchema, password: PasswordSchema })
  .meta({ example: { email: 'second-owner@acme.example', password: 'a long passphrase' } });

export const tenantOwnerRoutes: FastifyPluginAsyncZod = async (app) => {
  /** The tenant's owner `userId`, or 404 (unknown tenant, another tenant's account, not an owner). */
  const ownerOf = async (tenantId: string, userId: string) => {
    const user = await app.store.consoleUsers.get(userId);
    if (!user || user.tenant_id !== tenantId || user.console_role !== 'owner') throw createError('NOT_FOUND', 'owner not found');
    return user;
  };
  /**
   * The same test on the account as the store's transaction sees it: an owner may have been made
   * an admin (the tenant's business, not the operator's) since `ownerOf` read it.
   */
  const stillOwner = (current: ConsoleUser): void => {
    if (current.console_role !== 'owner') throw createError('NOT_FOUND', 'owner not found');
  };

  app.get(
    '/tenants/:id/owners',
    {
      config: { permission: 'tenants:read' },
      schema: {
        summary: 'List a tenant’s owners',
        params: TenantParams,
        querystring: ListQuery,
        response: { 200: z.object({ users: z.array(ConsoleUserSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      found(await app.store.tenants.get(id), 'tenant');
      const page = await paginate(request.query, (o) => app.store.consoleUsers.list(id, { ...o, console_role: 'owner' }));
      return { users: page.items, next_cursor: page.next_cursor };
    },
  );

  app.post(
    '/tenants/:id/owners',
    {
      config: { permission: 'tenants:write', audit: { action: 'tenant-owners.create', resource_type: 'console_user' } },
      schema: {
        summary: 'Add an owner to a tenant',
        params: TenantParams,
        body: CreateOwnerBody,
        response: { 201: UserReply, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      found(await app.store.tenants.get(id), 'tenant');
      const { email, password } = request.body;
      const user = await recordCreate(request, () =>
        createConsoleAccount(app, { tenant_id: id, email, console_role: 'owner', password }, 'body.email'),
      );
      return reply.code(201).send({ user });
    },
  );

  app.patch(
    '/tenants/:id/owners/:userId',
    {
      config: { permission: 'tenants:write', audit: { action: 'tenant-owners.update', resource_type: 'console_user' } },
      schema: {
        summary: 'Change an owner’s role, or disable / enable it (ends its sessions)',
        params: OwnerParams,
        body: PatchConsoleUserBody,
        response: { 200: UserReply, ...errorResponses },
      },
    },
    async (request) => {
      const { id, userId } = request.params;
      const patch: ConsoleUserPatch = request.body;
      const before = await ownerOf(id, userId);
      const after = found(
        await recordUpdate(request, userId, async () => before, () => app.store.consoleUsers.update(id, userId, patch, stillOwner)),
        'owner',
      );
      announceEndedSessions(app, before, after, patch);
      return { user: after };
    },
  );

  app.delete(
    '/tenants/:id/owners/:userId',
    {
      config: { permission: 'tenants:write', audit: { action: 'tenant-owners.delete', resource_type: 'console_user' } },
      schema: {
        summary: 'Delete an owner (ends its sessions)',
        description: 'Its open and acknowledged alerts are unassigned in the same transaction, as a step by the operator.',
        params: OwnerParams,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id, userId } = request.params;
      const before = await ownerOf(id, userId);
      existed(await deleteConsoleAccount(app, request, before, (actor) => app.store.consoleUsers.delete(id, userId, stillOwner, actor)), 'owner');
      announceEndedSessions(app, before, null);
      return reply.code(204).send();
    },
  );

  app.put(
    '/tenants/:id/owners/:userId/password',
    {
      config: { permission: 'tenants:write', audit: { action: 'tenant-owners.password', resource_type: 'console_user' } },
      schema: {
        summary: 'Set an owner’s password (ends its sessions)',
        params: OwnerParams,
        body: SetPasswordBody,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id, userId } = request.params;
      const before = await ownerOf(id, userId);
      const patch = await passwordPatch(app, userId, request.body.password);
      const after = found(
        await recordUpdate(request, userId, async () => before, () => app.store.consoleUsers.update(id, userId, patch, stillOwner)),
        'owner',
      );
      announceEndedSessions(app, before, after, patch);
      return reply.code(204).send();
    },
  );
};
