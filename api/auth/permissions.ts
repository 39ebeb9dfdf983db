/**
 * The one permission table. Every API route names a permission in its config; the single
 * `authorize` step (auth/guard.ts) checks the caller's console role against this table, or an API
 * key's scopes against the delegation rules below, so who may do what is readable here and nowhere
 * else.
 *
 * Operators run the platform (tenants, towers, carriers, tower credentials) and deliberately hold
 * no tenant-data permission: they manage infrastructure, not a tenant's users or usage.
 */
import { TENANT_CONSOLE_ROLES, type ConsoleRole } from '../../shared/domain.js';
import type { Principal } from '../types.js';

const OPERATOR = ['operator'] as const;
const TENANT_READ = ['owner', 'admin', 'analyst', 'viewer'] as const;
const TENANT_WRITE = ['owner', 'admin'] as const;
const EVERYONE = ['operator', 'owner', 'admin', 'analyst', 'viewer'] as const;

export const PERMISSIONS = {
  /** GET /me: any signed-in console user. */
  'session:read': EVERYONE,
  'metrics:read': OPERATOR,

  // Platform resources.
  'tenants:read': OPERATOR,
  'tenants:write': OPERATOR,
  /** Tenant users read only the towers where their devices were seen (the handler narrows). */
  'towers:read': EVERYONE,
  'towers:write': OPERATOR,
  'tower-credentials:read': OPERATOR,
  'tower-credentials:write': OPERATOR,
  'carriers:read': EVERYONE,
  'carriers:write': OPERATOR,
  /** A carrier's feed credentials (issue, list, revoke). */
  'carrier-credentials:read': OPERATOR,
  'carrier-credentials:write': OPERATOR,
  /**
   * Pushing a carrier feed: held by carrier principals only (a carrier credential), never by a
   * console role, and a carrier holds nothing else (holds() below).
   */
  'carrier-feeds:write': [],
  /** RADIUS accounting clients (NAS → tower, shared secret). */
  'radius-clients:read': OPERATOR,
  'radius-clients:write': OPERATOR,
  /** Operators see the platform's unclaimed devices; tenant users their tenant's. */
  'discovered:read': EVERYONE,
  /** Plans are public knowledge to signed-in users (a console shows features and limits). */
  'plans:read': EVERYONE,
  'plans:write': OPERATOR,

  // Tenant resources: always scoped to the caller's own tenant.
  'tenant:read': TENANT_READ,
  'tenant:write': TENANT_WRITE,
  'console-users:read': TENANT_WRITE,
  'console-users:write': TENANT_WRITE,
  /** Setting another account's password: owners only (an admin could otherwise take over a peer). */
  'console-users:credentials': ['owner'],
  'users:read': TENANT_READ,
  'users:write': TENANT_WRITE,
  'roles:read': TENANT_READ,
  'roles:write': TENANT_WRITE,
  'policies:read': TENANT_READ,
  'policies:write': TENANT_WRITE,
  /** What-if replays: recorded usage decided again under a draft (CPU-heavy, reads usage). */
  'policies:simulate': ['owner', 'admin', 'analyst'],
  'rules:read': TENANT_READ,
  'rules:write': TENANT_WRITE,
  'catalog:read': TENANT_READ,
  'catalog:write': TENANT_WRITE,
  'devices:read': TENANT_READ,
  'devices:write': TENANT_WRITE,
  'usage:read': TENANT_READ,
  /** Device accounting sessions (RADIUS) and their bytes per device and tower. */
  'sessions:read': TENANT_READ,
  'alerts:read': TENANT_READ,
  /** The alert workflow: acknowledge, assign, resolve. */
  'alerts:write': TENANT_WRITE,
  'dashboard:read': TENANT_READ,
  /** The tenant's audit trail; operators read the platform's (tenants, towers, carriers, plans). */
  'audit:read': ['operator', 'owner', 'admin'],
  'api-keys:read': TENANT_WRITE,
  'api-keys:write': TENANT_WRITE,
  /** Rotating the JWT signing key is a platform operation. */
  'signing-keys:write': OPERATOR,
  /** Live feeds over WebSocket (alerts, usage/decision stream). */
  'feeds:read': TENANT_READ,
  'webhooks:read': TENANT_WRITE,
  'webhooks:write': TENANT_WRITE,
  /** Remediation commands sent to towers; issuing one is an explicit admin action. */
  'remediation:read': TENANT_READ,
  'remediation:write': TENANT_WRITE,
} as const satisfies Record<string, readonly ConsoleRole[]>;

export type Permission = keyof typeof PERMISSIONS;

export function isAllowed(role: ConsoleRole, permission: Permission): boolean {
  return (PERMISSIONS[permission] as readonly ConsoleRole[]).includes(role);
}

export function isPermission(name: string): name is Permission {
  return Object.hasOwn(PERMISSIONS, name);
}

/** Console roles a given role may grant when creating console users (admins cannot mint owners). */
export function grantableRoles(role: ConsoleRole): readonly ConsoleRole[] {
  switch (role) {
    case 'owner':
      return ['owner', 'admin', 'analyst', 'viewer'];
    case 'admin':
      return ['admin', 'analyst', 'viewer'];
    default:
      return [];
  }
}

/**
 * Permissions an API key may never hold, whoever creates it: managing API keys, and managing
 * console users or their passwords (a key could create an owner with a known password and sign in
 * as it). Any of them would let a key mint credentials broader than itself.
 */
const NEVER_DELEGATED: ReadonlySet<Permission> = new Set<Permission>([
  'api-keys:read',
  'api-keys:write',
  'console-users:write',
  'console-users:credentials',
]);

function isTenantPermission(permission: Permission): boolean {
  const roles = PERMISSIONS[permission] as readonly ConsoleRole[];
  return roles.some((r) => (TENANT_CONSOLE_ROLES as readonly ConsoleRole[]).includes(r));
}

/** Why `role` cannot put `scope` on an API key, or null when it can. */
export function apiKeyScopeProblem(role: ConsoleRole, scope: string): string | null {
  if (!isPermission(scope)) return `unknown permission '${scope}'`;
  if (!isTenantPermission(scope)) return `'${scope}' is a platform permission; API keys are tenant-scoped`;
  if (NEVER_DELEGATED.has(scope)) return `'${scope}' cannot be granted to an API key`;
  if (!isAllowed(role, scope)) return `console role '${role}' does not hold '${scope}'`;
  return null;
}

/** What a carrier principal holds: its feeds, nothing a tenant or an operator can do. */
export const CARRIER_PERMISSIONS: ReadonlySet<Permission> = new Set<Permission>(['carrier-feeds:write']);

/**
 * The one authorization decision. A console user holds what its role holds; an API key holds its
 * principal's scopes: the stored ones its creator's current role may still delegate (narrowed at
 * authentication, api-keys.ts). The delegation rules are checked again here so a key can never
 * exceed them, even one written before a rule was tightened.
 */
export function holds(principal: Principal, permission: Permission): boolean {
  if (principal.kind === 'user') return isAllowed(principal.role, permission);
  if (principal.kind === 'carrier') return CARRIER_PERMISSIONS.has(permission);
  return principal.scopes.includes(permission) && isTenantPermission(permission) && !NEVER_DELEGATED.has(permission);
}
