/**
 * A draft change set for what-if (issue #12): rules added, changed and removed; policies added,
 * re-rated and removed; role↔policy and user↔role assignments; the default effect. Applied to a
 * version's content in memory only — nothing is written — so the same compiled index production
 * uses can replay recorded traffic against it.
 */
import { z } from 'zod';
import { createError, type FieldIssue } from '../errors.js';
import { KEY_RE } from '../ids.js';
import { EffectSchema, SeveritySchema } from '../mqtt/payloads.js';
import { RemediationTypeSchema } from '../schemas/records.js';
import { normaliseContent, type ContentRule, type PolicyContent } from './content.js';

const Id = z.string().min(1).max(128);
const RuleKey = z.string().refine((v) => v === '*' || KEY_RE.test(v), 'must be "*" or a lowercase catalogue key like "slack"');
const Remediation = z.strictObject({ type: RemediationTypeSchema, duration_s: z.number().int().min(1).max(30 * 24 * 3600) });
const Escalation = z.strictObject({
  threshold: z.number().int().min(2).max(1000),
  window_s: z.number().int().min(1).max(24 * 3600),
  remediation: Remediation,
});
const RolePolicy = z.strictObject({ role_id: Id, policy_id: Id });
const UserRole = z.strictObject({ user_id: Id, role_id: Id });
/** Bounds a draft so one request cannot ask for unbounded work before the replay starts. */
const MAX_ITEMS = 10_000;

export const DraftSchema = z
  .strictObject({
    default_effect: EffectSchema.optional(),
    policies: z
      .strictObject({
        add: z.array(z.strictObject({ id: Id.optional(), name: z.string().trim().min(1).max(200), severity: SeveritySchema.optional() })).max(MAX_ITEMS).optional(),
        change: z.array(z.strictObject({ id: Id, severity: SeveritySchema })).max(MAX_ITEMS).optional(),
        remove: z.array(Id).max(MAX_ITEMS).optional(),
      })
      .optional(),
    rules: z
      .strictObject({
        add: z
          .array(
            z.strictObject({
              id: Id.optional().describe('names the draft rule in results; default draft-<n>'),
              policy_id: Id,
              role_id: Id.nullable().optional(),
              app: RuleKey,
              action: RuleKey,
              permission: EffectSchema,
              remediation: Remediation.nullable().optional(),
              escalation: Escalation.nullable().optional(),
            }),
          )
          .max(MAX_ITEMS)
          .optional(),
        change: z
          .array(
            z.strictObject({
              id: Id,
              role_id: Id.nullable().optional(),
              app: RuleKey.optional(),
              action: RuleKey.optional(),
              permission: EffectSchema.optional(),
              remediation: Remediation.nullable().optional(),
              escalation: Escalation.nullable().optional(),
            }),
          )
          .max(MAX_ITEMS)
          .optional(),
        remove: z.array(Id).max(MAX_ITEMS).optional(),
      })
      .optional(),
    role_policies: z.strictObject({ assign: z.array(RolePolicy).max(MAX_ITEMS).optional(), unassign: z.array(RolePolicy).max(MAX_ITEMS).optional() }).optional(),
    user_roles: z.strictObject({ assign: z.array(UserRole).max(MAX_ITEMS).optional(), unassign: z.array(UserRole).max(MAX_ITEMS).optional() }).optional(),
  })
  .meta({
    id: 'PolicyDraft',
    example: { rules: { add: [{ policy_id: '01J…', app: 'dropbox', action: 'upload', permission: 'deny' }] } },
  });

export type PolicyDraft = z.infer<typeof DraftSchema>;

/** Ids the draft may refer to beyond the content's own (roles and users exist without links). */
export interface DraftReferences {
  roles: ReadonlySet<string>;
  users: ReadonlySet<string>;
}

/**
 * The content with the draft applied (a new object; `base` is not modified). References the
 * tenant does not hold fail NOT_FOUND naming the field under `fieldPrefix` (e.g. "body.draft"),
 * like the live routes would.
 */
export function applyDraft(base: PolicyContent, draft: PolicyDraft, refs: DraftReferences, fieldPrefix = 'draft'): PolicyContent {
  const c: PolicyContent = structuredClone(base);
  const notFound = (field: string, what: string): never => {
    const issue: FieldIssue = { field: `${fieldPrefix}.${field}`, message: `${what} not found` };
    throw createError('NOT_FOUND', `${issue.field}: ${issue.message}`, [issue]);
  };
  const conflict = (field: string, message: string): never => {
    const issue: FieldIssue = { field: `${fieldPrefix}.${field}`, message };
    throw createError('VALIDATION_FAILED', `${issue.field}: ${message}`, [issue]);
  };
  if (draft.default_effect !== undefined) c.settings.default_effect = draft.default_effect;

  const policies = new Map(c.policies.map((p) => [p.id, p]));
  draft.policies?.add?.forEach((p, i) => {
    const id = p.id ?? `draft-policy-${i + 1}`;
    if (policies.has(id)) conflict(`policies.add.${i}.id`, 'a policy with this id exists');
    policies.set(id, { id, name: p.name, description: null, severity: p.severity ?? 'medium' });
  });
  draft.policies?.change?.forEach((p, i) => {
    const existing = policies.get(p.id) ?? notFound(`policies.change.${i}.id`, 'policy');
    policies.set(p.id, { ...existing, severity: p.severity });
  });
  const removedPolicies = new Set<string>();
  draft.policies?.remove?.forEach((id, i) => {
    if (!policies.delete(id)) notFound(`policies.remove.${i}`, 'policy');
    removedPolicies.add(id);
  });
  const roleExists = (id: string) => refs.roles.has(id);

  const rules = new Map<string, ContentRule>(c.rules.filter((r) => !removedPolicies.has(r.policy_id)).map((r) => [r.id, r]));
  draft.rules?.remove?.forEach((id, i) => {
    if (!rules.delete(id)) notFound(`rules.remove.${i}`, 'rule');
  });
  draft.rules?.change?.forEach((patch, i) => {
    const existing = rules.get(patch.id) ?? notFound(`rules.change.${i}.id`, 'rule');
    if (patch.role_id !== undefined && patch.role_id !== null && !roleExists(patch.role_id)) notFound(`rules.change.${i}.role_id`, 'role');
    rules.set(patch.id, {
      ...existing,
      ...(patch.role_id !== undefined && { role_id: patch.role_id }),
      ...(patch.app !== undefined && { app: patch.app }),
      ...(patch.action !== undefined && { action: patch.action }),
      ...(patch.permission !== undefined && { permission: patch.permission }),
      ...(patch.remediation !== undefined && { remediation: patch.remediation }),
      ...(patch.escalation !== undefined && { escalation: patch.escalation }),
    });
  });
  draft.rules?.add?.forEach((r, i) => {
    const id = r.id ?? `draft-${i + 1}`;
    if (rules.has(id)) conflict(`rules.add.${i}.id`, 'a rule with this id exists');
    if (!policies.has(r.policy_id)) notFound(`rules.add.${i}.policy_id`, 'policy');
    const roleId = r.role_id ?? null;
    if (roleId !== null && !roleExists(roleId)) notFound(`rules.add.${i}.role_id`, 'role');
    rules.set(id, {
      id,
      policy_id: r.policy_id,
      role_id: roleId,
      app: r.app,
      action: r.action,
      permission: r.permission,
      remediation: r.remediation ?? null,
      escalation: r.escalation ?? null,
    });
  });

  const pair = (a: string, b: string) => `${a}\u0000${b}`;
  const rp = new Map(c.role_policies.filter((l) => !removedPolicies.has(l.policy_id)).map((l) => [pair(l.role_id, l.policy_id), l]));
  draft.role_policies?.unassign?.forEach((l, i) => {
    if (!rp.delete(pair(l.role_id, l.policy_id))) notFound(`role_policies.unassign.${i}`, 'assignment');
  });
  draft.role_policies?.assign?.forEach((l, i) => {
    if (!roleExists(l.role_id)) notFound(`role_policies.assign.${i}.role_id`, 'role');
    if (!policies.has(l.policy_id)) notFound(`role_policies.assign.${i}.policy_id`, 'policy');
    rp.set(pair(l.role_id, l.policy_id), { role_id: l.role_id, policy_id: l.policy_id });
  });
  const ur = new Map(c.user_roles.map((l) => [pair(l.user_id, l.role_id), l]));
  draft.user_roles?.unassign?.forEach((l, i) => {
    if (!ur.delete(pair(l.user_id, l.role_id))) notFound(`user_roles.unassign.${i}`, 'assignment');
  });
  draft.user_roles?.assign?.forEach((l, i) => {
    if (!refs.users.has(l.user_id)) notFound(`user_roles.assign.${i}.user_id`, 'user');
    if (!roleExists(l.role_id)) notFound(`user_roles.assign.${i}.role_id`, 'role');
    ur.set(pair(l.user_id, l.role_id), { user_id: l.user_id, role_id: l.role_id });
  });

  c.policies = [...policies.values()];
  c.rules = [...rules.values()];
  c.role_policies = [...rp.values()];
  c.user_roles = [...ur.values()];
  return normaliseContent(c);
}
