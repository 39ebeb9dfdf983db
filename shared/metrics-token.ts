/** The static credential that may scrape /metrics (--metrics-token), compared in constant time. */
import { createHash, timingSafeEqual } from 'node:crypto';

const BEARER_RE = /^Bearer\s+(\S+)\s*$/i;

/** True when `authorization` is `Bearer <token>`. Hashing first makes the comparison length-blind. */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  const presented = authorization === undefined ? null : BEARER_RE.exec(authorization)?.[1];
  if (!presented) return false;
  const digest = (v: string): Buffer => createHash('sha256').update(v).digest();
  return timingSafeEqual(digest(presented), digest(token));
}
