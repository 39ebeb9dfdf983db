/**
 * What the API needs from its composition root, and the Fastify type augmentations that make the
 * shared services (decorators) and the authenticated principal visible to every route plugin.
 */
import type { Redis } from 'ioredis';
import type { KeyRing, TokenService } from '../shared/auth/tokens.js';
import type { Bus } from '../shared/bus.js';
import type { CommandService } from '../shared/commands/command-service.js';
import type { Config } from '../shared/config.js';
import type { ConsoleRole } from '../shared/domain.js';
import type { IdFactory } from '../shared/ids.js';
import type { Logger } from '../shared/logger.js';
import type { Counters } from '../shared/metrics.js';
import type { Store } from '../shared/store/port.js';
import type { StoreFaults } from '../shared/store/store-faults.js';
import type { RateBudgets } from '../shared/workflow/rate-budgets.js';
import type { Permission } from './auth/permissions.js';
import type { LoginThrottle } from './auth/login-throttle.js';
import type { SessionService } from './auth/sessions.js';

export interface Readiness {
  ok: boolean;
  checks: Record<string, boolean>;
}

export interface ApiDeps {
  store: Store;
  tokens: TokenService;
  keyRing: KeyRing;
  bus: Bus;
  counters: Counters;
  logger: Logger;
  /** Issues manual remediations: the one owner of the command lifecycle. */
  commands: CommandService;
  /**
   * rate_limit_per_min: requests per minute per principal (per IP unauthenticated); default 100.
   * trust_proxy: Fastify's trustProxy (who may name the client in X-Forwarded-For); default false.
   * webhook_allow_private: webhook URLs may target internal addresses; default false.
   * redis_prefix: key prefix of the shared rate-limit counters (with `redis`).
   * http_request_timeout_ms / http_idle_timeout_ms / http_max_connections: the listening
   *   server's bounds on slow and numerous clients (api/http-server-limits.ts); defaults as the CLI's.
   */
  config: Pick<Config, 'refresh_token_ttl_s' | 'access_token_ttl_s'> &
    Partial<
      Pick<
        Config,
        | 'rate_limit_per_min'
        | 'trust_proxy'
        | 'webhook_allow_private'
        | 'redis_prefix'
        | 'http_request_timeout_ms'
        | 'http_idle_timeout_ms'
        | 'http_max_connections'
      >
    >;
  /**
   * Sign-in throttles (auth/login-throttle.ts). Pass the deployment's shared adapter (Redis) so
   * every API process counts the same attempts; default: in this process.
   */
  budgets?: RateBudgets;
  /** With a connection, request rate limits are counted in Redis and shared by every API process. */
  redis?: Redis | null;
  /** Server clock (epoch ms); injectable so tests can expire tokens without sleeping. */
  now?: () => number;
  readiness?: () => Promise<Readiness>;
  /** The process's store-full tracker (shared with the broker and workers); default: the API's own. */
  storeFaults?: StoreFaults;
}

/** A console user, from the verified claims of a bearer access token. */
export interface UserPrincipal {
  kind: 'user';
  userId: string;
  /** null for platform operators. */
  tenantId: string | null;
  role: ConsoleRole;
  /** Who to credit with a change (issued_by, audit actor): the console user id. */
  actorId: string;
  /** Not in the token; look the account up when an e-mail is needed. */
  label: null;
  /** The sign-in the access token belongs to (its `sid`, the refresh-token family); absent in older tokens. */
  sessionId?: string;
}

/** An integration calling with a tenant API key: tenant-scoped, holding exactly its scopes. */
export interface ApiKeyPrincipal {
  kind: 'api_key';
  keyId: string;
  tenantId: string;
  scopes: readonly Permission[];
  /** `api_key:<key id>`, never mistaken for a console user id. */
  actorId: string;
  /** The key's name, as it was at the time of the request. */
  label: string;
  /** When the key expires (epoch ms), null if never: what a feed opened with it may outlive. */
  expiresAt: number | null;
}

/**
 * A carrier pushing its feeds with its credential (`epc_…`): platform-level, no tenant, and it
 * holds exactly 'carrier-feeds:write' (auth/permissions.ts), so no tenant data and no operator
 * resource is reachable with it.
 */
export interface CarrierPrincipal {
  kind: 'carrier';
  carrierId: string;
  credentialId: string;
  tenantId: null;
  /** `carrier:<carrier id>`. */
  actorId: string;
  label: string;
}

/** Who is calling. Narrow on `kind` for what only one kind has (a console role, scopes). */
export type Principal = UserPrincipal | ApiKeyPrincipal | CarrierPrincipal;

declare module 'fastify' {
  interface FastifyInstance {
    store: Store;
    tokens: TokenService;
    keyRing: KeyRing;
    bus: Bus;
    commands: CommandService;
    counters: Counters;
    sessions: SessionService;
    loginThrottle: LoginThrottle;
    /** Operator settings the routes consult. */
    apiOptions: { webhookAllowPrivate: boolean };
    clock: () => number;
    newId: IdFactory;
    /** Store-full refusals: 503 to the client, counted, logged once per episode. */
    storeFaults: StoreFaults;
  }
  interface FastifyRequest {
    /** Set by the authentication hook on every route that declares a permission. */
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** The permission (auth/permissions.ts) a caller's console role, or API key scopes, must hold. */
    permission?: Permission;
    /** Explicitly unauthenticated (login, refresh, health). API routes must declare one of the two. */
    public?: boolean;
  }
}
