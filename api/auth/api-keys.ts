/**
 * Tenant API keys: `epk_` + 256 random bits, shown once at creation and stored only as SHA-256
 * (a random 256-bit secret needs no KDF: there is nothing to brute-force), found by that hash.
 *
 * A key acts on its creator's authority, so it is only as good as that console account is now:
 * it authenticates while the account exists in the key's tenant and is enabled, and holds the
 * stored scopes the account's current role could still grant it. Checked on every request
 * against the account row (one primary-key read, like access tokens in guard.ts), so a departed
 * or demoted admin's keys stop at their next request on every API process and live feed, with
 * no revocation event to miss. A key that names no creator (created_by null: written outside
 * the API, which always records the signed-in creator) has no account to answer for it and is
 * refused: nothing can say what it may still do.
 */
import { randomSecret, sha256 } from '../../shared/auth/secrets.js';
import type { ApiKey, ConsoleUser } from '../../shared/domain.js';
import { createError } from '../../shared/errors.js';
import type { Store } from '../../shared/store/port.js';
import type { StoreFaults } from '../../shared/store/store-faults.js';
import type { ApiKeyPrincipal } from '../types.js';
import { apiKeyScopeProblem, type Permission } from './permissions.js';

export const API_KEY_MARKER = 'epk_';
/** Characters of the key kept in clear (marker + 8), enough to tell keys apart in a list. */
export const API_KEY_PREFIX_LENGTH = 12;
/** last_used_at is written at most this often per key: authentication stays a read. */
export const TOUCH_INTERVAL_MS = 60_000;

export interface NewApiKey {
  key: string;
  prefix: string;
  secretHash: string;
}

export function generateApiKey(): NewApiKey {
  const key = `${API_KEY_MARKER}${randomSecret(32)}`;
  return { key, prefix: key.slice(0, API_KEY_PREFIX_LENGTH), secretHash: sha256(key) };
}

export function looksLikeApiKey(credential: string): boolean {
  return credential.startsWith(API_KEY_MARKER);
}

// One message for unknown, revoked and expired keys and those whose creator is disabled or gone:
// a caller learns nothing about which it was.
const invalidKey = () => createError('UNAUTHENTICATED', 'API key is invalid, expired or revoked');

/**
 * Whether a key authenticates now, and why not: revoked and expired are the key's own state; the
 * creator_* statuses come from its creator's account as it is now (a re-enabled account's keys
 * work again: disabling is reversible, deleting and revoking are not).
 */
export const API_KEY_STATUSES = ['active', 'revoked', 'expired', 'creator_missing', 'creator_disabled'] as const;
export type ApiKeyStatus = (typeof API_KEY_STATUSES)[number];

export interface ApiKeyStanding {
  status: ApiKeyStatus;
  /** The stored scopes the creator's current role may delegate; empty unless active. */
  effectiveScopes: Permission[];
}

/** Revoked or expired: decided by the key alone, before its creator is read. */
function lapsed(key: ApiKey, now: number): ApiKeyStatus | null {
  if (key.revoked_at !== null) return 'revoked';
  if (key.expires_at !== null && key.expires_at <= now) return 'expired';
  return null;
}

/**
 * `creator` is the account `key.created_by` names as the store has it now (null when created_by
 * is null or the account is gone). An account of another tenant never answers for a key.
 */
export function apiKeyStanding(key: ApiKey, creator: ConsoleUser | null, now: number): ApiKeyStanding {
  const own = lapsed(key, now);
  if (own) return { status: own, effectiveScopes: [] };
  if (key.created_by === null || !creator || creator.id !== key.created_by || creator.tenant_id !== key.tenant_id) {
    return { status: 'creator_missing', effectiveScopes: [] };
  }
  if (creator.disabled_at !== null) return { status: 'creator_disabled', effectiveScopes: [] };
  // The same rule as at creation: a scope the role could not grant today is not held (an unknown
  // scope, one a tightened rule forbids, one the creator's role lost).
  const effectiveScopes = key.scopes.filter((s): s is Permission => apiKeyScopeProblem(creator.console_role, s) === null);
  return { status: 'active', effectiveScopes };
}

/** The creator account of each key, read once per distinct creator. */
export async function creatorsOf(store: Store, keys: readonly ApiKey[]): Promise<Map<string, ConsoleUser | null>> {
  const ids = [...new Set(keys.map((k) => k.created_by).filter((id): id is string => id !== null))];
  const users = await Promise.all(ids.map((id) => store.consoleUsers.get(id)));
  return new Map(ids.map((id, i) => [id, users[i] ?? null]));
}

export function apiKeyPrincipal(key: ApiKey, scopes: readonly Permission[]): ApiKeyPrincipal {
  return {
    kind: 'api_key',
    keyId: key.id,
    tenantId: key.tenant_id,
    scopes,
    actorId: `api_key:${key.id}`,
    label: key.name,
    expiresAt: key.expires_at,
  };
}

/**
 * Resolves a presented key to its principal, or throws UNAUTHENTICATED (one message whatever the
 * reason: revoked, expired, its creator disabled or gone). The last-use stamp is bookkeeping:
 * when the store is full it is skipped (counted by `faults`), so the key still reads.
 */
export async function authenticateApiKey(store: Store, credential: string, now: number, faults?: Pick<StoreFaults, 'refused'>): Promise<ApiKeyPrincipal> {
  const key = await store.apiKeys.findByHash(sha256(credential));
  if (!key || lapsed(key, now) !== null) throw invalidKey();
  const creator = key.created_by === null ? null : await store.consoleUsers.get(key.created_by);
  const standing = apiKeyStanding(key, creator, now);
  if (standing.status !== 'active') throw invalidKey();
  if (key.last_used_at === null || now - key.last_used_at >= TOUCH_INTERVAL_MS) {
    try {
      await store.apiKeys.touch(key.id, now);
    } catch (err) {
      if (!faults?.refused(err, 'credentials')) throw err;
    }
  }
  return apiKeyPrincipal(key, standing.effectiveScopes);
}
