/**
 * "Why was this denied?" (issue #12). For a recorded event: the whole decision path at the policy
 * version that decided it, whatever changed since. For a hypothetical one ("could Jane upload to
 * Dropbox?"): the same explanation against the live policy or any stored version.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Explainer } from '../../shared/policy/explain.js';
import { tenantIdOf } from '../auth/guard.js';
import { IdParams, IdSchema, errorResponses, found, intQuery, invalidField, referenceNotFound } from '../schemas/common.js';
import type { PolicyContents } from './policy-contents.js';
import { ExplanationSchema, RecordedDecisionSchema } from './policy-schemas.js';

export const VersionNumber = intQuery(1, Number.MAX_SAFE_INTEGER);

const Name = z.string().trim().min(1).max(128);
const ExplainBody = z
  .strictObject({
    device_id: IdSchema.optional().describe('explain for this device (its owner’s roles); give this or user_id'),
    user_id: IdSchema.optional().describe('explain for this device user directly'),
    app: Name,
    action: Name,
    version: VersionNumber.optional().describe('a stored policy version; default the live policy'),
  })
  .meta({ example: { user_id: '01J9Z0USER00000000000000JA', app: 'dropbox', action: 'upload' } });

const EventExplanationReply = z.object({
  event_id: z.string(),
  recorded: RecordedDecisionSchema,
  explanation: ExplanationSchema,
  /** False when deciding again at that version gives another answer (see `note`). */
  consistent: z.boolean(),
  note: z.string().nullable(),
});

export const policyExplainRoutes: FastifyPluginAsyncZod<{ contents: PolicyContents }> = async (app, opts) => {
  const { contents } = opts;

  app.get(
    '/app-usage/:id/explain',
    {
      config: { permission: 'usage:read' },
      schema: {
        summary: 'Explain a recorded decision at the policy version that made it',
        description:
          'device → user → roles → policies → every matching rule (allows a deny overrode, wildcard matches), the rule that ' +
          'decided or the tenant default, and one sentence — as of the policy version stored on the event.',
        params: IdParams,
        response: { 200: EventExplanationReply, ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const event = found(await app.store.usageHistory.get(tenantId, request.params.id), 'usage event');
      const content = await contents.at(tenantId, event.policy_version, 'params.id');
      const explanation = new Explainer(content).explain({ device_id: event.device_id }, event.app, event.action);
      const consistent =
        explanation.effect === event.effect && explanation.reason === event.reason && explanation.rule_id === event.rule_id;
      let note: string | null = null;
      if (event.reason === 'blocked') note = 'answered at the tower by a remediation in force; the policy explanation is what the cloud would decide';
      else if (!consistent) note = 'the stored decision differs from deciding again at its version (for example an edge decision reconciled later)';
      return {
        event_id: event.id,
        recorded: { effect: event.effect, reason: event.reason, rule_id: event.rule_id, policy_id: event.policy_id, policy_version: event.policy_version },
        explanation,
        consistent,
        note,
      };
    },
  );

  app.post(
    '/policies/explain',
    {
      config: { permission: 'policies:read' },
      schema: {
        summary: 'Explain a hypothetical decision ("could Jane upload to Dropbox?")',
        body: ExplainBody,
        response: { 200: z.object({ explanation: ExplanationSchema }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const { device_id, user_id, app: appKey, action, version } = request.body;
      if ((device_id === undefined) === (user_id === undefined)) invalidField('body.device_id', 'give exactly one of device_id and user_id');
      // Against the live policy a user id must be the tenant's; at a stored version the user may be
      // gone since (another tenant's id simply holds no role there). A device need not be
      // registered: the answer then says so.
      if (user_id !== undefined && version === undefined && !(await app.store.users.get(tenantId, user_id))) {
        referenceNotFound('body.user_id', 'user');
      }
      const content = version === undefined ? (await contents.live(tenantId)).content : await contents.at(tenantId, version, 'body.version');
      const subject = device_id !== undefined ? { device_id } : { user_id: user_id! };
      return { explanation: new Explainer(content).explain(subject, appKey, action) };
    },
  );
};
