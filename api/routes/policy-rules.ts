/**
 * Policy rules: (policy, role?, app, action) → allow | deny. App and action are catalogue keys or
 * '*'; a key the tenant's catalogue does not hold is refused, since such a rule could never match
 * and would silently do nothing. A deny rule may carry a remediation (and an escalation to a
 * stronger one); they act only on plans with auto_remediation, but are stored on every plan so a
 * tenant that upgrades needs no rule edits.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { KEY_RE } from '../../shared/ids.js';
import { EffectSchema } from '../../shared/mqtt/payloads.js';
import type { Effect, Escalation, Remediation } from '../../shared/domain.js';
import type { ListOptions, Page } from '../../shared/store/port.js';
import { audit, recordCreate, deleteTenantRecord } from '../audit.js';
import { tenantIdOf } from '../auth/guard.js';
import {
  IdParams,
  NextCursor,
  NoContent,
  errorResponses,
  found,
  invalidField,
  listQuery,
  paginate,
  sortQuery,
} from '../schemas/common.js';
import { PolicyRuleSchema, RemediationTypeSchema } from '../../shared/schemas/records.js';
import { idOrSelf, refField } from './natural-keys.js';

const RuleKey = z
  .string()
  .refine((v) => v === '*' || KEY_RE.test(v), 'must be "*" or a lowercase catalogue key like "slack"');

/** 30 days: the longest an action may hold at a tower before it lifts by itself. */
export const MAX_REMEDIATION_S = 30 * 24 * 3600;
const RemediationBody = z.strictObject({
  type: RemediationTypeSchema,
  duration_s: z.number().int().min(1).max(MAX_REMEDIATION_S).describe('how long the action holds at the tower'),
});
const EscalationBody = z.strictObject({
  threshold: z.number().int().min(2).max(1000).describe('violations of this rule by one device…'),
  window_s: z.number().int().min(1).max(24 * 3600).describe('…within this window trigger the escalation'),
  remediation: RemediationBody,
});

const fields = {
  policy_id: refField('policy'),
  role_id: refField('role').nullable().describe('restrict the rule to one role among those holding the policy (id or name)'),
  app: RuleKey.describe('app key or "*"'),
  action: RuleKey.describe('action key or "*"'),
  permission: EffectSchema,
  remediation: RemediationBody.nullable().describe('corrective action at the tower when the rule denies (plans with auto_remediation)'),
  escalation: EscalationBody.nullable().describe('a stronger action once a device violates the rule repeatedly'),
};
const CreateRuleBody = z
  .strictObject({
    policy_id: fields.policy_id,
    role_id: fields.role_id.optional(),
    app: fields.app,
    action: fields.action,
    permission: fields.permission,
    remediation: fields.remediation.optional(),
    escalation: fields.escalation.optional(),
  })
  .meta({
    example: {
      policy_id: '01J0000000000000000000000A',
      app: 'dropbox',
      action: 'upload_file',
      permission: 'deny',
      remediation: { type: 'block_app', duration_s: 3600 },
      escalation: { threshold: 3, window_s: 600, remediation: { type: 'quarantine', duration_s: 86400 } },
    },
  });
const PatchRuleBody = z.strictObject({
  role_id: fields.role_id.optional(),
  app: fields.app.optional(),
  action: fields.action.optional(),
  permission: fields.permission.optional(),
  remediation: fields.remediation.optional(),
  escalation: fields.escalation.optional(),
}).meta({ example: { permission: 'allow', remediation: null } });
const RuleReply = z.object({ rule: PolicyRuleSchema });
const RulesQuery = listQuery({ policy_id: refField('policy').optional(), role_id: refField('role').optional(), ...sortQuery(['created_at']) });

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

/**
 * Remediations answer a denial, so an allow rule holding one could never act: refuse it rather
 * than store a rule that silently does nothing. `rule` is the state after the write.
 */
function checkRemediationOnDeny(rule: { permission: Effect; remediation: Remediation | null; escalation: Escalation | null }): void {
  if (rule.permission === 'deny') return;
  if (rule.remediation !== null) invalidField('body.remediation', 'only deny rules remediate; set it to null or permission to deny');
  if (rule.escalation !== null) invalidField('body.escalation', 'only deny rules remediate; set it to null or permission to deny');
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
      config: { permission: 'rules:write', audit: { action: 'policy-rules.create', resource_type: 'rule' } },
      schema: { summary: 'Create a policy rule', body: CreateRuleBody, response: { 201: RuleReply, ...errorResponses } },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { permission, remediation = null, escalation = null } = request.body;
      checkRemediationOnDeny({ permission, remediation, escalation });
      await checkCatalogue(tenantId, request.body);
      const { policy_id, role_id } = request.body;
      const refs = {
        policy_id: await idOrSelf(app.store, tenantId, 'policy', policy_id),
        ...(role_id !== undefined && { role_id: role_id === null ? null : await idOrSelf(app.store, tenantId, 'role', role_id) }),
      };
      const rule = await recordCreate(request, () => app.store.rules.create(tenantId, { ...request.body, ...refs }));
      return reply.code(201).send({ rule });
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
      const policy_id = request.query.policy_id === undefined ? undefined : await idOrSelf(app.store, tenantId, 'policy', request.query.policy_id);
      const role_id = request.query.role_id === undefined ? undefined : await idOrSelf(app.store, tenantId, 'role', request.query.role_id);
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
      config: { permission: 'rules:write', audit: { action: 'policy-rules.update', resource_type: 'rule' } },
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
      const before = await app.store.rules.get(tenantId, request.params.id);
      audit(request, { resource_id: request.params.id, before });
      const current = found(before, 'rule');
      const { permission, remediation, escalation } = request.body;
      checkRemediationOnDeny({
        permission: permission ?? current.permission,
        remediation: remediation === undefined ? current.remediation : remediation,
        escalation: escalation === undefined ? current.escalation : escalation,
      });
      await checkCatalogue(tenantId, request.body);
      const roleRef = request.body.role_id;
      const patch = roleRef === undefined || roleRef === null ? request.body : { ...request.body, role_id: await idOrSelf(app.store, tenantId, 'role', roleRef) };
      // Checked again on the row inside the update's transaction: a concurrent PATCH may have
      // changed the permission or remediation since `current` was read (two PATCHes that each
      // pass against the old row, one adding a remediation and one making the rule allow, would
      // otherwise store an allow rule that remediates).
      const rule = found(await app.store.rules.update(tenantId, request.params.id, patch, checkRemediationOnDeny), 'rule');
      audit(request, { after: rule });
      return { rule };
    },
  );

  app.delete(
    '/policy-rules/:id',
    {
      config: { permission: 'rules:write', audit: { action: 'policy-rules.delete', resource_type: 'rule' } },
      schema: { summary: 'Delete a policy rule', params: IdParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      const tenantId = tenantIdOf(request);
      const { id } = request.params;
      await deleteTenantRecord(request, app.store.rules, tenantId, id, 'rule');
      return reply.code(204).send();
    },
  );
};
