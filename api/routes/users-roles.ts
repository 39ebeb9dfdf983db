/**
 * Device users and policy ROLEs: the same create/list/get/update/delete shape over a tenant
 * repository, differing only in names and one descriptive field, so one plugin registers both,
 * once per kind (as catalog.ts does for apps and actions).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Role, User } from '../../shared/domain.js';
import type { ListOptions, Page, Store } from '../../shared/store/port.js';
import { recordCreate, deleteTenantRecord, recordUpdate } from '../audit.js';
import { tenantIdOf } from '../auth/guard.js';
import { ListQuery, NextCursor, NoContent, errorResponses, found, humanName, paginate, plainText, sortQuery } from '../schemas/common.js';
import { idOrSelf, refField } from './natural-keys.js';
import { RoleSchema, UserSchema } from '../../shared/schemas/records.js';

export interface UsersRolesRoutesOptions {
  /** 'users' (device users: the people policy ROLEs are assigned to, not console accounts) or 'roles'. */
  kind: 'users' | 'roles';
}

const name = humanName();
const email = z.email().max(320).nullable();
const description = z.string().max(2000).superRefine(plainText).nullable();

/** A tenant repository seen through what these routes need (method syntax: inputs widen safely). */
interface NamedRepo {
  create(tenantId: string, input: { name: string }): Promise<User | Role>;
  get(tenantId: string, id: string): Promise<User | Role | null>;
  list(tenantId: string, opts?: ListOptions): Promise<Page<User | Role>>;
  update(tenantId: string, id: string, patch: { name?: string }): Promise<User | Role | null>;
  delete(tenantId: string, id: string): Promise<boolean>;
}

const KINDS = {
  users: {
    one: 'user',
    noun: 'device user',
    nouns: 'device users',
    schema: UserSchema,
    create: z.strictObject({ name, email: email.optional() }).meta({ example: { name: 'Ada Lovelace', email: 'ada@acme.example' } }),
    patch: z.strictObject({ name: name.optional(), email: email.optional() }).meta({ example: { email: 'ada.lovelace@acme.example' } }),
    repo: (store: Store): NamedRepo => store.users,
    ref: 'user',
    read: 'users:read',
    write: 'users:write',
  },
  roles: {
    one: 'role',
    noun: 'role',
    nouns: 'roles',
    schema: RoleSchema,
    create: z
      .strictObject({ name, description: description.optional() })
      .meta({ example: { name: 'field-engineer', description: 'Engineers working on site' } }),
    patch: z
      .strictObject({ name: name.optional(), description: description.optional() })
      .meta({ example: { description: 'Engineers working on site and on call' } }),
    repo: (store: Store): NamedRepo => store.roles,
    ref: 'role',
    read: 'roles:read',
    write: 'roles:write',
  },
} as const;

export const usersRolesRoutes: FastifyPluginAsyncZod<UsersRolesRoutesOptions> = async (app, opts) => {
  const { kind } = opts;
  const k = KINDS[kind];
  const { one, repo, read, write } = k;
  const CreateBody: z.ZodType<{ name: string }> = k.create;
  const PatchBody: z.ZodType<{ name?: string }> = k.patch;
  const Reply = z.object({ [one]: k.schema });
  const ListReply = z.object({ [kind]: z.array(k.schema), next_cursor: NextCursor });
  const IdParams = z.object({ id: refField(k.ref) });
  /** The record id a path names (its id, or its natural key: e-mail / name). */
  const idOf = (tenantId: string, ref: string): Promise<string> => idOrSelf(app.store, tenantId, k.ref, ref);

  app.post(
    `/${kind}`,
    {
      config: { permission: write, audit: { action: `${kind}.create`, resource_type: one } },
      schema: {
        summary: `Create a ${k.noun}`,
        description: kind === 'users' ? 'E-mails are unique per tenant (case-insensitive): 409 CONFLICT on a taken one.' : 'Names are unique per tenant (case- and space-insensitive): 409 CONFLICT on a taken one.',
        body: CreateBody,
        response: { 201: Reply, ...errorResponses },
      },
    },
    async (request, reply) => {
      const created = await recordCreate(request, () => repo(app.store).create(tenantIdOf(request), request.body));
      return reply.code(201).send({ [one]: created });
    },
  );

  app.get(
    `/${kind}`,
    {
      config: { permission: read },
      schema: {
        summary: `List ${k.nouns}`,
        querystring: ListQuery.extend(sortQuery(['name', 'created_at'])),
        response: { 200: ListReply, ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const page = await paginate(request.query, (o) => repo(app.store).list(tenantId, o));
      return { [kind]: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    `/${kind}/:id`,
    {
      config: { permission: read },
      schema: { summary: `Get a ${k.noun}`, params: IdParams, response: { 200: Reply, ...errorResponses } },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      return { [one]: found(await repo(app.store).get(tenantId, await idOf(tenantId, request.params.id)), one) };
    },
  );

  app.patch(
    `/${kind}/:id`,
    {
      config: { permission: write, audit: { action: `${kind}.update`, resource_type: one } },
      schema: { summary: `Update a ${k.noun}`, params: IdParams, body: PatchBody, response: { 200: Reply, ...errorResponses } },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const id = await idOf(tenantId, request.params.id);
      const updated = await recordUpdate(
        request,
        id,
        () => repo(app.store).get(tenantId, id),
        () => repo(app.store).update(tenantId, id, request.body),
      );
      return { [one]: found(updated, one) };
    },
  );

  app.delete(
    `/${kind}/:id`,
    {
      config: { permission: write, audit: { action: `${kind}.delete`, resource_type: one } },
      schema: { summary: `Delete a ${k.noun}`, params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const id = await idOf(tenantId, request.params.id);
      await deleteTenantRecord(request, repo(app.store), tenantId, id, one);
      return reply.code(204).send();
    },
  );
};
