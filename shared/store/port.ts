/**
 * The store port (DESIGN §2, §5). Every adapter (SQLite for the embedded mode, MongoDB for the
 * distributed one) implements this interface and passes `describeStoreContract` in
 * store.contract.ts. The domain rules below are pure functions in ./rules/ that every adapter
 * calls inside its transactions, so adapters cannot drift apart on them.
 *
 * Rules every adapter keeps:
 * - every tenant-owned read and write takes `tenantId` and never returns another tenant's row;
 *   a reference to another tenant's id (role_id, policy_id, user_id…) is NOT_FOUND, naming the field;
 * - a change that can alter a decision (rules/policy-version.ts) bumps `tenants.policy_version`
 *   in the same transaction and then calls `hooks.onPolicyChanged` (after commit);
 * - multi-row writes are atomic: a failure leaves nothing half-written;
 * - list order is ascending by id, except history (usage, alerts, commands, deliveries, audit:
 *   newest first); cursors are opaque.
 */
import type {
  Action,
  Alert,
  AlertEvent,
  ApiKey,
  AuditActorKind,
  AuditRecord,
  CommandEvent,
  CommandRecord,
  CommandSource,
  CommandStatus,
  Escalation,
  Plan,
  Remediation,
  Webhook,
  WebhookDelivery,
  WebhookEventType,
  AlertStatus,
  App,
  Carrier,
  CarrierCredential,
  ConsoleRole,
  DeviceMetadata,
  DeviceSession,
  DeviceSessionStatus,
  RadiusClient,
  SessionTotals,
  ConsoleUser,
  Device,
  DiscoveredDevice,
  Effect,
  Policy,
  PolicyRule,
  Role,
  Severity,
  Tenant,
  Tower,
  TowerCredential,
  TowerState,
  UsageRecord,
  User,
} from '../domain.js';
import type { CommandType } from '../mqtt/payloads.js';
import type { PolicyContent } from '../policy/content.js';
import type { PolicyTest, PolicyTestInput, PolicyTestPatch } from '../policy/policy-tests.js';
import type { HistoryChange } from './rules/policy-history.js';
import type { NotRestored } from './rules/policy-restore.js';
import type { DeviceFeedRecord, FeedOutcome, TowerFeedRecord } from '../mqtt/carrier-payloads.js';
import type { AccountingRecord } from '../mqtt/session-payloads.js';

export interface ListOptions {
  /** 1..1000, default 50. */
  limit?: number;
  /** Opaque cursor returned as `next_cursor` by the previous page. */
  cursor?: string | null;
  /**
   * Optional order. Each list declares its sortable fields (SORTABLE in rules/pagination.ts);
   * without `sort` the list keeps its default order (by id). Sorted pages are keyset pages on
   * (field, id) in `dir`, ties broken by id, NULL keys ordered below every value, and the cursor
   * encodes the last row's sort key, so page boundaries stay stable. A cursor from a different
   * sort (or from the unsorted order) fails VALIDATION_FAILED on field `cursor`; an unsupported
   * field fails VALIDATION_FAILED on field `sort`.
   */
  sort?: { field: string; dir: 'asc' | 'desc' };
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface TenantCrud<T, C, U, F = object> {
  create(tenantId: string, input: C): Promise<T>;
  get(tenantId: string, id: string): Promise<T | null>;
  list(tenantId: string, opts?: ListOptions & F): Promise<Page<T>>;
  update(tenantId: string, id: string, patch: U): Promise<T | null>;
  delete(tenantId: string, id: string): Promise<boolean>;
}

export interface PlatformCrud<T, C, U> {
  create(input: C): Promise<T>;
  get(id: string): Promise<T | null>;
  list(opts?: ListOptions): Promise<Page<T>>;
  update(id: string, patch: U): Promise<T | null>;
  delete(id: string): Promise<boolean>;
}

export interface TenantInput {
  name: string;
  default_effect?: Effect;
  alert_window_s?: number;
  /** Default 'free'. NOT_FOUND (field plan_id) for an unknown plan. */
  plan_id?: string;
  /** Default 365. */
  audit_retention_days?: number;
}
export interface UserInput {
  name: string;
  email?: string | null;
}
export interface RoleInput {
  name: string;
  description?: string | null;
}
export interface PolicyInput {
  name: string;
  description?: string | null;
  severity?: Severity;
}
export interface RuleInput {
  policy_id: string;
  role_id?: string | null;
  app: string;
  action: string;
  permission: Effect;
  remediation?: Remediation | null;
  escalation?: Escalation | null;
}
export type RulePatch = Partial<Omit<RuleInput, 'policy_id'>>;
export interface CatalogInput {
  key: string;
  name: string;
}
export interface DeviceInput {
  /** Optional: the identifier towers report. Generated when absent. Unique platform-wide. */
  id?: string;
  user_id?: string | null;
  name: string;
  os?: string | null;
}
export type DevicePatch = Partial<Omit<DeviceInput, 'id'>>;
export interface TowerInput {
  /** Optional: towers usually have an operator-assigned id (it appears in topics). */
  id?: string;
  name: string;
  lat?: number | null;
  lon?: number | null;
  radius_m?: number | null;
}
export type TowerPatch = Partial<Omit<TowerInput, 'id'>>;
export interface CarrierInput {
  name: string;
  mcc_mnc?: string | null;
}

export interface PlanInput {
  /** Operator-chosen slug, e.g. 'enterprise' (TOPIC_ID_RE). */
  id: string;
  name: string;
  auto_remediation: boolean;
  max_devices?: number | null;
  max_events_per_s?: number | null;
  retention_days: number;
}
export type PlanPatch = Partial<Omit<PlanInput, 'id'>>;

export interface CommandInput {
  tenant_id: string;
  tower_id: string;
  device_id: string;
  type: CommandType;
  app?: string | null;
  duration_s?: number | null;
  reason?: string | null;
  source: CommandSource;
  rule_id?: string | null;
  issued_by?: string | null;
  expires_at: number;
}

export type AuditInput = Omit<AuditRecord, 'id'>;

export interface AuditFilter {
  actor_id?: string;
  actor_kind?: AuditActorKind;
  action?: string;
  resource_type?: string;
  resource_id?: string;
  /** Inclusive lower / exclusive upper bound on `at`. */
  since?: number;
  until?: number;
}

/** Alert list filters; since/until select alerts active in [since, until) (epoch ms). */
export interface AlertFilter {
  status?: AlertStatus;
  device_id?: string;
  app?: string;
  severity?: Severity;
  /** Console user id of the assignee. */
  assigned_to?: string;
  /** last_seen >= since. */
  since?: number;
  /** first_seen < until. */
  until?: number;
}

/** Usage list filters; since/until bound the event time `ts` (inclusive / exclusive, epoch ms). */
export interface UsageFilter {
  user_id?: string;
  device_id?: string;
  effect?: Effect;
  tower_id?: string;
  app?: string;
  since?: number;
  until?: number;
  /** true: only events whose tower decided locally with another effect than the cloud; false: the others. */
  disagreement?: boolean;
}

/** One alert workflow step (rules/alerts.ts: applyAlertAction). `by` is the actor id. */
export type AlertAction =
  | { kind: 'acknowledge' | 'resolve'; by: string | null; at: number; note?: string | null }
  | { kind: 'assign'; assignee: string | null; by: string | null; at: number; note?: string | null };

/**
 * One row of a bulk onboarding import (rules/onboarding.ts). A row names a device user by its
 * natural key (e-mail), the roles it should hold (by name), and/or a device (by id) it owns.
 */
export interface DirectoryRow {
  user_email?: string | undefined;
  user_name?: string | undefined;
  roles?: string[] | undefined;
  device_id?: string | undefined;
  device_name?: string | undefined;
  device_os?: string | undefined;
}

export type ImportOutcome = 'created' | 'updated' | 'unchanged';

export interface DirectoryRowResult {
  /** Index of the row in the input (0-based). */
  row: number;
  user: ImportOutcome | null;
  user_id: string | null;
  device: ImportOutcome | null;
  device_id: string | null;
  /** Role assignments this row added (0 when the user already held them). */
  roles_added: number;
}

export interface DirectoryImportResult {
  dry_run: boolean;
  rows: DirectoryRowResult[];
  users: Record<ImportOutcome, number>;
  devices: Record<ImportOutcome, number>;
  role_assignments: { created: number; unchanged: number };
}

export interface ApiKeyInput {
  tenant_id: string;
  name: string;
  prefix: string;
  scopes: string[];
  /** sha256 of the full key (the key is 256 random bits: no KDF needed). */
  secret_hash: string;
  created_by: string | null;
  expires_at: number | null;
}

export interface WebhookInput {
  url: string;
  events: WebhookEventType[];
  /** Stored as is: it signs deliveries (HMAC), so it cannot be hashed. */
  secret: string;
}

export interface ConsoleUserInput {
  tenant_id: string | null;
  email: string;
  console_role: ConsoleRole;
  password_hash: string;
}

/** A change to a console account; role, disabled and password end its sessions (rules/console-users.ts). */
export interface ConsoleUserPatch {
  console_role?: ConsoleRole;
  /** true disables the account (keeps the first disabled_at), false enables it again. */
  disabled?: boolean;
  password_hash?: string;
}

export type ConsoleUserWithPassword = ConsoleUser & { password_hash: string };

/** Who makes an alert workflow step that is the consequence of another change, and when. */
export interface AlertActor {
  /** Actor id as in AlertEvent.actor_id; null for the system. */
  by: string | null;
  at: number;
}

/** What deleting a console account changed besides removing it and its refresh tokens. */
export interface ConsoleUserDeletion {
  /** Alerts the account was assigned, as unassigned, with the step recorded in each one's history. */
  unassigned: Array<{ alert: Alert; step: AlertEvent }>;
}

export interface RefreshTokenRecord {
  id: string;
  user_id: string;
  family_id: string;
  token_hash: string;
  expires_at: number;
  used_at: number | null;
  revoked_at: number | null;
}

export interface TowerCredentialRecord extends TowerCredential {
  secret_hash: string;
}

export interface CarrierCredentialRecord extends CarrierCredential {
  secret_hash: string;
}

/** What applying one feed record did; a refusal names why and wrote nothing. */
export type FeedApplyResult = { outcome: Exclude<FeedOutcome, 'refused'> } | { outcome: 'refused'; reason: string };

export interface RadiusClientInput {
  nas_identifier: string;
  tower_id: string;
  /** Stored as is: verifying a Request Authenticator needs the secret itself (like webhook secrets). */
  secret: string;
  /** See RadiusClient.radsec_identity; absent on create: null (RADIUS/UDP). */
  radsec_identity?: string | null;
}

export interface RecordSessionsInput {
  tenant_id: string;
  tower_id: string;
  /** Records of devices of this tenant, in arrival order. */
  records: AccountingRecord[];
  now: number;
}

export interface RecordSessionsResult {
  /** Records stored for the first time (each folded into its session). */
  inserted: number;
  /** Records whose key this tower already sent (retransmissions): nothing is written for them. */
  duplicates: number;
  /** Sessions created or changed, as stored. */
  sessions: DeviceSession[];
}

export interface SessionFilter {
  device_id?: string;
  tower_id?: string;
  status?: DeviceSessionStatus;
}

export interface SessionSummary {
  sessions: number;
  active: number;
  input_octets: number;
  output_octets: number;
}

/**
 * One decided event, ready to persist. `local_effect`/`local_policy_version`: the tower's own
 * decision, if it made one; `disagreement` is derived by the store (rules/usage-batch.ts).
 */
export interface DecidedUsage extends Omit<UsageRecord, 'disagreement' | 'local_effect' | 'local_policy_version'> {
  severity: Severity | null;
  local_effect?: Effect | null;
  local_policy_version?: number | null;
}

export interface RecordUsageInput {
  tenant_id: string;
  tower_id: string;
  batch_id: string;
  /** Server clock when the batch was accepted; alert windows are measured on it. */
  now: number;
  alert_window_s: number;
  records: DecidedUsage[];
}

export type StoredDecision = Pick<UsageRecord, 'id' | 'effect' | 'reason' | 'rule_id' | 'policy_id' | 'policy_version'>;

export interface RecordUsageResult {
  /** Events stored for the first time. */
  inserted: number;
  /** Events whose id was already stored (QoS 1 redelivery): nothing else is written for them. */
  duplicates: number;
  /**
   * For each duplicate, the decision stored the first time, in input order: a redelivered or
   * re-processed batch is answered with what was decided and stored, even if the policy changed.
   */
  stored_decisions: StoredDecision[];
  /** Alerts created by this batch. */
  alerts_opened: Alert[];
  /** Existing alerts whose count/last_seen this batch bumped (final state). */
  alerts_updated: Alert[];
  /** Tenant-scoped discovered devices created or bumped (records with reason unknown_device). */
  discovered: DiscoveredDevice[];
  /**
   * Duplicates whose record carried a local decision the stored event did not have yet (a tower
   * reporting, after its first send, the decision it made when the cloud's answer was late): it
   * was recorded on the stored event, with the disagreement against the stored decision.
   */
  local_recorded: Array<{ id: string; local_effect: Effect; effect: Effect; disagreement: boolean }>;
}

export interface DiscoveryReport {
  device_id: string;
  first_seen: number;
  last_seen: number;
  count: number;
}

/** The rule side of a tenant's policy: what a rule, policy, role link or settings change alters. */
export interface PolicyRulesSnapshot {
  tenant: Tenant;
  plan: Plan;
  role_policies: Array<{ role_id: string; policy_id: string }>;
  policies: Policy[];
  rules: PolicyRule[];
}

/** Everything a tenant's decisions depend on: the rule side plus its inventory (devices, user roles). */
export interface PolicySnapshot extends PolicyRulesSnapshot {
  devices: Array<{ id: string; user_id: string | null }>;
  user_roles: Array<{ user_id: string; role_id: string }>;
}

/**
 * What a policy version's change can alter: only the rule side ('rules': rules, policies, role ↔
 * policy links, tenant or plan settings) or the inventory as well ('inventory': devices, users,
 * roles, user ↔ role links, restores, imports). A listener that kept the inventory of an earlier
 * version may re-read only the rule side after a chain of 'rules' changes.
 */
export type PolicyChangeScope = 'rules' | 'inventory';

/** Who made a policy change, when the writer knows (a restore names its caller). */
export interface ChangeActor {
  kind: AuditActorKind;
  id: string | null;
  label: string | null;
}

/** One policy version: when it was made, what it changed, and (for a restore) from which version. */
export interface PolicyVersionInfo {
  version: number;
  created_at: number;
  /** Exact number of decision inputs this version added, changed or removed. */
  change_count: number;
  /** The first MAX_LISTED_CHANGES of them (rules/policy-history.ts). */
  changes: HistoryChange[];
  restored_from: number | null;
  actor: ChangeActor | null;
}

export interface RestoreResult {
  /** The new version, or the current one when the tenant already had that content (created false). */
  version: PolicyVersionInfo;
  created: boolean;
  not_restored: NotRestored[];
}

/** What a tenant's version history costs (issue #12: measure storage per version). */
export interface PolicyHistoryStorage {
  /** Versions whose content is kept (from first_version to the current one). */
  versions: number;
  first_version: number | null;
  /** History entries (decision inputs over version intervals). */
  entries: number;
  /** Bytes of entry keys, references and JSON payloads (row overhead excluded). */
  bytes: number;
}

/** A recorded usage event as a replay reads it. */
export type ReplayRow = Pick<
  UsageRecord,
  'id' | 'received_at' | 'ts' | 'device_id' | 'user_id' | 'app' | 'action' | 'tower_id' | 'effect' | 'reason' | 'rule_id' | 'policy_id' | 'policy_version'
>;

/** Usage recorded (received_at) in [since, until). */
export interface UsageWindow {
  since: number;
  until: number;
}

export interface DashboardMetrics {
  devices: number;
  users: number;
  policies: number;
  rules: number;
  /** Alerts raised and not yet acknowledged or resolved. */
  alerts_open: number;
  /** Alerts someone acknowledged and has not resolved yet. */
  alerts_acknowledged: number;
  usage_total: number;
  usage_allowed: number;
  usage_denied: number;
  discovered_devices: number;
}

export interface StoreHooks {
  /** Called after a committed change bumped a tenant's policy version. */
  onPolicyChanged?: (tenantId: string, version: number, scope: PolicyChangeScope) => void;
}

export interface Store {
  readonly kind: 'sqlite' | 'mongodb';
  /** Opens connections and applies pending schema migrations. */
  init(): Promise<void>;
  close(): Promise<void>;

  tenants: PlatformCrud<Tenant, TenantInput, Partial<TenantInput>> & {
    /**
     * Creates a tenant and its first owner account in one transaction: both or neither (a
     * tenant is never left without its owner, whatever fails). NOT_FOUND (plan_id) as create.
     */
    createWithOwner(input: TenantInput, owner: { email: string; password_hash: string }): Promise<{ tenant: Tenant; owner: ConsoleUser }>;
  };

  /**
   * People who sign in (rules/console-users.ts). An e-mail is unique per tenant and among
   * operators (tenant_id null), not platform-wide: CONFLICT (email) only within one scope.
   * `scope` below is the account's tenant id, or null for operators; an id outside the scope is
   * not found.
   */
  consoleUsers: {
    create(input: ConsoleUserInput): Promise<ConsoleUser>;
    get(id: string): Promise<ConsoleUser | null>;
    getWithPassword(id: string): Promise<ConsoleUserWithPassword | null>;
    /** The first of findAllByEmail (an operator, else the oldest account), or null. */
    findByEmail(email: string): Promise<ConsoleUserWithPassword | null>;
    /** Every account with this e-mail, disabled ones included, in sign-in order (compareSignInOrder). */
    findAllByEmail(email: string): Promise<ConsoleUserWithPassword[]>;
    /** tenantId null lists platform operators. */
    list(tenantId: string | null, opts?: ListOptions & { console_role?: ConsoleRole }): Promise<Page<ConsoleUser>>;
    /**
     * Applies the patch. A change that ends sessions bumps session_version and revokes every
     * refresh token of the account in the same transaction. CONFLICT (id) when it would leave a
     * tenant without an active owner. `check`, when given, sees the account as it is inside the
     * transaction, before the change; throwing refuses the change (a caller's permission to
     * manage the account is thus decided on its current role, not on a copy read earlier).
     */
    update(scope: string | null, id: string, patch: ConsoleUserPatch, check?: (current: ConsoleUser) => void): Promise<ConsoleUser | null>;
    /**
     * Deletes the account and its refresh tokens; CONFLICT (id) for a tenant's last active owner.
     * `check` as for update. In the same transaction, the account's active alerts (open or
     * acknowledged, of its tenant only) are unassigned, each by an 'unassigned' step in the
     * alert's history made by `actor` (default: the system, now) (rules/alerts.ts:
     * unassignDeletedAssignee), with its alert.assigned webhook deliveries
     * (rules/webhook-outbox.ts). null when there was no such account in `scope`.
     */
    delete(scope: string | null, id: string, check?: (current: ConsoleUser) => void, actor?: AlertActor): Promise<ConsoleUserDeletion | null>;
  };

  refreshTokens: {
    create(rec: Omit<RefreshTokenRecord, 'used_at' | 'revoked_at'>): Promise<void>;
    findByHash(tokenHash: string): Promise<RefreshTokenRecord | null>;
    /** Atomically marks the token used. False when it was already used or revoked (reuse). */
    consume(id: string, now: number): Promise<boolean>;
    revokeFamily(familyId: string, now: number): Promise<void>;
    /**
     * Whether the sign-in `familyId` started has ended (signed out, or a reused token revoked it):
     * any of its tokens revoked. An unknown family is not revoked. One indexed read: the API's
     * guard asks it on every request made with an access token of the family.
     */
    familyRevoked(familyId: string): Promise<boolean>;
  };

  /** E-mails are unique per tenant, case-insensitively (CONFLICT on field email). */
  users: TenantCrud<User, UserInput, Partial<UserInput>> & {
    findByEmail(tenantId: string, email: string): Promise<User | null>;
  };
  /** Names are unique per tenant, case- and space-insensitively (rules/names.ts; CONFLICT on field name). */
  roles: TenantCrud<Role, RoleInput, Partial<RoleInput>> & {
    findByName(tenantId: string, name: string): Promise<Role | null>;
  };
  policies: TenantCrud<Policy, PolicyInput, Partial<PolicyInput>> & {
    findByName(tenantId: string, name: string): Promise<Policy | null>;
  };
  rules: Omit<TenantCrud<PolicyRule, RuleInput, RulePatch, { policy_id?: string; role_id?: string }>, 'update'> & {
    /**
     * `check`, when given, sees the rule as the update leaves it, inside the update's transaction
     * (so with every committed concurrent change); throwing refuses the update: nothing is
     * written and no version is made. A caller's invariant over fields the patch does not name
     * (only deny rules remediate) is thus checked against the row, not a copy read earlier.
     */
    update(tenantId: string, id: string, patch: RulePatch, check?: (after: PolicyRule) => void): Promise<PolicyRule | null>;
  };
  apps: TenantCrud<App, CatalogInput, Partial<Pick<CatalogInput, 'name'>>>;
  actions: TenantCrud<Action, CatalogInput, Partial<Pick<CatalogInput, 'name'>>>;
  /** devices.create throws PLAN_LIMIT_EXCEEDED when the tenant's plan max_devices is reached. */
  devices: TenantCrud<Device, DeviceInput, DevicePatch, { user_id?: string }> & {
    /** Platform-level lookup used by the pipeline's cross-tenant check. */
    tenantOf(deviceId: string): Promise<string | null>;
    /** Every (device, tenant) pair; used to build the pipeline's device directory at start. */
    directory(): Promise<Array<{ device_id: string; tenant_id: string }>>;
  };

  userRoles: {
    /** Returns false when the assignment already existed. NOT_FOUND for an unknown user/role. */
    assign(tenantId: string, userId: string, roleId: string): Promise<boolean>;
    unassign(tenantId: string, userId: string, roleId: string): Promise<boolean>;
    rolesOfUser(tenantId: string, userId: string): Promise<Role[]>;
    usersOfRole(tenantId: string, roleId: string): Promise<User[]>;
  };

  rolePolicies: {
    assign(tenantId: string, roleId: string, policyId: string): Promise<boolean>;
    unassign(tenantId: string, roleId: string, policyId: string): Promise<boolean>;
    policiesOfRole(tenantId: string, roleId: string): Promise<Policy[]>;
    rolesOfPolicy(tenantId: string, policyId: string): Promise<Role[]>;
  };

  towers: PlatformCrud<Tower, TowerInput, TowerPatch> & {
    /**
     * Records the tower's status as of `at` (when the broker received it). A status older than the
     * one stored (`at` < last_seen) changes nothing: status messages processed out of order (an old
     * connection's will after the new one's online) must not leave the older one in place. False
     * only for an unknown tower.
     */
    setStatus(towerId: string, status: { state: TowerState; agent_version: string | null; at: number }): Promise<boolean>;
    /** Towers where devices of this tenant have been seen (usage or discovery). */
    listSeenByTenant(tenantId: string, opts?: ListOptions): Promise<Page<Tower>>;
  };
  carriers: PlatformCrud<Carrier, CarrierInput, Partial<CarrierInput>>;
  towerCarriers: {
    link(towerId: string, carrierId: string): Promise<boolean>;
    unlink(towerId: string, carrierId: string): Promise<boolean>;
    carriersOfTower(towerId: string): Promise<Carrier[]>;
    towersOfCarrier(carrierId: string): Promise<Tower[]>;
  };
  towerCredentials: {
    create(rec: { id: string; tower_id: string; secret_hash: string }): Promise<TowerCredential>;
    get(id: string): Promise<TowerCredentialRecord | null>;
    listForTower(towerId: string): Promise<TowerCredential[]>;
    revoke(id: string, now: number): Promise<boolean>;
    touch(id: string, now: number): Promise<void>;
  };

  /** A carrier's feed credentials; mirrors towerCredentials (NOT_FOUND carrier_id on create). */
  carrierCredentials: {
    create(rec: { id: string; carrier_id: string; secret_hash: string }): Promise<CarrierCredential>;
    get(id: string): Promise<CarrierCredentialRecord | null>;
    listForCarrier(carrierId: string): Promise<CarrierCredential[]>;
    revoke(id: string, now: number): Promise<boolean>;
    touch(id: string, now: number): Promise<void>;
  };

  /**
   * Carrier feeds, one record per call and per transaction (rules/carrier-feeds.ts): a record is
   * applied whole or refused whole, and applying the same record again is 'unchanged'.
   * A carrier writes only towers it manages (or creates); anything else is refused.
   */
  carrierFeeds: {
    applyTower(carrierId: string, record: TowerFeedRecord, now: number): Promise<FeedApplyResult>;
    applyDevice(carrierId: string, record: DeviceFeedRecord, now: number): Promise<FeedApplyResult>;
    /** The coverage polygon a feed gave the tower, as [lon, lat] points; null when none. */
    towerPolygon(towerId: string): Promise<Array<[number, number]> | null>;
  };

  /** Carrier-supplied device metadata, platform-level (a carrier never learns which tenant holds a device). */
  deviceMetadata: {
    /** For each device id that has any: the most recently updated carrier's metadata. */
    forDevices(deviceIds: string[]): Promise<DeviceMetadata[]>;
  };

  /** RADIUS accounting clients (platform-level; operators). nas_identifier is unique: CONFLICT. */
  radiusClients: {
    create(input: RadiusClientInput): Promise<RadiusClient>;
    get(id: string): Promise<RadiusClient | null>;
    list(opts?: ListOptions & { tower_id?: string }): Promise<Page<RadiusClient>>;
    /** The client and its secret, for the listener. */
    findByNasIdentifier(nasIdentifier: string): Promise<(RadiusClient & { secret: string }) | null>;
    update(id: string, patch: Partial<RadiusClientInput>): Promise<RadiusClient | null>;
    delete(id: string): Promise<boolean>;
  };

  /** Device accounting sessions (rules/sessions.ts folds records into sessions and totals). */
  deviceSessions: {
    /** Idempotent by (tower, record key); sessions and totals change in the same transaction. */
    record(input: RecordSessionsInput): Promise<RecordSessionsResult>;
    /** Most recently updated first. */
    list(tenantId: string, opts?: ListOptions & SessionFilter): Promise<Page<DeviceSession>>;
    get(tenantId: string, id: string): Promise<DeviceSession | null>;
    /** Per device or per tower, ordered by key. */
    totals(tenantId: string, by: 'device' | 'tower', opts?: ListOptions): Promise<Page<SessionTotals>>;
    summary(tenantId: string): Promise<SessionSummary>;
    /**
     * Retention: deletes the tenant's stopped sessions last updated before `before`, and the
     * retransmission keys of records processed before it (a NAS retransmits within seconds, not
     * days). Totals stay: like usage counters they count everything ever recorded. Returns the
     * sessions deleted.
     */
    purge(tenantId: string, before: number): Promise<number>;
    /**
     * The tower's equipment restarted (platform-level: its sessions belong to many tenants):
     * every session still active there and last updated at or before `at` is stopped at `at`
     * with `terminateCause`, totals following; with `nas`, only the sessions that NAS named
     * (records' `nas`). Idempotent; returns the sessions stopped.
     */
    stopActiveAtTower(towerId: string, at: number, terminateCause: string, nas?: string): Promise<number>;
  };

  usage: {
    /**
     * Idempotent by event id; writes usage rows, alerts and discovered devices in one transaction,
     * with the webhook deliveries of the alerts opened and updated and the devices discovered (one
     * per enabled subscriber of the tenant; rules/webhook-outbox.ts).
     */
    recordBatch(input: RecordUsageInput): Promise<RecordUsageResult>;
    /**
     * Group commit: the same as calling recordBatch for each input in order, but in ONE
     * transaction (all or nothing). Results are in input order.
     */
    recordBatches(inputs: RecordUsageInput[]): Promise<RecordUsageResult[]>;
    list(tenantId: string, opts?: ListOptions & UsageFilter): Promise<Page<UsageRecord>>;
    /** Events decided in [since, until) on `ts`, by effect (the dashboard's time window). */
    countByEffect(tenantId: string, window: { since: number; until: number }): Promise<Record<Effect, number>>;
    /**
     * The tower where the device was last seen and when, by the time the cloud received its
     * events (a tower cannot make itself "latest" by choosing event times or ids). Refreshed at
     * least every 10 s while the device stays at one tower; a move is recorded at once.
     */
    lastSeen(tenantId: string, deviceId: string): Promise<{ tower_id: string; at: number } | null>;
  };

  alerts: {
    get(tenantId: string, id: string): Promise<Alert | null>;
    list(tenantId: string, opts?: ListOptions & AlertFilter): Promise<Page<Alert>>;
    count(tenantId: string, filter?: AlertFilter): Promise<number>;
    /**
     * A workflow step (acknowledge, assign, resolve), recorded in the alert's history in the same
     * transaction, which `step` returns, with the step's webhook deliveries (alert.acknowledged,
     * alert.assigned or alert.resolved; rules/webhook-outbox.ts). null for an unknown alert;
     * `step: null` when the step already held (nothing was written).
     * NOT_FOUND (assignee) unless the assignee is a console user of the tenant; CONFLICT (status)
     * for acknowledging or assigning a resolved alert.
     */
    act(tenantId: string, id: string, action: AlertAction): Promise<{ alert: Alert; step: AlertEvent | null } | null>;
    /** The alert's workflow steps, oldest first; [] for an unknown alert. */
    events(tenantId: string, id: string): Promise<AlertEvent[]>;
  };

  /**
   * Bulk onboarding: device users (by e-mail), their role assignments (by role name) and devices
   * (by id) in one transaction, all or nothing. Idempotent: a row that matches what is stored
   * changes nothing; assignments and owners are only ever added or set, never removed. Every bad
   * row is reported at once (VALIDATION_FAILED, fields `rows.<i>.<field>`); PLAN_LIMIT_EXCEEDED
   * when the new devices would pass the plan's max_devices. `dryRun` checks and answers the same
   * outcomes without writing.
   */
  directory: {
    import(tenantId: string, rows: DirectoryRow[], opts?: { dryRun?: boolean }): Promise<DirectoryImportResult>;
  };

  discovered: {
    /** Tower-reported devices no tenant claims. Idempotent by batch id; false when already recorded. */
    recordReports(towerId: string, batchId: string, reports: DiscoveryReport[], now: number): Promise<boolean>;
    /** tenantId null lists the platform's unclaimed devices. */
    list(tenantId: string | null, opts?: ListOptions): Promise<Page<DiscoveredDevice>>;
  };

  /** Plans are platform-level; 'free' and 'premium' always exist (seeded by the adapter's migrations). */
  plans: PlatformCrud<Plan, PlanInput, PlanPatch>;

  commands: {
    /**
     * Creates the command as 'pending' and records that step. Here, in createIfAbsent when it
     * creates, and in transition when it changes the status, the command.updated webhook
     * deliveries are written in the same transaction (rules/webhook-outbox.ts).
     */
    create(input: CommandInput): Promise<CommandRecord>;
    /**
     * The same with a caller-chosen id, idempotent on it: when a command with this id already
     * exists for the tenant it is returned unchanged with `created: false`. Lets a retried
     * remediation (a redelivered job, a second worker) issue the same command exactly once.
     */
    createIfAbsent(input: CommandInput & { id: string }): Promise<{ command: CommandRecord; created: boolean }>;
    get(tenantId: string, id: string): Promise<CommandRecord | null>;
    list(
      tenantId: string,
      opts?: ListOptions & { status?: CommandStatus; device_id?: string; tower_id?: string },
    ): Promise<Page<CommandRecord>>;
    /**
     * Commands still pending or delivered (not acked, not expired) of every tenant, oldest first:
     * resuming after a restart, and a tower's pending commands when it comes back online.
     */
    listOpen(filter?: { tower_id?: string; status?: 'pending' | 'delivered' }): Promise<CommandRecord[]>;
    /**
     * A (re)send: attempts + 1, recorded as a 'published' step. With `ifAttempts`, only when the
     * command's attempts still equal it (compare-and-set: two schedulers racing to resend the same
     * attempt record one send); otherwise null, as for an unknown command.
     */
    markPublished(tenantId: string, id: string, at: number, opts?: { ifAttempts?: number }): Promise<CommandRecord | null>;
    /**
     * Moves the command to `status` and records the step. Only forward moves apply:
     * pending → delivered → applied|failed, and pending|delivered → expired. Anything else
     * (e.g. an ack after expiry) returns the record unchanged with `changed: false`.
     */
    transition(
      tenantId: string,
      id: string,
      status: CommandStatus,
      at: number,
      detail?: string | null,
    ): Promise<{ command: CommandRecord; changed: boolean } | null>;
    events(tenantId: string, id: string): Promise<CommandEvent[]>;
  };

  webhooks: TenantCrud<Webhook, WebhookInput, Partial<Omit<WebhookInput, 'secret'>> & { enabled?: boolean }> & {
    /** Enabled webhooks of the tenant subscribed to `event`, with their signing secret. */
    subscribers(tenantId: string, event: WebhookEventType): Promise<Array<Webhook & { secret: string }>>;
  };

  webhookDeliveries: {
    create(rec: { tenant_id: string; webhook_id: string; event: WebhookEventType; body: string; next_attempt_at: number }): Promise<WebhookDelivery>;
    get(tenantId: string, id: string): Promise<WebhookDelivery | null>;
    /**
     * Due deliveries, fair between tenants: of every tenant with pending deliveries due at `now`,
     * its `perTenant` most overdue (next_attempt_at, then id), interleaved — each tenant's first in
     * the order of their most overdue, then each one's second… — `limit` in all. Reads one index
     * seek per tenant with pending deliveries plus the rows returned, never a tenant's backlog, so
     * one tenant's thousands of due deliveries cannot push another tenant's out of the result.
     */
    dueFair(now: number, perTenant: number, limit: number): Promise<WebhookDelivery[]>;
    recordAttempt(
      id: string,
      outcome: { status: 'pending' | 'delivered' | 'failed'; at: number; status_code: number | null; error: string | null; next_attempt_at: number | null },
    ): Promise<void>;
    list(tenantId: string, webhookId: string, opts?: ListOptions): Promise<Page<WebhookDelivery>>;
    /** Deletes the tenant's finished (delivered or failed) deliveries last updated before `before`; returns how many. Pending ones stay. */
    purge(tenantId: string, before: number): Promise<number>;
  };

  /**
   * Append-only: no update or single-record delete; records leave through `purge` (retention) or
   * with their tenant (deleting a tenant deletes its records; platform records, tenant_id null,
   * stay). `record` answers NOT_FOUND (tenant_id) for an unknown tenant.
   */
  audit: {
    record(input: AuditInput): Promise<AuditRecord>;
    /** Newest first. tenantId null lists platform-level records (operators). */
    list(tenantId: string | null, opts?: ListOptions & AuditFilter): Promise<Page<AuditRecord>>;
    get(tenantId: string | null, id: string): Promise<AuditRecord | null>;
    /** Deletes the tenant's (null: the platform's) audit records older than `before`; returns rows deleted. */
    purge(tenantId: string | null, before: number): Promise<number>;
  };

  /** Deleting a tenant deletes its keys. create: NOT_FOUND (tenant_id), CONFLICT (secret_hash). */
  apiKeys: {
    create(input: ApiKeyInput): Promise<ApiKey>;
    get(tenantId: string, id: string): Promise<ApiKey | null>;
    list(tenantId: string, opts?: ListOptions): Promise<Page<ApiKey>>;
    /** False when unknown, another tenant's, or already revoked. */
    revoke(tenantId: string, id: string, now: number): Promise<boolean>;
    /** Platform-level lookup for authentication; revoked keys are returned too (callers check). */
    findByHash(secretHash: string): Promise<ApiKey | null>;
    touch(id: string, now: number): Promise<void>;
  };

  /** Deletes the tenant's usage older than `before` (epoch ms); returns rows deleted. */
  purgeUsage(tenantId: string, before: number): Promise<number>;

  /**
   * Every policy version's content, kept as an interval history (rules/policy-history.ts) from
   * the tenant's creation (or, for tenants older than the history, from the version current
   * when it was introduced: `storage().first_version`).
   */
  policyVersions: {
    /** Newest first; the cursor is opaque. */
    list(tenantId: string, opts?: Pick<ListOptions, 'limit' | 'cursor'>): Promise<Page<PolicyVersionInfo>>;
    get(tenantId: string, version: number): Promise<PolicyVersionInfo | null>;
    /** The decision inputs at `version`; null for an unknown tenant or a version without history. */
    content(tenantId: string, version: number): Promise<PolicyContent | null>;
    /**
     * Rewrites the tenant's decision inputs to `version`'s content (rules/policy-restore.ts) as a
     * new version, bumped and announced like any change; null when `version` has no content.
     */
    restore(tenantId: string, version: number, actor: ChangeActor | null): Promise<RestoreResult | null>;
    storage(tenantId: string): Promise<PolicyHistoryStorage>;
  };

  /** Stored policy test cases; not decision inputs (no version bump). */
  policyTests: TenantCrud<PolicyTest, PolicyTestInput, PolicyTestPatch>;

  /** Reads of recorded usage for explaining and replaying decisions. */
  usageHistory: {
    get(tenantId: string, eventId: string): Promise<UsageRecord | null>;
    /**
     * One page of the tenant's usage recorded in `window`, ascending by event id, after the event
     * id `after` (exclusive); at most `limit` rows. Callers page through large windows, so memory
     * stays bounded whatever the window holds.
     */
    scan(tenantId: string, window: UsageWindow, after: string | null, limit: number): Promise<ReplayRow[]>;
  };

  policySnapshot(tenantId: string): Promise<PolicySnapshot | null>;
  /** The rule side alone, in one read (cheap for tenants with large inventories). */
  policyRulesSnapshot(tenantId: string): Promise<PolicyRulesSnapshot | null>;
  dashboard(tenantId: string): Promise<DashboardMetrics>;
}
