/**
 * What both adapters share once their repositories are built: the Store's repository members,
 * read from a set built at init() and dropped at close(). Before init() (or after close()) every
 * access throws UNAVAILABLE, so a component that races shutdown gets a clear error, not a crash
 * on a closed connection.
 */
import { createError } from '../errors.js';
import type { DashboardMetrics, PolicyRulesSnapshot, PolicySnapshot, Store } from './port.js';

type Lifecycle = 'kind' | 'init' | 'close' | 'purgeUsage' | 'policySnapshot' | 'policyRulesSnapshot' | 'dashboard';

/** The repositories an adapter builds against an open connection. */
export type StoreRepos = Omit<Store, Lifecycle> & {
  purgeUsage(tenantId: string, before: number): Promise<number> | number;
  snapshot(tenantId: string): Promise<PolicySnapshot | null> | PolicySnapshot | null;
  rulesSnapshot(tenantId: string): Promise<PolicyRulesSnapshot | null> | PolicyRulesSnapshot | null;
  dashboard(tenantId: string): Promise<DashboardMetrics> | DashboardMetrics;
};

export abstract class RepoBackedStore implements Store {
  abstract readonly kind: Store['kind'];
  abstract init(): Promise<void>;
  abstract close(): Promise<void>;

  /** Set by init() once the connection is open and migrated; null before and after. */
  protected repos: StoreRepos | null = null;

  private r(): StoreRepos {
    if (!this.repos) throw createError('UNAVAILABLE', 'store is not open: call init() first');
    return this.repos;
  }

  get tenants(): Store['tenants'] {
    return this.r().tenants;
  }
  get consoleUsers(): Store['consoleUsers'] {
    return this.r().consoleUsers;
  }
  get refreshTokens(): Store['refreshTokens'] {
    return this.r().refreshTokens;
  }
  get users(): Store['users'] {
    return this.r().users;
  }
  get roles(): Store['roles'] {
    return this.r().roles;
  }
  get policies(): Store['policies'] {
    return this.r().policies;
  }
  get rules(): Store['rules'] {
    return this.r().rules;
  }
  get apps(): Store['apps'] {
    return this.r().apps;
  }
  get actions(): Store['actions'] {
    return this.r().actions;
  }
  get devices(): Store['devices'] {
    return this.r().devices;
  }
  get directory(): Store['directory'] {
    return this.r().directory;
  }
  get userRoles(): Store['userRoles'] {
    return this.r().userRoles;
  }
  get rolePolicies(): Store['rolePolicies'] {
    return this.r().rolePolicies;
  }
  get towers(): Store['towers'] {
    return this.r().towers;
  }
  get carriers(): Store['carriers'] {
    return this.r().carriers;
  }
  get towerCarriers(): Store['towerCarriers'] {
    return this.r().towerCarriers;
  }
  get towerCredentials(): Store['towerCredentials'] {
    return this.r().towerCredentials;
  }
  get carrierCredentials(): Store['carrierCredentials'] {
    return this.r().carrierCredentials;
  }
  get carrierFeeds(): Store['carrierFeeds'] {
    return this.r().carrierFeeds;
  }
  get deviceMetadata(): Store['deviceMetadata'] {
    return this.r().deviceMetadata;
  }
  get radiusClients(): Store['radiusClients'] {
    return this.r().radiusClients;
  }
  get deviceSessions(): Store['deviceSessions'] {
    return this.r().deviceSessions;
  }
  get usage(): Store['usage'] {
    return this.r().usage;
  }
  get alerts(): Store['alerts'] {
    return this.r().alerts;
  }
  get discovered(): Store['discovered'] {
    return this.r().discovered;
  }
  get plans(): Store['plans'] {
    return this.r().plans;
  }
  get commands(): Store['commands'] {
    return this.r().commands;
  }
  get webhooks(): Store['webhooks'] {
    return this.r().webhooks;
  }
  get webhookDeliveries(): Store['webhookDeliveries'] {
    return this.r().webhookDeliveries;
  }
  get audit(): Store['audit'] {
    return this.r().audit;
  }
  get apiKeys(): Store['apiKeys'] {
    return this.r().apiKeys;
  }
  get policyVersions(): Store['policyVersions'] {
    return this.r().policyVersions;
  }
  get policyTests(): Store['policyTests'] {
    return this.r().policyTests;
  }
  get usageHistory(): Store['usageHistory'] {
    return this.r().usageHistory;
  }

  async purgeUsage(tenantId: string, before: number): Promise<number> {
    return this.r().purgeUsage(tenantId, before);
  }

  async policySnapshot(tenantId: string): Promise<PolicySnapshot | null> {
    return this.r().snapshot(tenantId);
  }

  async policyRulesSnapshot(tenantId: string): Promise<PolicyRulesSnapshot | null> {
    return this.r().rulesSnapshot(tenantId);
  }

  async dashboard(tenantId: string): Promise<DashboardMetrics> {
    return this.r().dashboard(tenantId);
  }
}
