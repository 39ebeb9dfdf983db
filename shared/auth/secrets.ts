/**
 * High-entropy machine secrets (tower credentials, refresh tokens, service secrets). They are
 * random 256-bit values, so a single SHA-256 is a sufficient at-rest hash (no KDF needed: there is
 * nothing to brute-force), and lookups stay O(1).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export function randomSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

export function safeEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

/**
 * A tower's MQTT password is `<credentialId>.<secret>`: the id finds the record, the secret is
 * compared by hash. The broker never sees or stores the secret itself.
 */
export function formatTowerPassword(credentialId: string, secret: string): string {
  return `${credentialId}.${secret}`;
}

export function parseTowerPassword(password: string): { credentialId: string; secret: string } | null {
  const dot = password.indexOf('.');
  if (dot <= 0 || dot === password.length - 1) return null;
  return { credentialId: password.slice(0, dot), secret: password.slice(dot + 1) };
}
