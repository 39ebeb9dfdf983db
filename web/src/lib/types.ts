/**
 * The API's JSON shapes as the console reads them (the OpenAPI document at /docs/json is the
 * reference). Written here rather than imported from the server's shared/ module: the console is
 * a client of the public API and must build without any server code.
 */
export type ConsoleRole = 'operator' | 'owner' | 'admin' | 'analyst' | 'viewer';
export type Effect = 'allow' | 'deny';
export type Severity = 'low' | 'medium' | 'high' | 'critical';
export type CommandStatus = 'pending' | 'delivered' | 'applied' | 'failed' | 'expired';
export type CommandType = 'block_device' | 'unblock_device' | 'block_app' | 'unblock_app' | 'quarantine' | 'throttle' | 'notify';
export type RemediationType = 'block_device' | 'block_app' | 'quarantine' | 'throttle' | 'notify';

export interface CallerPermissions {
  kind: 'user' | 'api_key';
  role: ConsoleRole | null;
  tenant_id: string | null;
  permissions: string[];
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

export interface Tenant {
  id: string;
  name: string;
  plan_id: string;
  default_effect: Effect;
}

export interface UsageRecord {
  id: string;
  tenant_id: string;
  tower_id: string;
  device_id: string;
  user_id: string | null;
  app: string;
  action: string;
  ts: number;
  received_at: number;
  effect: Effect;
  reason: 'rule' | 'default' | 'unknown_device' | 'blocked';
  rule_id: string | null;
  policy_id: string | null;
}

export interface Alert {
  id: string;
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
  status: 'open' | 'acknowledged' | 'resolved';
}

export interface CommandRecord {
  id: string;
  tower_id: string;
  device_id: string;
  type: CommandType;
  app: string | null;
  duration_s: number | null;
  reason: string | null;
  source: 'auto' | 'escalation' | 'manual';
  rule_id: string | null;
  status: CommandStatus;
  attempts: number;
  created_at: number;
  updated_at: number;
  expires_at: number;
  ack_reason: string | null;
}

export interface CommandEvent {
  id: string;
  command_id: string;
  kind: CommandStatus | 'published';
  at: number;
  detail: string | null;
}

export interface Device {
  id: string;
  user_id: string | null;
  name: string;
  os: string | null;
  created_at: number;
}

export interface DiscoveredDevice {
  id: string;
  device_id: string;
  tower_id: string;
  first_seen: number;
  last_seen: number;
  count: number;
}

export interface User {
  id: string;
  name: string;
  email: string | null;
}

export interface Role {
  id: string;
  name: string;
  description: string | null;
}

export interface Policy {
  id: string;
  name: string;
  description: string | null;
  severity: Severity;
}

export interface Remediation {
  type: RemediationType;
  duration_s: number;
}

export interface PolicyRule {
  id: string;
  policy_id: string;
  role_id: string | null;
  app: string;
  action: string;
  permission: Effect;
  remediation: Remediation | null;
  escalation: { threshold: number; window_s: number; remediation: Remediation } | null;
}

export interface CatalogItem {
  id: string;
  key: string;
  name: string;
}

export interface Tower {
  id: string;
  name: string;
  lat: number | null;
  lon: number | null;
  radius_m: number | null;
  state: 'online' | 'offline' | 'unknown';
  agent_version: string | null;
  last_seen: number | null;
}

export interface Carrier {
  id: string;
  name: string;
  mcc_mnc: string | null;
}

export interface AuditRecord {
  id: string;
  actor_kind: string;
  actor_label: string | null;
  action: string;
  resource_type: string;
  resource_id: string | null;
  status_code: number | null;
  ip: string | null;
  at: number;
}

export interface TenantOverview {
  since: number;
  now: number;
  bucket_s: number;
  series: Array<{ t: number; events: number; denied: number }>;
  events_per_s: number;
  denied_per_s: number;
  totals: { events: number; denied: number };
  deny_rate: number;
  top_apps: Array<{ app: string; events: number; denied: number }>;
  top_violating_users: Array<{ user_id: string; denied: number }>;
  top_violating_devices: Array<{ device_id: string; denied: number }>;
  truncated: boolean;
}

export interface PlatformOverview {
  since: number;
  now: number;
  bucket_s: number;
  series: Array<{ t: number; events: number; denied: number; delay_p50_ms: number | null; delay_p99_ms: number | null }>;
  events_per_s: number;
  denied_per_s: number;
  tenants_active: number;
}

export interface TenantUsage {
  tenant_id: string;
  name: string;
  plan_id: string;
  plan_name: string | null;
  devices: number;
  max_devices: number | null;
  events_per_s: number;
  max_events_per_s: number | null;
  events_last_hour: number;
  denied_last_hour: number;
}

export interface DashboardMetrics {
  devices: number;
  users: number;
  policies: number;
  rules: number;
  alerts_open: number;
  usage_total: number;
  usage_allowed: number;
  usage_denied: number;
  discovered_devices: number;
}
