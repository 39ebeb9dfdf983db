/**
 * Tenant API keys: `epk_` + 256 random bits, shown once at creation and stored only as SHA-256
 * (a random 256-bit secret needs no KDF: there is nothing to brute-force), found by that hash.
 */
import { randomSecret, sha256 } from '../../shared/auth/secrets.js';
import type { ApiKey } from '../../shared/domain.js';
import { createError } from '../../shared/errors.js';
import type { Store } from '../../shared/store/port.js';
import type { StoreFaults } from '../../shared/store/store-faults.js';
import type { ApiKeyPrincipal } from '../types.js';
import { isPermission, type Permission } from './permissions.js';

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

// One message for unknown, revoked and expired keys: a caller learns nothing about which it was.
const invalidKey = () => createError('UNAUTHENTICATED', 'API key is invalid, expired or revoked');

export function apiKeyPrincipal(key: ApiKey): ApiKeyPrincipal {
  return {
    kind: 'api_key',
    keyId: key.id,
    tenantId: key.tenant_id,
    // A scope the table no longer knows grants nothing.
    scopes: key.scopes.filter((s): s is Permission => isPermission(s)),
    actorId: `api_key:${key.id}`,
    label: key.name,
    expiresAt: key.expires_at,
  };
}

/**
 * Resolves a presented key to its principal, or throws UNAUTHENTICATED. The last-use stamp is
 * bookkeeping: when the store is full it is skipped (counted by `faults`), so the key still reads.
 */
export async function authenticateApiKey(store: Store, credential: string, now: number, faults?: Pick<StoreFaults, 'refused'>): Promise<ApiKeyPrincipal> {
  const key = await store.apiKeys.findByHash(sha256(credential));
  if (!key || key.revoked_at !== null || (key.expires_at !== null && key.expires_at <= now)) throw invalidKey();
  if (key.last_used_at === null || now - key.last_used_at >= TOUCH_INTERVAL_MS) {
    try {
      await store.apiKeys.touch(key.id, now);
    } catch (err) {
      if (!faults?.refused(err, 'credentials')) throw err;
    }
  }
  return apiKeyPrincipal(key);
}
