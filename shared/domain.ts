/**
 * Domain records (DESIGN §4, §5). Field names are snake_case because these are exactly the
 * shapes the REST API returns and the store persists: one vocabulary from disk to the wire.
 * Every tenant-owned record carries `tenant_id`; towers and carriers are platform-level.
 */
import type { CommandType, Effect, Severity } from './mqtt/payloads.js';

export type { Effect, Severity };

export type ConsoleRole = 'operator' | 'owner' | 'admin' | 'analyst' | 'viewer';
export const TENANT_CONSOLE_ROLES = ['owner', 'admin', 'analyst', 'viewer'] as const;

export interface Tenant {
  id: string;
  name: string;
  /** The tenant's PLAN (features and limits); changing it takes effect at once. */
  plan_id: string;
  /** Effect when no rule matches (DESIGN §4: allow unless the tenant sets deny). */
  default_effect: Effect;
  /** Bumped by every change that can alter a decision; the compiled index carries it. */
  policy_version: number;
  /** Deny alerts for the same device+rule within this window are merged into one. */
  alert_window_s: number;
  /** Audit records older than this are purged. */
  audit_retention_days: number;
  created_at: number;
  updated_at: number;
}

export type AuditActorKind = 'console_user' | 'api_key' | 'system';

/** Who changed what, when, from where, with the state before and after (DESIGN §5). */
export interface AuditRecord {
  id: string;
  /** null for platform-level changes (tenants, towers, carriers, plans) made by operators. */
  tenant_id: string | null;
  actor_kind: AuditActorKind;
  actor_id: string | null;
  /** E-mail of the console user or name of the API key, as it was at the time. */
  actor_label: string | null;
  /** Dotted verb, e.g. 'devices.create', 'remedial-actions.create', 'commands.applied'. */
  action: string;
  resource_type: string;
  resource_id: string | null;
  method: string | null;
  path: string | null;
  status_code: number | null;
  ip: string | null;
  user_agent: string | null;
  before: unknown;
  after: unknown;
  at: number;
}

/** A tenant's integration credential: scoped, shown once, stored hashed, revocable. */
export interface ApiKey {
  id: string;
  tenant_id: string;
  name: string;
  /** First characters of the key, shown in lists so people can tell keys apart. */
  prefix: string;
  /** API permissions the key holds (a subset of the tenant read/write permissions). */
  scopes: string[];
  created_by: string | null;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
  expires_at: number | null;
}

/** A person who signs in to the console or API (not a device user). */
export interface ConsoleUser {
  id: string;
  /** null for platform operators. */
  tenant_id: string | null;
  email: string;
  console_role: ConsoleRole;
  /** Set while the account is disabled: it cannot sign in and its tokens are refused. */
  disabled_at: number | null;
  /**
   * Bumped by every change that ends the account's sessions (role, disabled, password): access
   * tokens carry the version they were issued under and are refused once it moved.
   */
  session_version: number;
  created_at: number;
  updated_at: number;
}

/** The owner of devices; policy ROLEs are assigned to users. */
export interface User {
  id: string;
  tenant_id: string;
  name: string;
  email: string | null;
  created_at: number;
  updated_at: number;
}

export interface Role {
  id: string;
  tenant_id: string;
  name: string;
  description: string | null;
  created_at: number;
  updated_at: number;
}

export interface Policy {
  id: string;
  tenant_id: string;
  name: string;
  description: string | null;
  severity: Severity;
  created_at: number;
  updated_at: number;
}

export interface PolicyRule {
  id: string;
  tenant_id: string;
  policy_id: string;
  /** When set, the rule applies only to this role among those holding the policy. */
  role_id: string | null;
  /** App key or '*'. */
  app: string;
  /** Action key or '*'. */
  action: string;
  permission: Effect;
  /** Corrective action at the tower when this rule denies (premium plans only). */
  remediation: Remediation | null;
  /** A stronger action once a device violates this rule `threshold` times within `window_s`. */
  escalation: Escalation | null;
  created_at: number;
  updated_at: number;
}

export type RemediationType = 'block_device' | 'block_app' | 'quarantine' | 'throttle' | 'notify';

export interface Remediation {
  type: RemediationType;
  /** How long the action holds at the tower; the edge lifts it by itself afterwards. */
  duration_s: number;
}

export interface Escalation {
  threshold: number;
  window_s: number;
  remediation: Remediation;
}

/** A subscription tier: feature flags and limits (platform-level, managed by operators). */
export interface Plan {
  id: string;
  name: string;
  auto_remediation: boolean;
  /** null = unlimited. */
  max_devices: number | null;
  /** Usage events per second accepted at ingest for the tenant; null = unlimited. */
  max_events_per_s: number | null;
  /** Usage records older than this are purged. */
  retention_days: number;
  created_at: number;
  updated_at: number;
}

export type CommandStatus = 'pending' | 'delivered' | 'applied' | 'failed' | 'expired';
export type CommandSource = 'auto' | 'escalation' | 'manual';

/** A remediation sent to a tower, with its lifecycle (DESIGN §4). */
export interface CommandRecord {
  id: string;
  tenant_id: string;
  tower_id: string;
  device_id: string;
  type: CommandType;
  app: string | null;
  duration_s: number | null;
  reason: string | null;
  source: CommandSource;
  rule_id: string | null;
  /** Console user who issued a manual command. */
  issued_by: string | null;
  status: CommandStatus;
  /** Times the command was published to the tower. */
  attempts: number;
  created_at: number;
  updated_at: number;
  expires_at: number;
  delivered_at: number | null;
  acked_at: number | null;
  ack_reason: string | null;
}

/** One recorded step of a command's lifecycle. */
export interface CommandEvent {
  id: string;
  tenant_id: string;
  command_id: string;
  /** A status change, or 'published' for each (re)send. */
  kind: CommandStatus | 'published';
  at: number;
  detail: string | null;
}

export type WebhookEventType =
  | 'alert.opened'
  | 'alert.updated'
  | 'alert.acknowledged'
  | 'alert.assigned'
  | 'alert.resolved'
  | 'command.updated'
  | 'device.discovered';

export interface Webhook {
  id: string;
  tenant_id: string;
  url: string;
  events: WebhookEventType[];
  enabled: boolean;
  created_at: number;
  updated_at: number;
}

export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface WebhookDelivery {
  id: string;
  tenant_id: string;
  webhook_id: string;
  event: WebhookEventType;
  /** The JSON body as sent (signed as is). */
  body: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  next_attempt_at: number | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

export interface App {
  id: string;
  tenant_id: string;
  key: string;
  name: string;
  created_at: number;
  updated_at: number;
}

export interface Action {
  id: string;
  tenant_id: string;
  key: string;
  name: string;
  created_at: number;
  updated_at: number;
}

export interface Device {
  /** The identifier towers report (e.g. derived from IMEI); unique across the platform. */
  id: string;
  tenant_id: string;
  user_id: string | null;
  name: string;
  os: string | null;
  created_at: number;
  updated_at: number;
}

export interface DiscoveredDevice {
  id: string;
  /** null when reported on a tower's discovery topic and no tenant claims it yet. */
  tenant_id: string | null;
  device_id: string;
  tower_id: string;
  first_seen: number;
  last_seen: number;
  count: number;
}

export interface Carrier {
  id: string;
  name: string;
  mcc_mnc: string | null;
  created_at: number;
  updated_at: number;
}

export type TowerState = 'online' | 'offline' | 'unknown';

export interface Tower {
  id: string;
  name: string;
  lat: number | null;
  lon: number | null;
  radius_m: number | null;
  state: TowerState;
  agent_version: string | null;
  last_seen: number | null;
  /** The carrier whose feed manages the tower (creates, updates, retires it); null: operators. */
  managed_by: string | null;
  /** When its carrier retired it; a retired tower may no longer connect. */
  retired_at: number | null;
  created_at: number;
  updated_at: number;
}

/** A carrier's credential for its feeds (MQTT and REST): shown once, stored hashed, revocable. */
export interface CarrierCredential {
  id: string;
  carrier_id: string;
  created_at: number;
  revoked_at: number | null;
  last_used_at: number | null;
}

export type DeviceType = 'phone' | 'tablet' | 'laptop' | 'router' | 'iot' | 'wearable' | 'other';

/** What a carrier says about a device (the seed's OS entity), keyed by device id and carrier. */
export interface DeviceMetadata {
  device_id: string;
  carrier_id: string;
  os: string | null;
  os_version: string | null;
  model: string | null;
  device_type: DeviceType | null;
  updated_at: number;
}

/** A RADIUS accounting client (NAS) at a tower; its shared secret is never returned. */
export interface RadiusClient {
  id: string;
  /** The NAS-Identifier attribute the NAS sends (RFC 2865 §5.32). */
  nas_identifier: string;
  tower_id: string;
  /**
   * null: the NAS reports over RADIUS/UDP, authenticated by its shared secret. Set: it reports
   * only over RADIUS/TLS (RadSec, RFC 6614), through a TLS peer (the NAS itself or the proxy in
   * front of it) whose client certificate names this identity (a DNS subjectAltName, else the
   * subject CN; compared case-insensitively); its UDP packets are refused.
   */
  radsec_identity: string | null;
  created_at: number;
  updated_at: number;
}

export type DeviceSessionStatus = 'active' | 'stopped';

/** A device's accounting session at a tower (RADIUS Start → Interim-Update* → Stop). */
export interface DeviceSession {
  id: string;
  tenant_id: string;
  tower_id: string;
  device_id: string;
  /** The source's session id (Acct-Session-Id). */
  session_id: string;
  status: DeviceSessionStatus;
  started_at: number | null;
  last_update_at: number;
  stopped_at: number | null;
  input_octets: number;
  output_octets: number;
  session_time_s: number | null;
  terminate_cause: string | null;
  /** Accounting records folded into it (each stored once). */
  records: number;
}

/** Sessions and bytes of one device or one tower, for a tenant. */
export interface SessionTotals {
  /** The device id or tower id. */
  key: string;
  sessions: number;
  active: number;
  input_octets: number;
  output_octets: number;
  last_update_at: number;
}

export interface TowerCredential {
  id: string;
  tower_id: string;
  created_at: number;
  revoked_at: number | null;
  last_used_at: number | null;
}

export type DecisionReason = 'rule' | 'default' | 'unknown_device' | 'blocked';

export interface UsageRecord {
  /** The event's ULID, unique per tenant: a redelivered event is recognised by it. */
  id: string;
  tenant_id: string;
  tower_id: string;
  batch_id: string;
  device_id: string;
  user_id: string | null;
  app: string;
  action: string;
  bytes: number | null;
  ts: number;
  received_at: number;
  effect: Effect;
  reason: DecisionReason;
  rule_id: string | null;
  policy_id: string | null;
  policy_version: number;
  /**
   * The tower's own decision, when it decided the event itself (its uplink was down, or the
   * cloud's answer came later than its deadline): its effect and the policy version of its bundle.
   * The stored decision above is the cloud's, made again when the event arrived. Null otherwise.
   */
  local_effect: Effect | null;
  local_policy_version: number | null;
  /** The tower's local decision had another effect than the cloud's (e.g. the policy changed while it was offline). */
  disagreement: boolean;
}

export type AlertStatus = 'open' | 'acknowledged' | 'resolved';

export interface Alert {
  id: string;
  tenant_id: string;
  device_id: string;
  user_id: string | null;
  rule_id: string;
  policy_id: string;
  app: string;
  action: string;
  tower_id: string;
  severity: Severity;
  count: number;
  first_seen: number;
  last_seen: number;
  /**
   * open → acknowledged → resolved (or open → resolved). An acknowledged alert keeps folding new
   * denies; a resolved one never does: the next deny of its device and rule opens a new alert.
   */
  status: AlertStatus;
  /** Who acknowledged it (console user id, or `api_key:<id>`) and when; null until then. */
  acknowledged_by: string | null;
  acknowledged_at: number | null;
  /** The tenant console user working on it; null when unassigned. */
  assigned_to: string | null;
  assigned_at: number | null;
  /** Who made the latest (un)assignment. */
  assigned_by: string | null;
  resolved_by: string | null;
  resolved_at: number | null;
  /** The note given with the latest workflow step, if any (each step's note is in its history). */
  note: string | null;
}

export type AlertEventKind = 'acknowledged' | 'assigned' | 'unassigned' | 'resolved';

/** One workflow step of an alert: who did what, when, with an optional note. */
export interface AlertEvent {
  id: string;
  tenant_id: string;
  alert_id: string;
  kind: AlertEventKind;
  at: number;
  /** Console user id, or `api_key:<id>`; null for the system. */
  actor_id: string | null;
  /** For 'assigned': the console user it was assigned to. */
  assignee: string | null;
  note: string | null;
}
