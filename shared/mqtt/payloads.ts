/**
 * zod schemas for every MQTT payload (DESIGN §3). JSON, snake_case, every message carries a
 * schema version `v` and an `id`. Events carry ULIDs so a QoS 1 redelivery is recognised.
 */
import { z } from 'zod';
import { KEY_RE, TOPIC_ID_RE, ULID_RE } from '../ids.js';

export const SCHEMA_VERSION = 1 as const;

export const Ulid = z.string().regex(ULID_RE, 'must be a ULID');
export const TopicId = z.string().regex(TOPIC_ID_RE, 'must be 1-64 chars of [A-Za-z0-9_-]');
export const CatalogKey = z.string().regex(KEY_RE, 'must be a lowercase key like "slack" or "upload_file"');
export const EpochMs = z.number().int().nonnegative();

export const MAX_EVENTS_PER_BATCH = 1000;

export const EffectSchema = z.enum(['allow', 'deny']);
export type Effect = z.infer<typeof EffectSchema>;
export const SeveritySchema = z.enum(['low', 'medium', 'high', 'critical']);
export type Severity = z.infer<typeof SeveritySchema>;

export const UsageEventSchema = z.object({
  id: Ulid,
  /** When the tower observed the usage (epoch ms). */
  ts: EpochMs,
  device_id: TopicId,
  app: CatalogKey,
  action: CatalogKey,
  bytes: z.number().int().nonnegative().optional(),
});
export type UsageEvent = z.infer<typeof UsageEventSchema>;

export const UsageBatchSchema = z.object({
  v: z.literal(SCHEMA_VERSION),
  id: Ulid,
  sent_at: EpochMs,
  events: z.array(UsageEventSchema).min(1).max(MAX_EVENTS_PER_BATCH),
});
export type UsageBatch = z.infer<typeof UsageBatchSchema>;

export const DiscoveredDeviceReportSchema = z.object({
  device_id: TopicId,
  first_seen: EpochMs,
  last_seen: EpochMs,
  count: z.number().int().positive(),
});
export const DiscoveryBatchSchema = z.object({
  v: z.literal(SCHEMA_VERSION),
  id: Ulid,
  sent_at: EpochMs,
  devices: z.array(DiscoveredDeviceReportSchema).min(1).max(MAX_EVENTS_PER_BATCH),
});
export type DiscoveryBatch = z.infer<typeof DiscoveryBatchSchema>;

export const TowerCountersSchema = z.object({
  events_observed: z.number().int().nonnegative(),
  batches_sent: z.number().int().nonnegative(),
  decisions_received: z.number().int().nonnegative(),
  events_dropped: z.number().int().nonnegative(),
  buffered_events: z.number().int().nonnegative(),
  commands_applied: z.number().int().nonnegative(),
});
export type TowerCounters = z.infer<typeof TowerCountersSchema>;

export const TowerStatusSchema = z.object({
  v: z.literal(SCHEMA_VERSION),
  id: Ulid,
  state: z.enum(['online', 'offline']),
  ts: EpochMs,
  agent_version: z.string().max(64).optional(),
  counters: TowerCountersSchema.optional(),
});
export type TowerStatus = z.infer<typeof TowerStatusSchema>;

/** 'blocked': an active remediation (block_device/block_app/quarantine) decided, not a rule. */
export const DecisionReasonSchema = z.enum(['rule', 'default', 'unknown_device', 'blocked']);
export const DecisionSchema = z.object({
  event_id: Ulid,
  device_id: TopicId,
  effect: EffectSchema,
  reason: DecisionReasonSchema,
  rule_id: z.string().nullable(),
  policy_id: z.string().nullable(),
  severity: SeveritySchema.nullable(),
});
export type Decision = z.infer<typeof DecisionSchema>;

/** plan_rate_limited: the tenant's plan event rate was exceeded at ingest. */
export const RejectReasonSchema = z.enum(['device_tenant_mismatch', 'plan_rate_limited']);
export const DecisionBatchSchema = z.object({
  v: z.literal(SCHEMA_VERSION),
  /** decisionBatchId(batch_id): the same for every answer to one UsageBatch. */
  id: Ulid,
  /** The UsageBatch this answers: exactly one DecisionBatch per UsageBatch. */
  batch_id: Ulid,
  policy_version: z.number().int().nonnegative(),
  decided_at: EpochMs,
  decisions: z.array(DecisionSchema),
  /** Events the cloud refused to decide (e.g. the device belongs to another tenant). */
  rejected: z.array(z.object({ event_id: Ulid, reason: RejectReasonSchema })),
});
export type DecisionBatch = z.infer<typeof DecisionBatchSchema>;

/**
 * The id of the DecisionBatch answering a UsageBatch. It is the UsageBatch id itself: answers to
 * one batch (a QoS 1 redelivery, a re-processed queue job) are recognisable as one by the tower.
 */
export function decisionBatchId(usageBatchId: string): string {
  return usageBatchId;
}

export const CommandTypeSchema = z.enum([
  'block_device',
  'unblock_device',
  'block_app',
  'unblock_app',
  'quarantine',
  'throttle',
  'notify',
]);
export type CommandType = z.infer<typeof CommandTypeSchema>;

export const CommandSchema = z.object({
  v: z.literal(SCHEMA_VERSION),
  id: Ulid,
  type: CommandTypeSchema,
  device_id: TopicId,
  app: CatalogKey.optional(),
  duration_s: z.number().int().positive().optional(),
  issued_at: EpochMs,
  expires_at: EpochMs,
  reason: z.string().max(500).optional(),
});
export type Command = z.infer<typeof CommandSchema>;

export const CommandAckSchema = z.object({
  v: z.literal(SCHEMA_VERSION),
  id: Ulid,
  command_id: Ulid,
  status: z.enum(['applied', 'failed']),
  reason: z.string().max(500).optional(),
  ts: EpochMs,
});
export type CommandAck = z.infer<typeof CommandAckSchema>;

/** A rule flattened onto the role it applies to: what the edge needs to decide locally. */
export const BundleGrantSchema = z.object({
  rule_id: z.string(),
  policy_id: z.string(),
  role_id: z.string(),
  app: z.string(),
  action: z.string(),
  effect: EffectSchema,
  severity: SeveritySchema,
});
export type BundleGrant = z.infer<typeof BundleGrantSchema>;

export const PolicyBundleSchema = z.object({
  v: z.literal(SCHEMA_VERSION),
  id: Ulid,
  tenant_id: TopicId,
  version: z.number().int().nonnegative(),
  default_effect: EffectSchema,
  /** Devices of this tenant and their owning user: lets a tower map a device to its tenant. */
  devices: z.array(z.object({ id: TopicId, user_id: z.string().nullable() })),
  user_roles: z.record(z.string(), z.array(z.string())),
  grants: z.array(BundleGrantSchema),
  published_at: EpochMs,
});
export type PolicyBundle = z.infer<typeof PolicyBundleSchema>;

/** Parses a JSON buffer with a schema; returns a discriminated result instead of throwing. */
export function decodePayload<T>(
  schema: z.ZodType<T>,
  payload: Buffer | Uint8Array | string,
): { ok: true; value: T } | { ok: false; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8'));
  } catch {
    return { ok: false, error: 'payload is not valid JSON' };
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const first = r.error.issues[0];
    return { ok: false, error: first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'invalid payload' };
  }
  return { ok: true, value: r.data };
}

export function encodePayload(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}
