/**
 * What the API needs from its composition root, and the Fastify type augmentations that make the
 * shared services (decorators) and the authenticated principal visible to every route plugin.
 */
import type { KeyRing, TokenService } from '../shared/auth/tokens.js';
import type { Bus } from '../shared/bus.js';
import type { Config } from '../shared/config.js';
import type { ConsoleRole } from '../shared/domain.js';
import type { IdFactory } from '../shared/ids.js';
import type { Logger } from '../shared/logger.js';
import type { Counters } from '../shared/metrics.js';
import type { Store } from '../shared/store/port.js';
import type { Permission } from './auth/permissions.js';
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
  /** command_ttl_s: a manual remediation not acknowledged by then is expired by the dispatcher. */
  config: Pick<Config, 'refresh_token_ttl_s' | 'access_token_ttl_s' | 'command_ttl_s'>;
  /** Server clock (epoch ms); injectable so tests can expire tokens without sleeping. */
  now?: () => number;
  readiness?: () => Promise<Readiness>;
}

/** Who is calling: the verified claims of the bearer access token. */
export interface Principal {
  userId: string;
  /** null for platform operators. */
  tenantId: string | null;
  role: ConsoleRole;
}

declare module 'fastify' {
  interface FastifyInstance {
    store: Store;
    tokens: TokenService;
    keyRing: KeyRing;
    bus: Bus;
    counters: Counters;
    sessions: SessionService;
    clock: () => number;
    newId: IdFactory;
  }
  interface FastifyRequest {
    /** Set by the authentication hook on every route that declares a permission. */
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** The permission (auth/permissions.ts) a caller's console role must hold. */
    permission?: Permission;
    /** Explicitly unauthenticated (login, refresh, health). API routes must declare one of the two. */
    public?: boolean;
  }
}
