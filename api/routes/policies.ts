/**
 * Policies of a tenant. `GET /policies` also answers "which policies reach this user / role"
 * (`?user_id=` / `?role_id=`), the question an admin asks when a decision surprises them.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Policy } from '../../shared/domain.js';
import { SeveritySchema } from '../../shared/mqtt/payloads.js';
import type { Store } from '../../shared/store/port.js';
import { recordCreate, deleteTenantRecord, recordUpdate } from '../audit.js';
import { tenantIdOf } from '../auth/guard.js';
import { NextCursor, NoContent, errorResponses, found, humanName, invalidField, listQuery, paginate, plainText, sortQuery } from '../schemas/common.js';
import { PolicySchema } from '../../shared/schemas/records.js';
import { idOrSelf, refField, requireRef } from './natural-keys.js';

const IdParams = z.object({ id: refField('policy') });

const fields = {
  name: humanName(),
  description: z.string().max(2000).superRefine(plainText).nullable(),
  severity: SeveritySchema.describe('severity of alerts raised by this policy’s deny rules'),
};
const CreatePolicyBody = z
  .strictObject({ name: fields.name, description: fields.description.optional(), severity: fields.severity.optional() })
  .meta({ example: { name: 'No file uploads', severity: 'high' } });
const PatchPolicyBody = z.strictObject({
  name: fields.name.optional(),
  description: fields.description.optional(),
  severity: fields.severity.optional(),
}).meta({ example: { severity: 'critical' } });
const PolicyReply = z.object({ policy: PolicySchema });

const PoliciesQuery = listQuery({
  user_id: refField('user').optional().describe('only policies reaching this device user through its roles (id or e-mail)'),
  role_id: refField('role').optional().describe('only policies assigned to this role (id or name)'),
  ...sortQuery(['name', 'created_at']),
});

const PolicyListReply = z.union([
  z.object({ user_id: z.string(), policies: z.array(PolicySchema) }),
  z.object({ role_id: z.string(), policies: z.array(PolicySchema) }),
  z.object({ policies: z.array(PolicySchema), next_cursor: NextCursor }),
]);

/** Policies reaching a user through any of its roles, each once, in id order. */
export async function policiesOfUser(store: Store, tenantId: string, userId: string): Promise<Policy[]> {
  const roles = await store.userRoles.rolesOfUser(tenantId, userId);
  const byId = new Map<string, Policy>();
  for (const role of roles) {
    for (const p of await store.rolePolicies.policiesOfRole(tenantId, role.id)) byId.set(p.id, p);
  }
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export const policyRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/policies',
    {
      config: { permission: 'policies:write', audit: { action: 'policies.create', resource_type: 'policy' } },
      schema: {
        summary: 'Create a policy',
        description: 'Names are unique per tenant (case- and space-insensitive): 409 CONFLICT on a taken one.',
        body: CreatePolicyBody,
        response: { 201: PolicyReply, ...errorResponses },
      },
    },
    async (request, reply) => {
      const policy = await recordCreate(request, () => app.store.policies.create(tenantIdOf(request), request.body));
      return reply.code(201).send({ policy });
    },
  );

  app.get(
    '/policies',
    {
      config: { permission: 'policies:read' },
      schema: {
        summary: 'List policies, or those reaching a user (?user_id) or assigned to a role (?role_id)',
        querystring: PoliciesQuery,
        response: { 200: PolicyListReply, ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { user_id, role_id } = request.query;
      if (user_id !== undefined && role_id !== undefined) {
        invalidField('query.role_id', 'give either user_id or role_id, not both');
      }
      if (user_id !== undefined) {
        const userId = await requireRef(app.store, tenantId, 'user', user_id, 'query.user_id');
        return { user_id: userId, policies: await policiesOfUser(app.store, tenantId, userId) };
      }
      if (role_id !== undefined) {
        const roleId = await requireRef(app.store, tenantId, 'role', role_id, 'query.role_id');
        return { role_id: roleId, policies: await app.store.rolePolicies.policiesOfRole(tenantId, roleId) };
      }
      const page = await paginate(request.query, (o) => app.store.policies.list(tenantId, o));
      return { policies: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/policies/:id',
    {
      config: { permission: 'policies:read' },
      schema: { summary: 'Get a policy', params: IdParams, response: { 200: PolicyReply, ...errorResponses } },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      return { policy: found(await app.store.policies.get(tenantId, await idOrSelf(app.store, tenantId, 'policy', request.params.id)), 'policy') };
    },
  );

  app.patch(
    '/policies/:id',
    {
      config: { permission: 'policies:write', audit: { action: 'policies.update', resource_type: 'policy' } },
      schema: {
        summary: 'Update a policy',
        params: IdParams,
        body: PatchPolicyBody,
        response: { 200: PolicyReply, ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const id = await idOrSelf(app.store, tenantId, 'policy', request.params.id);
      const policy = await recordUpdate(
        request,
        id,
        () => app.store.policies.get(tenantId, id),
        () => app.store.policies.update(tenantId, id, request.body),
      );
      return { policy: found(policy, 'policy') };
    },
  );

  app.delete(
    '/policies/:id',
    {
      config: { permission: 'policies:write', audit: { action: 'policies.delete', resource_type: 'policy' } },
      schema: { summary: 'Delete a policy', params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const id = await idOrSelf(app.store, tenantId, 'policy', request.params.id);
      await deleteTenantRecord(request, app.store.policies, tenantId, id, 'policy');
      return reply.code(204).send();
    },
  );
};
