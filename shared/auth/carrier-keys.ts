/**
 * A carrier's feed credential: `epc_<credentialId>.<secret>`, one string for both transports
 * (REST `Authorization: Bearer epc_…`, MQTT password with username `carrier:<carrierId>`). The
 * marker tells it apart from access tokens and tenant API keys (`epk_`); the id finds the record;
 * the secret (256 random bits) is compared by SHA-256 hash, as for tower credentials.
 */
import type { CarrierCredentialRecord } from '../store/port.js';
import { parseTowerPassword, safeEqual, sha256 } from './secrets.js';

export const CARRIER_KEY_MARKER = 'epc_';

export function formatCarrierKey(credentialId: string, secret: string): string {
  return `${CARRIER_KEY_MARKER}${credentialId}.${secret}`;
}

export function looksLikeCarrierKey(value: string): boolean {
  return value.startsWith(CARRIER_KEY_MARKER);
}

export function parseCarrierKey(value: string): { credentialId: string; secret: string } | null {
  if (!looksLikeCarrierKey(value)) return null;
  return parseTowerPassword(value.slice(CARRIER_KEY_MARKER.length));
}

export type CarrierKeyCheck =
  | { ok: true; carrierId: string; credentialId: string }
  | { ok: false; reason: 'malformed' | 'unknown_credential' | 'bad_secret' | 'revoked' };

/** Checks a presented key against its stored credential (`get` may throw: store unavailable). */
export async function checkCarrierKey(
  key: string,
  get: (credentialId: string) => Promise<CarrierCredentialRecord | null>,
): Promise<CarrierKeyCheck> {
  const parsed = parseCarrierKey(key);
  if (!parsed) return { ok: false, reason: 'malformed' };
  const cred = await get(parsed.credentialId);
  if (!cred) return { ok: false, reason: 'unknown_credential' };
  if (!safeEqual(sha256(parsed.secret), cred.secret_hash)) return { ok: false, reason: 'bad_secret' };
  if (cred.revoked_at !== null) return { ok: false, reason: 'revoked' };
  return { ok: true, carrierId: cred.carrier_id, credentialId: cred.id };
}

/**
 * Whether an authenticated credential still stands (read again while its feed is being applied):
 * it exists and is not revoked. The secret was checked at authentication; only revocation changes.
 */
export async function carrierCredentialActive(
  credentialId: string,
  get: (credentialId: string) => Promise<CarrierCredentialRecord | null>,
): Promise<boolean> {
  const cred = await get(credentialId);
  return cred !== null && cred.revoked_at === null;
}
