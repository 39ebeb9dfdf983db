/**
 * The embedded-mode store (DESIGN §2): one SQLite file through better-sqlite3, WAL journal.
 * better-sqlite3 is synchronous; each call is short and the port is async so the MongoDB adapter
 * fits the same shape. Repositories are built in init() because they prepare their statements
 * against the open connection; before init() (or after close()) every repository access throws.
 */
import { closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Durability } from '../../config.js';
import { Checkpointer } from './checkpointer.js';
import { createIdFactory, type IdFactory } from '../../ids.js';
import type { StoreHooks } from '../port.js';
import { RepoBackedStore, type StoreRepos } from '../repo-backed-store.js';
import { createApiKeyRepo } from './api-key-repo.js';
import { createAuditRepo } from './audit-repo.js';
import { createConsoleUserRepo, createRefreshTokenRepo } from './auth-repos.js';
import { createCarrierCredentialRepo, createCarrierFeedRepo, createDeviceMetadataRepo } from './carrier-repos.js';
import { createCommandRepo } from './command-repo.js';
import { SqliteContext } from './context.js';
import { createDeviceRepo } from './device-repo.js';
import { createDirectoryRepo } from './directory-repo.js';
import { runMigrations } from './migrations.js';
import { createPlanRepo } from './plan-repo.js';
import { SqliteHistory } from './policy-history.js';
import { createPolicyTestRepo } from './policy-tests-repo.js';
import { createPolicyVersionsRepo } from './policy-versions-repo.js';
import {
  createCarrierRepo,
  createTenantRepo,
  createTowerCarrierRepo,
  createTowerCredentialRepo,
  createTowerRepo,
} from './platform-repos.js';
import { createDeviceSessionRepo, createRadiusClientRepo } from './session-repos.js';
import { createRolePolicyRepo, createRuleRepo, createSnapshotReaders, createUserRoleRepo } from './policy-repos.js';
import { TenantRefs } from './refs.js';
import { createCatalogRepo, createPolicyRepo, createRoleRepo, createUserRepo } from './tenant-repos.js';
import { createUsageHistory } from './usage-history.js';
import { createUsageRepos } from './usage-repo.js';
import { createUsagePurge } from './usage-retention.js';
import { createWebhookDeliveryRepo, createWebhookOutbox, createWebhookRepo } from './webhook-repos.js';

export interface SqliteStoreOptions {
  /** Path of the database file (created if missing). */
  file: string;
  hooks?: StoreHooks;
  now?: () => number;
  newId?: IdFactory;
  /**
   * WAL checkpoints in a worker thread instead of inside commits (checkpointer.ts). On for the
   * deployed processes (open-store.ts); off by default, so a test's many short-lived stores do
   * not each start a thread.
   */
  backgroundCheckpoints?: boolean;
  /**
   * `power`: every commit fsyncs the WAL (`synchronous = FULL`), so what was committed survives a
   * power cut or an OS crash too. Default `process`: `synchronous = NORMAL`, a commit is written to
   * the WAL (it survives the process, kill -9 included) and synced at the next checkpoint.
   */
  durability?: Durability;
}

/** How often the checkpointer thread copies the WAL back into the database file. */
const CHECKPOINT_INTERVAL_MS = 250;

/** How long a writer waits for another process's write lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;
/**
 * Filtered usage reads (by device, user, tower, with a time window) are only fast when the
 * planner knows the usage indexes are selective: without statistics it walks the primary key to
 * avoid a sort. Statistics are refreshed at open and hourly (SQLite's own advice for long-lived
 * connections), each ANALYZE sampling a bounded number of rows so it stays in milliseconds.
 */
const OPTIMIZE_INTERVAL_MS = 3_600_000;
const ANALYSIS_ROW_LIMIT = 1000;

function buildRepos(ctx: SqliteContext): StoreRepos {
  const refs = new TenantRefs(ctx);
  const outbox = createWebhookOutbox(ctx);
  const usage = createUsageRepos(ctx, refs, outbox);
  const { snapshot, rulesSnapshot } = createSnapshotReaders(ctx);
  return {
    tenants: createTenantRepo(ctx),
    consoleUsers: createConsoleUserRepo(ctx, outbox),
    refreshTokens: createRefreshTokenRepo(ctx),
    users: createUserRepo(ctx, refs),
    roles: createRoleRepo(ctx, refs),
    policies: createPolicyRepo(ctx, refs),
    rules: createRuleRepo(ctx, refs),
    apps: createCatalogRepo(ctx, refs, 'apps'),
    actions: createCatalogRepo(ctx, refs, 'actions'),
    devices: createDeviceRepo(ctx, refs),
    directory: createDirectoryRepo(ctx, refs),
    userRoles: createUserRoleRepo(ctx, refs),
    rolePolicies: createRolePolicyRepo(ctx, refs),
    towers: createTowerRepo(ctx),
    carriers: createCarrierRepo(ctx),
    towerCarriers: createTowerCarrierRepo(ctx),
    towerCredentials: createTowerCredentialRepo(ctx),
    carrierCredentials: createCarrierCredentialRepo(ctx),
    carrierFeeds: createCarrierFeedRepo(ctx),
    deviceMetadata: createDeviceMetadataRepo(ctx),
    radiusClients: createRadiusClientRepo(ctx),
    deviceSessions: createDeviceSessionRepo(ctx),
    usage: usage.usage,
    alerts: usage.alerts,
    discovered: usage.discovered,
    dashboard: usage.dashboard,
    snapshot,
    rulesSnapshot,
    policyVersions: createPolicyVersionsRepo(ctx, snapshot),
    policyTests: createPolicyTestRepo(ctx, refs),
    usageHistory: createUsageHistory(ctx),
    plans: createPlanRepo(ctx),
    commands: createCommandRepo(ctx, refs, outbox),
    webhooks: createWebhookRepo(ctx, refs),
    webhookDeliveries: createWebhookDeliveryRepo(ctx),
    audit: createAuditRepo(ctx, refs),
    apiKeys: createApiKeyRepo(ctx, refs),
    purgeUsage: createUsagePurge(ctx),
  };
}

/**
 * Statistics are an optimisation: a busy database must neither fail nor hold anything. ANALYZE
 * writes, so it needs the write lock; when another process holds it (a long write, or a process
 * stopped or stalled mid-transaction), waiting out busy_timeout would block this process's event
 * loop (better-sqlite3 is synchronous) and, at open, failed the start: a broker restarted beside
 * a stalled worker on the same file exited with "database is locked". So it does not wait, and a
 * refusal is skipped: the next round (hourly) will do.
 */
function optimize(db: Database.Database, pragma: string): void {
  // Whatever the timeout is now (SqliteContext lowers it while another process holds the lock).
  const timeout = db.pragma('busy_timeout', { simple: true }) as number;
  db.pragma('busy_timeout = 0');
  try {
    db.pragma(pragma);
  } catch {
    // SQLITE_BUSY and the like.
  } finally {
    db.pragma(`busy_timeout = ${timeout}`);
  }
}

export class SqliteStore extends RepoBackedStore {
  readonly kind = 'sqlite' as const;
  /** Path of the database file (tests open a second connection to it). */
  readonly file: string;
  private readonly hooks: StoreHooks;
  private readonly now: () => number;
  private readonly newId: IdFactory;
  private db: Database.Database | null = null;
  private optimizer: NodeJS.Timeout | null = null;
  private checkpointer: Checkpointer | null = null;
  private readonly backgroundCheckpoints: boolean;
  private readonly synchronous: 'NORMAL' | 'FULL';

  constructor(opts: SqliteStoreOptions) {
    super();
    this.file = opts.file;
    this.hooks = opts.hooks ?? {};
    this.now = opts.now ?? Date.now;
    this.newId = opts.newId ?? createIdFactory();
    this.backgroundCheckpoints = opts.backgroundCheckpoints ?? false;
    this.synchronous = opts.durability === 'power' ? 'FULL' : 'NORMAL';
  }

  async init(): Promise<void> {
    if (this.db) return;
    createPrivately(this.file);
    const db = new Database(this.file, { timeout: BUSY_TIMEOUT_MS });
    try {
      db.pragma('journal_mode = WAL');
      // WAL + NORMAL: a commit survives a process crash; only an OS crash can lose the last ones.
      // FULL (durability power) syncs the WAL at every commit.
      db.pragma(`synchronous = ${this.synchronous}`);
      db.pragma('foreign_keys = ON');
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      runMigrations(db, this.now);
      db.pragma(`analysis_limit = ${ANALYSIS_ROW_LIMIT}`);
      // 0x10002: analyse every table that needs it, not only those this connection has queried.
      optimize(db, 'optimize = 0x10002');
      this.repos = buildRepos(new SqliteContext(db, this.now, this.newId, this.hooks, new SqliteHistory(db)));
      this.db = db;
      this.optimizer = setInterval(() => optimize(db, 'optimize'), OPTIMIZE_INTERVAL_MS);
      this.optimizer.unref();
      if (this.backgroundCheckpoints) this.checkpointer = new Checkpointer(db, { file: this.file, intervalMs: CHECKPOINT_INTERVAL_MS, busyTimeoutMs: BUSY_TIMEOUT_MS });
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * What a commit survives, read back from the writing connection's `PRAGMA synchronous` (1 =
   * NORMAL, 2 = FULL): the setting is per connection, no other connection can check it.
   */
  durability(): Durability {
    if (!this.db) throw new Error('store is not open');
    return (this.db.pragma('synchronous', { simple: true }) as number) >= 2 ? 'power' : 'process';
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = null;
    this.repos = null;
    if (this.optimizer) clearInterval(this.optimizer);
    this.optimizer = null;
    const checkpointer = this.checkpointer;
    this.checkpointer = null;
    await checkpointer?.stop();
    if (db) optimize(db, 'optimize');
    db?.close();
  }
}

/**
 * Creates a new database file with mode 0600 before SQLite opens it (SQLite would create it 0644
 * under the usual umask): it holds password and key hashes and every tenant's usage. SQLite gives
 * its -wal and -shm files the database file's mode. An existing file keeps the mode it has (an
 * operator may have chosen it); `:memory:` and files whose directory is missing are left to
 * SQLite (its own error names the latter).
 */
function createPrivately(file: string): void {
  if (file === ':memory:' || file === '') return;
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch {
    // Exists already (EEXIST), or SQLite reports the problem when it opens the file.
  }
}
