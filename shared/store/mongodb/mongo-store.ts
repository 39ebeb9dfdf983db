/**
 * The distributed-mode store: MongoDB through the official driver. Needs a replica set (a
 * one-node replica set is enough): the port's atomic writes are multi-document transactions.
 * See README-mongodb.md for the data model, indexes and the shard key.
 *
 * Like SqliteStore, the constructor does no I/O; init() connects, creates indexes and seeds the
 * plans; before init() (or after close()) every repository access throws.
 */
import type { MongoClientOptions } from 'mongodb';
import { createError } from '../../errors.js';
import { createIdFactory, type IdFactory } from '../../ids.js';
import type { StoreHooks } from '../port.js';
import { RepoBackedStore, type StoreRepos } from '../repo-backed-store.js';
import { createApiKeyRepo } from './api-key-repo.js';
import { createAuditRepo } from './audit-repo.js';
import { createConsoleUserRepo, createRefreshTokenRepo } from './auth-repos.js';
import { createCommandRepo } from './command-repo.js';
import { MongoContext } from './context.js';
import type { MongoConnection, MongoDbLike } from './db-like.js';
import { createDeviceRepo } from './device-repo.js';
import { createDirectoryRepo } from './directory-repo.js';
import { TenantRefs } from './entity.js';
import {
  createCarrierCredentialRepo,
  createCarrierFeedRepo,
  createDeviceMetadataRepo,
  createDeviceSessionRepo,
  createRadiusClientRepo,
} from './ingest-repos.js';
import { createPlanRepo } from './plan-repo.js';
import { MongoHistory } from './policy-history.js';
import { createPolicyTestRepo } from './policy-tests-repo.js';
import { createPolicyVersionsRepo } from './policy-versions-repo.js';
import {
  createCarrierRepo,
  createTenantRepo,
  createTowerCarrierRepo,
  createTowerCredentialRepo,
  createTowerRepo,
} from './platform-repos.js';
import { createRolePolicyRepo, createRuleRepo, createSnapshotReaders, createUserRoleRepo } from './policy-repos.js';
import { requireTransactions, runMongoMigrations } from './schema.js';
import { createCatalogRepo, createPolicyRepo, createRoleRepo, createUserRepo } from './tenant-repos.js';
import { createUsageHistory } from './usage-history.js';
import { createUsageRepos } from './usage-repo.js';
import { createWebhookDeliveryRepo, createWebhookOutbox, createWebhookRepo } from './webhook-repos.js';

/** Opens the database a store uses; the default one is the real driver. */
export type MongoConnector = (url: string, dbName: string) => Promise<MongoConnection>;

export interface MongoStoreOptions {
  /** mongodb:// or mongodb+srv:// URL of a replica set (or a mongos). */
  url: string;
  /** Database name; default: the URL's path, else 'edgeplane'. */
  dbName?: string;
  hooks?: StoreHooks;
  now?: () => number;
  newId?: IdFactory;
  /** Tests replace the driver at this boundary (memory-db.ts); production never sets it. */
  connector?: MongoConnector;
}

export const DEFAULT_DB_NAME = 'edgeplane';

/** The database named in the URL's path (mongodb://host/db?opts), if any. */
export function databaseOf(url: string): string | null {
  const match = /^mongodb(?:\+srv)?:\/\/[^/?]*\/([^?]*)/.exec(url);
  const name = match?.[1] ? decodeURIComponent(match[1]) : '';
  return name === '' ? null : name;
}

/**
 * Every write (and every transaction's commit) waits for a majority of the replica set and its
 * journal: what the store acknowledges (an answered request, a PUBACKed event) then survives a
 * crash of the primary or a failover. The server's default is not enough: it is w:1 on older
 * servers and on replica sets with an arbiter, and operators may lower it (setDefaultRWConcern).
 * They win over a `w` in the URL; a URL's `journal=false` would win over them, so it is refused.
 */
const DURABLE_CLIENT_OPTIONS = { writeConcern: { w: 'majority', journal: true } } as const satisfies MongoClientOptions;

export const connectWithDriver: MongoConnector = async (url, dbName) => {
  // Loaded here, not at import: the embedded mode never needs the driver (~100 ms of start-up).
  const { MongoClient } = await import('mongodb');
  const client = new MongoClient(url, DURABLE_CLIENT_OPTIONS);
  const { w, journal } = client.options.writeConcern ?? {};
  if (w !== 'majority' || journal !== true) {
    const message = 'mongodb: writes must be acknowledged by a majority and journaled; remove journal=false from the URL';
    throw createError('VALIDATION_FAILED', `--store-url: ${message}`, [{ field: 'store_url', message }]);
  }
  await client.connect();
  // Assigning the driver's Db to MongoDbLike is the compile-time proof that the boundary the
  // adapter (and the in-memory double) uses is a true subset of the real driver's API.
  const db: MongoDbLike = client.db(dbName);
  return { db, close: () => client.close() };
};

function buildRepos(ctx: MongoContext): StoreRepos {
  const refs = new TenantRefs(ctx);
  const outbox = createWebhookOutbox(ctx);
  const usage = createUsageRepos(ctx, outbox);
  const { snapshot, rulesSnapshot } = createSnapshotReaders(ctx);
  return {
    tenants: createTenantRepo(ctx),
    consoleUsers: createConsoleUserRepo(ctx, refs, outbox),
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
    purgeUsage: usage.purgeUsage,
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
  };
}

export class MongoStore extends RepoBackedStore {
  readonly kind = 'mongodb' as const;
  private readonly url: string;
  private readonly dbName: string;
  private readonly hooks: StoreHooks;
  private readonly now: () => number;
  private readonly newId: IdFactory;
  private readonly connector: MongoConnector;
  private connection: MongoConnection | null = null;

  constructor(opts: MongoStoreOptions) {
    super();
    this.url = opts.url;
    this.dbName = opts.dbName ?? databaseOf(opts.url) ?? DEFAULT_DB_NAME;
    this.hooks = opts.hooks ?? {};
    this.now = opts.now ?? Date.now;
    this.newId = opts.newId ?? createIdFactory();
    this.connector = opts.connector ?? connectWithDriver;
  }

  async init(): Promise<void> {
    if (this.connection) return;
    const connection = await this.connector(this.url, this.dbName);
    try {
      await requireTransactions(connection.db);
      await runMongoMigrations(connection.db, this.now);
      this.repos = buildRepos(new MongoContext(connection.db, this.now, this.newId, this.hooks, new MongoHistory(connection.db)));
      this.connection = connection;
    } catch (err) {
      await connection.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    const connection = this.connection;
    this.connection = null;
    this.repos = null;
    await connection?.close();
  }
}
