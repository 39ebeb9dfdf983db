/**
 * Single-use download tokens: how a browser saves an export of any size. The console cannot put
 * its bearer token on a link, and a download fetched with the token in a header has to be held in
 * the tab until it is complete. So the console asks (with its bearer token) for a token that
 * stands for one exact export request, and lets the browser's download manager fetch
 * `/api/v1/downloads/<token>`, which the API streams to disk like any other export.
 *
 * A token is 256 random bits, handed out once and stored only as its SHA-256 (a leaked store or
 * Redis dump redeems nothing). It lives DOWNLOAD_TOKEN_TTL_MS, is redeemed at most once (the take
 * is atomic: a Map delete in one process, GETDEL in Redis), and names the tenant, the account and
 * the session version it was issued under and the export URL; nothing in the download request can
 * change any of them.
 *
 * A link is also bound to the browser that asked for it: issuing sets a cookie (its own per link,
 * named after the link, HttpOnly, SameSite=Strict, only sent to the downloads path, as long-lived
 * as the link) holding 256 more random bits, of which the grant keeps only the SHA-256. A link
 * redeems only with its cookie, so a link that leaks (a proxy log, history sync, a shared screen)
 * is worthless without the browser's cookie jar. A redemption without the right cookie is refused
 * exactly like an unknown link and takes nothing: the browser that asked can still use it.
 *
 * Where the tokens live is a port: in the API process by default (one API process, the embedded
 * deployment), in Redis when the API is given Redis (several API processes behind a balancer: a
 * token issued by one is redeemed by whichever process the browser reaches). Expiry is checked
 * against the API's injected clock in both adapters (Redis' own expiry only collects the garbage).
 */
import type { Redis } from 'ioredis';
import { randomSecret, safeEqual, sha256 } from '../shared/auth/secrets.js';

/** How long a token may wait for its download: the console redeems it at once. */
export const DOWNLOAD_TOKEN_TTL_MS = 60_000;
/** Marks a download token (like `epk_` an API key), so a log scanner or a person can tell it apart. */
export const DOWNLOAD_TOKEN_PREFIX = 'epd_';
/** Where a token is redeemed, under the API prefix. */
export const DOWNLOADS_PATH = '/downloads';

/** What one token stands for. */
export interface DownloadGrant {
  tenant_id: string | null;
  user_id: string;
  /** The account's session version at issue: a role change, disable or password change ends the token. */
  session_version: number;
  /** The sign-in it was issued under (the access token's `sid`): signing out ends the token. Absent for older tokens. */
  session_id?: string;
  /** The export request, path and query (`/api/v1/app-usage?format=csv&…`). */
  url: string;
  /** Epoch ms. */
  expires_at: number;
  /** SHA-256 of the cookie nonce set with the link: only the browser holding that cookie redeems it. */
  cookie_hash: string;
}

export interface DownloadTokenStore {
  /** Remembers `grant` under the hash of a token. */
  put(tokenHash: string, grant: DownloadGrant): Promise<void>;
  /** The grant, left in place, or null when unknown or already taken. */
  peek(tokenHash: string): Promise<DownloadGrant | null>;
  /** The grant, removed in the same step, or null when unknown or already taken. */
  take(tokenHash: string): Promise<DownloadGrant | null>;
}

/** A new token (returned once) and the hash it is stored under. */
export function newDownloadToken(): { token: string; hash: string } {
  const token = `${DOWNLOAD_TOKEN_PREFIX}${randomSecret(32)}`;
  return { token, hash: sha256(token) };
}

export function downloadTokenHash(token: string): string {
  return sha256(token);
}

/**
 * The cookie that binds the link `token` to its browser. One per link, so links issued at once
 * (two exports started in two tabs) never overwrite each other's cookie; its name is derived from
 * the token (not the token itself, nor the hash it is stored under), so the redemption finds it.
 */
export function downloadCookieName(token: string): string {
  return `${DOWNLOAD_TOKEN_PREFIX}${sha256(`cookie:${token}`).slice(0, 16)}`;
}

/** A new cookie nonce (set once, on the issuing response) and the hash the grant keeps. */
export function newDownloadCookie(): { nonce: string; hash: string } {
  const nonce = randomSecret(32);
  return { nonce, hash: sha256(nonce) };
}

/**
 * The grant `token` stands for, taken (never again), or null: unknown, used, expired at `now`, or
 * not presented with its cookie (`cookieNonces`: every value the request carries under the link's
 * cookie name). A refusal for the cookie takes nothing, so the browser holding it can still redeem.
 */
export async function redeemDownloadToken(
  store: DownloadTokenStore,
  token: string,
  cookieNonces: readonly string[],
  now: number,
): Promise<DownloadGrant | null> {
  const hash = downloadTokenHash(token);
  const held = await store.peek(hash);
  if (held === null || now >= held.expires_at || !cookieMatches(held, cookieNonces)) return null;
  // Of two redemptions with the cookie, one takes it. A grant never changes under its hash, so the
  // one taken is the one checked.
  const grant = await store.take(hash);
  return grant !== null && now < grant.expires_at && cookieMatches(grant, cookieNonces) ? grant : null;
}

function cookieMatches(grant: DownloadGrant, cookieNonces: readonly string[]): boolean {
  // A grant without a cookie hash (issued before links were bound) is refused: at worst a download
  // started during an upgrade is started again.
  if (typeof grant.cookie_hash !== 'string') return false;
  let matched = false;
  // Every candidate is compared (constant time each), not only up to the first match.
  for (const nonce of cookieNonces) if (safeEqual(sha256(nonce), grant.cookie_hash)) matched = true;
  return matched;
}

/**
 * In the API process. Tokens all live the same time, so insertion order is expiry order and the
 * expired ones are dropped from the front on each issue: memory stays at the tokens issued in
 * the last minute.
 */
export class InProcessDownloadTokens implements DownloadTokenStore {
  readonly #grants = new Map<string, DownloadGrant>();

  constructor(private readonly now: () => number) {}

  async put(tokenHash: string, grant: DownloadGrant): Promise<void> {
    const now = this.now();
    for (const [hash, held] of this.#grants) {
      if (held.expires_at > now) break;
      this.#grants.delete(hash);
    }
    this.#grants.set(tokenHash, grant);
  }

  async peek(tokenHash: string): Promise<DownloadGrant | null> {
    return this.#grants.get(tokenHash) ?? null;
  }

  async take(tokenHash: string): Promise<DownloadGrant | null> {
    const grant = this.#grants.get(tokenHash);
    if (grant === undefined) return null;
    this.#grants.delete(tokenHash);
    return grant;
  }

  /** Tokens held (issued and neither taken nor dropped): for tests. */
  get size(): number {
    return this.#grants.size;
  }
}

/** In Redis, shared by every API process of a deployment. */
export class RedisDownloadTokens implements DownloadTokenStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly now: () => number,
  ) {}

  #key(tokenHash: string): string {
    return `${this.prefix}download-token:${tokenHash}`;
  }

  async put(tokenHash: string, grant: DownloadGrant): Promise<void> {
    const ttlMs = Math.max(1, grant.expires_at - this.now());
    await this.redis.set(this.#key(tokenHash), JSON.stringify(grant), 'PX', ttlMs);
  }

  async peek(tokenHash: string): Promise<DownloadGrant | null> {
    return parseGrant(await this.redis.get(this.#key(tokenHash)));
  }

  async take(tokenHash: string): Promise<DownloadGrant | null> {
    // GETDEL (Redis 6.2): of two processes redeeming the same token at once, one gets it.
    return parseGrant(await this.redis.getdel(this.#key(tokenHash)));
  }
}

function parseGrant(raw: string | null): DownloadGrant | null {
  if (raw === null) return null;
  try {
    return JSON.parse(raw) as DownloadGrant;
  } catch {
    return null;
  }
}

/** The rest of a path after a `downloads` segment, in any case (also a path the router refused). */
const DOWNLOAD_PATH_RE = /^([^?#]*\/downloads\/)[^?#]+/i;

/** `url` with a download token in its path replaced, for logs. */
export function redactDownloadToken(url: string): string {
  return url.replace(DOWNLOAD_PATH_RE, '$1[redacted]');
}
