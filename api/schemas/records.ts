/**
 * Response schemas of the domain records (shared/domain.ts). The compile-time checks at the bottom
 * fail the build if a record shape and its schema drift apart, since responses are serialized
 * (and stripped of anything else, e.g. password hashes) through these schemas.
 */
import { z } from 'zod';
import type {
  Action,
  Alert,
  App,
  Carrier,
  CommandEvent,
  CommandRecord,
  ConsoleUser,
  Device,
  DiscoveredDevice,
  Escalation,
  Plan,
  Policy,
  PolicyRule,
  Remediation,
  Role,
  Tenant,
  Tower,
  TowerCredential,
  UsageRecord,
  User,
} from '../../shared/domain.js';
import { DecisionReasonSchema, EffectSchema, SeveritySchema } from '../../shared/mqtt/payloads.js';
import type { DashboardMetrics } from '../../shared/store/port.js';
import { EpochMsSchema } from './common.js';

const ts = { created_at: EpochMsSchema, updated_at: EpochMsSchema };
const ConsoleRoleSchema = z.enum(['operator', 'owner', 'admin', 'analyst', 'viewer']);

export const TenantSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    plan_id: z.string(),
    default_effect: EffectSchema,
    policy_version: z.number().int(),
    alert_window_s: z.number().int(),
    audit_retention_days: z.number().int().describe('audit records older than this are purged'),
    ...ts,
  })
  .meta({ id: 'Tenant' });

export const ConsoleUserSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string().nullable(),
    email: z.string(),
    console_role: ConsoleRoleSchema,
    ...ts,
  })
  .meta({ id: 'ConsoleUser' });

export const UserSchema = z
  .object({ id: z.string(), tenant_id: z.string(), name: z.string(), email: z.string().nullable(), ...ts })
  .meta({ id: 'User' });

export const RoleSchema = z
  .object({ id: z.string(), tenant_id: z.string(), name: z.string(), description: z.string().nullable(), ...ts })
  .meta({ id: 'Role' });

export const PolicySchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    severity: SeveritySchema,
    ...ts,
  })
  .meta({ id: 'Policy' });

export const RemediationTypeSchema = z.enum(['block_device', 'block_app', 'quarantine', 'throttle', 'notify']);

export const RemediationSchema = z
  .object({ type: RemediationTypeSchema, duration_s: z.number().int() })
  .meta({ id: 'Remediation' });

export const EscalationSchema = z
  .object({ threshold: z.number().int(), window_s: z.number().int(), remediation: RemediationSchema })
  .meta({ id: 'Escalation' });

export const PolicyRuleSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    policy_id: z.string(),
    role_id: z.string().nullable(),
    app: z.string(),
    action: z.string(),
    permission: EffectSchema,
    remediation: RemediationSchema.nullable(),
    escalation: EscalationSchema.nullable(),
    ...ts,
  })
  .meta({ id: 'PolicyRule' });

const catalogShape = { id: z.string(), tenant_id: z.string(), key: z.string(), name: z.string(), ...ts };
export const AppSchema = z.object(catalogShape).meta({ id: 'App' });
export const ActionSchema = z.object(catalogShape).meta({ id: 'Action' });

export const DeviceSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    user_id: z.string().nullable(),
    name: z.string(),
    os: z.string().nullable(),
    ...ts,
  })
  .meta({ id: 'Device' });

export const DiscoveredDeviceSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string().nullable(),
    device_id: z.string(),
    tower_id: z.string(),
    first_seen: EpochMsSchema,
    last_seen: EpochMsSchema,
    count: z.number().int(),
  })
  .meta({ id: 'DiscoveredDevice' });

export const CarrierSchema = z
  .object({ id: z.string(), name: z.string(), mcc_mnc: z.string().nullable(), ...ts })
  .meta({ id: 'Carrier' });

export const TowerSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    lat: z.number().nullable(),
    lon: z.number().nullable(),
    radius_m: z.number().nullable(),
    state: z.enum(['online', 'offline', 'unknown']),
    agent_version: z.string().nullable(),
    last_seen: EpochMsSchema.nullable(),
    ...ts,
  })
  .meta({ id: 'Tower' });

export const TowerCredentialSchema = z
  .object({
    id: z.string(),
    tower_id: z.string(),
    created_at: EpochMsSchema,
    revoked_at: EpochMsSchema.nullable(),
    last_used_at: EpochMsSchema.nullable(),
  })
  .meta({ id: 'TowerCredential' });

export const UsageRecordSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    tower_id: z.string(),
    batch_id: z.string(),
    device_id: z.string(),
    user_id: z.string().nullable(),
    app: z.string(),
    action: z.string(),
    bytes: z.number().int().nullable(),
    ts: EpochMsSchema,
    received_at: EpochMsSchema,
    effect: EffectSchema,
    reason: DecisionReasonSchema,
    rule_id: z.string().nullable(),
    policy_id: z.string().nullable(),
    policy_version: z.number().int(),
  })
  .meta({ id: 'UsageRecord' });

export const AlertSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    device_id: z.string(),
    user_id: z.string().nullable(),
    rule_id: z.string(),
    policy_id: z.string(),
    app: z.string(),
    action: z.string(),
    tower_id: z.string(),
    severity: SeveritySchema,
    count: z.number().int(),
    first_seen: EpochMsSchema,
    last_seen: EpochMsSchema,
    status: z.enum(['open', 'acknowledged', 'resolved']),
  })
  .meta({ id: 'Alert' });

export const PlanSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    auto_remediation: z.boolean(),
    max_devices: z.number().int().nullable().describe('null = unlimited'),
    max_events_per_s: z.number().int().nullable().describe('null = unlimited'),
    retention_days: z.number().int(),
    ...ts,
  })
  .meta({ id: 'Plan' });

const CommandStatusSchema = z.enum(['pending', 'delivered', 'applied', 'failed', 'expired']);

export const CommandRecordSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    tower_id: z.string(),
    device_id: z.string(),
    type: z.string(),
    app: z.string().nullable(),
    duration_s: z.number().int().nullable(),
    reason: z.string().nullable(),
    source: z.enum(['auto', 'escalation', 'manual']),
    rule_id: z.string().nullable(),
    issued_by: z.string().nullable(),
    status: CommandStatusSchema,
    attempts: z.number().int(),
    ...ts,
    expires_at: EpochMsSchema,
    delivered_at: EpochMsSchema.nullable(),
    acked_at: EpochMsSchema.nullable(),
    ack_reason: z.string().nullable(),
  })
  .meta({ id: 'Command' });

export const CommandEventSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    command_id: z.string(),
    kind: z.enum([...CommandStatusSchema.options, 'published']),
    at: EpochMsSchema,
    detail: z.string().nullable(),
  })
  .meta({ id: 'CommandEvent' });

export const DashboardMetricsSchema = z
  .object({
    devices: z.number().int(),
    users: z.number().int(),
    policies: z.number().int(),
    rules: z.number().int(),
    alerts_open: z.number().int(),
    usage_total: z.number().int(),
    usage_allowed: z.number().int(),
    usage_denied: z.number().int(),
    discovered_devices: z.number().int(),
  })
  .meta({ id: 'DashboardMetrics' });

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Out<S extends z.ZodType> = z.output<S>;
/** Compiles only when T is `true`: a schema that no longer matches its domain type breaks the build. */
type Assert<T extends true> = T;
export type RecordSchemasMatchDomain = [
  Assert<Same<Out<typeof TenantSchema>, Tenant>>,
  Assert<Same<Out<typeof ConsoleUserSchema>, ConsoleUser>>,
  Assert<Same<Out<typeof UserSchema>, User>>,
  Assert<Same<Out<typeof RoleSchema>, Role>>,
  Assert<Same<Out<typeof PolicySchema>, Policy>>,
  Assert<Same<Out<typeof RemediationSchema>, Remediation>>,
  Assert<Same<Out<typeof EscalationSchema>, Escalation>>,
  Assert<Same<Out<typeof PolicyRuleSchema>, PolicyRule>>,
  Assert<Same<Out<typeof AppSchema>, App>>,
  Assert<Same<Out<typeof ActionSchema>, Action>>,
  Assert<Same<Out<typeof DeviceSchema>, Device>>,
  Assert<Same<Out<typeof DiscoveredDeviceSchema>, DiscoveredDevice>>,
  Assert<Same<Out<typeof CarrierSchema>, Carrier>>,
  Assert<Same<Out<typeof TowerSchema>, Tower>>,
  Assert<Same<Out<typeof TowerCredentialSchema>, TowerCredential>>,
  Assert<Same<Out<typeof UsageRecordSchema>, UsageRecord>>,
  Assert<Same<Out<typeof AlertSchema>, Alert>>,
  Assert<Same<Out<typeof DashboardMetricsSchema>, DashboardMetrics>>,
  Assert<Same<Out<typeof PlanSchema>, Plan>>,
  Assert<Same<Out<typeof CommandRecordSchema>, CommandRecord>>,
  Assert<Same<Out<typeof CommandEventSchema>, CommandEvent>>,
];
