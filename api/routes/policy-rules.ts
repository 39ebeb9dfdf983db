/**
 * Policy rules: (policy, role?, app, action) → allow | deny. App and action are catalogue keys or
 * '*'; a key the tenant's catalogue does not hold is refused, since such a rule could never match
 * and would silently do nothing.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { KEY_RE } from '../../shared/ids.js';
import { EffectSchema } from '../../shared/mqtt/payloads.js';
import type { ListOptions, Page } from '../../shared/store/port.js';
import { tenantIdOf } from '../auth/guard.js';
import {
  IdParams,
  IdSchema,
  NextCursor,
  NoContent,
  errorResponses,
  existed,
  found,
  invalidField,
  listQuery,
  paginate,
} from '../schemas/common.js';
import { PolicyRuleSchema } from '../schemas/records.js';

const RuleKey = z
  .string()
  .refine((v) => v === '*' || KEY_RE.test(v), 'must be "*" or a lowercase catalogue key like "slack"');

const fields = {
  policy_id: IdSchema,
  role_id: IdSchema.nullable().describe('restrict the rule to one role among those holding the policy'),
  app: RuleKey.describe('app key or "*"'),
  action: RuleKey.describe('action key or "*"'),
  permission: EffectSchema,
};
const CreateRuleBody = z
  .strictObject({
    policy_id: fields.policy_id,
    role_id: fields.role_id.optional(),
    app: fields.app,
    action: fields.action,
    permission: fields.permission,
  })
  .meta({ example: { policy_id: '01J0000000000000000000000A', app: 'dropbox', action: 'upload_file', permission: 'deny' } });
const PatchRuleBody = z.strictObject({
  role_id: fields.role_id.optional(),
  app: fields.app.optional(),
  action: fields.action.optional(),
  permission: fields.permission.optional(),
});
const RuleReply = z.object({ rule: PolicyRuleSchema });
const RulesQuery = listQuery({ policy_id: IdSchema.optional(), role_id: IdSchema.optional() });

type CatalogList = (tenantId: string, opts: ListOptions) => Promise<Page<{ key: string }>>;

/** Catalogues are small (tens to hundreds of keys): a keyset walk is cheap and needs no new port. */
async function catalogHasKey(list: CatalogList, tenantId: string, key: string): Promise<boolean> {
  let cursor: string | null = null;
  do {
    const page: Page<{ key: string }> = await list(tenantId, { limit: 1000, cursor });
    if (page.items.some((i) => i.key === key)) return true;
    cursor = page.next_cursor;
  } while (cursor !== null);
  return false;
}

export const policyRuleRoutes: FastifyPluginAsyncZod = async (app) => {
  async function checkCatalogue(tenantId: string, input: { app?: string | undefined; action?: string | undefined }) {
    if (input.app !== undefined && input.app !== '*') {
      if (!(await catalogHasKey((t, o) => app.store.apps.list(t, o), tenantId, input.app))) {
        invalidField('body.app', `app '${input.app}' is not in the apps catalogue`);
      }
    }
    if (input.action !== undefined && input.action !== '*') {
      if (!(await catalogHasKey((t, o) => app.store.actions.list(t, o), tenantId, input.action))) {
        invalidField('body.action', `action '${input.action}' is not in the actions catalogue`);
      }
    }
  }

  app.post(
    '/policy-rules',
    {
      config: { permission: 'rules:write' },
      schema: { summary: 'Create a policy rule', body: CreateRuleBody, response: { 201: RuleReply, ...errorResponses } },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      await checkCatalogue(tenantId, request.body);
      return reply.code(201).send({ rule: await app.store.rules.create(tenantId, request.body) });
    },
  );

  app.get(
    '/policy-rules',
    {
      config: { permission: 'rules:read' },
      schema: {
        summary: 'List policy rules (filter by policy_id, role_id)',
        querystring: RulesQuery,
        response: { 200: z.object({ rules: z.array(PolicyRuleSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { policy_id, role_id } = request.query;
      const page = await paginate(request.query, (o) =>
        app.store.rules.list(tenantId, {
          ...o,
          ...(policy_id !== undefined && { policy_id }),
          ...(role_id !== undefined && { role_id }),
        }),
      );
      return { rules: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/policy-rules/:id',
    {
      config: { permission: 'rules:read' },
      schema: { summary: 'Get a policy rule', params: IdParams, response: { 200: RuleReply, ...errorResponses } },
    },
    async (request) => ({ rule: found(await app.store.rules.get(tenantIdOf(request), request.params.id), 'rule') }),
  );

  app.patch(
    '/policy-rules/:id',
    {
      config: { permission: 'rules:write' },
      schema: {
        summary: 'Update a policy rule',
        params: IdParams,
        body: PatchRuleBody,
        response: { 200: RuleReply, ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      // 404 before 400: an unknown rule id is the more fundamental mistake.
      found(await app.store.rules.get(tenantId, request.params.id), 'rule');
      await checkCatalogue(tenantId, request.body);
      return { rule: found(await app.store.rules.update(tenantId, request.params.id, request.body), 'rule') };
    },
  );

  app.delete(
    '/policy-rules/:id',
    {
      config: { permission: 'rules:write' },
      schema: { summary: 'Delete a policy rule', params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      existed(await app.store.rules.delete(tenantIdOf(request), request.params.id), 'rule');
      return reply.code(204).send();
    },
  );
};
