/**
 * The signed-in session: the short-lived access token in memory only, the refresh token in this
 * tab's sessionStorage.
 *
 * Why sessionStorage for the refresh token: a reload must not sign the user out, and the API takes
 * the refresh token in a JSON body (no HttpOnly cookie to lean on). sessionStorage is per tab and
 * cleared when the tab closes; it is never sent with requests by the browser, so there is no CSRF
 * surface. A script injected into the page could read it, but such a script could equally drive
 * the API with an in-memory token, so memory alone would buy little; what guards against it is
 * the CSP (no inline or third-party script) and the API's rotation: every refresh token works
 * once, and reusing a rotated one revokes the whole family. The access token never touches
 * storage, URLs or logs (the feeds get it through the WebSocket subprotocol).
 *
 * Sign-out revokes the refresh token at the API, clears the storage and reloads the page, which
 * drops every byte of in-memory state (lists, feeds, tokens).
 */
import { ApiError, errorOf } from './errors';
import type { TokenPair } from './types';

const REFRESH_KEY = 'edgeplane.console.refresh';
/** Refresh this long before the access token expires, so requests never race its expiry. */
const REFRESH_AHEAD_MS = 60_000;
/**
 * The generation of this tab's newest session. A session may touch the stored refresh token only
 * while it is the newest one and has not ended: a refresh still in flight when its session ends
 * (sign-out, a refused refresh) must not later write its token over the next sign-in's, nor
 * spend (and so rotate away) the next session's token.
 */
let currentGeneration = 0;

async function postJson(path: string, body: unknown): Promise<Response> {
  return fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
}

/** The API's answers to a refresh token it will never take (malformed, expired, revoked, reused). */
function refused(status: number): boolean {
  return status === 400 || status === 401;
}

export class Session {
  #access: string;
  #expiresAt: number;
  #refreshing: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #ended = false;
  readonly #generation = ++currentGeneration;
  readonly #onEnded = new Set<(reason: string) => void>();

  private constructor(pair: TokenPair) {
    this.#access = pair.access_token;
    this.#expiresAt = Date.now() + pair.expires_in * 1000;
    sessionStorage.setItem(REFRESH_KEY, pair.refresh_token);
    this.#schedule();
  }

  static async login(email: string, password: string, tenantId?: string): Promise<Session> {
    const res = await postJson('/api/v1/auth/login', { email, password, ...(tenantId ? { tenant_id: tenantId } : {}) });
    if (!res.ok) throw await errorOf(res);
    return new Session((await res.json()) as TokenPair);
  }

  /**
   * The session of this tab after a reload, or null when there is none (or it ended). Rejects,
   * keeping the stored token for the next try, when the API cannot answer (network, 429, 5xx).
   */
  static async restore(): Promise<Session | null> {
    const refresh = sessionStorage.getItem(REFRESH_KEY);
    if (refresh === null) return null;
    const res = await postJson('/api/v1/auth/refresh', { refresh_token: refresh });
    if (!res.ok) {
      const err = await errorOf(res);
      // Like refresh(): only a refused token ends the session, not an outage or a rate limit.
      if (!refused(res.status)) throw err;
      sessionStorage.removeItem(REFRESH_KEY);
      return null;
    }
    return new Session((await res.json()) as TokenPair);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** True while this session may use the stored refresh token (see currentGeneration). */
  get #live(): boolean {
    return !this.#ended && this.#generation === currentGeneration;
  }

  /** A valid access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string> {
    if (this.#ended) throw new ApiError(401, 'UNAUTHENTICATED', 'signed out');
    if (Date.now() > this.#expiresAt - REFRESH_AHEAD_MS / 2) await this.refresh();
    return this.#access;
  }

  /** Rotates the token pair; concurrent callers share one refresh. Ends the session if refused. */
  refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        if (!this.#live) throw new ApiError(401, 'UNAUTHENTICATED', 'signed out');
        const refresh = sessionStorage.getItem(REFRESH_KEY);
        if (refresh === null) throw new ApiError(401, 'UNAUTHENTICATED', 'no refresh token in this tab');
        const res = await postJson('/api/v1/auth/refresh', { refresh_token: refresh });
        if (!res.ok) {
          const err = await errorOf(res);
          // A network failure or 5xx is not the end of the session; a refused token is.
          if (refused(res.status)) this.end('Your session ended: please sign in again.');
          throw err;
        }
        const pair = (await res.json()) as TokenPair;
        // The session may have ended (or been replaced by a new sign-in) while the request ran.
        if (!this.#live) throw new ApiError(401, 'UNAUTHENTICATED', 'signed out');
        this.#access = pair.access_token;
        this.#expiresAt = Date.now() + pair.expires_in * 1000;
        sessionStorage.setItem(REFRESH_KEY, pair.refresh_token);
        this.#schedule();
      } finally {
        this.#refreshing = null;
      }
    })();
    return this.#refreshing;
  }

  onEnded(listener: (reason: string) => void): () => void {
    this.#onEnded.add(listener);
    return () => this.#onEnded.delete(listener);
  }

  /** Ends the session locally (the API already refused it, or the user signed out). */
  end(reason: string): void {
    if (this.#ended) return;
    // A replaced session leaves the stored token alone: it is the newer session's.
    if (this.#generation === currentGeneration) sessionStorage.removeItem(REFRESH_KEY);
    this.#ended = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#access = '';
    for (const l of this.#onEnded) l(reason);
  }

  /** Revokes the refresh token at the API, then clears everything by reloading the page. */
  async logout(): Promise<void> {
    const refresh = this.#live ? sessionStorage.getItem(REFRESH_KEY) : null;
    this.end('Signed out.');
    if (refresh !== null) await postJson('/api/v1/auth/logout', { refresh_token: refresh }).catch(() => undefined);
    sessionStorage.clear();
    location.replace('/');
  }

  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer);
    const delay = Math.max(5_000, this.#expiresAt - Date.now() - REFRESH_AHEAD_MS);
    this.#timer = setTimeout(() => void this.refresh().catch(() => undefined), delay);
  }
}
