/**
 * Collections, document shapes and indexes of the MongoDB adapter.
 *
 * Documents hold the port's record fields verbatim plus `_id` and a few internal fields the
 * repositories strip on the way out (secrets, hashes, sort ranks, write guards). `_id` is the
 * record id, except where ids come from outside and may repeat across tenants:
 * - usage: `${tenant_id}:${event_id}`. Event ids are minted by tower agents; qualifying them with
 *   the tenant means a tower (buggy or hostile) reusing another tenant's event ids can neither
 *   collide with nor be mistaken for that tenant's events, and idempotency stays per tenant;
 * - link, sighting and counter documents: keys built from their parts (keys.ts).
 *
 * Sharding: `tenant_id` is the shard key of every tenant-owned collection and every index on them
 * starts with it, so each tenant-scoped read and write targets one shard. A sharded unique index
 * must start with the shard key, and `_id` uniqueness is then enforced per shard only: record ids
 * are ULIDs (globally unique by construction), tenant-unique keys are indexed as
 * (tenant_id, key). The few platform-wide unique lookups (device ids, API key hashes, console
 * e-mail lookups) live in small collections that stay unsharded: device_registry, api_keys,
 * console_users, and the platform collections (tenants, plans, towers, carriers, credentials).
 */
import type { IndexDescription } from 'mongodb';
import type {
  Action,
  Alert,
  AlertEvent,
  ApiKey,
  App,
  AuditRecord,
  Carrier,
  CommandEvent,
  CommandRecord,
  ConsoleUser,
  Device,
  DiscoveredDevice,
  Plan,
  Policy,
  PolicyRule,
  Role,
  Tenant,
  Tower,
  UsageRecord,
  User,
  Webhook,
  WebhookDelivery,
} from '../../domain.js';
import type { PolicyTest } from '../../policy/policy-tests.js';
import type { ChangeActor, RefreshTokenRecord, TowerCredentialRecord } from '../port.js';
import type { HistoryChange, HistoryKind } from '../rules/policy-history.js';

export type Stored<T> = T & { _id: string };

export type TenantDoc = Stored<Tenant> & {
  /** Bumped by writes that must conflict with a concurrent delete of the tenant (refs.ts). */
  write_guard?: number;
};
export type PlanDoc = Stored<Plan> & { write_guard?: number };
/** email_key / name_key: the normalised natural key (rules/names.ts), unique per tenant. */
export type UserDoc = Stored<User> & { email_key?: string | null };
export type RoleDoc = Stored<Role> & { name_key?: string };
export type PolicyDoc = Stored<Policy> & { name_key?: string };
export type RuleDoc = Stored<PolicyRule>;
export type CatalogDoc = Stored<App & Action>;
export type DeviceDoc = Stored<Device>;
/** Platform-wide uniqueness of device ids and the pipeline's device → tenant directory. */
export type DeviceRegistryDoc = { _id: string; tenant_id: string };
export type UserRoleDoc = { _id: string; tenant_id: string; user_id: string; role_id: string; created_at: number };
export type RolePolicyDoc = { _id: string; tenant_id: string; role_id: string; policy_id: string; created_at: number };
export type TowerDoc = Stored<Tower> & { write_guard?: number };
export type CarrierDoc = Stored<Carrier> & { write_guard?: number };
export type TowerCarrierDoc = { _id: string; tower_id: string; carrier_id: string; created_at: number };
export type CredentialDoc = Stored<TowerCredentialRecord>;
export type ConsoleUserDoc = Stored<ConsoleUser> & { password_hash: string; write_guard?: number };
export type RefreshTokenDoc = Stored<RefreshTokenRecord>;
export type UsageDoc = Stored<UsageRecord>;
/** Running usage totals per tenant, spread over a few slots so concurrent batches rarely conflict. */
export type UsageCounterDoc = { _id: string; tenant_id: string; allow: number; deny: number };
export type TenantTowerDoc = { _id: string; tenant_id: string; tower_id: string; first_seen: number; last_seen: number };
/** `_id` = `${tenant_id}:${device_id}`: where the device was last seen, by receive time. */
export type DevicePresenceDoc = { _id: string; tenant_id: string; device_id: string; tower_id: string; received_at: number };
export type AlertDoc = Stored<Alert> & { severity_rank: number };
export type AlertEventDoc = Stored<AlertEvent>;
/**
 * One per (tenant, device, rule) that ever alerted: every fold writes it, so two concurrent
 * batches folding into the same key conflict (and one retries) instead of both opening an alert.
 */
export type AlertKeyDoc = { _id: string; tenant_id: string; alert_id: string; last_seen: number };
export type DiscoveredDoc = Stored<DiscoveredDevice>;
export type ProcessedDoc = { _id: string; processed_at: number };
export type CommandDoc = Stored<CommandRecord>;
export type CommandEventDoc = Stored<CommandEvent>;
export type WebhookDoc = Stored<Webhook> & { secret: string; write_guard?: number };
export type DeliveryDoc = Stored<WebhookDelivery>;
/** before/after as JSON text, like SQLite: any JSON value, whatever its keys ($, dots). */
export type AuditDoc = Stored<Omit<AuditRecord, 'before' | 'after'>> & { before_json: string | null; after_json: string | null };
export type ApiKeyDoc = Stored<ApiKey> & { secret_hash: string };
export type MigrationDoc = { _id: number; name: string; applied_at: number };
/** One decision input over versions [valid_from, valid_to) (rules/policy-history.ts). */
export type PolicyHistoryDoc = {
  _id: string;
  tenant_id: string;
  kind: HistoryKind;
  key: string;
  valid_from: number;
  /** null while current. */
  valid_to: number | null;
  ref1: string | null;
  ref2: string | null;
  content: string;
  info: string | null;
};
export type PolicyVersionDoc = {
  _id: string;
  tenant_id: string;
  version: number;
  created_at: number;
  change_count: number;
  changes: HistoryChange[];
  restored_from: number | null;
  actor: ChangeActor | null;
};
export type PolicyTestDoc = Stored<PolicyTest>;

export const C = {
  tenants: 'tenants',
  plans: 'plans',
  users: 'users',
  roles: 'roles',
  policies: 'policies',
  rules: 'rules',
  apps: 'apps',
  actions: 'actions',
  devices: 'devices',
  deviceRegistry: 'device_registry',
  userRoles: 'user_roles',
  rolePolicies: 'role_policies',
  towers: 'towers',
  carriers: 'carriers',
  towerCarriers: 'tower_carriers',
  credentials: 'tower_credentials',
  consoleUsers: 'console_users',
  refreshTokens: 'refresh_tokens',
  usage: 'usage',
  usageCounters: 'usage_counters',
  tenantTowers: 'tenant_towers',
  devicePresence: 'device_presence',
  alerts: 'alerts',
  alertKeys: 'alert_keys',
  alertEvents: 'alert_events',
  discovered: 'discovered_devices',
  processed: 'processed_messages',
  commands: 'commands',
  commandEvents: 'command_events',
  webhooks: 'webhooks',
  deliveries: 'webhook_deliveries',
  audit: 'audit_records',
  apiKeys: 'api_keys',
  carrierCredentials: 'carrier_credentials',
  towerPolygons: 'tower_polygons',
  deviceMetadata: 'device_metadata',
  radiusClients: 'radius_clients',
  deviceSessions: 'device_sessions',
  accountingRecords: 'accounting_records',
  sessionTotals: 'session_totals',
  migrations: 'schema_migrations',
  policyHistory: 'policy_history',
  policyVersions: 'policy_versions',
  policyTests: 'policy_tests',
} as const;

export type CollectionName = (typeof C)[keyof typeof C];

/** Every collection a tenant's deletion must empty of its documents (all carry tenant_id). */
export const TENANT_OWNED: readonly CollectionName[] = [
  C.users,
  C.roles,
  C.policies,
  C.rules,
  C.apps,
  C.actions,
  C.devices,
  C.deviceRegistry,
  C.userRoles,
  C.rolePolicies,
  C.usage,
  C.usageCounters,
  C.tenantTowers,
  C.devicePresence,
  C.alerts,
  C.alertKeys,
  C.alertEvents,
  C.discovered,
  C.commands,
  C.commandEvents,
  C.webhooks,
  C.deliveries,
  C.audit,
  C.apiKeys,
  C.policyHistory,
  C.policyVersions,
  C.policyTests,
  C.deviceSessions,
  C.accountingRecords,
  C.sessionTotals,
];

const asc = (...fields: string[]): Record<string, 1> => Object.fromEntries(fields.map((f) => [f, 1 as const]));
const idx = (key: Record<string, 1>, extra: Partial<IndexDescription> = {}): IndexDescription => ({ key, ...extra });
/** (tenant_id, field, _id): filtered or sorted keyset pages of one tenant, in both directions. */
const tenantSorted = (...fields: string[]): IndexDescription[] => fields.map((f) => idx(asc('tenant_id', f, '_id')));

/**
 * Natural keys unique per tenant (rules/names.ts), created by migration 5 once existing
 * duplicates are renamed: creating them earlier would fail on such a database. The partial
 * filter leaves users without an e-mail out of the e-mail index.
 */
export const NATURAL_KEY_INDEXES: Readonly<Partial<Record<CollectionName, IndexDescription[]>>> = {
  roles: [idx(asc('tenant_id', 'name_key'), { unique: true, name: 'roles_name_key' })],
  policies: [idx(asc('tenant_id', 'name_key'), { unique: true, name: 'policies_name_key' })],
  users: [
    idx(asc('tenant_id', 'email_key'), { unique: true, name: 'users_email_key', partialFilterExpression: { email_key: { $type: 'string' } } }),
  ],
};

/**
 * Indexes per collection, created by init() (createIndexes is idempotent). Every list is a keyset
 * page on (tenant_id, [filter,] [sort field,] _id); the default order needs (tenant_id, _id).
 */
export const INDEXES: Readonly<Partial<Record<CollectionName, IndexDescription[]>>> = {
  tenants: [idx(asc('plan_id')), idx(asc('name', '_id')), idx(asc('created_at', '_id'))],
  users: [idx(asc('tenant_id', '_id')), ...tenantSorted('name', 'created_at')],
  roles: [idx(asc('tenant_id', '_id')), ...tenantSorted('name', 'created_at')],
  policies: [idx(asc('tenant_id', '_id')), ...tenantSorted('name', 'created_at')],
  rules: [
    idx(asc('tenant_id', '_id')),
    idx(asc('tenant_id', 'policy_id', '_id')),
    idx(asc('tenant_id', 'role_id', '_id')),
    ...tenantSorted('created_at'),
  ],
  apps: [idx(asc('tenant_id', '_id')), idx(asc('tenant_id', 'key'), { unique: true })],
  actions: [idx(asc('tenant_id', '_id')), idx(asc('tenant_id', 'key'), { unique: true })],
  devices: [
    idx(asc('tenant_id', '_id')),
    idx(asc('tenant_id', 'user_id', '_id')),
    ...tenantSorted('name', 'created_at', 'updated_at'),
  ],
  device_registry: [idx(asc('tenant_id', '_id'))],
  user_roles: [idx(asc('tenant_id', 'user_id', 'role_id')), idx(asc('tenant_id', 'role_id', 'user_id'))],
  role_policies: [idx(asc('tenant_id', 'role_id', 'policy_id')), idx(asc('tenant_id', 'policy_id', 'role_id'))],
  towers: [idx(asc('name', '_id')), idx(asc('last_seen', '_id')), idx(asc('state', '_id'))],
  tower_carriers: [idx(asc('tower_id', 'carrier_id')), idx(asc('carrier_id', 'tower_id'))],
  tower_credentials: [idx(asc('tower_id', '_id'))],
  // E-mails are unique per tenant, and among operators (tenant_id null is a value here); sign-in
  // looks an e-mail up across tenants. The platform-wide email_1 of schema version 1 is dropped
  // by migration 2 (schema.ts).
  console_users: [
    idx(asc('tenant_id', 'email'), { unique: true }),
    idx(asc('email', 'created_at', '_id')),
    idx(asc('tenant_id', '_id')),
  ],
  // (family_id, revoked_at): "was this sign-in signed out" (familyRevoked, on every API request
  // with an access token) is one seek however many refreshes the family holds; it also serves
  // revoking a family. Databases made before keep their family_id_1 too (a prefix of it: unused).
  refresh_tokens: [idx(asc('token_hash'), { unique: true }), idx(asc('family_id', 'revoked_at')), idx(asc('user_id'))],
  // One index per filter people use with a time bound: each costs every insert, which MongoDB's
  // storage absorbs where SQLite's WAL does not (there device, user and tower filters scan within
  // a budget instead, see sqlite/usage-repo.ts); (tenant, effect, ts) counts the dashboard window.
  usage: [
    idx(asc('tenant_id', '_id')),
    idx(asc('tenant_id', 'received_at')),
    idx(asc('tenant_id', 'device_id', 'ts')),
    idx(asc('tenant_id', 'user_id', 'ts')),
    idx(asc('tenant_id', 'tower_id', 'ts')),
    idx(asc('tenant_id', 'effect', 'ts')),
    // Schema version 8 (issue #11): only events the edge decided otherwise than the cloud.
    idx(asc('tenant_id', 'ts'), { name: 'usage_disagreement_ts', partialFilterExpression: { disagreement: true } }),
  ],
  usage_counters: [idx(asc('tenant_id'))],
  tenant_towers: [idx(asc('tenant_id', 'tower_id'))],
  device_presence: [idx(asc('tenant_id', 'device_id'))],
  alerts: [
    idx(asc('tenant_id', 'device_id', 'rule_id', 'status', 'last_seen')),
    idx(asc('tenant_id', '_id')),
    idx(asc('tenant_id', 'status', '_id')),
    idx(asc('tenant_id', 'assigned_to', '_id')),
    ...tenantSorted('last_seen', 'count', 'severity_rank', 'first_seen'),
  ],
  alert_keys: [idx(asc('tenant_id'))],
  alert_events: [idx(asc('tenant_id', 'alert_id', '_id'))],
  // tenant_id null is a value in MongoDB (unlike SQL NULL), so one unique index covers both the
  // tenant scopes and the platform scope of discovered devices.
  discovered_devices: [idx(asc('tenant_id', 'device_id'), { unique: true }), idx(asc('tenant_id', '_id'))],
  commands: [
    idx(asc('tenant_id', '_id')),
    idx(asc('tenant_id', 'device_id', '_id')),
    idx(asc('tenant_id', 'status', '_id')),
    idx(asc('tenant_id', 'tower_id', '_id')),
    // The dispatcher's cross-tenant scan of what is still in flight: status leads, so the scan
    // reads only the open commands' key range however much history piles up.
    idx(asc('status', 'tower_id', '_id')),
    ...tenantSorted('created_at', 'updated_at'),
  ],
  command_events: [idx(asc('tenant_id', 'command_id', '_id'))],
  webhooks: [idx(asc('tenant_id', '_id'))],
  webhook_deliveries: [
    idx(asc('tenant_id', 'webhook_id', '_id')),
    // dueFair: tenant by tenant, each one's most overdue. (Deployments created before it also
    // hold a cross-tenant (next_attempt_at, _id) index nothing reads any more; it may be dropped.)
    idx(asc('tenant_id', 'next_attempt_at', '_id'), { partialFilterExpression: { status: 'pending' } }),
  ],
  audit_records: [
    idx(asc('tenant_id', '_id')),
    idx(asc('tenant_id', 'resource_type', 'resource_id', '_id')),
    idx(asc('tenant_id', 'at', '_id')),
  ],
  api_keys: [idx(asc('secret_hash'), { unique: true }), idx(asc('tenant_id', '_id'))],
  // A version is read by valid_from over the tenant's history; a change re-examines the open
  // entries of one key or one reference (valid_to null marks them).
  policy_history: [
    idx(asc('tenant_id', 'valid_from')),
    idx(asc('tenant_id', 'kind', 'key', 'valid_to')),
    idx(asc('tenant_id', 'kind', 'ref1', 'valid_to')),
    idx(asc('tenant_id', 'kind', 'ref2', 'valid_to')),
  ],
  policy_versions: [idx(asc('tenant_id', 'version'), { unique: true })],
  policy_tests: [idx(asc('tenant_id', '_id'))],
};

/**
 * Migration 7 (schema.ts): carrier feeds, device metadata, RADIUS clients and accounting sessions.
 * Platform collections (credentials, polygons, metadata, RADIUS clients) stay unsharded; sessions,
 * accounting records and totals are tenant-owned. accounting_records' _id is (tower, key), so the
 * retransmission check is one _id lookup; it carries tenant_id so a tenant's deletion removes it.
 */
export const INGEST_INDEXES: Readonly<Partial<Record<CollectionName, IndexDescription[]>>> = {
  towers: [idx(asc('managed_by', '_id'))],
  carrier_credentials: [idx(asc('carrier_id', '_id'))],
  device_metadata: [idx(asc('device_id', 'updated_at')), idx(asc('carrier_id'))],
  radius_clients: [idx(asc('nas_identifier'), { unique: true }), idx(asc('tower_id', '_id'))],
  device_sessions: [
    idx(asc('tenant_id', '_id')),
    idx(asc('tenant_id', 'tenant_tower_session'), { unique: true }),
    idx(asc('tenant_id', 'device_id', '_id')),
    idx(asc('tenant_id', 'tower_id', '_id')),
    idx(asc('tenant_id', 'status', '_id')),
    idx(asc('tenant_id', 'status', 'last_update_at')),
    // A NAS restart stops what is active at its tower across tenants: a documented cross-tenant scan.
    idx(asc('tower_id', 'status')),
  ],
  accounting_records: [idx(asc('tenant_id', 'processed_at'))],
  session_totals: [idx(asc('tenant_id', 'dim', '_id'))],
};
