/**
 * zod schemas of the domain records (shared/domain.ts): the API's response schemas and the runtime
 * check of records crossing a process boundary (bus events over Redis). The compile-time checks at the bottom
 * fail the build if a record shape and its schema drift apart, since responses are serialized
 * (and stripped of anything else, e.g. password hashes) through these schemas.
 */
import { z } from 'zod';
import type {
  Action,
  Alert,
  AlertEvent,
  App,
  Carrier,
  CarrierCredential,
  CommandEvent,
  CommandRecord,
  ConsoleUser,
  Device,
  DeviceMetadata,
  DeviceSession,
  DiscoveredDevice,
  Escalation,
  Plan,
  Policy,
  PolicyRule,
  RadiusClient,
  Remediation,
  Role,
  SessionTotals,
  Tenant,
  Tower,
  TowerCredential,
  UsageRecord,
  User,
} from '../domain.js';
import { CommandTypeSchema, DecisionReasonSchema, EffectSchema, SeveritySchema } from '../mqtt/payloads.js';
import type { DashboardMetrics } from '../store/port.js';
/** Same description as the API's query schemas use. */
export const EpochMsSchema = z.number().int().describe('epoch milliseconds');

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
  .meta({
    id: 'Tenant',
    example: { id: '01JGZ5Q8X3T0V8N2C6M4K7R9PA', name: 'Acme', plan_id: 'premium', default_effect: 'allow', policy_version: 7, alert_window_s: 300, audit_retention_days: 365, created_at: 1767225600000, updated_at: 1767229200000 } satisfies Tenant,
  });

export const ConsoleUserSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string().nullable(),
    email: z.string(),
    console_role: ConsoleRoleSchema,
    disabled_at: EpochMsSchema.nullable().describe('set while the account is disabled (no sign-in, tokens refused)'),
    session_version: z.number().int().describe('bumped whenever the account\'s sessions are ended (role, disable, password)'),
    ...ts,
  })
  .meta({ id: 'ConsoleUser' });

export const UserSchema = z
  .object({ id: z.string(), tenant_id: z.string(), name: z.string(), email: z.string().nullable(), ...ts })
  .meta({
    id: 'User',
    example: { id: '01JGZ5RB2M9Q4W7E1T3Y6U8I0P', tenant_id: '01JGZ5Q8X3T0V8N2C6M4K7R9PA', name: 'Ada Lovelace', email: 'ada@acme.example', created_at: 1767225600000, updated_at: 1767229200000 } satisfies User,
  });

export const RoleSchema = z
  .object({ id: z.string(), tenant_id: z.string(), name: z.string(), description: z.string().nullable(), ...ts })
  .meta({
    id: 'Role',
    example: { id: '01JGZ5S0K4H8D2F6G1J3L5N7QR', tenant_id: '01JGZ5Q8X3T0V8N2C6M4K7R9PA', name: 'field_engineer', description: 'Engineers working on site', created_at: 1767225600000, updated_at: 1767229200000 } satisfies Role,
  });

export const PolicySchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    severity: SeveritySchema,
    ...ts,
  })
  .meta({
    id: 'Policy',
    example: { id: '01JGZ5T6V9B3C7X1Z5M8N2K4HD', tenant_id: '01JGZ5Q8X3T0V8N2C6M4K7R9PA', name: 'no_file_uploads', description: 'Block uploads to consumer file sharing', severity: 'high', created_at: 1767225600000, updated_at: 1767229200000 } satisfies Policy,
  });

export const RemediationTypeSchema = z.enum(['block_device', 'block_app', 'quarantine', 'throttle', 'notify']);

export const RemediationSchema = z
  .object({ type: RemediationTypeSchema, duration_s: z.number().int() })
  .meta({
    id: 'Remediation',
    example: { type: 'block_app', duration_s: 3600 } satisfies Remediation,
  });

export const EscalationSchema = z
  .object({ threshold: z.number().int(), window_s: z.number().int(), remediation: RemediationSchema })
  .meta({
    id: 'Escalation',
    example: { threshold: 3, window_s: 600, remediation: { type: 'quarantine', duration_s: 86400 } } satisfies Escalation,
  });

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
  .meta({
    id: 'PolicyRule',
    example: { id: '01JGZ5VA1S5D9F3G7H1J5K9L3M', tenant_id: '01JGZ5Q8X3T0V8N2C6M4K7R9PA', policy_id: '01JGZ5T6V9B3C7X1Z5M8N2K4HD', role_id: null, app: 'dropbox', action: 'upload_file', permission: 'deny', remediation: { type: 'block_app', duration_s: 3600 }, escalation: { threshold: 3, window_s: 600, remediation: { type: 'quarantine', duration_s: 86400 } }, created_at: 1767225600000, updated_at: 1767229200000 } satisfies PolicyRule,
  });

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
  .meta({
    id: 'Device',
    example: { id: 'imei-356938035643809', tenant_id: '01JGZ5Q8X3T0V8N2C6M4K7R9PA', user_id: '01JGZ5RB2M9Q4W7E1T3Y6U8I0P', name: 'ada_phone', os: 'android', created_at: 1767225600000, updated_at: 1767229200000 } satisfies Device,
  });

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
  .meta({
    id: 'Carrier',
    example: { id: '01JGZ5WC8E2R6T0Y4U8I2O6P0A', name: 'Orange France', mcc_mnc: '20801', created_at: 1767225600000, updated_at: 1767229200000 } satisfies Carrier,
  });

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
    managed_by: z.string().nullable().describe("the carrier whose feed manages the tower; null: registered by operators"),
    retired_at: EpochMsSchema.nullable().describe('when its carrier retired it (a retired tower may not connect)'),
    ...ts,
  })
  .meta({
    id: 'Tower',
    example: { id: 'twr-paris-001', name: 'Paris Nord', lat: 48.88, lon: 2.355, radius_m: 1500, state: 'online', agent_version: '1.4.2', last_seen: 1767229140000, managed_by: null, retired_at: null, created_at: 1767225600000, updated_at: 1767229200000 } satisfies Tower,
  });

export const CarrierCredentialSchema = z
  .object({
    id: z.string(),
    carrier_id: z.string(),
    created_at: EpochMsSchema,
    revoked_at: EpochMsSchema.nullable(),
    last_used_at: EpochMsSchema.nullable(),
  })
  .meta({ id: 'CarrierCredential' });

export const DeviceMetadataSchema = z
  .object({
    device_id: z.string(),
    carrier_id: z.string(),
    os: z.string().nullable(),
    os_version: z.string().nullable(),
    model: z.string().nullable(),
    device_type: z.enum(['phone', 'tablet', 'laptop', 'router', 'iot', 'wearable', 'other']).nullable(),
    updated_at: EpochMsSchema,
  })
  .meta({ id: 'DeviceMetadata', description: 'what a carrier says about the device (the newest carrier statement)' });

export const RadiusClientSchema = z
  .object({
    id: z.string(),
    nas_identifier: z.string(),
    tower_id: z.string(),
    radsec_identity: z
      .string()
      .nullable()
      .describe('null: RADIUS/UDP with the shared secret; else only RADIUS/TLS (RadSec), from a TLS peer whose certificate names this identity (DNS subjectAltName, else CN)'),
    ...ts,
  })
  .meta({ id: 'RadiusClient' });

export const DeviceSessionSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    tower_id: z.string(),
    device_id: z.string(),
    session_id: z.string().describe('Acct-Session-Id'),
    status: z.enum(['active', 'stopped']),
    started_at: EpochMsSchema.nullable(),
    last_update_at: EpochMsSchema,
    stopped_at: EpochMsSchema.nullable(),
    input_octets: z.number().int().describe('octets from the device (Acct-Input-Octets + Gigawords)'),
    output_octets: z.number().int().describe('octets to the device (Acct-Output-Octets + Gigawords)'),
    session_time_s: z.number().int().nullable(),
    terminate_cause: z.string().nullable(),
    records: z.number().int().describe('accounting records folded in, each stored once'),
  })
  .meta({ id: 'DeviceSession' });

export const SessionTotalsSchema = z
  .object({
    key: z.string().describe('device id or tower id'),
    sessions: z.number().int(),
    active: z.number().int(),
    input_octets: z.number().int(),
    output_octets: z.number().int(),
    last_update_at: EpochMsSchema,
  })
  .meta({ id: 'SessionTotals' });

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
    local_effect: EffectSchema.nullable().describe("the tower's own decision when it decided the event itself (uplink down, or the cloud's answer later than its deadline); null otherwise"),
    local_policy_version: z.number().int().nullable().describe("the policy version of the tower's bundle that made the local decision"),
    disagreement: z.boolean().describe("the tower's local decision had another effect than the cloud's (stored) decision"),
  })
  .meta({
    id: 'UsageRecord',
    example: { id: '01JGZ5XD3F7G1H5J9K3L7M1N5P', tenant_id: '01JGZ5Q8X3T0V8N2C6M4K7R9PA', tower_id: 'twr-paris-001', batch_id: '01JGZ5XD2A6B0C4D8E2F6G0H4J', device_id: 'imei-356938035643809', user_id: '01JGZ5RB2M9Q4W7E1T3Y6U8I0P', app: 'dropbox', action: 'upload_file', bytes: 524288, ts: 1767229100000, received_at: 1767229101250, effect: 'deny', reason: 'rule', rule_id: '01JGZ5VA1S5D9F3G7H1J5K9L3M', policy_id: '01JGZ5T6V9B3C7X1Z5M8N2K4HD', policy_version: 7, local_effect: 'allow', local_policy_version: 6, disagreement: true } satisfies UsageRecord,
  });

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
    status: z
      .enum(['open', 'acknowledged', 'resolved'])
      .describe('open → acknowledged → resolved; a deny after resolution opens a new alert'),
    acknowledged_by: z.string().nullable().describe('console user id (or api_key:<id>) who acknowledged it'),
    acknowledged_at: EpochMsSchema.nullable(),
    assigned_to: z.string().nullable().describe('console user id of the assignee'),
    assigned_at: EpochMsSchema.nullable(),
    assigned_by: z.string().nullable().describe('who made the latest (un)assignment'),
    resolved_by: z.string().nullable(),
    resolved_at: EpochMsSchema.nullable(),
    note: z.string().nullable().describe('note of the latest workflow step'),
  })
  .meta({
    id: 'Alert',
    example: { id: '01JGZ5YE4G8H2J6K0L4M8N2P6Q', tenant_id: '01JGZ5Q8X3T0V8N2C6M4K7R9PA', device_id: 'imei-356938035643809', user_id: '01JGZ5RB2M9Q4W7E1T3Y6U8I0P', rule_id: '01JGZ5VA1S5D9F3G7H1J5K9L3M', policy_id: '01JGZ5T6V9B3C7X1Z5M8N2K4HD', app: 'dropbox', action: 'upload_file', tower_id: 'twr-paris-001', severity: 'high', count: 3, first_seen: 1767229100000, last_seen: 1767229160000, status: 'acknowledged', acknowledged_by: '01JGZ60G6J0K4L8M2N6P0Q4R8S', acknowledged_at: 1767229200000, assigned_to: '01JGZ60G6J0K4L8M2N6P0Q4R8S', assigned_at: 1767229200000, assigned_by: '01JGZ60G6J0K4L8M2N6P0Q4R8S', resolved_by: null, resolved_at: null, note: 'looking into it' } satisfies Alert,
  });

export const AlertEventSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    alert_id: z.string(),
    kind: z.enum(['acknowledged', 'assigned', 'unassigned', 'resolved']),
    at: EpochMsSchema,
    actor_id: z.string().nullable().describe('console user id, or api_key:<id>'),
    assignee: z.string().nullable().describe("for 'assigned': the console user id"),
    note: z.string().nullable(),
  })
  .meta({ id: 'AlertEvent' });

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
  .meta({
    id: 'Plan',
    example: { id: 'premium', name: 'Premium', auto_remediation: true, max_devices: 10000, max_events_per_s: 2000, retention_days: 180, created_at: 1767225600000, updated_at: 1767229200000 } satisfies Plan,
  });

const CommandStatusSchema = z.enum(['pending', 'delivered', 'applied', 'failed', 'expired']);

export const CommandRecordSchema = z
  .object({
    id: z.string(),
    tenant_id: z.string(),
    tower_id: z.string(),
    device_id: z.string(),
    type: CommandTypeSchema,
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
  .meta({
    id: 'Command',
    example: { id: '01JGZ5ZF5H9J3K7L1M5N9P3Q7R', tenant_id: '01JGZ5Q8X3T0V8N2C6M4K7R9PA', tower_id: 'twr-paris-001', device_id: 'imei-356938035643809', type: 'block_app', app: 'dropbox', duration_s: 3600, reason: 'exfiltration', source: 'manual', rule_id: null, issued_by: '01JGZ60G6J0K4L8M2N6P0Q4R8S', status: 'applied', attempts: 1, created_at: 1767225600000, updated_at: 1767229200000, expires_at: 1767226200000, delivered_at: 1767225601500, acked_at: 1767225602100, ack_reason: null } satisfies CommandRecord,
  });

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
    alerts_open: z.number().int().describe('alerts not yet acknowledged or resolved'),
    alerts_acknowledged: z.number().int().describe('alerts acknowledged and not resolved yet'),
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
  Assert<Same<Out<typeof CarrierCredentialSchema>, CarrierCredential>>,
  Assert<Same<Out<typeof DeviceMetadataSchema>, DeviceMetadata>>,
  Assert<Same<Out<typeof RadiusClientSchema>, RadiusClient>>,
  Assert<Same<Out<typeof DeviceSessionSchema>, DeviceSession>>,
  Assert<Same<Out<typeof SessionTotalsSchema>, SessionTotals>>,
  Assert<Same<Out<typeof UsageRecordSchema>, UsageRecord>>,
  Assert<Same<Out<typeof AlertSchema>, Alert>>,
  Assert<Same<Out<typeof AlertEventSchema>, AlertEvent>>,
  Assert<Same<Out<typeof DashboardMetricsSchema>, DashboardMetrics>>,
  Assert<Same<Out<typeof PlanSchema>, Plan>>,
  Assert<Same<Out<typeof CommandRecordSchema>, CommandRecord>>,
  Assert<Same<Out<typeof CommandEventSchema>, CommandEvent>>,
];
