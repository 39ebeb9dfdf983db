/**
 * The two many-to-many links of the policy model: user ↔ role and role ↔ policy. Each change
 * bumps the tenant's policy version (the store does it in the same transaction).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { audit } from '../audit.js';
import { tenantIdOf } from '../auth/guard.js';
import { NoContent, errorResponses, existed } from '../schemas/common.js';
import { PolicySchema, RoleSchema } from '../../shared/schemas/records.js';
import { idOrSelf, refField, requireRef } from './natural-keys.js';

const userRef = refField('user');
const roleRef = refField('role');
const policyRef = refField('policy');

const UserRoleBody = z
  .strictObject({ user_id: userRef, role_id: roleRef })
  .meta({ example: { user_id: '01JGZ5RB2M9Q4W7E1T3Y6U8I0P', role_id: '01JGZ5S0K4H8D2F6G1J3L5N7QR' } });
const RolePolicyBody = z
  .strictObject({ role_id: roleRef, policy_id: policyRef })
  .meta({ example: { role_id: '01JGZ5S0K4H8D2F6G1J3L5N7QR', policy_id: '01JGZ5T6V9B3C7X1Z5M8N2K4HD' } });

export const assignmentRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/users/roles/assign',
    {
      config: { permission: 'users:write', audit: { action: 'user-roles.assign', resource_type: 'user_role' } },
      schema: {
        summary: 'Assign a role to a device user (idempotent)',
        body: UserRoleBody,
        response: {
          200: z
            .object({ user_id: z.string(), role_id: z.string(), assigned: z.boolean().describe('false when it already was') })
            .meta({ example: { user_id: '01JGZ5RB2M9Q4W7E1T3Y6U8I0P', role_id: '01JGZ5S0K4H8D2F6G1J3L5N7QR', assigned: true } }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const user_id = await idOrSelf(app.store, tenantId, 'user', request.body.user_id);
      const role_id = await idOrSelf(app.store, tenantId, 'role', request.body.role_id);
      audit(request, { resource_id: `${user_id}/${role_id}` });
      const assigned = await app.store.userRoles.assign(tenantId, user_id, role_id);
      audit(request, { after: { user_id, role_id, assigned } });
      return { user_id, role_id, assigned };
    },
  );

  app.get(
    '/users/roles',
    {
      config: { permission: 'users:read' },
      schema: {
        summary: 'Roles of a device user',
        querystring: z.object({ user: userRef }),
        response: { 200: z.object({ user_id: z.string(), roles: z.array(RoleSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const userId = await requireRef(app.store, tenantId, 'user', request.query.user, 'query.user');
      return { user_id: userId, roles: await app.store.userRoles.rolesOfUser(tenantId, userId) };
    },
  );

  app.delete(
    '/users/:user_id/roles/:role_id',
    {
      config: { permission: 'users:write', audit: { action: 'user-roles.unassign', resource_type: 'user_role' } },
      schema: {
        summary: 'Remove a role from a device user',
        params: z.object({ user_id: userRef, role_id: roleRef }),
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const user_id = await idOrSelf(app.store, tenantId, 'user', request.params.user_id);
      const role_id = await idOrSelf(app.store, tenantId, 'role', request.params.role_id);
      audit(request, { resource_id: `${user_id}/${role_id}`, before: { user_id, role_id } });
      existed(await app.store.userRoles.unassign(tenantId, user_id, role_id), 'role assignment');
      return reply.code(204).send();
    },
  );

  app.post(
    '/roles/policies/assign',
    {
      config: { permission: 'roles:write', audit: { action: 'role-policies.assign', resource_type: 'role_policy' } },
      schema: {
        summary: 'Assign a policy to a role (idempotent)',
        body: RolePolicyBody,
        response: {
          200: z
            .object({ role_id: z.string(), policy_id: z.string(), assigned: z.boolean().describe('false when it already was') })
            .meta({ example: { role_id: '01JGZ5S0K4H8D2F6G1J3L5N7QR', policy_id: '01JGZ5T6V9B3C7X1Z5M8N2K4HD', assigned: true } }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const role_id = await idOrSelf(app.store, tenantId, 'role', request.body.role_id);
      const policy_id = await idOrSelf(app.store, tenantId, 'policy', request.body.policy_id);
      audit(request, { resource_id: `${role_id}/${policy_id}` });
      const assigned = await app.store.rolePolicies.assign(tenantId, role_id, policy_id);
      audit(request, { after: { role_id, policy_id, assigned } });
      return { role_id, policy_id, assigned };
    },
  );

  app.get(
    '/roles/policies',
    {
      config: { permission: 'roles:read' },
      schema: {
        summary: 'Policies assigned to a role',
        querystring: z.object({ role: roleRef }),
        response: { 200: z.object({ role_id: z.string(), policies: z.array(PolicySchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const roleId = await requireRef(app.store, tenantId, 'role', request.query.role, 'query.role');
      return { role_id: roleId, policies: await app.store.rolePolicies.policiesOfRole(tenantId, roleId) };
    },
  );

  app.delete(
    '/roles/:role_id/policies/:policy_id',
    {
      config: { permission: 'roles:write', audit: { action: 'role-policies.unassign', resource_type: 'role_policy' } },
      schema: {
        summary: 'Remove a policy from a role',
        params: z.object({ role_id: roleRef, policy_id: policyRef }),
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const role_id = await idOrSelf(app.store, tenantId, 'role', request.params.role_id);
      const policy_id = await idOrSelf(app.store, tenantId, 'policy', request.params.policy_id);
      audit(request, { resource_id: `${role_id}/${policy_id}`, before: { role_id, policy_id } });
      existed(await app.store.rolePolicies.unassign(tenantId, role_id, policy_id), 'policy assignment');
      return reply.code(204).send();
    },
  );
};
