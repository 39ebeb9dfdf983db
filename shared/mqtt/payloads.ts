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

/**
 * A decision the tower made itself from its policy bundle (uplink down, or the cloud's answer
 * later than its deadline). It travels with the event so the cloud, which decides every event
 * again authoritatively, can record where the two differ.
 */
export const LocalDecisionSchema = z.object({
  effect: z.enum(['allow', 'deny']),
  reason: z.enum(['rule', 'default']),
  rule_id: z.string().max(64).nullable(),
  /** The tenant policy version of the bundle that decided. */
  policy_version: z.number().int().nonnegative(),
});
export type LocalDecision = z.infer<typeof LocalDecisionSchema>;

export const UsageEventSchema = z.object({
  id: Ulid,
  /** When the tower observed the usage (epoch ms). */
  ts: EpochMs,
  device_id: TopicId,
  app: CatalogKey,
  action: CatalogKey,
  bytes: z.number().int().nonnegative().optional(),
  local: LocalDecisionSchema.optional(),
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
  /** Agents with edge autonomy (issue #11): events decided from the bundle, evicted from the journal, and still journalled. */
  events_decided_locally: z.number().int().nonnegative().optional(),
  events_evicted: z.number().int().nonnegative().optional(),
  journal_pending_events: z.number().int().nonnegative().optional(),
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

/**
 * Edge bundles (schema version 2; see shared/policy/edge-bundle.ts for how they are built and
 * read). A document too large for one MQTT message is a head plus retained parts on
 * `<head topic>/<i>`; the head names each part by the SHA-256 of its payload (first 16 hex
 * digits), so a tower applies a version only once it holds exactly those parts. Version 1
 * bundles (a tenant's whole inventory with owning user ids, on `tenants/{id}/policy`) are
 * refused.
 */
export const BUNDLE_SCHEMA_VERSION = 2 as const;
const PartRefs = z.array(z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 hex digits')).max(65_536);
/** A profile: the hex reference of one set of policy roles (a device owner's), see edge-bundle.ts. */
const ProfileRef = z.string().regex(/^[0-9a-f]{12}$/, 'must be 12 hex digits');
/** [rule_id, policy index, role index, app, action, effect]: one rule flattened onto one role. */
export const GrantTupleSchema = z.tuple([z.string().min(1).max(64), z.number().int().nonnegative(), z.number().int().nonnegative(), z.string().min(1).max(64), z.string().min(1).max(64), EffectSchema]);
export type GrantTuple = z.infer<typeof GrantTupleSchema>;

/**
 * One tenant's policy for one tower (`tenants/{tenantId}/towers/{towerId}/policy`), sent only to
 * towers where the tenant's devices are seen. No device ids, user ids or names: devices reach
 * it through the device directory as profile references.
 */
export const PolicyBundleSchema = z.object({
  v: z.literal(BUNDLE_SCHEMA_VERSION),
  id: Ulid,
  tenant_id: TopicId,
  tower_id: TopicId,
  version: z.number().int().nonnegative(),
  default_effect: EffectSchema,
  /** [policy id, severity], referenced by index from the grants. */
  policies: z.array(z.tuple([z.string().min(1).max(64), SeveritySchema])),
  roles: z.array(z.string().min(1).max(64)),
  /** Profile reference → role indexes. */
  profiles: z.record(ProfileRef, z.array(z.number().int().nonnegative())),
  grants: z.number().int().nonnegative(),
  parts: PartRefs,
  published_at: EpochMs,
});
export type PolicyBundle = z.infer<typeof PolicyBundleSchema>;
export const PolicyBundlePartSchema = z.object({ v: z.literal(BUNDLE_SCHEMA_VERSION), i: z.number().int().nonnegative(), grants: z.array(GrantTupleSchema) });
export type PolicyBundlePart = z.infer<typeof PolicyBundlePartSchema>;

/**
 * One tenant's slice of the platform device directory (`directory/{token}`), sent to every
 * tower: keyed hashes of its device ids with their profile, and the tenant id sealed so that
 * only a tower that sees one of the devices can read it. `token` is opaque.
 */
export const DirectoryHeadSchema = z.object({
  v: z.literal(BUNDLE_SCHEMA_VERSION),
  id: Ulid,
  token: TopicId,
  version: z.number().int().nonnegative(),
  key_id: z.string().regex(/^[A-Za-z0-9_-]{1,16}$/),
  /** The directory key (base64, 32 bytes): every tower holds it (see edge-bundle.ts). */
  key: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'must be 32 bytes of base64'),
  /** The tenant id, padded to 64 bytes and sealed (base64). */
  tenant_sealed: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'must be 64 bytes of base64'),
  devices: z.number().int().nonnegative(),
  /** Parts split the entries by the top `part_bits` bits of their tag. */
  part_bits: z.number().int().min(0).max(16),
  parts: PartRefs,
  published_at: EpochMs,
});
export type DirectoryHead = z.infer<typeof DirectoryHeadSchema>;
/** `entries`: base64 of 24-byte entries sorted by tag (edge-bundle.ts). */
export const DirectoryPartSchema = z.object({ v: z.literal(BUNDLE_SCHEMA_VERSION), i: z.number().int().nonnegative(), entries: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/) });
export type DirectoryPart = z.infer<typeof DirectoryPartSchema>;

/** Parses a JSON buffer with a schema; returns a discriminated result instead of throwing. */
export function decodePayload<T>(
  schema: z.ZodType<T>,
  payload: Buffer | Uint8Array | string,
): { ok: true; value: T } | { ok: false; error: string } {
  let raw: unknown;
  try {
    // A Buffer is decoded where it lies: Buffer.from(buffer) copied every downlink message first.
    const text = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
    raw = JSON.parse(text);
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
