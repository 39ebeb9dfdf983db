/**
 * Response schemas of the policy lifecycle routes (explain, what-if, versions, tests), each typed
 * against the shared result it serializes, so a drift between the two fails the typecheck rather
 * than a response.
 */
import { z } from 'zod';
import { EffectSchema, SeveritySchema } from '../../shared/mqtt/payloads.js';
import type { PolicyContent } from '../../shared/policy/content.js';
import type { Explanation } from '../../shared/policy/explain.js';
import type { PolicyTest, PolicyTestRun } from '../../shared/policy/policy-tests.js';
import type { VersionDiff } from '../../shared/policy/version-diff.js';
import type { WhatIfResult } from '../../shared/policy/what-if.js';
import { PolicyRuleSchema, PolicySchema } from '../../shared/schemas/records.js';
import type { PolicyVersionInfo } from '../../shared/store/port.js';
import { HISTORY_KINDS } from '../../shared/store/rules/policy-history.js';

const Reason = z.enum(['rule', 'default', 'unknown_device', 'blocked']);

export const ExplanationSchema = z
  .object({
    tenant_id: z.string(),
    policy_version: z.number().int(),
    app: z.string(),
    action: z.string(),
    device: z.object({ id: z.string(), registered: z.boolean(), owner_user_id: z.string().nullable() }).nullable(),
    user_id: z.string().nullable(),
    roles: z.array(
      z.object({
        role_id: z.string(),
        policies: z.array(z.object({ policy_id: z.string(), name: z.string(), severity: SeveritySchema })),
      }),
    ),
    matches: z.array(
      z.object({
        rule_id: z.string(),
        policy_id: z.string(),
        policy_name: z.string().nullable(),
        via_roles: z.array(z.string()),
        scoped_to_role: z.string().nullable(),
        app: z.string(),
        action: z.string(),
        effect: EffectSchema,
        severity: SeveritySchema,
        specificity: z.enum(['exact', 'app_any_action', 'any_app_action', 'any_app_any_action']),
        wildcard: z.object({ app: z.boolean(), action: z.boolean() }),
        outcome: z.enum(['decided', 'overridden_by_deny', 'less_specific']),
      }),
    ),
    effect: EffectSchema,
    reason: z.enum(['rule', 'default', 'unknown_device']),
    rule_id: z.string().nullable(),
    policy_id: z.string().nullable(),
    severity: SeveritySchema.nullable(),
    default_effect: EffectSchema,
    summary: z.string(),
  })
  .meta({
    id: 'Explanation',
    example: {
      tenant_id: '01J9Z0TENANT0000000000000A',
      policy_version: 12,
      app: 'dropbox',
      action: 'upload',
      device: { id: 'imei-3561', registered: true, owner_user_id: '01J9Z0USER00000000000000JA' },
      user_id: '01J9Z0USER00000000000000JA',
      roles: [{ role_id: '01J9Z0ROLE00000000000000SA', policies: [{ policy_id: '01J9Z0POLICY0000000000000P', name: 'No uploads', severity: 'high' }] }],
      matches: [
        {
          rule_id: '01J9Z0RULE00000000000000R1',
          policy_id: '01J9Z0POLICY0000000000000P',
          policy_name: 'No uploads',
          via_roles: ['01J9Z0ROLE00000000000000SA'],
          scoped_to_role: null,
          app: 'dropbox',
          action: '*',
          effect: 'deny',
          severity: 'high',
          specificity: 'app_any_action',
          wildcard: { app: false, action: true },
          outcome: 'decided',
        },
      ],
      effect: 'deny',
      reason: 'rule',
      rule_id: '01J9Z0RULE00000000000000R1',
      policy_id: '01J9Z0POLICY0000000000000P',
      severity: 'high',
      default_effect: 'allow',
      summary: 'Denied: rule 01J9Z0RULE00000000000000R1 of policy "No uploads" (via role 01J9Z0ROLE00000000000000SA) denies every action of dropbox (wildcard match).',
    },
  }) satisfies z.ZodType<Explanation>;

export const RecordedDecisionSchema = z.object({
  effect: EffectSchema,
  reason: Reason,
  rule_id: z.string().nullable(),
  policy_id: z.string().nullable(),
  policy_version: z.number().int(),
});

const ChangeSchema = z.object({ kind: z.enum(HISTORY_KINDS), key: z.string(), op: z.enum(['added', 'removed', 'changed']) });

export const PolicyVersionSchema = z
  .object({
    version: z.number().int(),
    created_at: z.number().int(),
    change_count: z.number().int(),
    changes: z.array(ChangeSchema).describe('the first 100 decision inputs this version changed (keys of links join ids with U+0000)'),
    restored_from: z.number().int().nullable(),
    actor: z
      .object({ kind: z.enum(['console_user', 'api_key', 'system']), id: z.string().nullable(), label: z.string().nullable() })
      .nullable()
      .describe('who made it, when the store knows (restores); otherwise see `attributed_to`'),
  })
  .meta({ id: 'PolicyVersion' }) satisfies z.ZodType<PolicyVersionInfo>;

export const AttributionSchema = z
  .object({
    audit_id: z.string(),
    actor_kind: z.enum(['console_user', 'api_key', 'system']),
    actor_id: z.string().nullable(),
    actor_label: z.string().nullable(),
    action: z.string(),
  })
  .nullable()
  .describe('the audit record of the change that made this version (matched by time and resource)');

export const SettingsSchema = z.object({
  default_effect: EffectSchema,
  plan_id: z.string(),
  auto_remediation: z.boolean(),
  max_devices: z.number().int().nullable(),
  max_events_per_s: z.number().int().nullable(),
  retention_days: z.number().int(),
});
// A version's content holds the records' decision fields (no tenant or timestamps).
const ContentPolicySchema = PolicySchema.pick({ id: true, name: true, description: true, severity: true });
const ContentRuleSchema = PolicyRuleSchema.pick({
  id: true,
  policy_id: true,
  role_id: true,
  app: true,
  action: true,
  permission: true,
  remediation: true,
  escalation: true,
});
const RolePolicy = z.object({ role_id: z.string(), policy_id: z.string() });
const UserRole = z.object({ user_id: z.string(), role_id: z.string() });
const DeviceOwner = z.object({ id: z.string(), user_id: z.string().nullable() });

export const PolicyContentSchema = z.object({
  tenant_id: z.string(),
  version: z.number().int(),
  settings: SettingsSchema,
  policies: z.array(ContentPolicySchema),
  rules: z.array(ContentRuleSchema),
  role_policies: z.array(RolePolicy),
  user_roles: z.array(UserRole),
  devices: z.array(DeviceOwner),
}) satisfies z.ZodType<PolicyContent>;

const counts = z.object({ added: z.number().int(), removed: z.number().int(), changed: z.number().int() });
const changes = <T extends z.ZodType>(item: T) =>
  z.object({ added: z.array(item), removed: z.array(item), changed: z.array(z.object({ id: z.string(), before: item, after: item })), counts });
const linkChanges = <T extends z.ZodType>(item: T) =>
  z.object({ added: z.array(item), removed: z.array(item), counts: z.object({ added: z.number().int(), removed: z.number().int() }) });

export const VersionDiffSchema = z.object({
  from: z.number().int(),
  to: z.number().int(),
  settings: z.object({ before: SettingsSchema, after: SettingsSchema }).nullable(),
  policies: changes(ContentPolicySchema),
  rules: changes(ContentRuleSchema),
  role_policies: linkChanges(RolePolicy),
  user_roles: linkChanges(UserRole),
  devices: changes(DeviceOwner),
  total: z.number().int(),
}) satisfies z.ZodType<VersionDiff>;

export const PolicyTestSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    name: z.string(),
    device_id: z.string().nullable(),
    user_id: z.string().nullable(),
    app: z.string(),
    action: z.string(),
    expected_effect: EffectSchema,
    expected_rule_id: z.string().nullable(),
    created_at: z.number().int(),
    updated_at: z.number().int(),
  })
  .meta({
    id: 'PolicyTest',
    example: {
      id: '01J9Z0TEST00000000000000T1',
      tenant_id: '01J9Z0TENANT0000000000000A',
      name: 'Jane cannot upload to Dropbox',
      device_id: null,
      user_id: '01J9Z0USER00000000000000JA',
      app: 'dropbox',
      action: 'upload',
      expected_effect: 'deny',
      expected_rule_id: null,
      created_at: 1718000000000,
      updated_at: 1718000000000,
    },
  }) satisfies z.ZodType<PolicyTest>;

const TestResultSchema = z.object({
  test_id: z.string(),
  name: z.string(),
  passed: z.boolean(),
  expected: z.object({ effect: EffectSchema, rule_id: z.string().nullable() }),
  actual: z.object({ effect: EffectSchema, reason: z.enum(['rule', 'default', 'unknown_device']), rule_id: z.string().nullable() }),
  summary: z.string(),
});

export const PolicyTestRunSchema = z.object({
  policy_version: z.number().int(),
  total: z.number().int(),
  passed: z.number().int(),
  failed: z.number().int(),
  results: z.array(TestResultSchema),
}) satisfies z.ZodType<PolicyTestRun>;

const DecisionSide = z.object({ effect: EffectSchema, reason: Reason, rule_id: z.string().nullable(), policy_id: z.string().nullable() });
export const FlipSchema = z.object({
  event_id: z.string(),
  received_at: z.number().int(),
  ts: z.number().int(),
  device_id: z.string(),
  user_id: z.string().nullable(),
  app: z.string(),
  action: z.string(),
  tower_id: z.string(),
  before: DecisionSide,
  after: DecisionSide,
});
const FlipCount = z.object({ key: z.string(), allow_to_deny: z.number().int(), deny_to_allow: z.number().int() });
const ConsequenceSummarySchema = z.object({
  alerts_opened: z.number().int(),
  alert_updates: z.number().int(),
  remediations: z.number().int(),
  escalations: z.number().int(),
  remediations_by_type: z.partialRecord(z.enum(['block_device', 'unblock_device', 'block_app', 'unblock_app', 'quarantine', 'throttle', 'notify']), z.number().int()),
  top_rules: z.array(z.object({ rule_id: z.string(), policy_id: z.string(), alerts_opened: z.number().int(), denies: z.number().int(), remediations: z.number().int() })),
});

export const WhatIfResultSchema = z
  .object({
    tenant_id: z.string(),
    base_version: z.number().int(),
    compare_to: z.enum(['current', 'recorded']),
    window: z.object({ since: z.number().int(), until: z.number().int() }),
    evaluated: z.number().int(),
    compared: z.number().int().describe('events whose live and draft decisions were compared; the others are on devices the draft cannot change'),
    affected_devices: z.number().int().describe('devices whose rule outcomes the draft can change (owner, roles or their rules differ)'),
    default_effect_changed: z.boolean(),
    resume_after: z.string().nullable().describe('set when max_events stopped the replay: pass it as `after` to go on'),
    flips: z.object({
      total: z.number().int(),
      allow_to_deny: z.number().int(),
      deny_to_allow: z.number().int(),
      rule_changes: z.number().int(),
      by_user: z.array(FlipCount),
      by_app: z.array(FlipCount),
      by_action: z.array(FlipCount),
      by_tower: z.array(FlipCount),
    }),
    sample: z.array(FlipSchema),
    consequences: z
      .object({ baseline: ConsequenceSummarySchema, draft: ConsequenceSummarySchema, auto_remediation: z.boolean() })
      .describe('alerts and remediations on the compared events without and with the draft: the difference is what the draft changes'),
    tests: z.object({
      total: z.number().int(),
      passing_now: z.number().int(),
      passing_with_draft: z.number().int(),
      broken: z.array(TestResultSchema),
      fixed: z.array(TestResultSchema),
    }),
    timing: z.object({ replay_ms: z.number(), evaluate_ms: z.number(), events_per_s: z.number(), decisions: z.number().int() }),
  })
  .meta({ id: 'WhatIfResult' }) satisfies z.ZodType<WhatIfResult>;
