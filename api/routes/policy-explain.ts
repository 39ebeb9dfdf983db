/**
 * "Why was this denied?" (issue #12). For a recorded event: the whole decision path at the policy
 * version that decided it, whatever changed since. For a hypothetical one ("could Jane upload to
 * Dropbox?"): the same explanation against the live policy or any stored version.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Explainer, type Explanation } from '../../shared/policy/explain.js';
import { principalOf, tenantIdOf } from '../auth/guard.js';
import type { Permission } from '../auth/permissions.js';
import { lacking } from '../auth/reveal.js';
import type { Principal } from '../types.js';
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

/** Read permissions guarding parts of an explanation (the route's own permission aside). */
const EXPLANATION_PARTS: readonly Permission[] = ['roles:read', 'policies:read', 'rules:read'];

const Redacted = z
  .array(z.string())
  .describe('permissions the caller lacks: the parts they guard are left out (roles, policy names, matching rules, the owner of a device asked about; the summary names no rule, policy or role)')
  .meta({ example: [] });

/**
 * The explanation as far as the caller may read it: roles need `roles:read`, policy names and
 * severities `policies:read`, the matching rules `rules:read`. The decision itself (effect,
 * reason, rule and policy id, severity) is what a usage record carries, so it always stays.
 */
function visible(principal: Principal, e: Explanation, parts: readonly Permission[] = EXPLANATION_PARTS): { explanation: Explanation; redacted: Permission[] } {
  const redacted = lacking(principal, parts);
  if (redacted.length === 0) return { explanation: e, redacted };
  const can = (p: Permission) => !redacted.includes(p);
  const verdict = e.effect === 'deny' ? 'Denied' : 'Allowed';
  const cause =
    e.reason === 'rule'
      ? `by rule ${e.rule_id} of policy ${e.policy_id}`
      : e.reason === 'unknown_device'
        ? `by the tenant default: device ${e.device?.id} is not registered to this tenant`
        : 'by the tenant default';
  // Who owns a device is `devices:read`'s: asked about a device, a caller without it learns the
  // decision, not the owner (a usage record names its user, so the event's explanation keeps it).
  const owner = can('devices:read') ? {} : { user_id: null, device: e.device && { ...e.device, owner_user_id: null } };
  return {
    explanation: {
      ...e,
      ...owner,
      roles: can('roles:read') ? e.roles.map((r) => ({ ...r, policies: can('policies:read') ? r.policies : [] })) : [],
      matches: can('rules:read')
        ? e.matches.map((m) => ({
            ...m,
            policy_name: can('policies:read') ? m.policy_name : null,
            via_roles: can('roles:read') ? m.via_roles : [],
            scoped_to_role: can('roles:read') ? m.scoped_to_role : null,
          }))
        : [],
      summary: `${verdict} ${cause} (the full explanation needs ${redacted.join(', ')}).`,
    },
    redacted,
  };
}

const EventExplanationReply = z.object({
  event_id: z.string(),
  recorded: RecordedDecisionSchema,
  explanation: ExplanationSchema,
  /** False when deciding again at that version gives another answer (see `note`). */
  consistent: z.boolean(),
  note: z.string().nullable(),
  redacted: Redacted,
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
          'decided or the tenant default, and one sentence — as of the policy version stored on the event. Roles, ' +
          'policy names and matching rules are included only for a caller that also holds roles:read, policies:read, ' +
          'rules:read (every console role does; an API key needs those scopes): `redacted` names what was left out.',
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
        ...visible(principalOf(request), explanation),
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
        description:
          'The matching rules need rules:read and the roles roles:read as well (every console role holds them; an ' +
          'API key needs those scopes): `redacted` names what was left out.',
        body: ExplainBody,
        response: { 200: z.object({ explanation: ExplanationSchema, redacted: Redacted }), ...errorResponses },
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
      const parts = device_id !== undefined ? [...EXPLANATION_PARTS, 'devices:read' as const] : EXPLANATION_PARTS;
      return visible(principalOf(request), new Explainer(content).explain(subject, appKey, action), parts);
    },
  );
};
